//! Checking a rich notification batch's `validationTokens` (docs/graph-protocol.md
//! section 5): every token must be an RS256 JWT signed by a key of the
//! Microsoft identity platform's JWKS, current, for one of our app ids,
//! issued to Microsoft Graph Change Tracking, by a tenant's issuer, and the
//! tokens must cover the tenant of every rich item (Graph sends one token per
//! app and tenant in the batch, so a rich item of a tenant no token names was
//! not vouched for by Graph).
//!
//! The rules are plain Rust, the same natively and in wasm: the token comes
//! apart in `jwt`, its signature is checked by the platform behind the
//! [`Rs256`] trait (WebCrypto in the Worker, RustCrypto natively), and the
//! claims are checked here. A token verified once is remembered by its key
//! set (see `verified_tokens`). Nothing in this module does I/O: the Worker
//! glue fetches and caches the JWKS.

use std::collections::HashMap;

use serde_json::Value;
use thiserror::Error;

use crate::jwt::{self, Claims};
pub use crate::rs256::{Rs256, RsaJwk};
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
    #[error("token {0}: key {1:?} cannot verify: {2}")]
    UnusableKey(usize, String, String),
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
    by_kid: HashMap<String, RsaJwk>,
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
        let set: Value = serde_json::from_str(json).map_err(|e| format!("JWKS is not valid: {e}"))?;
        let keys = set.get("keys").and_then(Value::as_array).ok_or("JWKS is not valid: no \"keys\" array")?;
        let mut by_kid = HashMap::new();
        for jwk in keys {
            let text = |field: &str| jwk.get(field).and_then(Value::as_str).map(str::to_owned);
            if text("kty").as_deref() != Some("RSA") {
                continue;
            }
            if let (Some(kid), Some(n), Some(e)) = (text("kid"), text("n"), text("e")) {
                by_kid.insert(kid.clone(), RsaJwk { kid, n, e });
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

/// Checks a batch: `validation_tokens` is the envelope's field as sent
/// (`None` when absent); `rich_tenants` the `tenantId` of each item carrying
/// `encryptedContent` ("" when it names none); `now` in Unix seconds, for
/// tokens verified before; `rs256` checks signatures. Returns how many
/// tokens were verified.
pub async fn check_batch(
    validation_tokens: Option<&Value>,
    rich_tenants: &[String],
    keys: &Keys,
    policy: &Policy,
    now: u64,
    rs256: &impl Rs256,
) -> Result<usize, TokenError> {
    let tokens = token_list(validation_tokens, rich_tenants)?;
    let fingerprint = policy.fingerprint();
    let mut vouched = Vec::with_capacity(tokens.len());
    for (index, token) in tokens.iter().enumerate() {
        let token = token.as_str().ok_or(TokenError::NotAnArray)?;
        let tenant = match remembered(keys, token, &fingerprint, index, now) {
            Some(tenant) => tenant?,
            None => {
                let verified = check_token(index, token, keys, policy, now, rs256).await?;
                let tenant = verified.tenant.clone();
                keys.verified.insert(token, &fingerprint, verified, now);
                tenant
            }
        };
        vouched.push(tenant);
    }
    covers(rich_tenants, &vouched)?;
    Ok(tokens.len())
}

/// [`check_batch`]'s verdict without a signature check, when every token
/// of the batch was verified with `keys` before; `None` when one was not
/// (then only `check_batch` can tell). Synchronous, for the Worker's quick
/// route.
pub fn check_batch_remembered(
    validation_tokens: Option<&Value>,
    rich_tenants: &[String],
    keys: &Keys,
    policy: &Policy,
    now: u64,
) -> Option<Result<usize, TokenError>> {
    let tokens = match token_list(validation_tokens, rich_tenants) {
        Ok(tokens) => tokens,
        Err(e) => return Some(Err(e)),
    };
    let fingerprint = policy.fingerprint();
    let mut vouched = Vec::with_capacity(tokens.len());
    for (index, token) in tokens.iter().enumerate() {
        let Some(token) = token.as_str() else { return Some(Err(TokenError::NotAnArray)) };
        match remembered(keys, token, &fingerprint, index, now)? {
            Ok(tenant) => vouched.push(tenant),
            Err(e) => return Some(Err(e)),
        }
    }
    Some(covers(rich_tenants, &vouched).map(|()| tokens.len()))
}

/// The tokens of the envelope's field, or why there are none to check
/// (an empty list when the batch needs none).
fn token_list<'a>(validation_tokens: Option<&'a Value>, rich_tenants: &[String]) -> Result<&'a [Value], TokenError> {
    match validation_tokens {
        None if !rich_tenants.is_empty() => Err(TokenError::MissingForEncrypted),
        None => Ok(&[]),
        Some(Value::Null) => Err(TokenError::Null),
        Some(Value::Array(tokens)) if !tokens.is_empty() => Ok(tokens),
        Some(_) => Err(TokenError::NotAnArray),
    }
}

/// The tenant a token verified before vouches for, if it may still be used
/// at `now`; `None` when it was never verified with these keys and policy.
fn remembered(
    keys: &Keys,
    token: &str,
    fingerprint: &str,
    index: usize,
    now: u64,
) -> Option<Result<String, TokenError>> {
    let before = keys.verified.get(token, fingerprint)?;
    Some(match before.untimely(now) {
        Some(reason) => Err(TokenError::Rejected(index, reason.into())),
        None => Ok(before.tenant),
    })
}

/// Every rich item's tenant must be one a token vouched for.
fn covers(rich_tenants: &[String], vouched: &[String]) -> Result<(), TokenError> {
    match rich_tenants.iter().find(|t| !vouched.iter().any(|v| v.eq_ignore_ascii_case(t))) {
        Some(tenant) => Err(TokenError::TenantNotCovered(tenant.clone())),
        None => Ok(()),
    }
}

/// Verifies one token; returns what it vouches for.
async fn check_token(
    index: usize,
    token: &str,
    keys: &Keys,
    policy: &Policy,
    now: u64,
    rs256: &impl Rs256,
) -> Result<Vouched, TokenError> {
    let parsed = jwt::parse(token).ok_or(TokenError::Malformed(index))?;
    if parsed.header.alg != "RS256" {
        return Err(TokenError::Algorithm(index, parsed.header.alg));
    }
    let kid = parsed.header.kid.unwrap_or_default();
    let key = keys.by_kid.get(&kid).ok_or_else(|| TokenError::UnknownKey(index, kid.clone()))?;
    let verified = rs256
        .verify(key, parsed.signed.as_bytes(), &parsed.signature)
        .await
        .map_err(|e| TokenError::UnusableKey(index, kid.clone(), e))?;
    if !verified {
        return Err(TokenError::Rejected(index, "InvalidSignature".into()));
    }
    let (not_before, expires) =
        check_claims(&parsed.claims, policy, now).map_err(|e| TokenError::Rejected(index, e))?;
    let claims = parsed.claims;
    let caller = claims.appid.as_deref().or(claims.azp.as_deref());
    if caller != Some(GRAPH_CHANGE_TRACKING_APP_ID) {
        return Err(TokenError::WrongCaller(index));
    }
    let tenant = claims.tid.unwrap_or_default();
    let v1 = format!("https://sts.windows.net/{tenant}/");
    let v2 = format!("https://login.microsoftonline.com/{tenant}/v2.0");
    let iss = claims.iss.unwrap_or_default();
    if tenant.is_empty() || (iss != v1 && iss != v2) {
        return Err(TokenError::WrongIssuer(index));
    }
    if !policy.allowed_tenants.is_empty() && !policy.allowed_tenants.iter().any(|t| t.eq_ignore_ascii_case(&tenant)) {
        return Err(TokenError::TenantNotAllowed(index, tenant));
    }
    Ok(Vouched { tenant, not_before, expires })
}

/// The registered claims every token must carry, and its time window with
/// `LEEWAY_SECONDS` of clock skew; (nbf, exp) when they pass. The reasons
/// read as the JWT ecosystem names them.
fn check_claims(claims: &Claims, policy: &Policy, now: u64) -> Result<(u64, u64), String> {
    let missing = |claim: &str| format!("missing required claim: {claim}");
    let exp = claims.exp.ok_or_else(|| missing("exp"))?;
    let nbf = claims.nbf.ok_or_else(|| missing("nbf"))?;
    let aud = claims.aud.as_ref().ok_or_else(|| missing("aud"))?;
    claims.iss.as_ref().ok_or_else(|| missing("iss"))?;
    let window = Vouched { tenant: String::new(), not_before: nbf.max(0.0) as u64, expires: exp.max(0.0) as u64 };
    if let Some(reason) = window.untimely(now) {
        return Err(reason.into());
    }
    if !aud.any(&policy.app_ids) {
        return Err("InvalidAudience".into());
    }
    Ok((window.not_before, window.expires))
}
