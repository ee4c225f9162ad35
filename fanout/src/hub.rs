//! Live delivery: hands each freshly stored event to every live subscriber
//! whose filter matches.
//!
//! The hub never waits for a subscriber. Each live feed has a bounded buffer;
//! when it is full the feed is dropped and its subscriber task goes back to
//! reading the durable log from its cursor (see `subscriber`), so a slow
//! consumer is neither thinned out silently nor able to slow anyone else.
//!
//! The ingest writer calls [`Hub::dispatch`] after each commit, in sequence
//! order; `head` is the last sequence dispatched. A feed joins only when its
//! cursor has reached `head`, and skips anything at or below its cursor, so
//! the seam between log replay and live delivery has no gap and no duplicate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc::{self, error::TrySendError};

use crate::filter::Filter;
use crate::store::Stored;
use crate::wire::EncodedEvent;

struct Live {
    filter: Arc<Filter>,
    /// Whether this subscriber may receive decrypted resource data.
    decrypted: bool,
    /// Events up to here were already read from the log by this subscriber.
    skip_through: u64,
    sender: mpsc::Sender<EncodedEvent>,
}

struct State {
    /// Last sequence dispatched; everything up to it is in the log.
    head: u64,
    feeds: HashMap<u64, Live>,
    next_feed_id: u64,
    /// Set on shutdown: no feed joins any more.
    closed: bool,
}

/// The outcome of asking to go live.
pub enum Join {
    Live(Feed),
    /// The log holds events after the cursor that were already dispatched:
    /// read them first.
    Behind,
    Closed,
}

pub struct Hub {
    state: Mutex<State>,
    /// Events a live feed may hold before its subscriber counts as lagging.
    buffer: usize,
}

impl Hub {
    /// `head` is the last sequence already in the log at startup.
    pub fn new(head: u64, buffer: usize) -> Arc<Self> {
        let state = State { head, feeds: HashMap::new(), next_feed_id: 0, closed: false };
        Arc::new(Self { state: Mutex::new(state), buffer: buffer.max(1) })
    }

    /// Joins live delivery after `cursor` (`None`: from now on). Returns the
    /// cursor actually used.
    pub fn join(self: &Arc<Self>, cursor: Option<u64>, filter: Arc<Filter>, decrypted: bool) -> (u64, Join) {
        let mut state = self.lock();
        let cursor = cursor.unwrap_or(state.head);
        if state.closed {
            return (cursor, Join::Closed);
        }
        if cursor < state.head {
            return (cursor, Join::Behind);
        }
        let (sender, receiver) = mpsc::channel(self.buffer);
        let id = state.next_feed_id;
        state.next_feed_id += 1;
        state.feeds.insert(id, Live { filter, decrypted, skip_through: cursor, sender });
        (cursor, Join::Live(Feed { receiver, id, hub: self.clone() }))
    }

    /// Delivers events just committed to the log, in sequence order.
    pub fn dispatch(&self, events: &[Stored]) {
        let mut state = self.lock();
        for stored in events {
            let sequence = stored.encoded.sequence();
            state.head = state.head.max(sequence);
            let Some(payload) = stored.event.payload.as_ref() else { continue };
            state.feeds.retain(|id, live| {
                if sequence <= live.skip_through || !live.filter.matches(payload) {
                    return true;
                }
                let event = match &stored.redacted {
                    Some(redacted) if !live.decrypted => redacted,
                    _ => &stored.encoded,
                };
                match live.sender.try_send(event.clone()) {
                    Ok(()) => true,
                    Err(TrySendError::Full(_)) => {
                        tracing::info!(feed = id, sequence, "subscriber lagged; it continues from the log");
                        false
                    }
                    Err(TrySendError::Closed(_)) => false,
                }
            });
        }
    }

    /// Ends every live feed and refuses new ones (graceful shutdown).
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.feeds.clear();
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Live feeds right now (subscribers catching up are not counted).
    pub fn live_count(&self) -> usize {
        self.lock().feeds.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent at event granularity even if a holder
        // panicked: keep serving rather than poison every later call.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A live feed; leaves the hub when dropped.
pub struct Feed {
    pub receiver: mpsc::Receiver<EncodedEvent>,
    id: u64,
    hub: Arc<Hub>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.hub.lock().feeds.remove(&self.id);
    }
}

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;
