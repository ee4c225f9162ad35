//! Chaos: several thousand notifications through the edge in queue mode while
//! the fan-out is SIGKILLed and restarted twice and the subscriber disconnects
//! and resumes from its last sequence. Every acknowledged notification must
//! arrive exactly once, in strictly increasing sequence order.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use graph_relay_proto::v1::{fanout_client::FanoutClient, Filter, SubscribeRequest};
use graph_relay_tests::edge::{Edge, EdgeConfig};
use graph_relay_tests::subscriber::{subscription_id, with_token};
use graph_relay_tests::{fanout::Fanout, graph, SUBSCRIBER_TOKEN};

const BATCHES: usize = 300;
const PER_BATCH: usize = 10;
/// The subscriber hangs up on purpose after this many events, then resumes.
const HANG_UP_AFTER: usize = 1_000;

/// What the subscriber saw: (sequence, notification id) in arrival order.
type Seen = Arc<Mutex<Vec<(u64, String)>>>;

/// Subscribes from the start and, whenever the stream breaks (fan-out killed)
/// or after [`HANG_UP_AFTER`] events (on purpose), resumes after the last
/// sequence it received.
async fn resuming_subscriber(url: String, seen: Seen, sessions: Arc<AtomicUsize>) {
    let mut cursor = 0;
    let mut hung_up = false;
    loop {
        let Ok(mut client) = FanoutClient::connect(url.clone()).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let request = SubscribeRequest { filter: Some(Filter::default()), after_sequence: Some(cursor) };
        let Ok(response) = client.subscribe(with_token(request, SUBSCRIBER_TOKEN)).await else { continue };
        let mut stream = response.into_inner();
        sessions.fetch_add(1, Ordering::SeqCst);
        'stream: while let Ok(Some(batch)) = stream.message().await {
            for event in batch.events {
                cursor = event.sequence;
                let count = {
                    let mut seen = seen.lock().unwrap();
                    seen.push((event.sequence, subscription_id(&event).to_owned()));
                    seen.len()
                };
                if count >= HANG_UP_AFTER && !hung_up {
                    hung_up = true;
                    break 'stream;
                }
            }
        }
    }
}

graph_relay_tests::on_both_logs! {
    async fn every_acknowledged_notification_arrives_exactly_once_through_crashes() {
        let mut fanout = Fanout::start().await;
        let config =
            EdgeConfig::for_fanout(fanout.url()).var("RETRY_BASE_DELAY_SECONDS", "1").var("RETRY_MAX_DELAY_SECONDS", "2");
        let mut edge = Edge::start_with(config).await;
        let seen: Seen = Arc::default();
        let sessions = Arc::new(AtomicUsize::new(0));
        let subscriber = tokio::spawn(resuming_subscriber(fanout.url(), seen.clone(), sessions.clone()));

        let mut acknowledged = HashSet::new();
        let mut crashes = 0;
        for batch in 0..BATCHES {
            match batch {
                90 | 200 => fanout.kill(),
                110 | 220 => {
                    // Restart only once the consumer has hit the dead fan-out.
                    crashes += 1;
                    edge.process.wait_for_log_count("not forwarded", crashes).await;
                    fanout.restart().await;
                }
                _ => {}
            }
            let (ids, collection) = graph::numbered_batch(batch, PER_BATCH);
            let answer = graph::deliver(&edge.url, "/graph/notifications", &collection).await;
            if answer.status == 202 {
                acknowledged.extend(ids);
            }
        }
        assert_eq!(acknowledged.len(), BATCHES * PER_BATCH, "queue mode acknowledges even while the fan-out is down");

        // Await delivery of everything acknowledged (bounded), then check it.
        let deadline = Instant::now() + Duration::from_secs(180);
        while seen.lock().unwrap().len() < acknowledged.len() {
            assert!(Instant::now() < deadline, "only {} of {} arrived", seen.lock().unwrap().len(), acknowledged.len());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        subscriber.abort();
        let seen = seen.lock().unwrap().clone();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for (_, id) in &seen {
            *counts.entry(id).or_default() += 1;
        }
        let duplicated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        assert!(duplicated.is_empty(), "delivered more than once: {duplicated:?}");
        let missing: Vec<_> = acknowledged.iter().filter(|id| !counts.contains_key(id.as_str())).collect();
        assert!(missing.is_empty(), "acknowledged but never delivered: {missing:?}");
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "sequences strictly increase across restarts and resumes");
        // One initial session, one on-purpose hang-up, one per crash at least.
        assert!(sessions.load(Ordering::SeqCst) >= 4, "the subscriber resumed {} times", sessions.load(Ordering::SeqCst));
    }
}
