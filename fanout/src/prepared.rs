//! A notification made ready for the log by its publish handler.
//!
//! The handlers run on every core; the log has one writer. So whatever does
//! not need a sequence is done here, in the handler: the event encoded once
//! (and again without decrypted data when it carries some), and the dedup
//! key. The writer then only numbers, copies into its group and commits.
//! Before, the handler encoded each notification to hash it and the writer
//! encoded it again to store it, and the decoded notification travelled on
//! to be freed by the dispatch thread.

use graph_relay_proto::v1::{notification::Kind, Notification};
use sha2::{Digest, Sha256};

use crate::group;
use crate::store::Stored;
use crate::wire::{self, EncodedEvent, EventBody};

pub struct Prepared {
    /// The event, without its sequence.
    body: EventBody,
    /// The same without decrypted resource data, for subscribers not allowed
    /// to see it; `None` when there is nothing to hide.
    redacted: Option<EventBody>,
    /// The notification's identity within the dedup window.
    key: [u8; 32],
}

impl Prepared {
    pub fn of(notification: &Notification) -> Self {
        let body = EventBody::of(notification);
        let key = identity(&body);
        let redacted = match &notification.kind {
            Some(Kind::Change(change)) => wire::without_decrypted_data(change)
                .map(|change| EventBody::of(&Notification { kind: Some(Kind::Change(change)), ..*notification })),
            _ => None,
        };
        Self { body, redacted, key }
    }

    pub fn key(&self) -> &[u8; 32] {
        &self.key
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

/// Prepares the notifications of one publish request (and frees them here,
/// on the handler's thread, which allocated them).
pub fn prepare(notifications: Vec<Notification>) -> Vec<Prepared> {
    notifications.iter().map(Prepared::of).collect()
}

/// A notification's identity: every Graph field but clientState (already
/// gone) and the edge's receive time, which differs between Graph's retries.
/// The SHA-256 of `Notification.kind`'s encoding, as the log's records have
/// always kept it (a restart rebuilds the dedup index from them).
fn identity(body: &EventBody) -> [u8; 32] {
    let (header, message) = body.kind_encoding();
    let mut hasher = Sha256::new();
    hasher.update(header);
    hasher.update(message);
    hasher.finalize().into()
}

#[cfg(test)]
#[path = "prepared_tests.rs"]
mod tests;
