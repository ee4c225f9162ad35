//! Publish on a replica: each notification becomes one message of the
//! shared stream, and the call answers once JetStream has acknowledged every
//! one (stored on a quorum of the stream's replicas).
//!
//! A message is the encoded `Notification`, decrypted by this replica's
//! publish handler (decryption happens once, where the Publish arrived), and
//! sealed with the log keys if there are any. Its `Nats-Msg-Id` is the
//! delivery key the embedded log de-duplicates on, so a delivery the edge
//! sends again (to this replica or another) within the stream's duplicate
//! window is acknowledged as a duplicate and not stored twice; an item
//! without a delivery id carries none and is always stored.
//!
//! The messages of one Publish are sent back to back and their
//! acknowledgements awaited together: one round trip, not one per item.
//! They are not one transaction: if the call fails halfway, the edge sends
//! the whole request again and the stored ones come back as duplicates.

use std::sync::Arc;

use async_nats::HeaderMap;
use graph_relay_log::prepared;
use graph_relay_log::seal;
use graph_relay_log::store::Appended;
use graph_relay_proto::v1::Notification;
use prost::Message;
use tonic::Status;

use super::SharedLog;

/// Appends to the shared stream.
pub struct Publisher {
    shared: SharedLog,
}

impl Publisher {
    pub fn new(shared: SharedLog) -> Arc<Self> {
        Arc::new(Self { shared })
    }

    /// Appends `notifications` in order; answers once all are acknowledged.
    pub async fn publish(&self, notifications: Vec<Notification>) -> Result<Appended, Status> {
        let started = std::time::Instant::now();
        let mut acks = Vec::with_capacity(notifications.len());
        for notification in &notifications {
            let (headers, payload) = self.message(notification)?;
            let sent = self.shared.context.publish_with_headers(self.shared.subject.clone(), headers, payload).await;
            acks.push(sent.map_err(|e| unavailable("sending to", &e))?);
        }
        let mut appended = Appended::default();
        for ack in acks {
            let ack = ack.await.map_err(|e| unavailable("acknowledged by", &e))?;
            if ack.duplicate {
                appended.duplicates += 1;
            } else {
                if appended.stored == 0 {
                    appended.first_sequence = ack.sequence;
                }
                appended.last_sequence = ack.sequence;
                appended.stored += 1;
            }
        }
        let metrics = crate::metrics::get();
        metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
        metrics.published.inc_by(u64::from(appended.stored));
        metrics.duplicates.inc_by(u64::from(appended.duplicates));
        Ok(appended)
    }

    /// The message of one notification: its id header and sealed body.
    fn message(&self, notification: &Notification) -> Result<(HeaderMap, bytes::Bytes), Status> {
        let mut headers = HeaderMap::new();
        if let Some(key) = prepared::delivery_key(&notification.delivery_id) {
            let mut hex = [0u8; 64];
            let id = base16ct::lower::encode_str(&key, &mut hex).map_err(|e| Status::internal(e.to_string()))?;
            headers.insert("Nats-Msg-Id", id);
        }
        let encoded = notification.encode_to_vec();
        let body = seal::seal_message(self.shared.keys.as_deref(), &encoded)
            .map_err(|e| Status::internal(format!("sealing a message: {e}")))?;
        Ok((headers, bytes::Bytes::from(body.into_owned())))
    }
}

fn unavailable(step: &str, error: &dyn std::fmt::Display) -> Status {
    Status::unavailable(format!("not stored: not {step} the shared log (NATS JetStream): {error}"))
}
