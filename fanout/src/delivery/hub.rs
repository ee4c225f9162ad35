//! Live delivery: hands each freshly stored event to every live subscriber
//! whose filter matches.
//!
//! The hub never waits for a subscriber. Each live feed has a bounded buffer;
//! when it is full the feed is dropped and its subscriber stream goes back to
//! reading the durable log from its cursor (see `subscriber`), so a slow
//! consumer is neither thinned out silently nor able to slow anyone else.
//!
//! The ingest writer calls [`Hub::dispatch`] after each commit, in sequence
//! order; `head` is the last sequence dispatched. A feed joins only when its
//! cursor has reached `head`, and skips anything at or below its cursor, so
//! the seam between log replay and live delivery has no gap and no duplicate.
//!
//! Feeds whose filter names tenants are indexed by tenant, so an event is
//! matched against the feeds of its tenant and the feeds taking any tenant,
//! not against every feed (with 100 subscribers on one tenant of ten each,
//! that is 10 filter checks per event instead of 100).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc::{self, error::TrySendError};

use crate::delivery::filter::Filter;
use graph_relay_log::route::{Kind, RouteError, StoredRoute};
use graph_relay_log::store::Stored;
use graph_relay_log::wire::EncodedEvent;

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
    /// Feeds limited to some tenants, under each of them (lowercased).
    by_tenant: HashMap<String, Vec<u64>>,
    /// Feeds taking any tenant: tried for every event.
    any_tenant: Vec<u64>,
    next_feed_id: u64,
    /// Set on shutdown: no feed joins any more.
    closed: bool,
    /// `feeds.len()`, kept by the methods that change `feeds` and shared with
    /// the hub, which reads it without the lock (see `Hub::live_count`).
    live: Arc<AtomicUsize>,
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
    /// The number of live feeds, readable without the lock: the writer asks
    /// it after every commit (see `dispatch`) while a dispatch may hold the
    /// lock. `State` keeps it.
    live: Arc<AtomicUsize>,
    /// Events a live feed may hold before its subscriber counts as lagging.
    buffer: usize,
}

impl Hub {
    /// `head` is the last sequence already in the log at startup.
    pub fn new(head: u64, buffer: usize) -> Arc<Self> {
        let state = State {
            head,
            feeds: HashMap::new(),
            by_tenant: HashMap::new(),
            any_tenant: Vec::new(),
            next_feed_id: 0,
            closed: false,
            live: Arc::new(AtomicUsize::new(0)),
        };
        let live = state.live.clone();
        Arc::new(Self { state: Mutex::new(state), live, buffer: buffer.max(1) })
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
        let weak = sender.downgrade();
        state.add(id, Live { filter, decrypted, skip_through: cursor, sender });
        (cursor, Join::Live(Feed { receiver, sender: weak, id, hub: self.clone() }))
    }

    /// Delivers events just committed to the log, in sequence order.
    pub fn dispatch(&self, events: &[Stored]) {
        // Read outside the lock; the route's fields are slices of the bytes.
        let routes: Vec<_> = events.iter().map(|stored| StoredRoute::read(stored.encoded.bytes().clone())).collect();
        let mut state = self.lock();
        let mut gone = Vec::new();
        let mut candidates = Vec::new();
        for (stored, read) in events.iter().zip(&routes) {
            let sequence = stored.encoded.sequence();
            state.head = state.head.max(sequence);
            let route = match read.as_ref().map(StoredRoute::route) {
                Ok(Ok(Some(route))) => route,
                Ok(Ok(None)) => continue,
                Ok(Err(error)) => {
                    state.send_every_feed_back(sequence, &error);
                    continue;
                }
                Err(error) => {
                    state.send_every_feed_back(sequence, error);
                    continue;
                }
            };
            candidates.clear();
            if route.kind != Kind::Gap {
                if let Some(ids) = state.by_tenant.get(&route.tenant_id.to_ascii_lowercase()) {
                    candidates.extend_from_slice(ids);
                }
            }
            candidates.extend_from_slice(&state.any_tenant);
            for id in &candidates {
                let Some(live) = state.feeds.get(id) else { continue };
                if sequence <= live.skip_through || !live.filter.admits(&route) {
                    continue;
                }
                let event = match &stored.redacted {
                    Some(redacted) if !live.decrypted => redacted,
                    _ => &stored.encoded,
                };
                match live.sender.try_send(event.clone()) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        tracing::info!(feed = id, sequence, "subscriber lagged; it continues from the log");
                        gone.push(*id);
                    }
                    Err(TrySendError::Closed(_)) => gone.push(*id),
                }
            }
            // Removed at once: a dropped feed must not get later events.
            for id in gone.drain(..) {
                state.remove(id);
            }
        }
    }

    /// Ends every live feed and refuses new ones (graceful shutdown).
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.clear();
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Live feeds right now (subscribers catching up are not counted).
    pub fn live_count(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent at event granularity even if a holder
        // panicked: keep serving rather than poison every later call.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A live feed; leaves the hub when dropped.
impl State {
    /// For an event whose route does not read. Its bytes were encoded by
    /// this process, so only a bug gets here; rather than let anyone miss
    /// the event silently, every feed goes back to the log, whose reader
    /// reports an unreadable event as a gap.
    fn send_every_feed_back(&mut self, sequence: u64, error: &RouteError) {
        tracing::error!(sequence, %error, "a stored event's route does not read; live feeds continue from the log");
        let ids: Vec<u64> = self.feeds.keys().copied().collect();
        for id in ids {
            self.remove(id);
        }
    }

    fn add(&mut self, id: u64, live: Live) {
        match live.filter.tenants() {
            Some(tenants) => {
                for tenant in tenants {
                    self.by_tenant.entry(tenant.clone()).or_default().push(id);
                }
            }
            None => self.any_tenant.push(id),
        }
        self.feeds.insert(id, live);
        self.count();
    }

    fn remove(&mut self, id: u64) {
        let Some(live) = self.feeds.remove(&id) else { return };
        match live.filter.tenants() {
            Some(tenants) => {
                for tenant in tenants {
                    if let Some(ids) = self.by_tenant.get_mut(tenant) {
                        ids.retain(|other| *other != id);
                        if ids.is_empty() {
                            self.by_tenant.remove(tenant);
                        }
                    }
                }
            }
            None => self.any_tenant.retain(|other| *other != id),
        }
        self.count();
    }

    /// Drops every feed (shutdown).
    fn clear(&mut self) {
        self.feeds.clear();
        self.by_tenant.clear();
        self.any_tenant.clear();
        self.count();
    }

    fn count(&self) {
        self.live.store(self.feeds.len(), Ordering::Relaxed);
    }
}

pub struct Feed {
    pub receiver: mpsc::Receiver<EncodedEvent>,
    /// The hub's end, weakly: how much waits in the buffer (for metrics).
    pub sender: mpsc::WeakSender<EncodedEvent>,
    id: u64,
    hub: Arc<Hub>,
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.hub.lock().remove(self.id);
    }
}

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;
