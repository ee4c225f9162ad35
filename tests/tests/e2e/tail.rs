//! `graph-relay tail`, the operator's first debugging tool, against the real
//! fan-out: it prints every event as one JSON line, in sequence order, with
//! the Graph item as Graph sent it.

use std::process::Stdio;

use graph_relay_tests::fanout::{self, Fanout};
use graph_relay_tests::publisher::{change, Publisher};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Notifications of ~1 KB each: replayed, they leave in batches of ~270 KB,
/// far over HTTP/2's default 16 KiB frame, which tail raises to 1 MiB.
const EVENTS: u64 = 600;

fn padded(id: u64) -> graph_relay_proto::v1::Notification {
    let mut notification = change("s", id);
    if let Some(graph_relay_proto::v1::notification::Kind::Change(change)) = notification.kind.as_mut() {
        change.raw_json = format!(r#"{{"id":"{id}","subscriptionId":"s","padding":"{}"}}"#, "x".repeat(1000));
    }
    notification
}

#[tokio::test]
async fn tail_prints_every_replayed_event_in_order_as_graph_sent_it() {
    let fanout = Fanout::start().await;
    let mut publisher = Publisher::connect(&fanout.url()).await;
    for batch in 0..EVENTS / 100 {
        publisher.publish((batch * 100..(batch + 1) * 100).map(padded).collect()).await.unwrap();
    }
    let mut tail = tokio::process::Command::new(fanout::binary())
        .args(["tail", "--server", &fanout.url(), "--after-sequence", "0"])
        .env("GRAPH_RELAY_TOKEN", graph_relay_tests::SUBSCRIBER_TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("graph-relay tail starts");
    let mut lines = BufReader::new(tail.stdout.take().expect("piped stdout")).lines();
    for expected in 1..=EVENTS {
        let line = tokio::time::timeout(graph_relay_tests::WAIT, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("tail printed nothing for sequence {expected}"))
            .unwrap()
            .expect("tail is still running");
        let event: Value = serde_json::from_str(&line).expect("each line is JSON");
        assert_eq!(event["sequence"], expected);
        assert_eq!(event["change"]["id"], (expected - 1).to_string());
        assert_eq!(event["change"]["padding"].as_str().map(str::len), Some(1000));
    }
}

/// Runs `graph-relay tail` on a pseudo-terminal (util-linux `script`) until
/// it has printed `marker`; what the terminal showed.
async fn on_a_terminal(fanout: &Fanout, marker: &str, no_color: bool) -> String {
    let command = format!("{} tail --server {} --after-sequence 0", fanout::binary().display(), fanout.url());
    let mut script = tokio::process::Command::new("script");
    script.args(["-qfec", &command, "/dev/null"]).env("TERM", "xterm-256color").env_remove("NO_COLOR");
    if no_color {
        script.env("NO_COLOR", "1");
    }
    let mut child = script
        .env("GRAPH_RELAY_TOKEN", graph_relay_tests::SUBSCRIBER_TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("script (util-linux) runs");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let mut shown = String::new();
    while !shown.contains(marker) {
        let line = tokio::time::timeout(graph_relay_tests::WAIT, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no {marker} on the terminal; it showed:\n{shown}"))
            .unwrap()
            .expect("tail is still running");
        shown.push_str(&line);
        shown.push('\n');
    }
    shown
}

#[tokio::test]
async fn on_a_terminal_tail_prints_a_readable_line_per_event_in_colour_unless_no_color() {
    if std::process::Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: util-linux `script` (a pseudo-terminal) is not installed");
        return;
    }
    let fanout = Fanout::start().await;
    let mut publisher = Publisher::connect(&fanout.url()).await;
    publisher.publish(vec![change("sub-a", 7), change("sub-marker", 8)]).await.unwrap();

    let shown = on_a_terminal(&fanout, "sub-marker", false).await;
    let line = shown.lines().find(|l| l.contains("sub-a")).expect("a line for the first event");
    assert!(line.contains("#1"), "{line}");
    assert!(line.contains("users/u/messages/7"), "{line}");
    assert!(line.contains("\x1b[32mcreated"), "created in green: {line:?}");
    assert!(!shown.contains("\"sequence\""), "not JSON on a terminal:\n{shown}");

    let plain = on_a_terminal(&fanout, "sub-marker", true).await;
    assert!(!plain.contains('\x1b'), "NO_COLOR: no escape codes:\n{plain:?}");
    assert!(plain.lines().any(|l| l.contains("#2") && l.contains("created") && l.contains("subscription sub-marker")));
}
