//! The `graphrelay.v1.Fanout` gRPC service: thin glue over the log and hub.

use std::sync::Arc;

use graph_relay_proto::v1::{notification::Kind, Notification, PublishRequest, PublishResponse, SubscribeRequest};
use tonic::{Request, Response, Status};

use crate::auth::grant::{Grant, Subscribers};
use crate::auth::BearerToken;
use crate::delivery::hub::Hub;
use crate::delivery::subscriber;
use crate::graph::reconciler::Directory;
use crate::ingest::decrypt::Keyring;
use crate::ingest::Ingest;
use crate::pb::fanout_server::Fanout;
use graph_relay_log::prepared;
use graph_relay_log::store::Store;

/// Most notifications one `Publish` may carry: bounds the work of a single
/// call (the edge splits a larger Graph batch into several publishes).
pub use graph_relay_proto::MAX_PUBLISH_NOTIFICATIONS;

/// Cheap to clone: its parts are shared handles.
#[derive(Clone)]
pub struct FanoutService {
    /// Subscriber tokens and their scopes, as last (re)loaded.
    subscribers: Subscribers,
    /// Private keys for rich notifications, by certificate id.
    keyring: Arc<Keyring>,
    store: Arc<Store>,
    hub: Arc<Hub>,
    ingest: Ingest,
    /// Only the edge may publish.
    ingest_token: BearerToken,
    /// The reconciler's subscriptions, to give Graph's lifecycle items their resource.
    directory: Option<Directory>,
    /// False on the ingest port (`--ingest-listen`): its thread is kept for
    /// the edge's publishes, so subscriber streams must not land there.
    takes_subscribers: bool,
}

impl FanoutService {
    pub fn new(parts: ServiceParts) -> Self {
        let ServiceParts { subscribers, keyring, store, hub, ingest, ingest_token, directory } = parts;
        Self { subscribers, keyring, store, hub, ingest, ingest_token, directory, takes_subscribers: true }
    }

    /// The same service for the ingest port: it publishes, and refuses
    /// subscribers.
    pub fn for_ingest_port(&self) -> Self {
        Self { takes_subscribers: false, ..self.clone() }
    }

    /// Graph's lifecycle items rarely name their resource; without one, resource
    /// filters and resource-scoped subscribers would never see them.
    fn add_resources(&self, notifications: &mut [Notification]) {
        let Some(directory) = &self.directory else { return };
        let Ok(directory) = directory.read() else { return };
        for notification in notifications {
            if let Some(Kind::Lifecycle(lifecycle)) = &mut notification.kind {
                if lifecycle.resource.is_empty() {
                    if let Some((_, resource)) = directory.get(&lifecycle.subscription_id.to_ascii_lowercase()) {
                        lifecycle.resource.clone_from(resource);
                    }
                }
            }
        }
    }

    /// Decrypts the rich items once, before they are stored (CPU-bound: RSA).
    async fn decrypt(&self, mut notifications: Vec<Notification>) -> Result<Vec<Notification>, Status> {
        let rich =
            notifications.iter().any(|n| matches!(&n.kind, Some(Kind::Change(c)) if c.encrypted_content.is_some()));
        if !rich {
            return Ok(notifications);
        }
        let keyring = self.keyring.clone();
        let (notifications, failed) = tokio::task::spawn_blocking(move || {
            let failed = keyring.decrypt_all(&mut notifications);
            (notifications, failed)
        })
        .await
        .map_err(|e| Status::internal(format!("decryption task: {e}")))?;
        if failed > 0 {
            tracing::debug!(failed, "rich notifications will be delivered undecrypted");
        }
        Ok(notifications)
    }
}

/// Lines logged for the undecrypted items of one publish, at most; the
/// metric counts them all.
const UNDECRYPTED_LINES: usize = 10;

/// (position in the publish, subscription id, why) of each rich item that
/// did not decrypt.
fn undecrypted(notifications: &[Notification]) -> Vec<(usize, String, String)> {
    let failed = notifications.iter().enumerate().filter_map(|(index, n)| match &n.kind {
        Some(Kind::Change(c)) if !c.decryption_error.is_empty() => {
            Some((index, c.subscription_id.clone(), c.decryption_error.clone()))
        }
        _ => None,
    });
    failed.take(UNDECRYPTED_LINES).collect()
}

/// One line per undecrypted item, with its sequence when the publish makes
/// it certain (nothing in it was a duplicate, so items were stored in order).
fn log_undecrypted(undecrypted: &[(usize, String, String)], appended: &graph_relay_log::Appended) {
    for (index, subscription_id, reason) in undecrypted {
        let message = "rich notification stored undecrypted";
        match (appended.duplicates == 0).then(|| appended.first_sequence + *index as u64) {
            Some(sequence) => tracing::warn!(sequence, subscription_id, reason, "{message}"),
            None => tracing::warn!(subscription_id, reason, "{message} (its sequence: see the publish's duplicates)"),
        }
    }
}

/// What the service is made of (see `server::run`).
pub struct ServiceParts {
    pub subscribers: Subscribers,
    pub keyring: Arc<Keyring>,
    pub store: Arc<Store>,
    pub hub: Arc<Hub>,
    pub ingest: Ingest,
    pub ingest_token: BearerToken,
    pub directory: Option<Directory>,
}

/// How long a Subscribe with a cursor beyond this replica's copy waits for
/// the copy to reach it before it is refused.
const CATCH_UP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

#[tonic::async_trait]
impl Fanout for FanoutService {
    type SubscribeStream = subscriber::Batches;

    async fn subscribe(&self, request: Request<SubscribeRequest>) -> Result<Response<Self::SubscribeStream>, Status> {
        if !self.takes_subscribers {
            return Err(Status::failed_precondition(
                "this is the fan-out's ingest port (--ingest-listen), kept for Publish: subscribe on its main port",
            ));
        }
        let (metadata, _, request) = request.into_parts();
        let (grant, allowed) = Grant::open(&self.subscribers, &metadata, request.filter.unwrap_or_default())?;
        if let Some(after) = request.after_sequence {
            let head = self.store.next_sequence().map_err(|e| Status::internal(e.to_string()))? - 1;
            // With a shared log, the cursor may come from a replica whose
            // copy is ahead of this one's by a few milliseconds.
            if after > head && !(self.ingest.is_shared() && self.ingest.stored(after, CATCH_UP_WAIT).await) {
                return Err(Status::out_of_range(format!(
                    "after_sequence {after} is beyond the last stored sequence {head}"
                )));
            }
        }
        tracing::info!(subscriber = %grant.subscriber, after = ?request.after_sequence, "subscriber connected");
        let (store, hub) = (self.store.clone(), self.hub.clone());
        Ok(Response::new(subscriber::spawn(store, hub, grant, allowed, request.after_sequence)))
    }

    async fn publish(&self, request: Request<PublishRequest>) -> Result<Response<PublishResponse>, Status> {
        self.ingest_token.check(request.metadata())?;
        let started = std::time::Instant::now();
        let notifications = request.into_inner().notifications;
        if notifications.len() > MAX_PUBLISH_NOTIFICATIONS {
            return Err(Status::invalid_argument(format!(
                "a publish may carry at most {MAX_PUBLISH_NOTIFICATIONS} notifications"
            )));
        }
        if let Some(index) = notifications.iter().position(|n| n.kind.is_none()) {
            return Err(Status::invalid_argument(format!("notifications[{index}] has neither change nor lifecycle")));
        }
        if let Some(index) = notifications.iter().position(|n| n.delivery_id.len() > prepared::MAX_DELIVERY_ID_BYTES) {
            return Err(Status::invalid_argument(format!(
                "notifications[{index}].delivery_id is longer than {} bytes",
                prepared::MAX_DELIVERY_ID_BYTES
            )));
        }
        if notifications.is_empty() {
            return Ok(Response::new(PublishResponse::default()));
        }
        let mut notifications = self.decrypt(notifications).await?;
        let undecrypted = undecrypted(&notifications);
        self.add_resources(&mut notifications);
        // Encoding and hashing here run on every core; the single writer only
        // numbers and stores.
        let appended = self.ingest.publish(notifications).await?;
        crate::metrics::get().publish_seconds.observe(started.elapsed().as_secs_f64());
        log_undecrypted(&undecrypted, &appended);
        tracing::debug!(?appended, "published");
        Ok(Response::new(PublishResponse {
            first_sequence: appended.first_sequence,
            last_sequence: appended.last_sequence,
            stored: appended.stored,
            duplicates: appended.duplicates,
        }))
    }
}
