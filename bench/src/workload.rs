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

/// Notification `n`, stamped with its send time (ns since `origin`) in `id`.
pub fn notification(n: u64, origin: Instant) -> Notification {
    let mut notification = graph_relay_fanout::bench::notification(0, n as usize);
    if let Some(Kind::Change(change)) = notification.kind.as_mut() {
        change.id = origin.elapsed().as_nanos().to_string();
        change.tenant_id = tenant(n);
    }
    notification
}

/// Publish -> deliver latency of a received event, in µs.
pub fn latency_us(event: &Event, origin: Instant) -> Option<u64> {
    let Some(Payload::Change(change)) = &event.payload else { return None };
    let sent: u128 = change.id.parse().ok()?;
    Some((origin.elapsed().as_nanos().saturating_sub(sent) / 1000) as u64)
}

/// Where a system takes a batch of notifications.
pub trait Sink: Clone + Send + Sync + 'static {
    fn send(&self, batch: Vec<Notification>) -> impl Future<Output = Result<(), String>> + Send;
}

/// Publishes for `duration`, as fast as possible or at `rate` notifications
/// per second, with `in_flight` calls outstanding at once (the same depth for
/// every system); returns how many notifications were published.
pub async fn publish<S: Sink>(
    sink: S,
    rate: Option<f64>,
    duration: Duration,
    in_flight: usize,
    origin: Instant,
) -> Result<u64, String> {
    let start = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks: Vec<tokio::task::JoinHandle<Result<u64, String>>> = Vec::new();
    for _ in 0..in_flight.max(1) {
        let (sink, next) = (sink.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut published = 0;
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                match rate {
                    Some(rate) => {
                        let due = Duration::from_secs_f64((index * BATCH) as f64 / rate);
                        if due >= duration {
                            return Ok(published);
                        }
                        tokio::time::sleep_until((start + due).into()).await;
                    }
                    None if start.elapsed() >= duration => return Ok(published),
                    None => {}
                }
                let batch = (index * BATCH..(index + 1) * BATCH).map(|n| notification(n, origin)).collect();
                sink.send(batch).await?;
                published += BATCH;
            }
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.map_err(|e| e.to_string())??;
    }
    Ok(total)
}

/// What one subscriber saw.
pub struct Seen {
    pub delivered: u64,
    pub latencies: Histogram<u64>,
    pub last_at: Instant,
}

/// A subscriber's events, whatever the system.
pub type EventStream = std::pin::Pin<Box<dyn futures_util::Stream<Item = Event> + Send>>;

/// Consumes events until `expected` arrived (the count is set once the
/// publisher is done) or `deadline`.
pub async fn consume(mut events: EventStream, expected: Arc<AtomicU64>, deadline: Instant, origin: Instant) -> Seen {
    use futures_util::StreamExt;
    let mut seen = Seen { delivered: 0, latencies: measure::histogram(), last_at: Instant::now() };
    loop {
        let wanted = expected.load(Ordering::Acquire);
        if wanted != u64::MAX && seen.delivered >= wanted {
            return seen;
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining.min(Duration::from_millis(200)), events.next()).await {
            Ok(Some(event)) => {
                if let Some(us) = latency_us(&event, origin) {
                    let _ = seen.latencies.record(us.max(1));
                }
                seen.delivered += 1;
                seen.last_at = Instant::now();
            }
            Ok(None) => return seen,
            Err(_) if Instant::now() >= deadline => return seen,
            Err(_) => {}
        }
    }
}
