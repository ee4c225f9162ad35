//! `graph-relay tail`: subscribe and print each event, as a readable line on
//! a terminal or as one JSON line when piped (or with `--json`).
//!
//! A user's first debugging tool. The readable line says what happened at a
//! glance (time, sequence, change type or lifecycle event, resource,
//! subscription), in colour unless `NO_COLOR` is set or the terminal is
//! dumb. The JSON line is the Graph item as Graph sent it (minus
//! clientState) wrapped with the fan-out's sequence, for scripts. When the
//! fan-out restarts, tail resumes after the last sequence it printed:
//! nothing is missed and nothing printed twice.

use std::time::Duration;

use graph_relay_proto::v1::{event::Payload, fanout_client::FanoutClient, Event, Filter, SubscribeRequest};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::args::TailFormat;

pub struct TailConfig {
    pub server: String,
    /// Subscriber bearer token.
    pub token: String,
    pub filter: Filter,
    /// Replay from after this sequence first (`None`: from now on).
    pub after_sequence: Option<u64>,
    pub output: Output,
}

/// How events are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Json,
    Readable { colour: bool },
}

impl Output {
    /// `Auto` is readable on a terminal and JSON otherwise.
    pub fn choose(format: TailFormat) -> Output {
        use std::io::IsTerminal;
        let terminal = std::io::stdout().is_terminal();
        let colour =
            colour_wanted(terminal, std::env::var_os("NO_COLOR").as_deref(), std::env::var("TERM").ok().as_deref());
        match format {
            TailFormat::Json => Output::Json,
            TailFormat::Readable => Output::Readable { colour },
            TailFormat::Auto if terminal => Output::Readable { colour },
            TailFormat::Auto => Output::Json,
        }
    }

    fn line(self, event: &Event) -> String {
        match self {
            Output::Json => render(event).to_string(),
            Output::Readable { colour } => readable(event, colour),
        }
    }
}

/// Colour only on a terminal, never with a non-empty `NO_COLOR`
/// (no-color.org) or `TERM=dumb`.
fn colour_wanted(terminal: bool, no_color: Option<&std::ffi::OsStr>, term: Option<&str>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty()) && term != Some("dumb")
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
            let mut line = config.output.line(&event);
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

/// One line for people: `time  #sequence  what  resource  subscription`.
pub fn readable(event: &Event, colour: bool) -> String {
    let paint = |code: &str, text: &str| if colour { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() };
    let time =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(event.received_at_unix_ms).unwrap_or(0));
    let time = humantime::format_rfc3339_millis(time).to_string();
    let head = format!("{}  {}", paint("2", &time), paint("1", &format!("#{}", event.sequence)));
    match &event.payload {
        Some(Payload::Change(change)) => {
            let code = match change.change_type.as_str() {
                "created" => "32",
                "updated" => "33",
                "deleted" => "31",
                _ => "36",
            };
            let what = paint(code, &format!("{:<8}", change.change_type));
            format!("{head}  {what}  {}  subscription {}", change.resource, change.subscription_id)
        }
        Some(Payload::Lifecycle(lifecycle)) => {
            let what = paint("35", &lifecycle.lifecycle_event);
            let resource = if lifecycle.resource.is_empty() { "-" } else { &lifecycle.resource };
            format!("{head}  {what}  {resource}  subscription {}", lifecycle.subscription_id)
        }
        Some(Payload::Gap(gap)) => {
            let what = paint("1;31", "gap");
            format!(
                "{head}  {what}  sequences {}..={} will not come: {}",
                gap.from_sequence, gap.to_sequence, gap.reason
            )
        }
        None => format!("{head}  (an event of a newer kind: upgrade graph-relay)"),
    }
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

    fn change(change_type: &str) -> Event {
        Event {
            sequence: 42,
            received_at_unix_ms: 1_764_870_000_123,
            payload: Some(Payload::Change(ChangeNotification {
                change_type: change_type.into(),
                resource: "users/u1/messages/m1".into(),
                subscription_id: "sub-1".into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn a_readable_line_says_when_what_where_and_which_subscription() {
        assert_eq!(
            readable(&change("updated"), false),
            "2025-12-04T17:40:00.123Z  #42  updated   users/u1/messages/m1  subscription sub-1"
        );
        let coloured = readable(&change("deleted"), true);
        assert!(coloured.contains("\x1b[31mdeleted "), "{coloured:?}");
        assert!(!readable(&change("deleted"), false).contains('\x1b'));
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color_or_a_dumb_term() {
        use std::ffi::OsStr;
        assert!(colour_wanted(true, None, Some("xterm-256color")));
        assert!(!colour_wanted(false, None, Some("xterm")), "piped");
        assert!(!colour_wanted(true, Some(OsStr::new("1")), Some("xterm")), "NO_COLOR");
        assert!(colour_wanted(true, Some(OsStr::new("")), Some("xterm")), "an empty NO_COLOR does not count");
        assert!(!colour_wanted(true, None, Some("dumb")));
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
