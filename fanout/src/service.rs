//! The `graphrelay.v1.Fanout` gRPC service: thin glue over [`Hub`].

use std::sync::Arc;

use graph_relay_proto::v1::{PublishRequest, PublishResponse, SubscribeRequest};
use tonic::{Request, Response, Status};

use crate::auth::BearerToken;
use crate::filter::Filter;
use crate::hub::{Hub, Subscription};
use crate::pb::fanout_server::Fanout;

/// Most notifications one `Publish` may carry. The edge sends at most one
/// Graph batch (≤ 1 MiB); this bounds the work of a single call.
pub const MAX_PUBLISH_NOTIFICATIONS: usize = 10_000;

pub struct FanoutService {
    hub: Arc<Hub>,
    /// Only the edge may publish.
    ingest_token: BearerToken,
}

impl FanoutService {
    pub fn new(hub: Arc<Hub>, ingest_token: BearerToken) -> Self {
        Self { hub, ingest_token }
    }
}

#[tonic::async_trait]
impl Fanout for FanoutService {
    type SubscribeStream = Subscription;

    async fn subscribe(&self, request: Request<SubscribeRequest>) -> Result<Response<Self::SubscribeStream>, Status> {
        let request = request.into_inner();
        if request.after_sequence.is_some() {
            return Err(Status::unimplemented("after_sequence needs the durable log, which this build does not have"));
        }
        let filter = Filter::compile(request.filter.as_ref()).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let subscription = self.hub.subscribe(filter);
        tracing::info!(subscribers = self.hub.subscriber_count(), "subscriber connected");
        Ok(Response::new(subscription))
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
        let count = notifications.len() as u32;
        let range = self.hub.publish(notifications)?;
        let (first_sequence, last_sequence) = range.unwrap_or((0, 0));
        tracing::debug!(count, first_sequence, last_sequence, "published");
        Ok(Response::new(PublishResponse { first_sequence, last_sequence, stored: count }))
    }
}
