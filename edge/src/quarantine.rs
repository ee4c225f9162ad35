//! What the edge keeps of a batch refused for its validationTokens, within
//! bounds a flood cannot pass.
//!
//! Only batches with an item that passed clientState get here (see
//! `Batch::needs_token_check`), so a forger without the clientState cannot
//! add entries at all. Even so the quarantine is bounded three ways:
//! - count: at most [`MAX_ENTRIES`]; before a new entry the oldest beyond
//!   that go ([`to_evict`]; keys sort by receive time);
//! - bytes: an entry keeps items up to [`MAX_RECORD_BYTES`] and counts the
//!   rest;
//! - time: entries expire after [`KEEP_SECONDS`].
//!
//! Items are kept WITHOUT `clientState` (their `raw_json`): the quarantine
//! must not become a store of secrets.

use graph_relay_proto::v1::{notification::Kind, Notification};
use serde_json::{json, Value};

/// KV key prefix of quarantined batches.
pub const PREFIX: &str = "quarantine/";
/// Most entries kept.
pub const MAX_ENTRIES: usize = 1_000;
/// Most bytes of items one entry keeps.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;
/// Entries expire after 14 days (as long as a queue keeps its messages).
pub const KEEP_SECONDS: u64 = 14 * 24 * 3600;

/// One quarantine entry: its KV key, value and metadata.
#[derive(Debug, PartialEq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub metadata: Value,
}

/// The entry for a batch refused for `reason` at `now_ms`.
pub fn entry(route: &str, reason: &str, now_ms: u64, accepted: &[Notification], rejected: usize) -> Entry {
    let mut items = Vec::new();
    let mut bytes = 0;
    for raw in accepted.iter().filter_map(raw_json) {
        if bytes + raw.len() > MAX_RECORD_BYTES {
            break;
        }
        bytes += raw.len();
        items.push(serde_json::from_str::<Value>(raw).unwrap_or(Value::Null));
    }
    let left_out = accepted.len() - items.len();
    let record = json!({
        "route": route, "reason": reason, "receivedAtUnixMs": now_ms, "items": items,
        "itemsLeftOut": left_out, "itemsRejected": rejected,
    });
    let value = record.to_string();
    Entry {
        key: format!("{PREFIX}{now_ms:013}-{:08x}", fingerprint(&value)),
        value,
        metadata: json!({ "reason": reason, "receivedAtUnixMs": now_ms }),
    }
}

/// The keys to delete, oldest first, so that one more entry keeps the
/// quarantine within [`MAX_ENTRIES`]. `existing` are its keys in any order.
pub fn to_evict(mut existing: Vec<String>) -> Vec<String> {
    existing.sort();
    let excess = (existing.len() + 1).saturating_sub(MAX_ENTRIES);
    existing.truncate(excess);
    existing
}

/// Tells apart two batches refused in the same millisecond.
fn fingerprint(text: &str) -> u32 {
    text.bytes().fold(2_166_136_261u32, |h, b| (h ^ u32::from(b)).wrapping_mul(16_777_619))
}

fn raw_json(notification: &Notification) -> Option<&str> {
    match notification.kind.as_ref()? {
        Kind::Change(change) => Some(&change.raw_json),
        Kind::Lifecycle(lifecycle) => Some(&lifecycle.raw_json),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use graph_relay_proto::v1::ChangeNotification;

    fn item(size: usize) -> Notification {
        let raw_json = json!({"id": "x".repeat(size)}).to_string();
        Notification {
            kind: Some(Kind::Change(ChangeNotification { raw_json, ..Default::default() })),
            ..Default::default()
        }
    }

    #[test]
    fn a_full_quarantine_gives_up_its_oldest_entries_for_a_new_one() {
        let keys: Vec<String> =
            (0..MAX_ENTRIES as u64 + 5).rev().map(|ms| entry("notifications", "bad", 1_000 + ms, &[], 0).key).collect();
        let evicted = to_evict(keys.clone());
        assert_eq!(evicted.len(), 6, "room for one more within the bound");
        let oldest: Vec<String> = (0..6u64).map(|ms| entry("notifications", "bad", 1_000 + ms, &[], 0).key).collect();
        assert_eq!(evicted, oldest);
        assert!(to_evict(keys[..10].to_vec()).is_empty());
    }

    #[test]
    fn an_entry_keeps_items_up_to_its_byte_bound_and_counts_the_rest() {
        let items: Vec<Notification> = (0..100).map(|_| item(4096)).collect();
        let entry = entry("notifications", "bad token", 1, &items, 3);
        assert!(entry.value.len() <= MAX_RECORD_BYTES + 1024, "{}", entry.value.len());
        let record: Value = serde_json::from_str(&entry.value).unwrap();
        let kept = record["items"].as_array().unwrap().len();
        assert!(kept > 0 && kept < 100);
        assert_eq!(record["itemsLeftOut"], 100 - kept);
        assert_eq!(record["itemsRejected"], 3);
        assert!(!entry.value.contains("clientState"));
    }
}
