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
use crate::graph::catalog;
use crate::graph::format_time;
use crate::graph::now_ms;
use crate::graph::paths::{self, ResourcePath};

/// Microsoft Graph Change Tracking's app id: the caller validationTokens name.
pub const CHANGE_TRACKING_APP_ID: &str = "0bf30f3b-4a52-48df-9a82-234910c4a086";

/// The `resource` a change under `subscription` reports, in the form Graph
/// sends for the subscribed path (the catalog's `notified`): OData keys and
/// capitals as Graph writes them, the named parts filled with the subscribed
/// path's ids in order (fixed stand-ins where it names none, as for
/// `/teams/getAllMessages`), and `{id}` the changed item.
pub fn changed_resource(subscription: &Subscription, item_id: &str) -> String {
    let path = crate::graph::resource_path(&subscription.resource);
    let parsed = ResourcePath::parse(path);
    let Some(found) = paths::resolve(&parsed).into_iter().next() else { return format!("{path}/{item_id}") };
    let template = found.template;
    if template.notified == "{subscribed}" {
        return path.to_string();
    }
    let parts = template.path.split('/').filter(|s| !s.is_empty());
    let mut ids = parts.zip(&parsed.segments).filter(|(part, _)| *part == "{id}").map(|(_, id)| id.as_str());
    fill(template.notified, item_id, &mut ids)
}

/// `notified` with `{id}` as `item_id` and each other `{name}` as the next
/// of `ids` (or the name's stand-in: `t1` for a team, `c1` for a channel...).
fn fill<'a>(notified: &str, item_id: &str, ids: &mut impl Iterator<Item = &'a str>) -> String {
    let mut out = String::with_capacity(notified.len() + 32);
    let mut rest = notified;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else { break };
        let name = &rest[open + 1..open + close];
        match name {
            "id" => out.push_str(item_id),
            name => out.push_str(&ids.next().map_or_else(|| stand_in(name), str::to_string)),
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

fn stand_in(name: &str) -> String {
    format!("{}1", name.chars().next().unwrap_or('x'))
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

/// A lifecycle notification for `subscription` (whether Graph sends `event`
/// for its kind is the caller's to check: see `control::lifecycle`).
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

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(resource: &str) -> Subscription {
        Subscription {
            id: "s".into(),
            resource: resource.into(),
            change_type: "created".into(),
            notification_url: String::new(),
            lifecycle_notification_url: None,
            client_state: None,
            expiration_ms: 0,
            include_resource_data: false,
            encryption: None,
            client_id: String::new(),
            tenant_id: String::new(),
            permission: catalog::Permission::Application,
            kind: "",
            renewals: 0,
            last_renewal_ms: 0,
            last_reauthorize_ms: 0,
            notification_query_options: None,
        }
    }

    #[test]
    fn changes_name_their_resource_as_graph_does() {
        for (subscribed, sent) in [
            ("/users/u1/messages?$select=subject", "Users/u1/Messages/m9"),
            ("/users/u1/mailFolders('inbox')/messages", "Users/u1/Messages/m9"),
            ("/me/events", "Users/me/Events/m9"),
            ("/users", "Users/m9"),
            ("/users/u2", "Users/u2"),
            ("/groups/g1/members", "Groups/g1"),
            ("/teams/getAllMessages", "teams('t1')/channels('c1')/messages('m9')"),
            ("/teams/T7/channels/C7/messages", "teams('T7')/channels('C7')/messages('m9')"),
            ("/chats/getAllMessages", "chats('c1')/messages('m9')"),
            ("/chats", "chats('m9')"),
            ("/communications/callRecords", "communications/callRecords('m9')"),
            ("/groups/g1/conversations", "groups('g1')/conversations('m9')"),
            ("/drives/d1/root", "drives/d1/root"),
            ("/print/taskDefinitions/d1/tasks", "print/taskDefinitions/d1/tasks/m9"),
        ] {
            assert_eq!(changed_resource(&subscription(subscribed), "m9"), sent, "{subscribed}");
        }
    }
}
