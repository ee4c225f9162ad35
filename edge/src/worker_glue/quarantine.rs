//! Batches refused as a whole (failed validationTokens): Graph still gets 202
//! (as it recommends), nothing is delivered, and the batch is recorded here
//! with its reason so an operator can see it, never silently gone.
//!
//! What is kept is the accepted items' JSON WITHOUT `clientState`: the
//! quarantine must not become a store of secrets.

use serde_json::{json, Value};
use worker::kv::KvStore;
use worker::{console_error, Env, Result};

use super::operator::{self, KV_BINDING};
use crate::collection::Batch;
use crate::inbound::{Reply, Route};

const PREFIX: &str = "quarantine/";
/// Quarantined batches expire after 14 days (as long as a queue keeps them).
const KEEP_SECONDS: u64 = 14 * 24 * 3600;

/// Records a refused batch; logs whether or not KV is available.
pub(crate) async fn park(env: &Env, route: Route, batch: &Batch, reason: &str, now_ms: u64) {
    console_error!(
        "{}: batch of {} items refused, nothing delivered: {reason}",
        route.name(),
        batch.notifications.len() + batch.rejections.len()
    );
    let Ok(kv) = env.kv(KV_BINDING) else { return };
    let items: Vec<Value> = batch.notifications.iter().filter_map(raw_item).collect();
    let record = json!({ "route": route.name(), "reason": reason, "receivedAtUnixMs": now_ms, "items": items });
    let key = format!("{PREFIX}{now_ms:013}-{:08x}", fingerprint(&record));
    let put = kv
        .put(&key, record.to_string())
        .and_then(|p| p.metadata(json!({ "reason": reason })).map(|p| p.expiration_ttl(KEEP_SECONDS)));
    let outcome = match put {
        Ok(put) => put.execute().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = outcome {
        console_error!("could not quarantine the refused batch: {e}");
    }
}

pub(crate) async fn list(kv: &KvStore) -> Result<Reply> {
    let keys = operator::list_keys(kv, PREFIX).await?;
    let mut text = format!("{} quarantined batches\n", keys.len());
    for key in keys {
        let reason = key.metadata.as_ref().and_then(|m| m.get("reason")).and_then(Value::as_str).unwrap_or("");
        text.push_str(&format!("{} {reason}\n", key.name));
    }
    Ok(Reply::text(200, text))
}

fn raw_item(notification: &graph_relay_proto::v1::Notification) -> Option<Value> {
    use graph_relay_proto::v1::notification::Kind;
    let raw = match notification.kind.as_ref()? {
        Kind::Change(change) => &change.raw_json,
        Kind::Lifecycle(lifecycle) => &lifecycle.raw_json,
    };
    serde_json::from_str(raw).ok()
}

/// Distinguishes two batches refused in the same millisecond.
fn fingerprint(record: &Value) -> u32 {
    record.to_string().bytes().fold(2_166_136_261u32, |h, b| (h ^ u32::from(b)).wrapping_mul(16_777_619))
}
