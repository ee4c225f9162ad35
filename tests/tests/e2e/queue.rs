//! Queue mode: 202 means "durably queued"; the consumer forwards, retries,
//! dead-letters, and an operator replays.

use std::time::{Duration, Instant};

use graph_relay_proto::v1::{event::Payload, Filter, SubscribeRequest};
use graph_relay_tests::edge::{Edge, EdgeConfig};
use graph_relay_tests::subscriber::{item, subscribe, subscription_id, try_subscribe, Subscriber};
use graph_relay_tests::{fanout::Fanout, graph, CLIENT_STATE, WAIT};
use serde_json::json;

const ADMIN: &str = "test-admin-token-0123456789";

async fn from_start(fanout: &Fanout) -> Subscriber {
    let request = SubscribeRequest { filter: Some(Filter::default()), after_sequence: Some(0) };
    try_subscribe(&fanout.url(), request).await.expect("subscribe")
}

async fn admin(edge: &Edge, method: reqwest::Method, path: &str, token: Option<&str>) -> graph::Answer {
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", edge.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    graph::answer(request.send().await.expect("edge answers")).await
}

#[tokio::test]
async fn dead_letters_after_max_retries_are_parked_and_replayed() {
    let mut fanout = Fanout::start().await;
    let config = EdgeConfig { max_retries: Some(1), ..EdgeConfig::for_fanout(fanout.url()) }
        .var("RETRY_BASE_DELAY_SECONDS", "0")
        .var("ADMIN_TOKEN", ADMIN);
    let edge = Edge::start_with(config).await;
    assert_eq!(admin(&edge, reqwest::Method::GET, "/admin/dead-letters", None).await.status, 401);
    assert_eq!(admin(&edge, reqwest::Method::GET, "/admin/dead-letters", Some("wrong-token")).await.status, 401);
    fanout.kill();
    let batch = graph::collection(vec![graph::change("dead-1", "users/u/messages/1", "created", "t", CLIENT_STATE)]);
    assert_eq!(graph::deliver(&edge.url, "/graph/notifications", &batch).await.status, 202);

    // Poll the operator view until the consumer gave up and parked it.
    let deadline = Instant::now() + WAIT;
    let listing = loop {
        let listing = admin(&edge, reqwest::Method::GET, "/admin/dead-letters", Some(ADMIN)).await;
        if listing.body.starts_with("1 dead letters") {
            break listing;
        }
        assert!(Instant::now() < deadline, "never dead-lettered: {}", listing.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(listing.status, 200);

    fanout.restart().await;
    let mut subscriber = from_start(&fanout).await;
    let replay = admin(&edge, reqwest::Method::POST, "/admin/dead-letters/replay", Some(ADMIN)).await;
    assert_eq!((replay.status, replay.body.as_str()), (200, "replayed 1 dead letters"));
    assert_eq!(subscription_id(&subscriber.next().await), "dead-1");
    let after = admin(&edge, reqwest::Method::GET, "/admin/dead-letters", Some(ADMIN)).await;
    assert!(after.body.starts_with("0 dead letters"), "{}", after.body);
}

#[tokio::test]
async fn a_1_mib_batch_is_split_under_the_128_kb_limit_and_an_oversized_item_goes_direct() {
    let fanout = Fanout::start().await;
    let mut edge = Edge::start(fanout.url()).await;
    let mut everything = subscribe(&fanout.url(), Filter::default()).await;
    let mut items: Vec<_> = (0..95)
        .map(|i| {
            let mut item =
                graph::change(&format!("big-{i}"), &format!("users/u/messages/{i}"), "created", "t", CLIENT_STATE);
            item["resourceData"]["body"] = json!("x".repeat(9_000));
            item
        })
        .collect();
    let mut oversized = graph::change("oversized", "users/u/messages/huge", "created", "t", CLIENT_STATE);
    oversized["resourceData"]["body"] = json!("y".repeat(150_000));
    items.insert(40, oversized);
    let batch = graph::collection(items.clone());
    assert!(batch.to_string().len() > 1_000_000 && batch.to_string().len() < 1 << 20);
    assert_eq!(graph::deliver(&edge.url, "/graph/notifications", &batch).await.status, 202);
    let log = edge.process.wait_for_log("forwarded 1 oversized items directly").await;
    let queued: usize = log
        .lines()
        .find_map(|l| l.split("queued ").nth(1)?.split(' ').next()?.parse().ok())
        .expect("the edge logged how many messages it queued");
    assert!(queued >= 8, "95 items of ~9 KB need several 120 KB messages, got {queued}");

    let mut received = Vec::new();
    for _ in 0..items.len() {
        let event = everything.next().await;
        assert!(matches!(event.payload, Some(Payload::Change(_))));
        received.push(item(&event));
    }
    // The oversized item went straight to the fan-out, so it may arrive
    // before the queued ones; every item arrives once and intact.
    let mut expected: Vec<_> = items.iter().map(graph::without_client_state).collect();
    let key = |v: &serde_json::Value| v["subscriptionId"].as_str().unwrap_or("").to_owned();
    received.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!(received, expected);
}

/// Polls the fan-out's metrics until `series` reaches `value`.
async fn metric_reaches(fanout: &Fanout, series: &str, value: f64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = fanout.metrics().await.get(series).copied().unwrap_or(0.0);
        if now >= value {
            return assert_eq!(now, value, "{series} went past {value}");
        }
        assert!(Instant::now() < deadline, "{series} stayed at {now}, waiting for {value}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

graph_relay_tests::on_both_logs! {
    async fn acknowledged_while_the_fanout_is_down_then_delivered_when_it_returns() {
        let mut fanout = Fanout::start().await;
        let config = EdgeConfig::for_fanout(fanout.url()).var("RETRY_BASE_DELAY_SECONDS", "1");
        let mut edge = Edge::start_with(config).await;
        fanout.kill();
        let batch = graph::collection(vec![
            graph::change("queued-1", "users/u/messages/1", "created", "t", CLIENT_STATE),
            graph::change("queued-2", "users/u/messages/2", "created", "t", CLIENT_STATE),
        ]);
        let answer = graph::deliver(&edge.url, "/graph/notifications", &batch).await;
        assert_eq!(answer.status, 202, "the queue holds it: {}", answer.body);
        edge.process.wait_for_log("not forwarded").await;
        fanout.restart().await;
        let mut subscriber = from_start(&fanout).await;
        assert_eq!(subscription_id(&subscriber.next().await), "queued-1");
        assert_eq!(subscription_id(&subscriber.next().await), "queued-2");
    }

    async fn the_fast_path_delivers_and_the_consumers_later_forward_is_a_recorded_duplicate() {
        const STORED: &str = "graph_relay_notifications_published_total";
        const DUPLICATES: &str = "graph_relay_notifications_duplicate_total";
        for fast_path in ["on", "off"] {
            let fanout = Fanout::start_with(&["--metrics-listen", "127.0.0.1:0"]).await;
            let edge = Edge::start_with(EdgeConfig::for_fanout(fanout.url()).var("FAST_PATH", fast_path)).await;
            let mut everything = subscribe(&fanout.url(), Filter::default()).await;
            let batch = graph::collection(vec![
                graph::change("fast-1", "users/u/messages/1", "created", "t", CLIENT_STATE),
                graph::change("fast-2", "users/u/messages/2", "created", "t", CLIENT_STATE),
            ]);
            assert_eq!(graph::deliver(&edge.url, "/graph/notifications", &batch).await.status, 202);
            assert_eq!(subscription_id(&everything.next().await), "fast-1");
            assert_eq!(subscription_id(&everything.next().await), "fast-2");
            metric_reaches(&fanout, STORED, 2.0).await;
            // The consumer forwards the same messages: with the fast path first,
            // the log already holds them.
            let expected_duplicates = if fast_path == "on" { 2.0 } else { 0.0 };
            if fast_path == "on" {
                metric_reaches(&fanout, DUPLICATES, expected_duplicates).await;
            }
            let marker = graph::collection(vec![graph::change("marker", "r", "created", "t", CLIENT_STATE)]);
            graph::deliver(&edge.url, "/graph/notifications", &marker).await;
            assert!(everything.until_marker("marker").await.is_empty(), "fast path {fast_path}: no second event");
            let stored = fanout.metrics().await;
            assert_eq!(stored.get(STORED).copied(), Some(3.0), "fast path {fast_path}");
            if fast_path == "off" {
                assert_eq!(stored.get(DUPLICATES).copied(), Some(0.0), "without the fast path only the consumer forwards");
            }
        }
    }
}
