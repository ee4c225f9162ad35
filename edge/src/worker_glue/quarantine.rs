//! Batches refused as a whole (failed validationTokens): Graph still gets 202
//! (as it recommends), nothing is delivered, and the batch is recorded in KV
//! with its reason so an operator can see it, never silently gone. What an
//! entry holds and its bounds: `crate::quarantine`.

use serde_json::Value;
use worker::kv::KvStore;
use worker::{console_error, Env, Result};

use super::storage::{self, KV_BINDING};
use crate::collection::Batch;
use crate::inbound::{Reply, Route};
use crate::quarantine;

/// Records a refused batch; logs whether or not KV is available.
pub(crate) async fn park(env: &Env, route: Route, batch: &Batch, reason: &str, now_ms: u64) {
    console_error!(
        "{}: batch of {} items refused, nothing delivered: {reason}",
        route.name(),
        batch.notifications.len() + batch.rejections.len()
    );
    let Ok(kv) = env.kv(KV_BINDING) else { return };
    if let Err(e) = make_room(&kv).await {
        console_error!("could not trim the quarantine: {e}");
    }
    let entry = quarantine::entry(route.name(), reason, now_ms, &batch.notifications, batch.rejections.len());
    let put = kv
        .put(&entry.key, entry.value)
        .and_then(|p| p.metadata(entry.metadata).map(|p| p.expiration_ttl(quarantine::KEEP_SECONDS)));
    let outcome = match put {
        Ok(put) => put.execute().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = outcome {
        console_error!("could not quarantine the refused batch: {e}");
    }
}

/// Deletes the oldest entries beyond the bound (KV's listing may lag a
/// little behind recent writes: the bound holds within that lag).
async fn make_room(kv: &KvStore) -> Result<()> {
    let names = storage::list_keys(kv, quarantine::PREFIX).await?.into_iter().map(|key| key.name).collect();
    for name in quarantine::to_evict(names) {
        kv.delete(&name).await?;
    }
    Ok(())
}

/// The entries, newest first, each with when and why.
pub(crate) async fn list(kv: &KvStore) -> Result<Reply> {
    let mut keys = storage::list_keys(kv, quarantine::PREFIX).await?;
    let at = |key: &worker::kv::Key| {
        key.metadata.as_ref().and_then(|m| m.get("receivedAtUnixMs")).and_then(Value::as_u64).unwrap_or(0)
    };
    keys.sort_by_key(|key| std::cmp::Reverse(at(key)));
    let mut text = format!("{} quarantined batches\n", keys.len());
    for key in keys {
        let reason = key.metadata.as_ref().and_then(|m| m.get("reason")).and_then(Value::as_str).unwrap_or("");
        text.push_str(&format!("{} received {} {reason}\n", key.name, at(&key)));
    }
    Ok(Reply::text(200, text))
}
