//! What the server hands the reconciler: a lifecycle feed read from the log,
//! and a way to publish into it. The reconciler itself (`crate::graph`)
//! knows neither the log nor the hub.

use std::sync::Arc;

use graph_relay_log::store::Store;
use graph_relay_log::wire::EncodedEvent;
use graph_relay_proto::v1::{event::Payload, Event, Notification};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

use crate::auth::grant::Grant;
use crate::delivery::filter::Filter;
use crate::delivery::hub::Hub;
use crate::graph::lifecycle::FeedItem;
use crate::graph::{Publish, Publishing};
use crate::ingest::Ingest;

/// Events the feed holds for a reconciler busy with a Graph call.
const FEED_BUFFER: usize = 256;

/// Reads the log from `after` (exclusive) on, like a subscriber with no
/// filter, as the reconciler's feed.
pub fn feed(store: Arc<Store>, hub: Arc<Hub>, after: Option<u64>) -> mpsc::Receiver<FeedItem> {
    let (tx, rx) = mpsc::channel(FEED_BUFFER);
    let (grant, allowed) = Grant::internal(Filter::default());
    let mut events = crate::delivery::subscriber::spawn(store, hub, grant, allowed, after);
    tokio::spawn(async move {
        while let Some(batch) = events.next().await {
            let batch = match batch {
                Ok(batch) => batch,
                Err(status) => {
                    let _ = tx.send(FeedItem::Broken(status.message().to_string())).await;
                    return;
                }
            };
            for encoded in batch.events() {
                if tx.send(feed_item(encoded)).await.is_err() {
                    return;
                }
            }
        }
    });
    rx
}

fn feed_item(encoded: &EncodedEvent) -> FeedItem {
    let sequence = encoded.sequence();
    match Event::decode(encoded.bytes().clone()).map(|e| e.payload) {
        Ok(Some(Payload::Change(change))) => FeedItem::Change { sequence, subscription_id: change.subscription_id },
        Ok(Some(Payload::Lifecycle(notification))) => FeedItem::Lifecycle { sequence, notification },
        _ => FeedItem::Other { sequence },
    }
}

/// The reconciler's events go into the log like the edge's.
pub struct LogPublisher(pub Ingest);

impl Publish for LogPublisher {
    fn publish(&self, notification: Notification) -> Publishing<'_> {
        Box::pin(async move {
            let appended = self.0.publish(vec![notification]).await.map_err(|e| e.to_string())?;
            Ok((appended.stored > 0).then_some(appended.first_sequence))
        })
    }
}
