//! Several fan-out replicas on one shared log (`--log nats`): a 3-node NATS
//! cluster (stream replicas 3), two replicas, the edge under wrangler dev
//! with both URLs. A replica and a NATS node are SIGKILLed mid-stream and
//! restarted; every acknowledged notification must reach a subscriber on
//! each replica exactly once, in sequence order, including the subscriber
//! that moved from the dead replica to the other with its cursor. And the
//! reconciler runs on one replica at a time, the other taking over its
//! renewals when it dies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use graph_relay_proto::v1::{fanout_client::FanoutClient, Filter, SubscribeRequest};
use graph_relay_tests::edge::{Edge, EdgeConfig};
use graph_relay_tests::emulator::{Emulator, Stack};
use graph_relay_tests::nats::Nats;
use graph_relay_tests::subscriber::{subscription_id, with_token};
use graph_relay_tests::{fanout::Fanout, graph, SUBSCRIBER_TOKEN};
use serde_json::Value;
use tokio::sync::watch;

/// How long a reconciler step may take here.
const WAIT: Duration = Duration::from_secs(60);

const BATCHES: usize = 120;
const PER_BATCH: usize = 5;

/// What one subscriber saw, (sequence, notification id) in arrival order,
/// and on which replica (URL index) each session ran.
#[derive(Default)]
struct Seen {
    events: Vec<(u64, String)>,
    sessions: Vec<usize>,
}

/// A subscriber that resumes from its cursor after any error, on the next
/// URL of its list; `count` says how many events it has.
struct Follower {
    seen: Arc<Mutex<Seen>>,
    count: watch::Receiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

impl Follower {
    fn start(urls: Vec<String>) -> Follower {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (report, count) = watch::channel(0);
        let task = tokio::spawn(follow(urls, seen.clone(), report));
        Follower { seen, count, task }
    }

    /// Waits until it has `expected` events (bounded).
    async fn has(&mut self, expected: usize) {
        let reached = self.count.wait_for(|count| *count >= expected);
        let arrived = tokio::time::timeout(Duration::from_secs(120), reached).await.is_ok();
        let got = *self.count.borrow();
        assert!(arrived, "only {got} of {expected} events arrived");
    }
}

async fn follow(urls: Vec<String>, seen: Arc<Mutex<Seen>>, count: watch::Sender<usize>) {
    let mut cursor = 0;
    for index in (0..urls.len()).cycle() {
        let Ok(mut client) = FanoutClient::connect(urls[index].clone()).await else {
            // Down: the next URL (a short pause so a dead pair is not spun on).
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let request = SubscribeRequest { filter: Some(Filter::default()), after_sequence: Some(cursor) };
        let Ok(response) = client.subscribe(with_token(request, SUBSCRIBER_TOKEN)).await else { continue };
        seen.lock().unwrap().sessions.push(index);
        let mut stream = response.into_inner();
        while let Ok(Some(batch)) = stream.message().await {
            let mut seen = seen.lock().unwrap();
            for event in batch.events {
                cursor = event.sequence;
                seen.events.push((event.sequence, subscription_id(&event).to_owned()));
            }
            count.send_replace(seen.events.len());
        }
    }
}

/// Exactly the acknowledged ids, once each, in strictly increasing
/// sequences with none skipped.
fn check(name: &str, seen: &Seen, acknowledged: &[String]) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (_, id) in &seen.events {
        *counts.entry(id).or_default() += 1;
    }
    let duplicated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicated.is_empty(), "{name}: delivered more than once: {duplicated:?}");
    let missing: Vec<_> = acknowledged.iter().filter(|id| !counts.contains_key(id.as_str())).collect();
    assert!(missing.is_empty(), "{name}: acknowledged but never delivered: {missing:?}");
    let sequences: Vec<u64> = seen.events.iter().map(|(sequence, _)| *sequence).collect();
    assert_eq!(sequences, (1..=acknowledged.len() as u64).collect::<Vec<_>>(), "{name}: one gapless sequence space");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_and_a_nats_node_die_and_every_acknowledged_notification_arrives_once_on_both() {
    let mut nats = Nats::cluster(3).await;
    let urls = nats.urls();
    let shared = ["--log", "nats", "--nats-url", &urls, "--nats-replicas", "3"];
    let mut a = Fanout::start_with(&shared).await;
    let b = Fanout::start_with(&shared).await;
    let config = EdgeConfig::for_fanout(format!("{},{}", a.url(), b.url()))
        .var("RETRY_BASE_DELAY_SECONDS", "1")
        .var("RETRY_MAX_DELAY_SECONDS", "2");
    let edge = Edge::start_with(config).await;
    // One subscriber starts on A (and moves to B when A dies), one stays on B.
    let mut on_a = Follower::start(vec![a.url(), b.url()]);
    let mut on_b = Follower::start(vec![b.url()]);

    let mut acknowledged = Vec::new();
    for batch in 0..BATCHES {
        match batch {
            30 => {
                on_a.has(acknowledged.len()).await;
                a.kill();
            }
            60 => {
                // Everything so far went through B while A was dead.
                on_b.has(acknowledged.len()).await;
                nats.nodes[1].kill();
            }
            80 => a.restart().await,
            90 => nats.nodes[1].restart().await,
            _ => {}
        }
        let (ids, collection) = graph::numbered_batch(batch, PER_BATCH);
        // A Graph-like sender: the same POST again until it is acknowledged.
        let mut tries = 0;
        while graph::deliver(&edge.url, "/graph/notifications", &collection).await.status != 202 {
            tries += 1;
            assert!(tries < 50, "batch {batch} never acknowledged");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        acknowledged.extend(ids);
    }
    on_a.has(acknowledged.len()).await;
    on_b.has(acknowledged.len()).await;
    for follower in [&on_a, &on_b] {
        follower.task.abort();
    }
    let (seen_a, seen_b) = (on_a.seen.lock().unwrap(), on_b.seen.lock().unwrap());
    check("the subscriber that started on A", &seen_a, &acknowledged);
    check("the subscriber on B", &seen_b, &acknowledged);
    assert!(seen_a.sessions.contains(&1), "the subscriber on A moved to B: sessions {:?}", seen_a.sessions);
}

const LEADS: &str = "this replica leads the reconciler";

/// Waits until one of the two replicas logs that it leads the reconciler;
/// that one's index (0 or 1).
async fn leader_of(replicas: &mut [Fanout; 2]) -> usize {
    let [a, b] = replicas;
    tokio::select! {
        _ = a.wait_for_log(LEADS) => 0,
        _ = b.wait_for_log(LEADS) => 1,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn when_the_reconciling_replica_dies_the_other_continues_its_renewals() {
    let nats = Nats::single().await;
    let urls = nats.urls();
    // Subscriptions live 20 s and are renewed at 55–70% of that: a renewal
    // comes due at least 6 s before expiry, more than a 3 s lease takes over.
    let emulator = Emulator::start(&["--lifetime-override", "20s"]).await;
    let shared = ["--log", "nats", "--nats-url", &urls, "--nats-lease", "3s"];
    let replicas = [Fanout::start_with(&shared).await, Fanout::start_with(&shared).await];
    let config = EdgeConfig::for_fanout(format!("{},{}", replicas[0].url(), replicas[1].url()))
        .var("GRAPH_JWKS_URL", &emulator.jwks_url())
        .var("GRAPH_APP_IDS", graph_relay_tests::emulator::CLIENT_ID);
    let edge = Edge::start_with(config).await;
    let [a, b] = replicas;
    let stack = Stack { emulator, fanout: a, edge, dir: tempfile::tempdir().unwrap() };
    let entries = "[[subscription]]\nname = \"users\"\nresource = \"/users\"\nchange_types = [\"updated\"]\npermission = \"application\"\n\n\
                   [[subscription]]\nname = \"inbox\"\nresource = \"/users/u1/messages\"\nchange_types = [\"created\"]\npermission = \"application\"\n";
    let file = stack.subscriptions_file("client_secret_env = \"GRAPH_CLIENT_SECRET\"", entries);
    let file = file.to_str().unwrap();
    let Stack { emulator, fanout: a, edge: _edge, dir: _dir } = stack;
    let mut replicas = [a, b];
    for replica in &mut replicas {
        replica.restart_with(&["--subscriptions-file", file]).await;
    }
    let first = leader_of(&mut replicas).await;
    let both_created = |s: &Value| s["subscriptions"].as_array().is_some_and(|a| a.len() == 2);
    emulator.wait_until("both subscriptions created", WAIT, both_created).await;
    assert!(!replicas[1 - first].log_text().contains(LEADS), "one leader at a time");

    replicas[first].kill();
    replicas[1 - first].wait_for_log(LEADS).await;
    let renewed_twice = |s: &Value| {
        s["subscriptions"]
            .as_array()
            .is_some_and(|a| a.len() == 2 && a.iter().all(|x| x["renewals"].as_u64() >= Some(2)))
    };
    let state = emulator.wait_until("two renewals each", WAIT, renewed_twice).await;
    let counters = &state["counters"];
    assert_eq!(counters["created"], 2, "the new leader recreated what the state held: {counters}");
    assert_eq!(counters["expired"], Value::Null, "a subscription lapsed during the takeover: {counters}");
    assert_eq!(counters["renewed_twice_within_a_second"], Value::Null, "a renewal was made twice: {counters}");
}

/// A replica that loses NATS says NOT_SERVING (balancers route elsewhere)
/// and answers Publish UNAVAILABLE (the edge tries another replica), and
/// serves again once NATS is back, its stream intact. A publish answered
/// UNAVAILABLE may still land later (the client sends what it held once it
/// reconnects): sent again, it is stored once.
#[tokio::test(flavor = "multi_thread")]
async fn a_replica_without_nats_is_not_serving_until_nats_is_back() {
    use graph_relay_tests::publisher::{changes, Publisher};
    use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest};

    let mut nats = Nats::single().await;
    let fanout = Fanout::start_with(&["--log", "nats", "--nats-url", &nats.urls()]).await;
    let mut publisher = Publisher::connect(&fanout.url()).await;
    assert_eq!(publisher.publish(changes("before", 0..3)).await.unwrap().stored, 3);
    let channel = tonic::transport::Channel::from_shared(fanout.url()).unwrap().connect().await.unwrap();
    let request = HealthCheckRequest { service: "graphrelay.v1.Fanout".into() };
    let mut updates = HealthClient::new(channel).watch(request).await.unwrap().into_inner();
    let mut next_status = async move || {
        let update = tokio::time::timeout(graph_relay_tests::WAIT, updates.message()).await.expect("a status in time");
        update.unwrap().expect("a status").status()
    };
    assert_eq!(next_status().await, ServingStatus::Serving);

    nats.nodes[0].kill();
    assert_eq!(next_status().await, ServingStatus::NotServing);
    let refused = publisher.publish(changes("while-down", 3..4)).await.expect_err("not stored without NATS");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused}");

    nats.nodes[0].restart().await;
    assert_eq!(next_status().await, ServingStatus::Serving);
    let again = publisher.publish(changes("while-down", 3..4)).await.unwrap();
    assert_eq!(again.stored + again.duplicates, 1);
    publisher.publish(changes("after", 4..5)).await.unwrap();
    let request = SubscribeRequest { filter: None, after_sequence: Some(0) };
    let mut everything = graph_relay_tests::subscriber::try_subscribe(&fanout.url(), request).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let event = everything.next().await;
        seen.push((event.sequence, subscription_id(&event).to_owned()));
    }
    let expected = ["before", "before", "before", "while-down", "after"];
    assert_eq!(seen, (1..=5).zip(expected.map(String::from)).collect::<Vec<_>>(), "each once, sequences kept");
}

/// `--max-connection-age`: a subscriber's connection is closed at that age
/// (so a balancer can place it elsewhere), and resuming from its cursor
/// misses nothing and repeats nothing.
#[tokio::test(flavor = "multi_thread")]
async fn an_aged_connection_is_closed_and_the_subscriber_resumes_without_gap_or_duplicate() {
    use graph_relay_tests::publisher::{changes, Publisher};

    let fanout = Fanout::start_with(&["--max-connection-age", "2s"]).await;
    let mut publisher = Publisher::connect(&fanout.url()).await;
    publisher.publish(changes("first", 0..3)).await.unwrap();
    let request = SubscribeRequest { filter: None, after_sequence: Some(0) };
    let mut subscriber = graph_relay_tests::subscriber::try_subscribe(&fanout.url(), request).await.unwrap();
    let mut cursor = 0;
    for expected in 1..=3 {
        cursor = subscriber.next().await.sequence;
        assert_eq!(cursor, expected);
    }
    // Ends with an error status within the wait (it would live on unaged).
    subscriber.ended().await;
    let mut publisher = Publisher::connect(&fanout.url()).await;
    publisher.publish(changes("second", 3..5)).await.unwrap();
    let request = SubscribeRequest { filter: None, after_sequence: Some(cursor) };
    let mut resumed = graph_relay_tests::subscriber::try_subscribe(&fanout.url(), request).await.unwrap();
    assert_eq!([resumed.next().await.sequence, resumed.next().await.sequence], [4, 5]);
}

/// A delivery the edge sends to one replica and again to the other is
/// stored once: the shared log de-duplicates across replicas. With a log
/// key, no notification rests readable in NATS's store, and a replica
/// without the key cannot read them.
#[tokio::test(flavor = "multi_thread")]
async fn one_delivery_through_two_replicas_is_stored_once_and_sealed_in_nats() {
    use graph_relay_tests::publisher::{changes, Publisher};

    let nats = Nats::single().await;
    let key_dir = tempfile::tempdir().unwrap();
    let key_file = key_dir.path().join("log.key");
    std::fs::write(&key_file, "5a".repeat(32)).unwrap();
    let urls = nats.urls();
    let shared = ["--log", "nats", "--nats-url", &urls, "--log-key-file", key_file.to_str().unwrap()];
    let (a, b) = (Fanout::start_with(&shared).await, Fanout::start_with(&shared).await);
    let first = Publisher::connect(&a.url()).await.publish(changes("sealed-subscription", 0..3)).await.unwrap();
    let again = Publisher::connect(&b.url()).await.publish(changes("sealed-subscription", 0..3)).await.unwrap();
    assert_eq!((first.stored, first.duplicates), (3, 0));
    assert_eq!((again.stored, again.duplicates), (0, 3), "the other replica's copy of the delivery is a duplicate");
    let request = SubscribeRequest { filter: None, after_sequence: Some(0) };
    let mut on_b = graph_relay_tests::subscriber::try_subscribe(&b.url(), request).await.unwrap();
    for expected in 1..=3 {
        let event = on_b.next().await;
        assert_eq!((event.sequence, subscription_id(&event)), (expected, "sealed-subscription"));
    }
    assert!(nats.nodes[0].store_holds(b"graph-relay-events.events"), "the messages' subject: the scan reads them");
    assert!(!nats.nodes[0].store_holds(b"sealed-subscription"), "a notification rests readable in NATS");
}

/// A data directory is one kind of log: an embedded log is not taken for a
/// replica's copy of the stream (its sequences would mean other events),
/// nor a copy for an embedded log. Each start is refused with the reason.
#[tokio::test(flavor = "multi_thread")]
async fn a_data_directory_serves_only_the_log_it_holds() {
    use graph_relay_tests::publisher::{changes, Publisher};

    let nats = Nats::single().await;
    let urls = nats.urls();
    let mut embedded = Fanout::start().await;
    Publisher::connect(&embedded.url()).await.publish(changes("embedded", 0..2)).await.unwrap();
    embedded.kill();
    let refused = serve_once(&embedded.data_dir(), &["--log", "nats", "--nats-url", &urls]);
    assert!(refused.contains("holds an embedded log"), "{refused}");

    let mut copy = Fanout::start_with(&["--log", "nats", "--nats-url", &urls]).await;
    Publisher::connect(&copy.url()).await.publish(changes("shared", 0..2)).await.unwrap();
    copy.kill();
    let refused = serve_once(&copy.data_dir(), &[]);
    assert!(refused.contains("start it with --log nats"), "{refused}");
    let refused = serve_once(&copy.data_dir(), &["--log", "nats", "--nats-url", &urls, "--nats-stream", "another"]);
    assert!(refused.contains("copy of another shared log"), "{refused}");
}

/// `graph-relay serve` on `data_dir`, expected to refuse to start: what it said.
fn serve_once(data_dir: &std::path::Path, args: &[&str]) -> String {
    let output = std::process::Command::new(graph_relay_tests::fanout::binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--ingest-token", graph_relay_tests::INGEST_TOKEN])
        .args(["--subscriber-token", SUBSCRIBER_TOKEN, "--data-dir"])
        .arg(data_dir)
        .args(args)
        .output()
        .expect("graph-relay runs");
    assert!(!output.status.success(), "it started: {}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8_lossy(&output.stderr).into_owned()
}
