//! One subscriber's stream: replay from the durable log, then live, and back
//! to the log whenever the live feed overflows.
//!
//! The stream owns the subscriber's cursor (the last sequence it has passed,
//! delivered or filtered out). Sequences are contiguous in the log, so a jump
//! while reading means retention removed events: the subscriber gets an
//! explicit `Gap` event for them instead of a silent hole.
//!
//! Events leave in batches (`wire::EncodedBatch`): whatever the live feed
//! holds when the gRPC stream asks for more, or a log page cut into batches.
//! The gRPC stream polls this state machine itself (no task and channel in
//! between): one hand-off less per batch, and while the stream is busy
//! sending, new events wait in the feed and leave together in the next batch.
//! A subscriber that goes away drops the stream, and with it its feed.
//!
//! When the subscribers file is reloaded the stream checks its token again
//! (see `auth::grant`): revoked, it ends; narrowed, whatever was cut or
//! buffered under the old scope is dropped and the stream reads on from the
//! last event it delivered, under the new one.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;

use graph_relay_proto::v1::Event;
use prost::Message;
use tokio_stream::Stream;
use tonic::Status;

use crate::auth::grant::{Allowed, Grant};
use crate::delivery::filter::Filter;
use crate::delivery::hub::{Feed, Hub, Join};
use crate::metrics::{
    self,
    streams::{Mode, StreamMark},
};
use graph_relay_log::index::{Entry, PageGroup};
use graph_relay_log::route::RouteError;
use graph_relay_log::store::Store;
use graph_relay_log::wire::{self, EncodedBatch, EncodedEvent};

/// Events read from the log per round trip.
const PAGE: usize = 512;

/// A subscriber's batches, ending after an error.
pub type Batches = Pin<Box<dyn Stream<Item = Result<EncodedBatch, Status>> + Send>>;

/// Starts a subscriber; `after` = `None` means live from now on.
pub fn spawn(store: Arc<Store>, hub: Arc<Hub>, grant: Grant, allowed: Allowed, after: Option<u64>) -> Batches {
    let start = if after.is_some() { Mode::Log } else { Mode::Joining };
    let mark = grant.is_subscriber().then(|| metrics::get().streams.open(&grant.subscriber, start, after.unwrap_or(0)));
    let mut state = State {
        store,
        hub,
        filter: Arc::default(),
        decrypted: false,
        takes_stored_bytes: false,
        cursor: after,
        delivered: after,
        live: None,
        ready: VecDeque::new(),
        grant,
        mark,
    };
    state.allow(allowed);
    Box::pin(futures_util::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        match state.next().await {
            Ok(batch) => {
                state.delivered = batch.events().last().map(EncodedEvent::sequence).or(state.delivered);
                // Reading the log, the cursor (moved per page) says more:
                // it counts the events filtered out too.
                if let (Some(mark), Some(delivered), true) = (&state.mark, state.delivered, state.live.is_some()) {
                    mark.passed(delivered);
                }
                Some((Ok(batch), Some(state)))
            }
            Err(status) => Some((Err(status), None)),
        }
    }))
}

struct State {
    store: Arc<Store>,
    hub: Arc<Hub>,
    filter: Arc<Filter>,
    /// Whether this subscriber may receive decrypted resource data.
    decrypted: bool,
    /// Everything matches and nothing needs redacting: replay passes the
    /// stored bytes on without decoding them (a lagging "everything"
    /// subscriber catches up at the log's read speed). The bytes are what
    /// the writer encoded, in pages redb checksums.
    takes_stored_bytes: bool,
    /// Last sequence passed; `None` = live from the head on.
    cursor: Option<u64>,
    /// The last sequence handed to the subscriber (or its starting point):
    /// where reading starts again after its scope changed.
    delivered: Option<u64>,
    /// The live feed and the last sequence it delivered, while joined.
    live: Option<(Feed, u64)>,
    /// Batches cut from a log page, handed out one per call.
    ready: VecDeque<EncodedBatch>,
    /// The token and request, checked again on each reload.
    grant: Grant,
    /// This stream in the metrics (lag, catching up) while it is open; not
    /// for the server's own reader.
    mark: Option<StreamMark>,
}

impl State {
    /// The next batch; an error ends the stream.
    async fn next(&mut self) -> Result<EncodedBatch, Status> {
        loop {
            if let Some(renewed) = self.grant.renewed() {
                self.allow(renewed?);
                self.restart_from_delivered();
            }
            if let Some(batch) = self.ready.pop_front() {
                return Ok(batch);
            }
            if let Some((feed, position)) = self.live.as_mut() {
                let received = tokio::select! {
                    received = feed.receiver.recv() => received,
                    _ = self.grant.reloaded() => continue,
                };
                if let Some(event) = received {
                    let mut batch = EncodedBatch::default();
                    batch.push(event);
                    while !batch.is_full() {
                        let Ok(event) = feed.receiver.try_recv() else { break };
                        batch.push(event);
                    }
                    *position = batch.events().last().map_or(*position, EncodedEvent::sequence);
                    return Ok(batch);
                }
                // The hub dropped the feed: lagged, or shutting down.
                let position = *position;
                self.live = None;
                if self.hub.is_closed() {
                    return Err(shutting_down());
                }
                self.cursor = Some(position);
                self.mark(Mode::Log, position);
                continue;
            }
            if let Some(from) = self.cursor {
                if !self.read_page(from).await? {
                    continue;
                }
            }
            // Caught up with the log (batches of its last page may still be
            // in `ready`: they go first, and live events all come after).
            let (joined_at, join) = self.hub.join(self.cursor, self.filter.clone(), self.decrypted);
            match join {
                Join::Live(feed) => {
                    self.mark(Mode::Live { feed: feed.sender.clone() }, joined_at);
                    self.delivered.get_or_insert(joined_at);
                    self.live = Some((feed, joined_at));
                }
                Join::Behind => self.cursor = Some(joined_at),
                Join::Closed => return Err(shutting_down()),
            }
        }
    }

    /// Cuts the stored events after `cursor` that match into `ready` and
    /// advances the cursor; `true` once the log has nothing more.
    async fn read_page(&mut self, mut cursor: u64) -> Result<bool, Status> {
        let store = self.store.clone();
        let turn = self.store.read_turn().await;
        let with_routes = !self.takes_stored_bytes;
        let read = tokio::task::spawn_blocking(move || {
            let page = store.read_after(cursor, PAGE)?;
            if with_routes {
                page.read_routes();
            }
            Ok::<_, graph_relay_log::LogError>(page)
        })
        .await;
        drop(turn);
        let page = match read {
            Ok(Ok(page)) => page,
            Ok(Err(e)) => return Err(Status::internal(format!("reading the log: {e}"))),
            Err(e) => return Err(Status::internal(format!("reading the log: {e}"))),
        };
        let mut batch = EncodedBatch::default();
        let caught_up = page.is_empty();
        if caught_up {
            let last = page.next_sequence.saturating_sub(1);
            if last > cursor {
                self.add_gap(&mut batch, cursor + 1, last, "removed by retention");
                cursor = last;
            }
        }
        for group in &page.groups {
            if self.takes_stored_bytes {
                for (sequence, bytes) in group.stored_events() {
                    self.pass(&mut batch, &mut cursor, sequence);
                    self.add(&mut batch, EncodedEvent::from_stored(sequence, bytes));
                }
                continue;
            }
            for entry in group.entries() {
                self.pass(&mut batch, &mut cursor, entry.sequence);
                match self.filtered(group, entry) {
                    Ok(Some(event)) => self.add(&mut batch, event),
                    Ok(None) => {}
                    Err(e) => {
                        let sequence = entry.sequence;
                        tracing::error!(sequence, error = %e, "the subscriber gets a gap");
                        self.add_gap(&mut batch, sequence, sequence, "stored event is unreadable");
                    }
                }
            }
        }
        if !batch.is_empty() {
            self.ready.push_back(batch);
        }
        self.cursor = Some(cursor);
        self.mark(Mode::Log, cursor);
        Ok(caught_up)
    }

    fn mark(&self, mode: Mode, passed: u64) {
        if let Some(mark) = &self.mark {
            mark.set(mode);
            mark.passed(passed);
        }
    }

    /// Takes what the subscriber may receive now.
    fn allow(&mut self, allowed: Allowed) {
        self.takes_stored_bytes = allowed.decrypted && allowed.filter.is_everything();
        self.filter = Arc::new(allowed.filter);
        self.decrypted = allowed.decrypted;
    }

    /// Drops what was cut or buffered under the old scope and reads on from
    /// the last event delivered.
    fn restart_from_delivered(&mut self) {
        self.ready.clear();
        self.live = None;
        self.cursor = self.delivered;
    }

    /// Moves `cursor` on to `sequence`, first telling the subscriber of the
    /// events retention removed in between, if any.
    fn pass(&mut self, batch: &mut EncodedBatch, cursor: &mut u64, sequence: u64) {
        if sequence > *cursor + 1 {
            self.add_gap(batch, *cursor + 1, sequence - 1, "removed by retention");
        }
        *cursor = sequence;
    }

    /// The stored event as this subscriber gets it, if its filter takes it.
    /// The route comes from the group's index; a taken event goes out as
    /// stored, unless it must be redacted for this subscriber.
    fn filtered(&self, group: &PageGroup, entry: &Entry) -> Result<Option<EncodedEvent>, RouteError> {
        if !group.route(entry)?.is_some_and(|route| self.filter.admits(&route)) {
            return Ok(None);
        }
        let bytes = group.event(entry);
        if self.decrypted || !entry.carries_decrypted_data() {
            return Ok(Some(EncodedEvent::from_stored(entry.sequence, bytes)));
        }
        let event = Event::decode(bytes.as_ref())?;
        Ok(Some(wire::redacted(&event).unwrap_or_else(|| EncodedEvent::from_stored(entry.sequence, bytes))))
    }

    /// Tells the subscriber that events `from..=to` will never come.
    fn add_gap(&mut self, batch: &mut EncodedBatch, from: u64, to: u64, reason: &str) {
        metrics::get().gaps_sent.inc();
        self.add(batch, wire::gap(from, to, reason));
    }

    /// Adds `event` to `batch`, queueing the batch first if it is full.
    fn add(&mut self, batch: &mut EncodedBatch, event: EncodedEvent) {
        if batch.is_full() {
            self.ready.push_back(batch.take());
        }
        batch.push(event);
    }
}

fn shutting_down() -> Status {
    Status::unavailable("fan-out is shutting down; resubscribe with after_sequence = the last sequence you received")
}
