//! Notifications as Graph sends them, for each resource kind: the change item
//! (`resource`, `resourceData`, clientState, tenant), `encryptedContent` for
//! rich subscriptions (docs/graph-protocol.md section 5, in the sending direction)
//! and one validationToken per app and tenant in the batch.

use aes::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use rsa::Oaep;
use serde_json::{json, Value};

use super::api::{Encryption, Subscription};
use super::identity::{random_token, SigningKeys};
use crate::graph::catalog::{self, ResourcePath};
use crate::graph::format_time;
use crate::ingest::now_ms;

/// Microsoft Graph Change Tracking's app id: the caller validationTokens name.
pub const CHANGE_TRACKING_APP_ID: &str = "0bf30f3b-4a52-48df-9a82-234910c4a086";

/// The `resource` a change under `subscription` reports: the item itself for
/// single-item subscriptions (`/users/{id}`, a drive root), else a new item
/// in the subscribed collection.
pub fn changed_resource(subscription: &Subscription, item_id: &str) -> String {
    let path = crate::graph::resource_path(&subscription.resource);
    let parsed = ResourcePath::parse(path);
    let single_item = catalog::resolve(&parsed).first().is_some_and(|m| {
        let last = m.template.path.rsplit('/').next().unwrap_or("");
        last == "{id}" || last == "root"
    });
    if single_item {
        path.to_string()
    } else if let Some(collection) = path.strip_suffix("getAllMessages") {
        format!("{collection}t1/channels/c1/messages/{item_id}")
    } else {
        format!("{path}/{item_id}")
    }
}

fn odata_type(resource_type: &str) -> String {
    let mut chars = resource_type.chars();
    let first = chars.next().map(|c| c.to_ascii_uppercase()).unwrap_or_default();
    format!("#Microsoft.Graph.{first}{}", chars.as_str())
}

/// One change notification for `subscription`.
pub fn change_item(subscription: &Subscription, change_type: &str) -> Value {
    let item_id = random_token(9);
    let resource = changed_resource(subscription, &item_id);
    let resource_type = catalog::by_label(subscription.kind).map_or("entity", |k| k.resource_type);
    let mut item = json!({
        "id": random_token(12),
        "subscriptionId": subscription.id,
        "subscriptionExpirationDateTime": format_time(subscription.expiration_ms),
        "changeType": change_type,
        "resource": resource,
        "resourceData": {
            "@odata.type": odata_type(resource_type),
            "@odata.id": resource,
            "@odata.etag": format!("W/\"{}\"", random_token(6)),
            "id": item_id,
        },
        "tenantId": subscription.tenant_id,
    });
    if let Some(client_state) = &subscription.client_state {
        item["clientState"] = json!(client_state);
    }
    if let (true, Some(encryption)) = (subscription.include_resource_data, &subscription.encryption) {
        let full = json!({
            "@odata.type": odata_type(resource_type),
            "id": item_id,
            "displayName": format!("Emulated {}", subscription.kind),
            "subject": format!("{change_type} {resource_type}"),
            "lastModifiedDateTime": format_time(now_ms()),
        });
        item["encryptedContent"] = seal(encryption, &full.to_string());
    }
    item
}

/// A lifecycle notification for `subscription`.
pub fn lifecycle_item(subscription: &Subscription, event: &str) -> Value {
    let mut item = json!({
        "subscriptionId": subscription.id,
        "subscriptionExpirationDateTime": format_time(subscription.expiration_ms),
        "tenantId": subscription.tenant_id,
        "organizationId": subscription.tenant_id,
        "lifecycleEvent": event,
    });
    if let Some(client_state) = &subscription.client_state {
        item["clientState"] = json!(client_state);
    }
    item
}

/// `encryptedContent` for `plaintext`: AES-256-CBC under a fresh key (IV = its
/// first 16 bytes), HMAC-SHA256 over the ciphertext, key wrapped with RSA-OAEP-SHA1.
pub fn seal(encryption: &Encryption, plaintext: &str) -> Value {
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    let cipher = cbc::Encryptor::<aes::Aes256>::new((&key).into(), key[..16].into());
    let data = cipher.encrypt_padded_vec_mut::<Pkcs7>(plaintext.as_bytes());
    let signature = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&key).map(|mut mac| {
        mac.update(&data);
        mac.finalize().into_bytes().to_vec()
    });
    let wrapped = encryption.key.encrypt(&mut rand::thread_rng(), Oaep::new::<sha1::Sha1>(), &key);
    json!({
        "data": STANDARD.encode(&data),
        "dataKey": wrapped.map(|k| STANDARD.encode(k)).unwrap_or_default(),
        "dataSignature": signature.map(|s| STANDARD.encode(s)).unwrap_or_default(),
        "encryptionCertificateId": encryption.certificate_id,
        "encryptionCertificateThumbprint": encryption.thumbprint,
    })
}

/// A validationToken for the app and tenant, as Graph Change Tracking signs it (v1 token).
pub fn validation_token(
    keys: &SigningKeys,
    client_id: &str,
    tenant_id: &str,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = now_ms() / 1000;
    let claims = json!({
        "aud": client_id, "iss": format!("https://sts.windows.net/{tenant_id}/"),
        "iat": now, "nbf": now, "exp": now + 3600,
        "appid": CHANGE_TRACKING_APP_ID, "tid": tenant_id, "ver": "1.0",
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(keys.kid.clone());
    jsonwebtoken::encode(&header, &claims, &keys.encoding)
}

/// The POST body for `items` of `subscriptions` (one token per app and tenant when any is rich).
pub fn batch(keys: &SigningKeys, subscriptions: &[&Subscription], items: Vec<Value>) -> Value {
    let mut body = json!({ "value": items });
    let mut pairs: Vec<(&str, &str)> = subscriptions
        .iter()
        .filter(|s| s.include_resource_data)
        .map(|s| (s.client_id.as_str(), s.tenant_id.as_str()))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    if !pairs.is_empty() {
        let tokens: Vec<String> =
            pairs.iter().filter_map(|(app, tenant)| validation_token(keys, app, tenant).ok()).collect();
        body["validationTokens"] = json!(tokens);
    }
    body
}
