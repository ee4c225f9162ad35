//! `graph-relay tail`: subscribe and print each event as one JSON line.
//!
//! A user's first debugging tool, so the output is the Graph item as Graph
//! sent it (minus clientState) wrapped with the fan-out's sequence.

use graph_relay_proto::v1::{event::Payload, fanout_client::FanoutClient, Event, Filter, SubscribeRequest};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

pub struct TailConfig {
    pub server: String,
    pub filter: Filter,
}

/// Streams until the server ends the stream or the connection fails.
pub async fn run(config: TailConfig) -> Result<(), Box<dyn std::error::Error>> {
    let mut client = FanoutClient::connect(config.server.clone()).await?;
    let request = SubscribeRequest { filter: Some(config.filter), after_sequence: None };
    let mut stream = client.subscribe(request).await?.into_inner();
    eprintln!("tail: subscribed to {}", config.server);
    let mut stdout = tokio::io::stdout();
    while let Some(event) = stream.message().await? {
        let mut line = render(&event).to_string();
        line.push('\n');
        stdout.write_all(line.as_bytes()).await?;
        stdout.flush().await?;
    }
    Ok(())
}

/// One event as a JSON object: `sequence`, `receivedAtUnixMs`, and `change`
/// or `lifecycle` holding the Graph item.
pub fn render(event: &Event) -> Value {
    let (kind, raw) = match &event.payload {
        Some(Payload::Change(change)) => ("change", change.raw_json.as_str()),
        Some(Payload::Lifecycle(lifecycle)) => ("lifecycle", lifecycle.raw_json.as_str()),
        None => ("unknown", "null"),
    };
    let item = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
    json!({ "sequence": event.sequence, "receivedAtUnixMs": event.received_at_unix_ms, kind: item })
}

#[cfg(test)]
mod tests {
    use super::*;
    use graph_relay_proto::v1::ChangeNotification;

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
}
