//! The identity platform, as far as the relay uses it: OAuth 2.0 client
//! credentials (secret or certificate assertion), the device-code flow,
//! refresh tokens, and the JWKS that signs rich notifications' validationTokens.

use std::collections::HashMap;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use super::Emulator;
use crate::graph::catalog::Permission;
use crate::graph::now_ms;
pub use crate::graph::random_token;

const ACCESS_TOKEN_SECONDS: u64 = 3599;
const DEVICE_CODE_SECONDS: u64 = 900;

/// Whom an access token speaks for.
#[derive(Debug, Clone)]
pub struct Grant {
    pub client_id: String,
    pub tenant_id: String,
    pub permission: Permission,
    pub expires_at_ms: u64,
}

/// A device-code sign-in in progress.
#[derive(Debug, Clone)]
struct DeviceCode {
    user_code: String,
    client_id: String,
    /// Set by `/emulator/device/approve`: the account type that signed in.
    approved: Option<Permission>,
    expires_at_ms: u64,
}

#[derive(Default)]
pub struct Grants {
    access: HashMap<String, Grant>,
    refresh: HashMap<String, Grant>,
    device_codes: HashMap<String, DeviceCode>,
}

impl Grants {
    /// Marks the sign-in with `user_code` as done by an account of `permission`'s kind.
    pub fn approve(&mut self, user_code: &str, permission: Permission) -> bool {
        let code = self.device_codes.values_mut().find(|c| c.user_code.eq_ignore_ascii_case(user_code));
        code.map(|c| c.approved = Some(permission)).is_some()
    }
}

/// The key validationTokens are signed with, and its JWKS.
pub struct SigningKeys {
    pub kid: String,
    pub encoding: jsonwebtoken::EncodingKey,
    jwk: Value,
}

impl SigningKeys {
    pub fn generate() -> Result<SigningKeys, Box<dyn std::error::Error>> {
        let key = RsaPrivateKey::new(&mut rand::thread_rng(), 2048)?;
        let der = rsa::pkcs1::EncodeRsaPrivateKey::to_pkcs1_der(&key)?;
        let kid = random_token(12);
        let public = key.to_public_key();
        let jwk = json!({
            "kty": "RSA", "use": "sig", "kid": kid, "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        });
        Ok(SigningKeys { kid, encoding: jsonwebtoken::EncodingKey::from_rsa_der(der.as_bytes()), jwk })
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, Json(json!({"error": error, "error_description": description}))).into_response()
}

/// `GET /common/discovery/v2.0/keys`
pub async fn jwks(State(emulator): State<Emulator>) -> Json<Value> {
    Json(json!({ "keys": [emulator.keys.jwk] }))
}

/// `POST /{tenant}/oauth2/v2.0/devicecode`
pub async fn device_code(
    State(emulator): State<Emulator>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let client_id = form.get("client_id").cloned().unwrap_or_default();
    if client_id != emulator.config.client_id {
        return oauth_error(StatusCode::BAD_REQUEST, "unauthorized_client", "AADSTS700016: unknown client_id");
    }
    let device_code = random_token(24);
    let user_code: String =
        random_token(6).to_ascii_uppercase().chars().filter(char::is_ascii_alphanumeric).take(8).collect();
    let verification_uri = format!("{}/emulator/device", emulator.base_url);
    emulator.world().identity.device_codes.insert(
        device_code.clone(),
        DeviceCode {
            user_code: user_code.clone(),
            client_id,
            approved: None,
            expires_at_ms: now_ms() + DEVICE_CODE_SECONDS * 1000,
        },
    );
    tracing::info!(tenant, user_code, "device code issued");
    Json(json!({
        "device_code": device_code, "user_code": user_code, "verification_uri": verification_uri,
        "expires_in": DEVICE_CODE_SECONDS, "interval": 1,
        "message": format!("To sign in, approve the code {user_code}: POST {{\"user_code\":\"{user_code}\"}} to {verification_uri}/approve"),
    }))
    .into_response()
}

/// `POST /{tenant}/oauth2/v2.0/token`
pub async fn token(
    State(emulator): State<Emulator>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let grant_type = form.get("grant_type").map(String::as_str).unwrap_or("");
    let result = match grant_type {
        "client_credentials" => client_credentials(&emulator, &tenant, &form),
        "urn:ietf:params:oauth:grant-type:device_code" => device_code_grant(&emulator, &form),
        "refresh_token" => refresh(&emulator, &form),
        other => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("grant_type {other:?} is not supported"),
        )),
    };
    match result {
        Ok(grant) => issue(&emulator, grant, grant_type != "client_credentials"),
        Err(response) => response,
    }
}

fn issue(emulator: &Emulator, grant: Grant, with_refresh: bool) -> Response {
    let access_token = random_token(32);
    let mut world = emulator.world();
    world.identity.access.insert(access_token.clone(), grant.clone());
    let mut body = json!({"token_type": "Bearer", "expires_in": ACCESS_TOKEN_SECONDS, "access_token": access_token});
    if with_refresh {
        let refresh_token = random_token(32);
        world.identity.refresh.insert(refresh_token.clone(), grant);
        body["refresh_token"] = json!(refresh_token);
    }
    Json(body).into_response()
}

fn client_credentials(emulator: &Emulator, tenant: &str, form: &HashMap<String, String>) -> Result<Grant, Response> {
    let config = &emulator.config;
    if tenant != config.tenant_id {
        return Err(oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "AADSTS90002: tenant not found"));
    }
    if form.get("client_id").map(String::as_str) != Some(config.client_id.as_str()) {
        return Err(oauth_error(StatusCode::BAD_REQUEST, "unauthorized_client", "AADSTS700016: unknown client_id"));
    }
    let authenticated = match (form.get("client_secret"), form.get("client_assertion")) {
        (Some(secret), _) => {
            config.client_secret.as_ref().is_some_and(|s| bool::from(s.as_bytes().ct_eq(secret.as_bytes())))
        }
        (None, Some(assertion)) => verify_assertion(emulator, tenant, assertion).is_ok(),
        (None, None) => false,
    };
    if !authenticated {
        return Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS7000215: invalid client credentials",
        ));
    }
    Ok(Grant {
        client_id: config.client_id.clone(),
        tenant_id: tenant.to_string(),
        permission: Permission::Application,
        expires_at_ms: now_ms() + ACCESS_TOKEN_SECONDS * 1000,
    })
}

/// A certificate credential: an RS256 JWT signed by the app's key, for this token endpoint.
fn verify_assertion(emulator: &Emulator, tenant: &str, assertion: &str) -> Result<(), String> {
    let public = emulator.client_key.as_ref().ok_or("no certificate registered")?;
    let key = jsonwebtoken::DecodingKey::from_rsa_raw_components(&public.n().to_bytes_be(), &public.e().to_bytes_be());
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[format!("{}/{tenant}/oauth2/v2.0/token", emulator.base_url)]);
    validation.set_issuer(&[&emulator.config.client_id]);
    jsonwebtoken::decode::<Value>(assertion, &key, &validation).map_err(|e| e.to_string())?;
    Ok(())
}

fn device_code_grant(emulator: &Emulator, form: &HashMap<String, String>) -> Result<Grant, Response> {
    let code = form.get("device_code").map(String::as_str).unwrap_or("");
    let mut world = emulator.world();
    let Some(pending) = world.identity.device_codes.get(code).cloned() else {
        return Err(oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "unknown device_code"));
    };
    if pending.expires_at_ms < now_ms() {
        return Err(oauth_error(StatusCode::BAD_REQUEST, "expired_token", "the device code expired"));
    }
    let Some(permission) = pending.approved else {
        return Err(oauth_error(StatusCode::BAD_REQUEST, "authorization_pending", "the user has not signed in yet"));
    };
    world.identity.device_codes.remove(code);
    Ok(Grant {
        client_id: pending.client_id,
        tenant_id: emulator.config.tenant_id.clone(),
        permission,
        expires_at_ms: now_ms() + ACCESS_TOKEN_SECONDS * 1000,
    })
}

fn refresh(emulator: &Emulator, form: &HashMap<String, String>) -> Result<Grant, Response> {
    let token = form.get("refresh_token").map(String::as_str).unwrap_or("");
    // Refresh tokens rotate: the old one is spent.
    let grant = emulator.world().identity.refresh.remove(token);
    let mut grant = grant.ok_or_else(|| {
        oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "AADSTS70000: refresh token is invalid")
    })?;
    grant.expires_at_ms = now_ms() + ACCESS_TOKEN_SECONDS * 1000;
    Ok(grant)
}

/// The grant behind `authorization: Bearer ...`, or Graph's 401.
pub fn authorize(emulator: &Emulator, headers: &HeaderMap) -> Result<Grant, Response> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let grant = emulator.world().identity.access.get(token).cloned();
    match grant {
        Some(grant) if grant.expires_at_ms > now_ms() => Ok(grant),
        _ => Err(super::errors::graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty, invalid or expired.",
        )),
    }
}
