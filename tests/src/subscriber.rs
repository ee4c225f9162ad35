//! A real gRPC subscriber of the fan-out, with bounded waits.

use std::collections::VecDeque;

use graph_relay_proto::v1::{event::Payload, fanout_client::FanoutClient, Event, EventBatch, Filter, SubscribeRequest};
use serde_json::Value;
use tonic::Streaming;

pub struct Subscriber {
    stream: Streaming<EventBatch>,
    /// Events of the last batch not handed out yet.
    pending: VecDeque<Event>,
}

/// Subscribes with `filter`; returns once the fan-out has registered it, so
/// everything published afterwards that matches is delivered.
pub async fn subscribe(fanout_url: &str, filter: Filter) -> Subscriber {
    try_subscribe(fanout_url, SubscribeRequest { filter: Some(filter), after_sequence: None })
        .await
        .expect("subscribe accepted")
}

pub async fn try_subscribe(fanout_url: &str, request: SubscribeRequest) -> Result<Subscriber, tonic::Status> {
    subscribe_as(fanout_url, crate::SUBSCRIBER_TOKEN, request).await
}

/// Subscribes with a given subscriber token.
pub async fn subscribe_as(
    fanout_url: &str,
    token: &str,
    request: SubscribeRequest,
) -> Result<Subscriber, tonic::Status> {
    let mut client = FanoutClient::connect(fanout_url.to_owned()).await.expect("fan-out reachable");
    let stream = client.subscribe(with_token(request, token)).await?.into_inner();
    Ok(Subscriber { stream, pending: VecDeque::new() })
}

/// `request` with `authorization: Bearer <token>`.
pub fn with_token<T>(request: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(request);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii token"));
    request
}

impl Subscriber {
    /// The next event; panics if none comes within [`crate::WAIT`].
    pub async fn next(&mut self) -> Event {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return event;
            }
            match tokio::time::timeout(crate::WAIT, self.stream.message()).await {
                Ok(Ok(Some(batch))) => {
                    assert!(!batch.events.is_empty(), "the fan-out never sends an empty batch");
                    self.pending.extend(batch.events);
                }
                Ok(Ok(None)) => panic!("stream ended"),
                Ok(Err(status)) => panic!("stream failed: {status}"),
                Err(_) => panic!("no event within {:?}", crate::WAIT),
            }
        }
    }

    /// The status the stream ends with, skipping any events still on their
    /// way; panics if it does not end within [`crate::WAIT`].
    pub async fn ended(&mut self) -> tonic::Status {
        loop {
            match tokio::time::timeout(crate::WAIT, self.stream.message()).await {
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None)) => panic!("stream ended without a status"),
                Ok(Err(status)) => return status,
                Err(_) => panic!("the stream did not end within {:?}", crate::WAIT),
            }
        }
    }

    /// Events up to (excluding) the first whose subscription id is `marker`.
    /// Ordering is strict, so anything delivered by mistake shows up here.
    pub async fn until_marker(&mut self, marker: &str) -> Vec<Event> {
        let mut events = Vec::new();
        loop {
            let event = self.next().await;
            if subscription_id(&event) == marker {
                return events;
            }
            events.push(event);
        }
    }
}

pub fn subscription_id(event: &Event) -> &str {
    match &event.payload {
        Some(Payload::Change(c)) => &c.subscription_id,
        Some(Payload::Lifecycle(l)) => &l.subscription_id,
        Some(Payload::Gap(_)) | None => "",
    }
}

/// The Graph item carried by the event (its `raw_json`).
pub fn item(event: &Event) -> Value {
    let raw = match &event.payload {
        Some(Payload::Change(c)) => &c.raw_json,
        Some(Payload::Lifecycle(l)) => &l.raw_json,
        other => panic!("event without a Graph item: {other:?}"),
    };
    serde_json::from_str(raw).expect("raw_json is JSON")
}
