//! The running stack against what a hostile or careless peer sends: forged
//! floods at the edge, an oversized chunked body, idle connections and
//! streams piled on the fan-out. Loopback only; every loop is bounded in
//! count and time and the processes stop with the test.

use std::time::Duration;

use graph_relay_proto::v1::{Filter, SubscribeRequest};
use graph_relay_tests::edge::{Edge, EdgeConfig};
use graph_relay_tests::fanout::Fanout;
use graph_relay_tests::publisher::{self, Publisher};
use graph_relay_tests::subscriber::{subscribe, subscribe_as, subscription_id};
use graph_relay_tests::tokens::{JwksServer, SigningKey};
use graph_relay_tests::{graph, CLIENT_STATE, SUBSCRIBER_TOKEN};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ADMIN: &str = "test-admin-token-0123456789";

async fn quarantine(edge: &Edge) -> String {
    let response =
        reqwest::Client::new().get(format!("{}/admin/quarantine", edge.url)).bearer_auth(ADMIN).send().await.unwrap();
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_floods_reach_neither_the_token_checks_nor_the_quarantine() {
    let fanout = Fanout::start().await;
    let jwks = JwksServer::start(vec![SigningKey::pair().0.jwk()]).await;
    let config = EdgeConfig::sync(fanout.url()).with_jwks(&jwks.url).var("ADMIN_TOKEN", ADMIN);
    let edge = Edge::start_with(config).await;
    let mut subscriber = subscribe(&fanout.url(), Filter::default()).await;
    for n in 0..30 {
        let forged = graph::change(&format!("forged-{n}"), "Users/u", "updated", "t", "not-the-client-state");
        let mut batch = graph::collection(vec![forged]);
        batch["validationTokens"] = json!(["a.b.c"]);
        let answer = graph::deliver(&edge.url, "/graph/notifications", &batch).await;
        assert_eq!(answer.status, 202, "a forger learns nothing: {}", answer.body);
    }
    assert!(quarantine(&edge).await.starts_with("0 quarantined batches"), "{}", quarantine(&edge).await);
    assert_eq!(*jwks.requests.lock().unwrap(), 0, "no signing keys were fetched for forged batches");

    let marker = graph::collection(vec![graph::change("marker", "Users/m", "updated", "t", CLIENT_STATE)]);
    assert_eq!(graph::deliver(&edge.url, "/graph/notifications", &marker).await.status, 202);
    assert!(subscriber.until_marker("marker").await.is_empty(), "nothing forged was delivered");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chunked_body_over_the_limit_without_content_length_is_refused() {
    let fanout = Fanout::start().await;
    let edge = Edge::start_with(EdgeConfig::sync(fanout.url())).await;
    let authority = edge.url.trim_start_matches("http://").to_string();
    let mut socket = TcpStream::connect(&authority).await.unwrap();
    let head = format!(
        "POST /graph/notifications HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 64 * 1024];
    // 17 × 64 KiB: past the 1 MiB limit with no length declared up front.
    for _ in 0..17 {
        let written = async {
            socket.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await?;
            socket.write_all(&chunk).await?;
            socket.write_all(b"\r\n").await
        };
        if written.await.is_err() {
            break; // the edge may answer and close before reading it all
        }
    }
    let _ = socket.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), socket.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_and_streams_do_not_lock_out_a_legitimate_call() {
    let fanout = Fanout::start_with(&[
        "--max-connections",
        "1000",
        "--first-byte-timeout",
        "1s",
        "--max-streams-per-connection",
        "4",
    ])
    .await;
    let authority = fanout.url().trim_start_matches("http://").to_string();
    // Far more silent sockets than the port holds, then half-open HTTP/2 and
    // HTTP/1.1 connections that stop after their first bytes.
    let mut idle = Vec::new();
    for _ in 0..2_000 {
        idle.push(TcpStream::connect(&authority).await.unwrap());
    }
    for n in 0..100 {
        let mut socket = TcpStream::connect(&authority).await.unwrap();
        let first: &[u8] = if n % 2 == 0 { b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" } else { b"POST /graphrelay" };
        let _ = socket.write_all(first).await;
        idle.push(socket);
    }
    // A subscriber multiplexing more streams than a connection may hold.
    let request = || SubscribeRequest { filter: None, after_sequence: None };
    let channel = tonic::transport::Channel::from_shared(fanout.url()).unwrap();
    let channel = tokio::time::timeout(Duration::from_secs(60), channel.connect()).await.unwrap().unwrap();
    let mut client = graph_relay_proto::v1::fanout_client::FanoutClient::new(channel);
    // One round trip first, so the client has the server's settings (its stream limit).
    let refused = client.subscribe(graph_relay_tests::subscriber::with_token(request(), "no-such-token-0123456789"));
    assert_eq!(refused.await.unwrap_err().code(), tonic::Code::Unauthenticated);
    let mut streams = Vec::new();
    for _ in 0..6 {
        let mut client = client.clone();
        let mut call = graph_relay_tests::subscriber::with_token(request(), SUBSCRIBER_TOKEN);
        call.set_timeout(Duration::from_secs(60));
        streams.push(tokio::spawn(async move { client.subscribe(call).await.map(|r| r.into_inner()) }));
    }

    // The legitimate call still gets through (silent sockets are closed after
    // a second, and past the limit the rest waits in the backlog).
    let call = async {
        let mut publisher = Publisher::connect(&fanout.url()).await;
        publisher.publish(publisher::changes("legit", 0..1)).await
    };
    let stored = tokio::time::timeout(Duration::from_secs(60), call).await.expect("answered").expect("stored");
    assert_eq!(stored.stored, 1);
    let mut subscriber = subscribe_as(&fanout.url(), SUBSCRIBER_TOKEN, request()).await.unwrap();
    publisher_marker(&fanout).await;
    assert_eq!(subscription_id(&subscriber.next().await), "marker");

    // Of the six streams on one connection, four are open; the other two
    // wait for a slot, which a closed stream frees.
    let answered = |streams: &[tokio::task::JoinHandle<_>]| streams.iter().filter(|s| s.is_finished()).count();
    wait_until("four streams open", || answered(&streams) >= 4).await;
    assert_eq!(answered(&streams), 4, "more streams than the limit on one connection");
    let finished = streams.iter().position(|s| s.is_finished()).unwrap();
    let open = streams.remove(finished).await.unwrap().expect("an open stream");
    drop(open);
    wait_until("a fifth stream in the freed slot", || answered(&streams) >= 4).await;
    drop(idle);
}

/// Polls `done` until it holds (a condition, not a fixed sleep).
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + graph_relay_tests::WAIT;
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}: not within {:?}", graph_relay_tests::WAIT);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn publisher_marker(fanout: &Fanout) {
    let mut publisher = Publisher::connect(&fanout.url()).await;
    publisher.publish(publisher::changes("marker", 0..1)).await.unwrap();
}
