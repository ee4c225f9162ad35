//! Checking a rich notification batch's `validationTokens` (docs/graph-protocol.md
//! section 5): every token must be an RS256 JWT signed by a key of the
//! Microsoft identity platform's JWKS, current, for one of our app ids,
//! issued to Microsoft Graph Change Tracking, by a tenant's issuer, and the
//! tokens must cover the tenant of every rich item (Graph sends one token per
//! app and tenant in the batch, so a rich item of a tenant no token names was
//! not vouched for by Graph).
//!
//! Signature and time checks are jsonwebtoken's (RustCrypto backend, so it
//! builds for wasm32); the Graph-specific rules are here. A token verified
//! once is remembered by its key set (see `verified_tokens`). Nothing in this
//! module does I/O: the Worker glue fetches and caches the JWKS.

use std::collections::HashMap;

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use crate::verified_tokens::{VerifiedTokens, Vouched};

/// Microsoft Graph Change Tracking: the caller every token must name.
pub const GRAPH_CHANGE_TRACKING_APP_ID: &str = "0bf30f3b-4a52-48df-9a82-234910c4a086";
pub use crate::verified_tokens::LEEWAY_SECONDS;

/// Why a batch's tokens were refused. Never carries a token.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("validationTokens is null: the subscribing app is misconfigured")]
    Null,
    #[error("validationTokens is missing but the batch carries encryptedContent")]
    MissingForEncrypted,
    #[error("validationTokens must be a non-empty array of strings")]
    NotAnArray,
    #[error("token {0}: not a JWT")]
    Malformed(usize),
    #[error("token {0}: algorithm {1} is not RS256")]
    Algorithm(usize, String),
    #[error("token {0}: no key with kid {1:?} in the JWKS")]
    UnknownKey(usize, String),
    #[error("token {0}: {1}")]
    Rejected(usize, String),
    #[error("token {0}: caller is not Microsoft Graph Change Tracking")]
    WrongCaller(usize),
    #[error("token {0}: issuer is neither sts.windows.net nor login.microsoftonline.com for its tenant")]
    WrongIssuer(usize),
    #[error("token {0}: tenant {1} is not in ALLOWED_TENANT_IDS")]
    TenantNotAllowed(usize, String),
    #[error("a rich item of tenant {0:?} has no validationToken of its tenant")]
    TenantNotCovered(String),
}

impl TokenError {
    /// An unknown key may just be a rotation: worth refetching the JWKS.
    pub fn is_unknown_key(&self) -> bool {
        matches!(self, TokenError::UnknownKey(..))
    }
}

/// The RSA signing keys of a JWKS, by `kid`.
#[derive(Default)]
pub struct Keys {
    by_kid: HashMap<String, DecodingKey>,
    /// Tokens verified with these keys: a rotation (new `Keys`) forgets them.
    verified: VerifiedTokens,
}

impl Clone for Keys {
    /// The same keys; tokens are verified again.
    fn clone(&self) -> Self {
        Self { by_kid: self.by_kid.clone(), verified: VerifiedTokens::default() }
    }
}

impl Keys {
    /// Parses a JWKS document, keeping its RSA keys.
    pub fn from_jwks(json: &str) -> Result<Self, String> {
        let set: JwkSet = serde_json::from_str(json).map_err(|e| format!("JWKS is not valid: {e}"))?;
        let mut by_kid = HashMap::new();
        for jwk in set.keys {
            let (Some(kid), AlgorithmParameters::RSA(rsa)) = (jwk.common.key_id.clone(), &jwk.algorithm) else {
                continue;
            };
            if let Ok(key) = DecodingKey::from_rsa_components(&rsa.n, &rsa.e) {
                by_kid.insert(kid, key);
            }
        }
        if by_kid.is_empty() {
            return Err("JWKS has no RSA key with a kid".into());
        }
        Ok(Self { by_kid, verified: VerifiedTokens::default() })
    }

    /// Tokens whose signature these keys have verified and still remember.
    pub fn verified_tokens(&self) -> usize {
        self.verified.len()
    }

    pub fn len(&self) -> usize {
        self.by_kid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_kid.is_empty()
    }
}

/// What the edge requires of every token.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Our app ids (`GRAPH_APP_IDS`): the accepted audiences.
    pub app_ids: Vec<String>,
    /// `ALLOWED_TENANT_IDS`; empty allows any tenant.
    pub allowed_tenants: Vec<String>,
}

impl Policy {
    /// Tells verified tokens apart by the policy they were checked under
    /// (quoted lists: no two policies print alike).
    fn fingerprint(&self) -> String {
        format!("{:?}{:?}", self.app_ids, self.allowed_tenants)
    }
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    tid: Option<String>,
    appid: Option<String>,
    azp: Option<String>,
    /// Already checked by jsonwebtoken; kept for later uses of the token.
    nbf: f64,
    exp: f64,
}

/// Checks a batch: `validation_tokens` is the envelope's field as sent
/// (`None` when absent); `rich_tenants` the `tenantId` of each item carrying
/// `encryptedContent` ("" when it names none); `now` in Unix seconds, for
/// tokens verified before. Returns how many tokens were verified.
pub fn check_batch(
    validation_tokens: Option<&Value>,
    rich_tenants: &[String],
    keys: &Keys,
    policy: &Policy,
    now: u64,
) -> Result<usize, TokenError> {
    let tokens = match validation_tokens {
        None if !rich_tenants.is_empty() => return Err(TokenError::MissingForEncrypted),
        None => return Ok(0),
        Some(Value::Null) => return Err(TokenError::Null),
        Some(Value::Array(tokens)) if !tokens.is_empty() => tokens,
        Some(_) => return Err(TokenError::NotAnArray),
    };
    let fingerprint = policy.fingerprint();
    let mut vouched = Vec::with_capacity(tokens.len());
    for (index, token) in tokens.iter().enumerate() {
        let token = token.as_str().ok_or(TokenError::NotAnArray)?;
        let tenant = match keys.verified.get(token, &fingerprint) {
            Some(before) => match before.untimely(now) {
                Some(reason) => return Err(TokenError::Rejected(index, reason.into())),
                None => before.tenant,
            },
            None => {
                let verified = check_token(index, token, keys, policy)?;
                let tenant = verified.tenant.clone();
                keys.verified.insert(token, &fingerprint, verified, now);
                tenant
            }
        };
        vouched.push(tenant);
    }
    if let Some(tenant) = rich_tenants.iter().find(|t| !vouched.iter().any(|v| v.eq_ignore_ascii_case(t))) {
        return Err(TokenError::TenantNotCovered(tenant.clone()));
    }
    Ok(tokens.len())
}

/// Verifies one token; returns what it vouches for.
fn check_token(index: usize, token: &str, keys: &Keys, policy: &Policy) -> Result<Vouched, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed(index))?;
    if header.alg != Algorithm::RS256 {
        return Err(TokenError::Algorithm(index, format!("{:?}", header.alg)));
    }
    let kid = header.kid.unwrap_or_default();
    let key = keys.by_kid.get(&kid).ok_or_else(|| TokenError::UnknownKey(index, kid.clone()))?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = LEEWAY_SECONDS;
    validation.validate_nbf = true;
    validation.set_audience(&policy.app_ids);
    validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss"]);
    let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
        .map_err(|e| TokenError::Rejected(index, e.to_string()))?
        .claims;
    let caller = claims.appid.as_deref().or(claims.azp.as_deref());
    if caller != Some(GRAPH_CHANGE_TRACKING_APP_ID) {
        return Err(TokenError::WrongCaller(index));
    }
    let tenant = claims.tid.unwrap_or_default();
    let v1 = format!("https://sts.windows.net/{tenant}/");
    let v2 = format!("https://login.microsoftonline.com/{tenant}/v2.0");
    if tenant.is_empty() || (claims.iss != v1 && claims.iss != v2) {
        return Err(TokenError::WrongIssuer(index));
    }
    if !policy.allowed_tenants.is_empty() && !policy.allowed_tenants.iter().any(|t| t.eq_ignore_ascii_case(&tenant)) {
        return Err(TokenError::TenantNotAllowed(index, tenant));
    }
    Ok(Vouched { tenant, not_before: claims.nbf as u64, expires: claims.exp as u64 })
}
