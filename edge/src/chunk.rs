//! Splitting accepted notifications into Cloudflare Queue messages, and
//! into the publishes of the synchronous path.
//!
//! A queue message may hold at most 128 KB and one `sendBatch` at most 100
//! messages and 256 KB. Each message body is an encoded `PublishRequest`, so
//! the consumer forwards it to the fan-out as it is. An item that alone does
//! not fit in a message is returned apart: the edge forwards it to the
//! fan-out synchronously before acknowledging (it is never dropped). Every
//! request also holds at most `MAX_PUBLISH_NOTIFICATIONS` items, the
//! fan-out's limit: a 1 MiB body of tiny items holds more than that.

use graph_relay_proto::v1::{Notification, PublishRequest};
use prost::Message;

/// Largest message body we produce: Cloudflare's 128 KB limit, less room for
/// the structured-clone envelope around the bytes.
pub const MAX_MESSAGE_BYTES: usize = 120 * 1024;
/// `sendBatch` limits: messages per call and total bytes per call.
pub const MAX_BATCH_MESSAGES: usize = 100;
pub const MAX_BATCH_BYTES: usize = 240 * 1024;
/// Largest publish of the synchronous path: well inside the fan-out's 4 MiB
/// message limit (a 1 MiB Graph body encodes to about twice its size).
pub const MAX_PUBLISH_BYTES: usize = 3 << 20;
/// Items per request at most (queue message or publish).
pub const MAX_ITEMS: usize = graph_relay_proto::MAX_PUBLISH_NOTIFICATIONS;

/// The queue messages for a batch, and what must bypass the queue.
#[derive(Debug, Default)]
pub struct Chunks {
    /// Encoded `PublishRequest`s, each at most [`MAX_MESSAGE_BYTES`].
    pub messages: Vec<Vec<u8>>,
    /// Items too large for any message on their own.
    pub oversized: Vec<Notification>,
}

/// Packs `notifications` in order into as few messages as fit.
pub fn split(notifications: Vec<Notification>, max_message_bytes: usize) -> Chunks {
    let mut chunks = Chunks::default();
    let mut current = PublishRequest::default();
    let mut current_len = 0;
    for notification in notifications {
        // Exactly what this item adds to the encoded request (field 1).
        let item_len = prost::encoding::message::encoded_len(1, &notification);
        if item_len > max_message_bytes {
            chunks.oversized.push(notification);
            continue;
        }
        if current_len + item_len > max_message_bytes || current.notifications.len() == MAX_ITEMS {
            chunks.messages.push(std::mem::take(&mut current).encode_to_vec());
            current_len = 0;
        }
        current.notifications.push(notification);
        current_len += item_len;
    }
    if !current.notifications.is_empty() {
        chunks.messages.push(current.encode_to_vec());
    }
    chunks
}

/// Groups messages into `sendBatch` calls within both batch limits.
pub fn send_batches(messages: Vec<Vec<u8>>) -> Vec<Vec<Vec<u8>>> {
    let mut batches: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut bytes = 0;
    for message in messages {
        let fits = batches
            .last()
            .is_some_and(|batch| batch.len() < MAX_BATCH_MESSAGES && bytes + message.len() <= MAX_BATCH_BYTES);
        if !fits {
            batches.push(Vec::new());
            bytes = 0;
        }
        bytes += message.len();
        if let Some(batch) = batches.last_mut() {
            batch.push(message);
        }
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;
    use graph_relay_proto::v1::{notification::Kind, ChangeNotification};

    fn note(id: usize, data_len: usize) -> Notification {
        let change =
            ChangeNotification { id: id.to_string(), resource_data_json: "x".repeat(data_len), ..Default::default() };
        Notification { kind: Some(Kind::Change(change)), received_at_unix_ms: 1, ..Default::default() }
    }

    fn ids(message: &[u8]) -> Vec<String> {
        PublishRequest::decode(message)
            .unwrap()
            .notifications
            .into_iter()
            .map(|n| match n.kind {
                Some(Kind::Change(c)) => c.id,
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn small_batches_make_one_message() {
        let chunks = split((0..10).map(|i| note(i, 100)).collect(), MAX_MESSAGE_BYTES);
        assert_eq!(chunks.messages.len(), 1);
        assert_eq!(ids(&chunks.messages[0]), (0..10).map(|i| i.to_string()).collect::<Vec<_>>());
        assert!(chunks.oversized.is_empty());
    }

    #[test]
    fn large_batches_split_in_order_under_the_limit() {
        // A 1 MiB Graph batch: 100 items of ~10 KB.
        let chunks = split((0..100).map(|i| note(i, 10_000)).collect(), MAX_MESSAGE_BYTES);
        assert!(chunks.messages.len() >= 9, "{}", chunks.messages.len());
        assert!(chunks.messages.iter().all(|m| m.len() <= MAX_MESSAGE_BYTES));
        let all: Vec<String> = chunks.messages.iter().flat_map(|m| ids(m)).collect();
        assert_eq!(all, (0..100).map(|i| i.to_string()).collect::<Vec<_>>(), "nothing lost or reordered");
    }

    #[test]
    fn an_item_too_large_for_any_message_is_set_apart_not_dropped() {
        let chunks = split(vec![note(0, 10), note(1, 200_000), note(2, 10)], MAX_MESSAGE_BYTES);
        assert_eq!(chunks.messages.len(), 1);
        assert_eq!(ids(&chunks.messages[0]), ["0", "2"]);
        assert_eq!(chunks.oversized.len(), 1);
    }

    #[test]
    fn a_body_of_more_tiny_items_than_one_publish_may_carry_is_split_by_count() {
        let chunks = split((0..MAX_ITEMS + 1).map(|i| note(i, 0)).collect(), MAX_PUBLISH_BYTES);
        let counts: Vec<usize> = chunks.messages.iter().map(|m| ids(m).len()).collect();
        assert_eq!(counts, [MAX_ITEMS, 1]);
        assert!(chunks.oversized.is_empty());
    }

    #[test]
    fn send_batches_respect_count_and_size() {
        let small: Vec<Vec<u8>> = (0..250).map(|_| vec![0; 10]).collect();
        let sizes: Vec<usize> = send_batches(small).iter().map(Vec::len).collect();
        assert_eq!(sizes, [100, 100, 50]);
        let big: Vec<Vec<u8>> = (0..5).map(|_| vec![0; 100 * 1024]).collect();
        let sizes: Vec<usize> = send_batches(big).iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2, 1]);
        assert!(send_batches(Vec::new()).is_empty());
    }
}
