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
    let checks = take_apart(validation_tokens, rich_tenants, keys, policy, now)?;
    let mut verdicts = Vec::new();
    for token in checks.signatures() {
        let verdict = rs256.verify(&token.key, token.signed.as_bytes(), &token.signature).await;
        let passed = verdict == Ok(true);
        verdicts.push(verdict);
        // The batch is refused at this token: the later ones need no RSA.
        if !passed {
            break;
        }
    }
    checks.conclude(verdicts, rich_tenants, keys, policy, now)
}

/// A batch's tokens taken apart before any signature is checked: what each
/// comes to without one, in order, up to the first refused. [`check_batch`]
/// and the Worker's quick route (with WebCrypto's promises) check the
/// [`signatures`](Self::signatures) it names, then [`conclude`](Self::conclude).
pub struct TokenChecks {
    checks: Vec<TokenCheck>,
    /// The policy's fingerprint, which verified tokens are remembered under.
    fingerprint: String,
}

enum TokenCheck {
    /// Verified with these keys before: the tenant it vouches for.
    Remembered(String),
    /// Refused without a signature check; no token after it is looked at.
    Refused(TokenError),
    /// Its signature is still to be checked.
    Unverified(Box<Unverified>),
}

/// A token whose RS256 signature is still to be checked.
pub struct Unverified {
    index: usize,
    token: String,
    /// The JWKS key its `kid` names.
    pub key: RsaJwk,
    /// What the signature covers (`header.payload` as sent).
    pub signed: String,
    pub signature: Vec<u8>,
    claims: Claims,
}

/// Takes a batch's tokens apart (see [`TokenChecks`]); `Err` when the
/// list itself is unusable.
pub fn take_apart(
    validation_tokens: Option<&Value>,
    rich_tenants: &[String],
    keys: &Keys,
    policy: &Policy,
    now: u64,
) -> Result<TokenChecks, TokenError> {
    let tokens = token_list(validation_tokens, rich_tenants)?;
    let fingerprint = policy.fingerprint();
    let mut checks = Vec::with_capacity(tokens.len());
    for (index, token) in tokens.iter().enumerate() {
        let check = match token.as_str() {
            None => TokenCheck::Refused(TokenError::NotAnArray),
            Some(token) => match remembered(keys, token, &fingerprint, index, now) {
                Some(Ok(tenant)) => TokenCheck::Remembered(tenant),
                Some(Err(e)) => TokenCheck::Refused(e),
                None => Unverified::read(index, token, keys)
                    .map_or_else(TokenCheck::Refused, |token| TokenCheck::Unverified(Box::new(token))),
            },
        };
        let refused = matches!(check, TokenCheck::Refused(_));
        checks.push(check);
        if refused {
            break;
        }
    }
    Ok(TokenChecks { checks, fingerprint })
}

impl TokenChecks {
    /// The signatures still to check, in the tokens' order.
    pub fn signatures(&self) -> impl Iterator<Item = &Unverified> {
        self.checks.iter().filter_map(|check| match check {
            TokenCheck::Unverified(token) => Some(token.as_ref()),
            _ => None,
        })
    }

    /// Whether a token is refused whatever the signatures say.
    pub fn refused(&self) -> bool {
        self.checks.iter().any(|check| matches!(check, TokenCheck::Refused(_)))
    }

    /// The batch's verdict from each signature's, in the order of
    /// [`signatures`](Self::signatures): `Ok(false)` a bad signature, `Err`
    /// a key the platform could not use; a missing verdict counts as the
    /// latter. The first token refused decides; tokens that pass before it
    /// are remembered with `keys`.
    pub fn conclude(
        self,
        verdicts: Vec<Result<bool, String>>,
        rich_tenants: &[String],
        keys: &Keys,
        policy: &Policy,
        now: u64,
    ) -> Result<usize, TokenError> {
        let (count, mut verdicts) = (self.checks.len(), verdicts.into_iter());
        let mut vouched = Vec::with_capacity(count);
        for check in self.checks {
            let tenant = match check {
                TokenCheck::Remembered(tenant) => tenant,
                TokenCheck::Refused(e) => return Err(e),
                TokenCheck::Unverified(token) => {
                    let verdict = verdicts.next().unwrap_or_else(|| Err("its signature was not checked".into()));
                    let (token, verified) = token.vouch(verdict, policy, now)?;
                    let tenant = verified.tenant.clone();
                    keys.verified.insert(&token, &self.fingerprint, verified, now);
                    tenant
                }
            };
            vouched.push(tenant);
        }
        covers(rich_tenants, &vouched)?;
        Ok(count)
    }
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

impl Unverified {
    /// The token taken apart, with the key its `kid` names.
    fn read(index: usize, token: &str, keys: &Keys) -> Result<Self, TokenError> {
        let parsed = jwt::parse(token).ok_or(TokenError::Malformed(index))?;
        if parsed.header.alg != "RS256" {
            return Err(TokenError::Algorithm(index, parsed.header.alg));
        }
        let kid = parsed.header.kid.unwrap_or_default();
        let key = keys.by_kid.get(&kid).ok_or_else(|| TokenError::UnknownKey(index, kid.clone()))?.clone();
        Ok(Self {
            index,
            token: token.to_owned(),
            key,
            signed: parsed.signed.to_owned(),
            signature: parsed.signature,
            claims: parsed.claims,
        })
    }

    /// What the token vouches for, once its signature's `verdict` is in;
    /// the token comes back with it, to be remembered.
    fn vouch(self, verdict: Result<bool, String>, policy: &Policy, now: u64) -> Result<(String, Vouched), TokenError> {
        let index = self.index;
        let verified = verdict.map_err(|e| TokenError::UnusableKey(index, self.key.kid.clone(), e))?;
        if !verified {
            return Err(TokenError::Rejected(index, "InvalidSignature".into()));
        }
        let (not_before, expires) =
            check_claims(&self.claims, policy, now).map_err(|e| TokenError::Rejected(index, e))?;
        let claims = self.claims;
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
        if !policy.allowed_tenants.is_empty() && !policy.allowed_tenants.iter().any(|t| t.eq_ignore_ascii_case(&tenant))
        {
            return Err(TokenError::TenantNotAllowed(index, tenant));
        }
        Ok((self.token, Vouched { tenant, not_before, expires }))
    }
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
