//! `graph-relay tail`: subscribe and print each event as one JSON line.
//!
//! A user's first debugging tool, so the output is the Graph item as Graph
//! sent it (minus clientState) wrapped with the fan-out's sequence. When the
//! fan-out restarts, tail resumes after the last sequence it printed: nothing
//! is missed and nothing printed twice.

use std::time::Duration;

use graph_relay_proto::v1::{event::Payload, fanout_client::FanoutClient, Event, Filter, SubscribeRequest};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

pub struct TailConfig {
    pub server: String,
    /// Subscriber bearer token.
    pub token: String,
    pub filter: Filter,
    /// Replay from after this sequence first (`None`: from now on).
    pub after_sequence: Option<u64>,
}

const RETRY_DELAY: Duration = Duration::from_secs(1);
/// HTTP/2 frames this subscriber accepts. tonic's default (16 KiB) splits a
/// full `EventBatch` (~64 KiB) into 4 frames, each handled on its own by the
/// client; in docs/performance-history.md, 1 MiB frames let 100 subscribers take ~20% more
/// events per second on the same server CPU.
const MAX_FRAME_SIZE: u32 = 1 << 20;

/// Streams until interrupted, reconnecting after disconnects.
pub async fn run(config: TailConfig) -> Result<(), Box<dyn std::error::Error>> {
    let mut cursor = config.after_sequence;
    loop {
        match stream_once(&config, &mut cursor).await {
            Ok(()) => eprintln!("tail: stream ended; resuming"),
            Err(e) if is_final(e.as_ref()) => return Err(e),
            Err(e) => eprintln!("tail: {e}; resuming after sequence {}", cursor.unwrap_or(0)),
        }
        tokio::time::sleep(RETRY_DELAY).await;
    }
}

async fn stream_once(config: &TailConfig, cursor: &mut Option<u64>) -> Result<(), Box<dyn std::error::Error>> {
    let channel = tonic::transport::Endpoint::from_shared(config.server.clone())?.max_frame_size(MAX_FRAME_SIZE);
    let mut client = FanoutClient::new(channel.connect().await?);
    let mut request =
        tonic::Request::new(SubscribeRequest { filter: Some(config.filter.clone()), after_sequence: *cursor });
    let authorization = format!("Bearer {}", config.token).parse().map_err(|_| "the token is not valid ASCII")?;
    request.metadata_mut().insert("authorization", authorization);
    let mut stream = client.subscribe(request).await?.into_inner();
    eprintln!("tail: subscribed to {}", config.server);
    let mut stdout = tokio::io::stdout();
    while let Some(batch) = stream.message().await? {
        for event in batch.events {
            let mut line = render(&event).to_string();
            line.push('\n');
            stdout.write_all(line.as_bytes()).await?;
            *cursor = Some(event.sequence);
        }
        stdout.flush().await?;
    }
    Ok(())
}

/// Errors no retry can fix: a bad filter or cursor.
fn is_final(error: &(dyn std::error::Error + 'static)) -> bool {
    error.downcast_ref::<tonic::Status>().is_some_and(|status| {
        matches!(
            status.code(),
            tonic::Code::InvalidArgument
                | tonic::Code::OutOfRange
                | tonic::Code::Unauthenticated
                | tonic::Code::PermissionDenied
        )
    })
}

/// One event as a JSON object: `sequence`, `receivedAtUnixMs`, and `change`,
/// `lifecycle` (the Graph item) or `gap`.
pub fn render(event: &Event) -> Value {
    let (kind, body) = match &event.payload {
        Some(Payload::Change(change)) => ("change", parse(&change.raw_json)),
        Some(Payload::Lifecycle(lifecycle)) => ("lifecycle", parse(&lifecycle.raw_json)),
        Some(Payload::Gap(gap)) => {
            ("gap", json!({"fromSequence": gap.from_sequence, "toSequence": gap.to_sequence, "reason": gap.reason}))
        }
        None => ("unknown", Value::Null),
    };
    json!({ "sequence": event.sequence, "receivedAtUnixMs": event.received_at_unix_ms, kind: body })
}

fn parse(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use graph_relay_proto::v1::{ChangeNotification, Gap};

    #[test]
    fn renders_the_graph_item_under_its_kind() {
        let event = Event {
            sequence: 5,
            received_at_unix_ms: 9,
            payload: Some(Payload::Change(ChangeNotification {
                raw_json: r#"{"changeType":"created","x":1}"#.into(),
                ..Default::default()
            })),
        };
        assert_eq!(
            render(&event),
            json!({"sequence": 5, "receivedAtUnixMs": 9, "change": {"changeType": "created", "x": 1}})
        );
    }

    #[test]
    fn renders_gaps() {
        let gap = Gap { from_sequence: 2, to_sequence: 4, reason: "removed by retention".into() };
        let event = Event { sequence: 4, received_at_unix_ms: 0, payload: Some(Payload::Gap(gap)) };
        assert_eq!(
            render(&event)["gap"],
            json!({"fromSequence": 2, "toSequence": 4, "reason": "removed by retention"})
        );
    }
}
