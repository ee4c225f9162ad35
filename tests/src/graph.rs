//! What Microsoft Graph sends: notification items and the webhook POST.

use serde_json::{json, Value};

/// A change notification item as Graph sends it.
pub fn change(subscription_id: &str, resource: &str, change_type: &str, tenant_id: &str, client_state: &str) -> Value {
    json!({
        "id": format!("id-{resource}"),
        "subscriptionId": subscription_id,
        "subscriptionExpirationDateTime": "2026-12-01T10:00:00.0000000Z",
        "clientState": client_state,
        "changeType": change_type,
        "resource": resource,
        "tenantId": tenant_id,
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Message",
            "@odata.id": resource,
            "@odata.etag": "W/\"CQAAABYAAAD\"",
            "id": resource.rsplit('/').next().unwrap_or(resource)
        }
    })
}

/// A lifecycle notification item.
pub fn lifecycle(subscription_id: &str, event: &str, tenant_id: &str, client_state: &str) -> Value {
    json!({
        "subscriptionId": subscription_id,
        "subscriptionExpirationDateTime": "2026-12-01T10:00:00.0000000Z",
        "tenantId": tenant_id,
        "clientState": client_state,
        "lifecycleEvent": event
    })
}

/// `{"value": items}`.
pub fn collection(items: Vec<Value>) -> Value {
    json!({ "value": items })
}

/// Batch `batch` of a numbered stream of `per_batch` message creations,
/// each with its own subscription id `n-<batch>-<i>` (tenant `t`, the
/// tests' clientState): the ids, to check deliveries by, and the collection.
pub fn numbered_batch(batch: usize, per_batch: usize) -> (Vec<String>, Value) {
    let ids: Vec<String> = (0..per_batch).map(|i| format!("n-{batch}-{i}")).collect();
    let items = ids
        .iter()
        .map(|id| change(id, &format!("users/u/messages/{id}"), "created", "t", crate::CLIENT_STATE))
        .collect();
    (ids, collection(items))
}

/// The item as the fan-out must deliver it: unchanged but for `clientState`.
pub fn without_client_state(item: &Value) -> Value {
    let mut item = item.clone();
    if let Some(object) = item.as_object_mut() {
        object.remove("clientState");
    }
    item
}

/// An HTTP answer from the edge.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

/// POSTs `body` with `content_type` to `url`.
pub async fn post(url: &str, content_type: Option<&str>, body: impl Into<reqwest::Body>) -> Answer {
    let mut request = reqwest::Client::new().post(url).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.expect("edge answers");
    answer(response).await
}

/// POSTs a notification collection as Graph does.
pub async fn deliver(edge_url: &str, route: &str, collection: &Value) -> Answer {
    post(&format!("{edge_url}{route}"), Some("application/json; charset=utf-8"), collection.to_string()).await
}

pub async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let body = response.text().await.unwrap_or_default();
    Answer { status, content_type, body }
}
