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
