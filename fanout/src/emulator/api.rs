//! `/v1.0/subscriptions`, with Graph's rules: the resource table
//! ([`crate::graph::check`]), lifetimes (too long is 400, under 45 minutes is
//! raised), 409 for a duplicate, 403 for quota, and the validation handshake
//! against both URLs DURING creation (400 if either fails).

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use super::errors::graph_error;
use super::{delivery, identity, Emulator};
use crate::graph::catalog::{self, Kind, Permission, QuotaScope, MIN_LIFETIME_MINUTES};
use crate::graph::check::{self, Request};
use crate::graph::now_ms;
use crate::graph::paths::ResourcePath;
use crate::graph::{format_time, parse_time, subscription_identity, REAUTHORIZE_WINDOW_MS};

/// One live subscription.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: String,
    pub resource: String,
    pub change_type: String,
    pub notification_url: String,
    pub lifecycle_notification_url: Option<String>,
    pub client_state: Option<String>,
    pub expiration_ms: u64,
    pub include_resource_data: bool,
    /// The certificate resource data is encrypted with.
    pub encryption: Option<Encryption>,
    pub client_id: String,
    pub tenant_id: String,
    pub permission: Permission,
    /// Row label, for triggers by kind.
    pub kind: &'static str,
    pub renewals: u64,
    /// Last PATCH and last reauthorize: never both within 10 minutes.
    pub last_renewal_ms: u64,
    pub last_reauthorize_ms: u64,
    /// As created, for a PATCH checked by the same rules.
    pub notification_query_options: Option<String>,
}

impl Subscription {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id, "resource": self.resource, "applicationId": self.client_id,
            "changeType": self.change_type, "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "lifecycleNotificationUrl": self.lifecycle_notification_url,
            "expirationDateTime": format_time(self.expiration_ms),
            "includeResourceData": self.include_resource_data,
            "encryptionCertificateId": self.encryption.as_ref().map(|e| &e.certificate_id),
            "latestSupportedTlsVersion": "v1_2",
        })
    }
}

/// A rich subscription's `encryptionCertificate`, parsed.
#[derive(Debug, Clone)]
pub struct Encryption {
    pub key: rsa::RsaPublicKey,
    pub certificate_id: String,
    /// Hex SHA-1 of the certificate, as Graph sends it.
    pub thumbprint: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateBody {
    change_type: Option<String>,
    notification_url: Option<String>,
    lifecycle_notification_url: Option<String>,
    resource: Option<String>,
    expiration_date_time: Option<String>,
    client_state: Option<String>,
    #[serde(default)]
    include_resource_data: bool,
    encryption_certificate: Option<String>,
    encryption_certificate_id: Option<String>,
    notification_query_options: Option<String>,
}

/// A fault injected with `/emulator/faults`, answered instead of the call.
fn injected_fault(emulator: &Emulator) -> Option<Response> {
    let mut world = emulator.world();
    if world.faults.is_empty() {
        return None;
    }
    let (status, retry_after) = world.faults.remove(0);
    world.count("faults_served");
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut response = graph_error(status, "injected", "fault injected by /emulator/faults");
    if let Ok(value) = retry_after.to_string().parse() {
        response.headers_mut().insert("retry-after", value);
    }
    Some(response)
}

fn guard(emulator: &Emulator, headers: &HeaderMap) -> Result<identity::Grant, Response> {
    let grant = identity::authorize(emulator, headers)?;
    injected_fault(emulator).map_or(Ok(grant), Err)
}

/// The granted expiry: raised to 45 minutes, capped by the test override.
fn granted_expiry(emulator: &Emulator, requested_ms: u64) -> u64 {
    let now = now_ms();
    let floor = now + u64::from(MIN_LIFETIME_MINUTES) * 60_000;
    let mut expiry = requested_ms.max(floor);
    if let Some(cap) = emulator.config.lifetime_override {
        expiry = expiry.min(now + cap.as_millis() as u64);
    }
    expiry
}

/// Whole minutes until `expiration_ms`, rounded up: a minute and a millisecond over the maximum is over it.
fn lifetime_minutes(expiration_ms: u64) -> u32 {
    u32::try_from(expiration_ms.saturating_sub(now_ms()).div_ceil(60_000)).unwrap_or(u32::MAX)
}

/// `POST /v1.0/subscriptions`
pub async fn create(State(emulator): State<Emulator>, headers: HeaderMap, Json(body): Json<CreateBody>) -> Response {
    let grant = match guard(&emulator, &headers) {
        Ok(grant) => grant,
        Err(response) => return response,
    };
    let bad = |message: &str| graph_error(StatusCode::BAD_REQUEST, "InvalidRequest", message);
    let (Some(resource), Some(change_type), Some(notification_url), Some(expiration)) =
        (body.resource, body.change_type, body.notification_url, body.expiration_date_time)
    else {
        return bad("resource, changeType, notificationUrl and expirationDateTime are required");
    };
    let Some(requested_ms) = parse_time(&expiration) else { return bad("expirationDateTime is not a dateTimeOffset") };
    if body.client_state.as_ref().is_some_and(|s| s.len() > 128) {
        return bad("clientState is longer than 128 characters");
    }
    let encryption = match (&body.encryption_certificate, &body.encryption_certificate_id) {
        (Some(certificate), Some(id)) => match parse_certificate(certificate, id) {
            Ok(encryption) => Some(encryption),
            Err(e) => return bad(&format!("encryptionCertificate: {e}")),
        },
        _ => None,
    };
    let request = Request {
        resource: &resource,
        change_types: change_type.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
        permission: grant.permission,
        include_resource_data: body.include_resource_data,
        has_encryption_certificate: encryption.is_some(),
        lifetime_minutes: Some(lifetime_minutes(requested_ms)),
        has_lifecycle_url: body.lifecycle_notification_url.is_some(),
        notification_query_options: body.notification_query_options.as_deref(),
    };
    let kind = match check::check(&request) {
        Ok(kind) => kind,
        Err(violations) => return refused(&violations),
    };
    if let Some(response) = conflict_or_quota(&emulator, &grant, kind, &resource, &change_type) {
        return response;
    }
    for url in std::iter::once(&notification_url).chain(body.lifecycle_notification_url.as_ref()) {
        if let Err(reason) = delivery::handshake(&emulator, url).await {
            emulator.world().count("handshakes_failed");
            return graph_error(
                StatusCode::BAD_REQUEST,
                "ValidationError",
                &format!("Subscription validation request failed for {url}: {reason}"),
            );
        }
    }
    let subscription = Subscription {
        id: uuid_like(),
        resource,
        change_type,
        notification_url,
        lifecycle_notification_url: body.lifecycle_notification_url,
        client_state: body.client_state,
        expiration_ms: granted_expiry(&emulator, requested_ms),
        include_resource_data: body.include_resource_data,
        encryption,
        client_id: grant.client_id,
        tenant_id: grant.tenant_id,
        permission: grant.permission,
        kind: kind.label,
        renewals: 0,
        last_renewal_ms: 0,
        last_reauthorize_ms: 0,
        notification_query_options: body.notification_query_options,
    };
    let reply = subscription.to_json();
    let mut world = emulator.world();
    world.count("created");
    world.subscriptions.insert(subscription.id.clone(), subscription);
    (StatusCode::CREATED, Json(reply)).into_response()
}

fn refused(violations: &[check::Violation]) -> Response {
    let message = violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
    let forbidden = violations.iter().any(|v| v.rule == "permission-unsupported" || v.rule == "me-requires-delegated");
    if forbidden {
        graph_error(StatusCode::FORBIDDEN, "ExtensionError", &message)
    } else {
        graph_error(StatusCode::BAD_REQUEST, "InvalidRequest", &message)
    }
}

/// 409 for a duplicate; 403 when the kind's quota (per app and tenant, per
/// mailbox or per organization: `catalog::Quota`) or the `--quota` cap for
/// the app is full.
fn conflict_or_quota(
    emulator: &Emulator,
    grant: &identity::Grant,
    kind: &'static Kind,
    resource: &str,
    change_type: &str,
) -> Option<Response> {
    let world = emulator.world();
    let mine = world.subscriptions.values().filter(|s| s.client_id == grant.client_id);
    let wanted = subscription_identity(resource, change_type);
    let same = |s: &&Subscription| subscription_identity(&s.resource, &s.change_type) == wanted;
    if mine.clone().any(|s| same(&s)) {
        return Some(graph_error(
            StatusCode::CONFLICT,
            "Conflict",
            "A subscription for this resource and changeType already exists.",
        ));
    }
    let quota_full = |scope: &str| {
        let message = format!(
            "Operation: Create; Exception: [Status Code: Forbidden; Reason: subscription quota exceeded for this {scope}]"
        );
        Some(graph_error(StatusCode::FORBIDDEN, "ExtensionError", &message))
    };
    if emulator.config.quota.is_some_and(|cap| mine.count() >= cap) {
        return quota_full(QuotaScope::App.describe());
    }
    let quota = kind.quota?;
    let counted = world.subscriptions.values().filter(|s| {
        let other = catalog::by_label(s.kind).and_then(|k| k.quota);
        other.is_some_and(|q| q.group == quota.group)
            && s.tenant_id == grant.tenant_id
            && match quota.scope {
                QuotaScope::App => s.client_id == grant.client_id,
                QuotaScope::Mailbox => mailbox(&s.resource) == mailbox(resource),
                QuotaScope::Organization => true,
            }
    });
    if counted.count() >= quota.limit {
        return quota_full(quota.scope.describe());
    }
    None
}

/// The mailbox an Outlook resource is in: its `users/{id}` (or `me`).
fn mailbox(resource: &str) -> String {
    let path = ResourcePath::parse(resource);
    path.segments.get(1).map(|id| id.to_ascii_lowercase()).unwrap_or_default()
}

/// The RSA public key of a DER certificate.
pub(crate) fn rsa_public_key(der: &[u8]) -> Result<rsa::RsaPublicKey, String> {
    let (_, certificate) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    <rsa::RsaPublicKey as rsa::pkcs8::DecodePublicKey>::from_public_key_der(certificate.public_key().raw)
        .map_err(|e| format!("not an RSA certificate: {e}"))
}

fn parse_certificate(certificate_b64: &str, certificate_id: &str) -> Result<Encryption, String> {
    use sha1::Digest;
    let der = STANDARD.decode(certificate_b64.trim()).map_err(|e| format!("not base64: {e}"))?;
    let key = rsa_public_key(&der)?;
    let thumbprint = sha1::Sha1::digest(&der).iter().map(|b| format!("{b:02X}")).collect();
    Ok(Encryption { key, certificate_id: certificate_id.to_string(), thumbprint })
}

fn uuid_like() -> String {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

fn not_found(id: &str) -> Response {
    graph_error(StatusCode::NOT_FOUND, "ResourceNotFound", &format!("The object was not found: subscription {id}"))
}

/// `GET /v1.0/subscriptions`
pub async fn list(State(emulator): State<Emulator>, headers: HeaderMap) -> Response {
    let grant = match guard(&emulator, &headers) {
        Ok(grant) => grant,
        Err(response) => return response,
    };
    let world = emulator.world();
    let value: Vec<Value> =
        world.subscriptions.values().filter(|s| s.client_id == grant.client_id).map(Subscription::to_json).collect();
    Json(json!({ "value": value })).into_response()
}

/// `GET /v1.0/subscriptions/{id}`
pub async fn get(State(emulator): State<Emulator>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(response) = guard(&emulator, &headers) {
        return response;
    }
    let world = emulator.world();
    world.subscriptions.get(&id).map_or_else(|| not_found(&id), |s| Json(s.to_json()).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenewBody {
    expiration_date_time: String,
}

/// `PATCH /v1.0/subscriptions/{id}`: a new expiry, which also reauthorizes.
pub async fn renew(
    State(emulator): State<Emulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<RenewBody>,
) -> Response {
    if let Err(response) = guard(&emulator, &headers) {
        return response;
    }
    let Some(requested_ms) = parse_time(&body.expiration_date_time) else {
        return graph_error(StatusCode::BAD_REQUEST, "InvalidRequest", "expirationDateTime is not a dateTimeOffset");
    };
    let granted = granted_expiry(&emulator, requested_ms);
    let mut world = emulator.world();
    let Some(subscription) = world.subscriptions.get_mut(&id) else { return not_found(&id) };
    // A renewal is held to the rules of a creation with the new expiry
    // (the maximum lifetime, Teams' hour without a lifecycle URL).
    let request = Request {
        resource: &subscription.resource,
        change_types: subscription.change_type.split(',').map(|s| s.trim().to_string()).collect(),
        permission: subscription.permission,
        include_resource_data: subscription.include_resource_data,
        has_encryption_certificate: subscription.encryption.is_some(),
        lifetime_minutes: Some(lifetime_minutes(requested_ms)),
        has_lifecycle_url: subscription.lifecycle_notification_url.is_some(),
        notification_query_options: subscription.notification_query_options.as_deref(),
    };
    if let Err(violations) = check::check(&request) {
        return refused(&violations);
    }
    let now = now_ms();
    let too_soon = now.saturating_sub(subscription.last_reauthorize_ms) < REAUTHORIZE_WINDOW_MS;
    // No reconciler renews a subscription twice in a row like this: two
    // did (two leaders), or one repeated a renewal it had already made.
    let renewed_again = now.saturating_sub(subscription.last_renewal_ms) < 1_000;
    subscription.expiration_ms = granted;
    subscription.renewals += 1;
    subscription.last_renewal_ms = now;
    let reply = subscription.to_json();
    if too_soon {
        world.count("reauthorized_twice_within_10_minutes");
    }
    if renewed_again {
        world.count("renewed_twice_within_a_second");
    }
    world.count("renewed");
    Json(reply).into_response()
}

/// `DELETE /v1.0/subscriptions/{id}`
pub async fn delete(State(emulator): State<Emulator>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(response) = guard(&emulator, &headers) {
        return response;
    }
    let mut world = emulator.world();
    match world.subscriptions.remove(&id) {
        Some(_) => {
            world.count("deleted");
            StatusCode::NO_CONTENT.into_response()
        }
        None => not_found(&id),
    }
}

/// `POST /v1.0/subscriptions/{id}/reauthorize`: 204, expiry unchanged.
pub async fn reauthorize(State(emulator): State<Emulator>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(response) = guard(&emulator, &headers) {
        return response;
    }
    let mut world = emulator.world();
    let Some(subscription) = world.subscriptions.get_mut(&id) else { return not_found(&id) };
    let now = now_ms();
    let too_soon =
        now.saturating_sub(subscription.last_renewal_ms.max(subscription.last_reauthorize_ms)) < REAUTHORIZE_WINDOW_MS;
    subscription.last_reauthorize_ms = now;
    if too_soon {
        world.count("reauthorized_twice_within_10_minutes");
    }
    world.count("reauthorized");
    StatusCode::NO_CONTENT.into_response()
}

/// Graph removes subscriptions that reach their expiry: a lapse the relay exists to prevent.
pub async fn expire_loop(emulator: Emulator) {
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = now_ms();
        let mut world = emulator.world();
        let expired: Vec<String> =
            world.subscriptions.values().filter(|s| s.expiration_ms <= now).map(|s| s.id.clone()).collect();
        for id in expired {
            world.subscriptions.remove(&id);
            world.count("expired");
            tracing::warn!(id, "subscription expired (not renewed in time)");
        }
    }
}
