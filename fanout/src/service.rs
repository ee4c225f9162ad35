//! The `graphrelay.v1.Fanout` gRPC service: thin glue over the log and hub.

use std::sync::Arc;

use graph_relay_proto::v1::{PublishRequest, PublishResponse, SubscribeRequest};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::auth::BearerToken;
use crate::filter::Filter;
use crate::hub::Hub;
use crate::ingest::Ingest;
use crate::pb::fanout_server::Fanout;
use crate::store::Store;
use crate::subscriber;
use crate::wire::EncodedEvent;

/// Most notifications one `Publish` may carry. The edge sends at most one
/// Graph batch (≤ 1 MiB); this bounds the work of a single call.
pub const MAX_PUBLISH_NOTIFICATIONS: usize = 10_000;

pub struct FanoutService {
    store: Arc<Store>,
    hub: Arc<Hub>,
    ingest: Ingest,
    /// Only the edge may publish.
    ingest_token: BearerToken,
}

impl FanoutService {
    pub fn new(store: Arc<Store>, hub: Arc<Hub>, ingest: Ingest, ingest_token: BearerToken) -> Self {
        Self { store, hub, ingest, ingest_token }
    }
}

#[tonic::async_trait]
impl Fanout for FanoutService {
    type SubscribeStream = ReceiverStream<Result<EncodedEvent, Status>>;

    async fn subscribe(&self, request: Request<SubscribeRequest>) -> Result<Response<Self::SubscribeStream>, Status> {
        let request = request.into_inner();
        let filter = Filter::compile(request.filter.as_ref()).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if let Some(after) = request.after_sequence {
            let head = self.store.next_sequence().map_err(|e| Status::internal(e.to_string()))? - 1;
            if after > head {
                return Err(Status::out_of_range(format!(
                    "after_sequence {after} is beyond the last stored sequence {head}"
                )));
            }
        }
        tracing::debug!(after = ?request.after_sequence, "subscriber connected");
        Ok(Response::new(subscriber::spawn(self.store.clone(), self.hub.clone(), filter, request.after_sequence)))
    }

    async fn publish(&self, request: Request<PublishRequest>) -> Result<Response<PublishResponse>, Status> {
        self.ingest_token.check(request.metadata())?;
        let notifications = request.into_inner().notifications;
        if notifications.len() > MAX_PUBLISH_NOTIFICATIONS {
            return Err(Status::invalid_argument(format!(
                "a publish may carry at most {MAX_PUBLISH_NOTIFICATIONS} notifications"
            )));
        }
        if let Some(index) = notifications.iter().position(|n| n.kind.is_none()) {
            return Err(Status::invalid_argument(format!("notifications[{index}] has neither change nor lifecycle")));
        }
        if notifications.is_empty() {
            return Ok(Response::new(PublishResponse::default()));
        }
        let appended = self.ingest.publish(notifications).await?;
        tracing::debug!(?appended, "published");
        Ok(Response::new(PublishResponse {
            first_sequence: appended.first_sequence,
            last_sequence: appended.last_sequence,
            stored: appended.stored,
            duplicates: appended.duplicates,
        }))
    }
}
