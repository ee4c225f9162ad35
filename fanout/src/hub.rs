//! The live fan-out: assigns sequences and hands each event to every
//! subscriber whose filter matches.
//!
//! Publishing never waits for a subscriber. Each subscriber has a bounded
//! buffer; when it is full, that subscriber's stream is ENDED with an explicit
//! `RESOURCE_EXHAUSTED` status naming the resume cursor, never silently thinned
//! out, and no other subscriber or publisher is slowed down.
//!
//! One mutex guards the sequence counter and the subscriber table together, so
//! every subscriber sees events in strictly increasing sequence order.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};

use graph_relay_proto::v1::Notification;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_stream::Stream;
use tonic::Status;

use crate::filter::Filter;
use crate::wire::EncodedEvent;

/// Why the hub ended a subscriber's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Its buffer was full when event `at_sequence` had to be delivered.
    Lagged { at_sequence: u64, buffer: usize },
    /// The server is shutting down.
    ShuttingDown,
}

impl Ending {
    fn status(&self) -> Status {
        match self {
            Ending::Lagged { at_sequence, buffer } => Status::resource_exhausted(format!(
                "subscriber fell behind: its buffer of {buffer} events was full at sequence {at_sequence}; \
                 resubscribe with after_sequence = the last sequence you received"
            )),
            Ending::ShuttingDown => Status::unavailable("fan-out is shutting down; resubscribe with after_sequence"),
        }
    }
}

struct Subscriber {
    filter: Filter,
    sender: mpsc::Sender<EncodedEvent>,
    /// Shared with the stream so it can tell the client why it ended.
    ending: Arc<OnceLock<Ending>>,
}

#[derive(Default)]
struct State {
    /// Sequence the next stored event gets; starts at 1 so 0 means "none".
    next_sequence: u64,
    subscribers: HashMap<u64, Subscriber>,
    next_subscriber_id: u64,
    /// Once set, no subscriber is added and publishing is refused.
    closed: bool,
    /// Reused per event to avoid an allocation on the hot path.
    targets: Vec<u64>,
}

/// The live subscriber table and sequence counter.
pub struct Hub {
    state: Mutex<State>,
    /// Events a subscriber may have in flight before it counts as lagging.
    buffer: usize,
}

impl Hub {
    pub fn new(buffer: usize) -> Arc<Self> {
        Arc::new(Self { state: Mutex::new(State { next_sequence: 1, ..State::default() }), buffer: buffer.max(1) })
    }

    /// Registers a live subscriber. Events published from now on that match
    /// `filter` arrive on the returned stream.
    pub fn subscribe(self: &Arc<Self>, filter: Filter) -> Subscription {
        let (sender, receiver) = mpsc::channel(self.buffer);
        let ending = Arc::new(OnceLock::new());
        let mut state = self.lock();
        let id = state.next_subscriber_id;
        state.next_subscriber_id += 1;
        if state.closed {
            let _ = ending.set(Ending::ShuttingDown);
        } else {
            state.subscribers.insert(id, Subscriber { filter, sender, ending: ending.clone() });
        }
        Subscription { id, receiver, ending, hub: self.clone(), finished: false }
    }

    /// Gives each notification its sequence and delivers it. Returns the
    /// first and last sequence used, or `None` if there was nothing to store.
    pub fn publish(&self, notifications: Vec<Notification>) -> Result<Option<(u64, u64)>, Status> {
        let mut state = self.lock();
        if state.closed {
            return Err(Status::unavailable("fan-out is shutting down"));
        }
        let first = state.next_sequence;
        for notification in notifications {
            let sequence = state.next_sequence;
            state.next_sequence += 1;
            let Some(kind) = notification.kind.as_ref() else { continue };
            let State { subscribers, targets, .. } = &mut *state;
            targets.clear();
            targets.extend(subscribers.iter().filter(|(_, s)| s.filter.matches(kind)).map(|(id, _)| *id));
            if targets.is_empty() {
                continue;
            }
            let event = EncodedEvent::encode(sequence, notification);
            for id in targets.drain(..) {
                deliver(subscribers, id, &event, self.buffer);
            }
        }
        let last = state.next_sequence - 1;
        Ok((last >= first).then_some((first, last)))
    }

    /// Ends every stream with `UNAVAILABLE` so graceful shutdown can finish.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        for (_, subscriber) in state.subscribers.drain() {
            let _ = subscriber.ending.set(Ending::ShuttingDown);
        }
    }

    /// Number of live subscribers (for logs and tests).
    pub fn subscriber_count(&self) -> usize {
        self.lock().subscribers.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind, still
        // consistent at event granularity: keep serving.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn deliver(subscribers: &mut HashMap<u64, Subscriber>, id: u64, event: &EncodedEvent, buffer: usize) {
    let Some(subscriber) = subscribers.get(&id) else { return };
    match subscriber.sender.try_send(event.clone()) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            let _ = subscriber.ending.set(Ending::Lagged { at_sequence: event.sequence(), buffer });
            tracing::warn!(subscriber = id, sequence = event.sequence(), "subscriber lagged; ending its stream");
            subscribers.remove(&id);
        }
        Err(TrySendError::Closed(_)) => {
            subscribers.remove(&id);
        }
    }
}

/// A subscriber's stream of events; unregisters itself when dropped.
pub struct Subscription {
    id: u64,
    receiver: mpsc::Receiver<EncodedEvent>,
    ending: Arc<OnceLock<Ending>>,
    hub: Arc<Hub>,
    /// The ending status has been yielded; the stream is over.
    finished: bool,
}

impl Stream for Subscription {
    type Item = Result<EncodedEvent, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        match self.receiver.poll_recv(cx) {
            Poll::Ready(Some(event)) => Poll::Ready(Some(Ok(event))),
            Poll::Ready(None) => {
                self.finished = true;
                Poll::Ready(self.ending.get().map(|ending| Err(ending.status())))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.lock().subscribers.remove(&self.id);
    }
}

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;
