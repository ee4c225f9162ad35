//! The Subscribe streams open now, so a scrape can tell each subscriber's
//! lag and whether it is catching up from the log.
//!
//! A stream registers when it starts and leaves when it is dropped
//! ([`StreamMark`]). It records its mode when that changes and the last
//! sequence it passed per batch, never per event. Live, its lag is what
//! waits in its feed's buffer, read at scrape time through a weak handle on
//! the feed's sender; catching up, or dropped by the hub for lagging and not
//! yet back, it is the distance from the last sequence it passed to the
//! log's head.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use graph_relay_log::wire::EncodedEvent;
use tokio::sync::mpsc::WeakSender;

use super::{Metrics, SubscriberLabel};

/// How a stream reads.
pub enum Mode {
    /// Live from now on, about to join.
    Joining,
    /// Reading the log.
    Log,
    /// Live: what waits in the feed is what it has still to receive.
    Live { feed: WeakSender<EncodedEvent> },
}

struct Stream {
    subscriber: Arc<str>,
    mode: Mutex<Mode>,
    /// The last sequence it passed (delivered or filtered out).
    passed: AtomicU64,
}

/// The open streams. Bounded by the server's connection and per-connection
/// stream limits: one entry per open Subscribe call.
#[derive(Default)]
pub struct Streams {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Stream>>>,
}

impl Streams {
    /// Registers a stream of `subscriber`; it leaves when the mark drops.
    pub fn open(&'static self, subscriber: &str, mode: Mode, passed: u64) -> StreamMark {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let stream =
            Arc::new(Stream { subscriber: subscriber.into(), mode: Mutex::new(mode), passed: AtomicU64::new(passed) });
        self.lock().insert(id, stream.clone());
        StreamMark { id, stream, streams: self }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Stream>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the subscriber gauges from the open streams; `last` is the
    /// log's last sequence.
    pub fn observe(&self, metrics: &Metrics, last: u64) {
        let mut by_subscriber: HashMap<Arc<str>, (i64, i64, i64)> = HashMap::new();
        for stream in self.lock().values() {
            let behind = last.saturating_sub(stream.passed.load(Ordering::Relaxed));
            let (lag, catching_up) = match &*stream.mode.lock().unwrap_or_else(|p| p.into_inner()) {
                Mode::Joining => (0, 0),
                Mode::Log => (behind, 1),
                Mode::Live { feed } => match feed.upgrade() {
                    Some(sender) => ((sender.max_capacity() - sender.capacity()) as u64, 0),
                    // Dropped for lagging; back to the log when next polled.
                    None => (behind, 1),
                },
            };
            let entry = by_subscriber.entry(stream.subscriber.clone()).or_default();
            entry.0 += 1;
            entry.1 = entry.1.max(lag as i64);
            entry.2 += catching_up;
        }
        metrics.subscriber_streams.clear();
        metrics.subscriber_lag.clear();
        metrics.subscriber_catching_up.clear();
        for (subscriber, (streams, lag, catching_up)) in by_subscriber {
            let label = SubscriberLabel { subscriber: subscriber.to_string() };
            metrics.subscriber_streams.get_or_create(&label).set(streams);
            metrics.subscriber_lag.get_or_create(&label).set(lag);
            metrics.subscriber_catching_up.get_or_create(&label).set(catching_up);
        }
    }
}

/// An open stream's entry; dropping it removes the entry.
pub struct StreamMark {
    id: u64,
    stream: Arc<Stream>,
    streams: &'static Streams,
}

impl StreamMark {
    pub fn set(&self, mode: Mode) {
        *self.stream.mode.lock().unwrap_or_else(|p| p.into_inner()) = mode;
    }

    pub fn passed(&self, sequence: u64) {
        self.stream.passed.store(sequence, Ordering::Relaxed);
    }
}

impl Drop for StreamMark {
    fn drop(&mut self) {
        self.streams.lock().remove(&self.id);
    }
}
