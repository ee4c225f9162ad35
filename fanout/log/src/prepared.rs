//! A notification made ready for the log by its publish handler.
//!
//! The handlers run on every core; the log has one writer. So whatever does
//! not need a sequence is done here, in the handler: the event encoded once
//! (and again without decrypted data when it carries some), and the dedup
//! key. The writer then only numbers, copies into its group and commits,
//! and nothing is encoded twice.

use graph_relay_proto::v1::{notification::Kind, Notification};
use sha2::{Digest, Sha256};

use crate::group;
use crate::wire::{self, EncodedEvent, EventBody};

pub struct Prepared {
    /// The event, without its sequence.
    body: EventBody,
    /// The same without decrypted resource data, for subscribers not allowed
    /// to see it; `None` when there is nothing to hide.
    redacted: Option<EventBody>,
    /// The delivery's dedup key (see [`delivery_key`]); `None` for an item
    /// without a delivery id, which is never taken for a duplicate.
    key: Option<[u8; 32]>,
}

impl Prepared {
    pub fn of(notification: &Notification) -> Self {
        let body = EventBody::of(notification);
        let key = delivery_key(&notification.delivery_id);
        let redacted = match &notification.kind {
            Some(Kind::Change(change)) => wire::without_decrypted_data(change).map(|change| {
                EventBody::of(&Notification {
                    kind: Some(Kind::Change(change)),
                    received_at_unix_ms: notification.received_at_unix_ms,
                    delivery_id: String::new(),
                })
            }),
            _ => None,
        };
        Self { body, redacted, key }
    }

    pub fn key(&self) -> Option<&[u8; 32]> {
        self.key.as_ref()
    }

    /// The bytes its record takes in a log group, at most (the sequence
    /// takes up to 11 bytes; the body keeps room for all of them).
    pub fn record_len(&self) -> usize {
        group::FRAME_OVERHEAD + group::PREFIX + self.body.len_at_most()
    }

    /// The stored event this becomes as `sequence`.
    pub fn into_stored(self, sequence: u64) -> Stored {
        Stored {
            encoded: EncodedEvent::sequenced(sequence, self.body),
            redacted: self.redacted.map(|body| EncodedEvent::sequenced(sequence, body)),
        }
    }
}

/// An event the log stored, as every subscriber gets it (the hub reads its
/// route from the bytes).
pub struct Stored {
    pub encoded: EncodedEvent,
    /// The same event without decrypted resource data, for subscribers not
    /// allowed to see it; `None` when there is nothing to hide.
    pub redacted: Option<EncodedEvent>,
}

/// Prepares the notifications of one publish request (and frees them here,
/// on the handler's thread, which allocated them).
pub fn prepare(notifications: Vec<Notification>) -> Vec<Prepared> {
    notifications.iter().map(Prepared::of).collect()
}

/// Longest `delivery_id` a publish may carry (the edge's are 34–40 bytes).
pub const MAX_DELIVERY_ID_BYTES: usize = 128;

/// Records of items without a delivery id hold this key; the dedup index
/// never remembers it.
pub(crate) const NO_KEY: [u8; 32] = [0; 32];

/// The dedup key of one delivery: SHA-256 over a domain tag and the id, so
/// it can never equal the content hashes that records of older logs hold
/// (those stay in the index until their window passes, matching nothing).
/// Only the delivery counts, never the content: two deliveries of the same
/// bytes are two events (docs/graph-protocol.md section 8).
pub fn delivery_key(delivery_id: &str) -> Option<[u8; 32]> {
    if delivery_id.is_empty() {
        return None;
    }
    let mut hasher = Sha256::new();
    hasher.update(b"graph-relay delivery id\0");
    hasher.update(delivery_id.as_bytes());
    let key: [u8; 32] = hasher.finalize().into();
    // A hash of all zeros is out of reach; keep the marker unambiguous anyway.
    (key != NO_KEY).then_some(key)
}

#[cfg(test)]
#[path = "prepared_tests.rs"]
mod tests;
