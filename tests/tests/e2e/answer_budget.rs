//! Graph's 3 s: the edge answers in time whatever hangs behind it, and
//! accepts every body Graph may send in either mode.

use std::time::{Duration, Instant};

use graph_relay_proto::v1::Filter;
use graph_relay_tests::edge::{Edge, EdgeConfig};
use graph_relay_tests::fanout::Fanout;
use graph_relay_tests::subscriber::subscribe;
use graph_relay_tests::tokens::{valid_claims, JwksServer, SigningKey};
use graph_relay_tests::{graph, CLIENT_STATE};
use serde_json::json;

/// Graph's limit for the whole exchange.
const GRAPH_WAITS: Duration = Duration::from_secs(3);

/// A fan-out that takes connections and never answers.
async fn hung_fanout() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            sockets.push(socket);
        }
    });
    (url, held)
}

fn signed_by(key: &SigningKey) -> serde_json::Value {
    let mut batch = graph::collection(vec![graph::change("sub", "Users/u", "updated", "t", CLIENT_STATE)]);
    batch["validationTokens"] = json!([key.sign(&valid_claims())]);
    batch
}

async fn timed_delivery(edge: &Edge, batch: &serde_json::Value) -> (u16, Duration) {
    let started = Instant::now();
    let answer = graph::deliver(&edge.url, "/graph/notifications", batch).await;
    (answer.status, started.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_answer_leaves_in_time_when_the_signing_keys_and_the_fanout_hang() {
    let (fanout_url, _held) = hung_fanout().await;
    let known = &SigningKey::pair().0;
    let jwks = JwksServer::start(vec![known.jwk()]).await;
    let config = EdgeConfig::sync(fanout_url)
        .with_jwks(&jwks.url)
        .var("JWKS_MAX_AGE_SECONDS", "1")
        .var("JWKS_MIN_REFRESH_SECONDS", "0");
    let edge = Edge::start_with(config).await;
    // The keys are fetched and cached; the hung fan-out makes it a 503.
    let (status, _) = timed_delivery(&edge, &signed_by(known)).await;
    assert_eq!(status, 503);

    jwks.set_hanging(true);
    let stale_at = Instant::now() + Duration::from_millis(1_100);
    tokio::time::sleep_until(stale_at.into()).await; // the cached keys are now past their age
                                                     // Stale keys refetched (hangs), then the forward (hangs): one budget for both.
    let (status, took) = timed_delivery(&edge, &signed_by(known)).await;
    assert_eq!(status, 503, "Graph retries");
    assert!(took < GRAPH_WAITS, "answered after {took:?}");
    assert!(took >= Duration::from_secs(2), "both hung steps were waited on, up to the budget: {took:?}");
    // An unknown kid: the stale refetch and the refetch for the kid both hang.
    let (status, took) = timed_delivery(&edge, &signed_by(&SigningKey::generate("key-new"))).await;
    assert!(status == 503 || status == 202, "{status}");
    assert!(took < GRAPH_WAITS, "answered after {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn more_tiny_items_than_one_publish_carries_are_accepted_in_synchronous_mode() {
    let fanout = Fanout::start().await;
    let edge = Edge::start_with(EdgeConfig::sync(fanout.url())).await;
    let mut subscriber = subscribe(&fanout.url(), Filter::default()).await;
    let count = graph_relay_proto::MAX_PUBLISH_NOTIFICATIONS + 2_000;
    let items = (0..count)
        .map(|n| json!({"clientState": CLIENT_STATE, "subscriptionId": format!("{n}"), "lifecycleEvent": "missed"}));
    let body = graph::collection(items.collect());
    assert!(body.to_string().len() <= 1 << 20, "within Graph's body size");
    let answer = graph::deliver(&edge.url, "/graph/lifecycle", &body).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let marker = graph::collection(vec![graph::change("marker", "Users/m", "updated", "t", CLIENT_STATE)]);
    assert_eq!(graph::deliver(&edge.url, "/graph/notifications", &marker).await.status, 202);
    let events = subscriber.until_marker("marker").await;
    assert_eq!(events.len(), count, "every item, once");
}
