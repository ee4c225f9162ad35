//! The workload every system gets: realistic ~1 KB Graph notifications from
//! one publisher, spread over 10 tenants (a tenant filter selects 10%), each
//! carrying its send time so subscribers can measure publish -> deliver.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use graph_relay_proto::v1::{event::Payload, notification::Kind, Event, Notification};
use hdrhistogram::Histogram;

use crate::measure;

/// Notifications per publish call (the edge forwards one Graph batch per call).
pub const BATCH: u64 = 10;
pub const TENANTS: u64 = 10;

pub fn tenant(n: u64) -> String {
    format!("tenant-{}", n % TENANTS)
}

/// Notification `n` (its tenant chosen by `n`), not yet stamped.
pub fn notification(n: u64) -> Notification {
    let mut notification = graph_relay_bench::durable::notification(0, n as usize);
    if let Some(Kind::Change(change)) = notification.kind.as_mut() {
        change.tenant_id = tenant(n);
    }
    notification
}

/// Stamps a batch with its send time (ns since `origin`) in `id`, just
/// before it is sent: latency runs from the publish call, not from when the
/// bench built the notification.
pub fn stamp(batch: &mut [Notification], origin: Instant) {
    let sent = origin.elapsed().as_nanos().to_string();
    for notification in batch {
        if let Some(Kind::Change(change)) = notification.kind.as_mut() {
            change.id.clone_from(&sent);
        }
    }
}

/// When a received event was sent (ns since `origin`), if it is one of ours.
fn sent_ns(event: &Event) -> Option<u64> {
    let Some(Payload::Change(change)) = &event.payload else { return None };
    change.id.parse().ok()
}

/// Where a system takes a batch of notifications.
pub trait Sink: Clone + Send + Sync + 'static {
    fn send(&self, batch: Vec<Notification>) -> impl Future<Output = Result<(), String>> + Send;
}

/// One publishing task's notifications, and each of its calls' answer time in µs.
type CallerSaw = (u64, Vec<u32>);

/// What the publisher saw.
pub struct Published {
    pub notifications: u64,
    /// Microseconds from each call to its answer: the relay's durable ack,
    /// JetStream's acks, NATS core's flush. The first leg of the end-to-end
    /// latency, and what the edge's queue consumer waits for per batch.
    pub answers: Histogram<u64>,
}

/// Publishes for `duration`, as fast as possible or at `rate` notifications
/// per second, with `in_flight` calls outstanding at once (the same depth for
/// every system).
pub async fn publish<S: Sink>(
    sink: S,
    rate: Option<f64>,
    duration: Duration,
    in_flight: usize,
    origin: Instant,
) -> Result<Published, String> {
    let start = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks: Vec<tokio::task::JoinHandle<Result<CallerSaw, String>>> = Vec::new();
    for _ in 0..in_flight.max(1) {
        let (sink, next) = (sink.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let (mut published, mut answers_us) = (0, Vec::new());
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                match rate {
                    Some(rate) => {
                        // A system slower than `rate` is behind schedule: it
                        // stops at the end of `duration` too, having taken
                        // less than was offered, rather than running on until
                        // the whole offer is published.
                        let due = Duration::from_secs_f64((index * BATCH) as f64 / rate);
                        if due >= duration || start.elapsed() >= duration {
                            return Ok((published, answers_us));
                        }
                        tokio::time::sleep_until((start + due).into()).await;
                    }
                    None if start.elapsed() >= duration => return Ok((published, answers_us)),
                    None => {}
                }
                let mut batch: Vec<_> = (index * BATCH..(index + 1) * BATCH).map(notification).collect();
                stamp(&mut batch, origin);
                let called = Instant::now();
                sink.send(batch).await?;
                answers_us.push(micros(called.elapsed()));
                published += BATCH;
            }
        }));
    }
    let (mut notifications, mut answers) = (0, measure::histogram());
    for task in tasks {
        let (published, answers_us) = task.await.map_err(|e| e.to_string())??;
        notifications += published;
        for us in answers_us {
            let _ = answers.record(us as u64);
        }
    }
    Ok(Published { notifications, answers })
}

/// A duration in whole microseconds, at least 1 (the histogram's floor).
fn micros(elapsed: Duration) -> u32 {
    (elapsed.as_micros() as u64).clamp(1, u32::MAX as u64) as u32
}

/// What one subscriber saw.
pub struct Seen {
    pub delivered: u64,
    pub latencies: Histogram<u64>,
    pub last_at: Instant,
}

/// A subscriber's events, whatever the system.
pub type EventStream = std::pin::Pin<Box<dyn futures_util::Stream<Item = Event> + Send>>;

/// How often a consumer with nothing to read checks whether it is done.
const IDLE_CHECK: Duration = Duration::from_millis(200);

/// Consumes events until `expected` arrived (the count is set once the
/// publisher is done) or `deadline`.
///
/// The bench's subscribers share the machine with the system measured, so
/// each event costs them as little as possible, the same for every system:
/// one clock read, and its latency appended to a list; the histogram is
/// built once the run is over. Recording into 100 histograms as events came
/// was 2.7% of the machine's samples at 220k events/s (`perf`; likely cache misses
/// across ~14 MB of counters), and a timer per event read the clock twice more.
pub async fn consume(mut events: EventStream, expected: Arc<AtomicU64>, deadline: Instant, origin: Instant) -> Seen {
    use futures_util::StreamExt;
    let mut latencies_us: Vec<u32> = Vec::new();
    let (mut delivered, mut last_at) = (0u64, Instant::now());
    let mut idle = tokio::time::interval(IDLE_CHECK);
    loop {
        let wanted = expected.load(Ordering::Acquire);
        if wanted != u64::MAX && delivered >= wanted {
            break;
        }
        tokio::select! {
            biased;
            event = events.next() => {
                let Some(event) = event else { break };
                last_at = Instant::now();
                delivered += 1;
                if let Some(sent) = sent_ns(&event) {
                    let now = last_at.saturating_duration_since(origin).as_nanos() as u64;
                    latencies_us.push(micros(Duration::from_nanos(now.saturating_sub(sent))));
                }
            }
            _ = idle.tick() => if Instant::now() >= deadline { break },
        }
    }
    let mut latencies = measure::histogram();
    for us in latencies_us {
        let _ = latencies.record(us as u64);
    }
    Seen { delivered, latencies, last_at }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A system that answers each call after `delay`, counting what it took.
    #[derive(Clone)]
    struct SlowSink {
        delay: Duration,
        taken: Arc<AtomicU64>,
    }

    impl Sink for SlowSink {
        async fn send(&self, batch: Vec<Notification>) -> Result<(), String> {
            tokio::time::sleep(self.delay).await;
            self.taken.fetch_add(batch.len() as u64, Ordering::Relaxed);
            Ok(())
        }
    }

    /// An offer far beyond what the system takes ends with the duration, and
    /// reports what was taken, not what was offered (the offer here, 10^9
    /// notifications, would take hours to send).
    #[tokio::test]
    async fn a_rate_the_system_cannot_take_stops_at_the_duration() {
        let taken = Arc::new(AtomicU64::new(0));
        let sink = SlowSink { delay: Duration::from_millis(20), taken: taken.clone() };
        let duration = Duration::from_millis(200);
        let published = publish(sink, Some(1e10), duration, 2, Instant::now()).await.expect("a sink that never fails");
        // 2 callers, one call per 20 ms each, for 200 ms: about 20 calls.
        assert!(published.notifications <= 30 * BATCH, "published {}", published.notifications);
        assert!(published.notifications >= BATCH);
        assert_eq!(published.notifications, taken.load(Ordering::Relaxed));
        assert_eq!(published.answers.len(), published.notifications / BATCH);
    }

    /// At a rate the system keeps up with, exactly the offer is published.
    #[tokio::test]
    async fn a_rate_the_system_takes_is_published_in_full() {
        let taken = Arc::new(AtomicU64::new(0));
        let sink = SlowSink { delay: Duration::ZERO, taken: taken.clone() };
        let published = publish(sink, Some(1000.0), Duration::from_millis(300), 4, Instant::now()).await.expect("ok");
        assert_eq!(published.notifications, 300);
        assert_eq!(taken.load(Ordering::Relaxed), 300);
    }
}
