//! From Graph's POST to the subscriber (`make bench`): the real worker under
//! `wrangler dev` (workerd) and the real fan-out, one notification every
//! 250 ms (a steady Graph-like rate), in queue mode with the fast path, in
//! queue mode without it (the consumer's batch timeout decides), and in
//! synchronous mode. Reports, per mode, the edge's acknowledgement latency
//! and the time from sending the POST to the subscriber holding the event.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use graph_relay_proto::v1::Filter;
use graph_relay_tests::edge::{Edge, EdgeConfig};
use graph_relay_tests::fanout::Fanout;
use graph_relay_tests::subscriber::{subscribe, subscription_id};
use graph_relay_tests::{graph, CLIENT_STATE};
use tokio::sync::mpsc;

/// Notifications per mode, one every `EVERY`.
const COUNT: usize = 80;
const EVERY: Duration = Duration::from_millis(250);

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn summary(mut samples: Vec<f64>) -> String {
    samples.sort_by(f64::total_cmp);
    let (p50, p90, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.9), percentile(&samples, 0.99));
    format!("{p50:.1} | {p90:.1} | {p99:.1}")
}

async fn run(name: &str, config: EdgeConfig, fanout: &Fanout) {
    let edge = Edge::start_with(config).await;
    let mut events = subscribe(&fanout.url(), Filter::default()).await;
    let (arrived, mut arrivals) = mpsc::unbounded_channel::<(String, Instant)>();
    let reader = tokio::spawn(async move {
        loop {
            let event = events.next().await;
            if arrived.send((subscription_id(&event).to_owned(), Instant::now())).is_err() {
                return;
            }
        }
    });
    let client = reqwest::Client::new();
    let url = format!("{}/graph/notifications", edge.url);
    let (mut sent, mut acks) = (HashMap::new(), Vec::new());
    let mut tick = tokio::time::interval(EVERY);
    for i in 0..COUNT {
        tick.tick().await;
        let id = format!("{name}-{i}");
        let body = graph::collection(vec![graph::change(&id, "users/u/messages/m", "created", "t", CLIENT_STATE)]);
        let started = Instant::now();
        let response = client.post(&url).header("content-type", "application/json").body(body.to_string()).send().await;
        let status = response.expect("the edge answers").status();
        assert_eq!(status, 202, "{name}: the edge refused a notification");
        acks.push(started.elapsed().as_secs_f64() * 1e3);
        sent.insert(id, started);
    }
    let mut delivered = Vec::new();
    while delivered.len() < COUNT {
        let (id, at) = tokio::time::timeout(Duration::from_secs(60), arrivals.recv())
            .await
            .unwrap_or_else(|_| panic!("{name}: {} of {COUNT} delivered", delivered.len()))
            .expect("the subscriber runs");
        if let Some(started) = sent.remove(&id) {
            delivered.push(at.duration_since(started).as_secs_f64() * 1e3);
        }
    }
    reader.abort();
    println!("| {name} | {} | {} |", summary(acks), summary(delivered));
}

#[tokio::main]
async fn main() {
    let fanout = Fanout::start().await;
    println!("{COUNT} notifications per mode, one every {EVERY:?}; milliseconds.\n");
    println!("| mode | ack p50 | ack p90 | ack p99 | POST-to-subscriber p50 | p90 | p99 |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    run("queue + fast path", EdgeConfig::for_fanout(fanout.url()), &fanout).await;
    run("queue, no fast path", EdgeConfig::for_fanout(fanout.url()).var("FAST_PATH", "off"), &fanout).await;
    run("synchronous", EdgeConfig::sync(fanout.url()), &fanout).await;
}
