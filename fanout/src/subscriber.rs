//! One subscriber's stream: replay from the durable log, then live, and back
//! to the log whenever the live feed overflows.
//!
//! The task owns the subscriber's cursor (the last sequence it has passed,
//! delivered or filtered out). Sequences are contiguous in the log, so a jump
//! while reading means retention removed events: the subscriber gets an
//! explicit `Gap` event for them instead of a silent hole.
//!
//! Events leave in batches (`wire::EncodedBatch`): whatever the live feed
//! holds when the task wakes, or up to a batch of a log page. The channel to
//! the gRPC stream is kept short on purpose, so that while the stream is busy
//! sending, new events wait in the feed and leave together in the next batch.

use std::sync::Arc;

use graph_relay_proto::v1::Event;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::filter::Filter;
use crate::hub::{Hub, Join};
use crate::store::Store;
use crate::wire::{self, EncodedBatch, EncodedEvent};

/// Events read from the log per round trip.
const PAGE: usize = 512;
/// Batches queued towards the gRPC stream. Short, so events queue in the
/// feed (which holds `--subscriber-buffer` of them) and batch up there.
const OUT_BUFFER: usize = 2;

/// The subscriber went away, or must be told why its stream ends.
struct Ended;

type Out = mpsc::Sender<Result<EncodedBatch, Status>>;

/// Starts a subscriber; `after` = `None` means live from now on.
pub fn spawn(
    store: Arc<Store>,
    hub: Arc<Hub>,
    filter: Filter,
    decrypted: bool,
    after: Option<u64>,
) -> ReceiverStream<Result<EncodedBatch, Status>> {
    let (out, stream) = mpsc::channel(OUT_BUFFER);
    let takes_stored_bytes = decrypted && filter.is_everything();
    let task = Task { store, hub, filter: Arc::new(filter), decrypted, takes_stored_bytes, out };
    tokio::spawn(async move {
        let _ = task.run(after).await;
    });
    ReceiverStream::new(stream)
}

struct Task {
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
    out: Out,
}

impl Task {
    async fn run(self, after: Option<u64>) -> Result<(), Ended> {
        let mut cursor = after;
        loop {
            if let Some(from) = cursor {
                cursor = Some(self.catch_up(from).await?);
            }
            let (joined_at, join) = self.hub.join(cursor, self.filter.clone(), self.decrypted);
            let mut feed = match join {
                Join::Live(feed) => feed,
                Join::Behind => {
                    cursor = Some(joined_at);
                    continue;
                }
                Join::Closed => return self.fail(shutting_down()).await,
            };
            let mut position = joined_at;
            loop {
                tokio::select! {
                    event = feed.receiver.recv() => match event {
                        Some(event) => {
                            let mut batch = EncodedBatch::default();
                            batch.push(event);
                            while !batch.is_full() {
                                let Ok(event) = feed.receiver.try_recv() else { break };
                                batch.push(event);
                            }
                            position = batch.events().last().map_or(position, EncodedEvent::sequence);
                            self.send(batch).await?;
                        }
                        None => break,
                    },
                    _ = self.out.closed() => return Err(Ended),
                }
            }
            drop(feed);
            if self.hub.is_closed() {
                return self.fail(shutting_down()).await;
            }
            cursor = Some(position);
        }
    }

    /// Sends every stored event after `cursor` that matches; returns the new
    /// cursor once the log has nothing more.
    async fn catch_up(&self, mut cursor: u64) -> Result<u64, Ended> {
        let mut batch = EncodedBatch::default();
        loop {
            let store = self.store.clone();
            let page = match tokio::task::spawn_blocking(move || store.read_after(cursor, PAGE)).await {
                Ok(Ok(page)) => page,
                Ok(Err(e)) => return self.fail(Status::internal(format!("reading the log: {e}"))).await.map(|_| 0),
                Err(e) => return self.fail(Status::internal(format!("reading the log: {e}"))).await.map(|_| 0),
            };
            if page.events.is_empty() {
                let last = page.next_sequence.saturating_sub(1);
                if last > cursor {
                    self.add(&mut batch, wire::gap(cursor + 1, last, "removed by retention")).await?;
                    cursor = last;
                }
                self.flush(&mut batch).await?;
                return Ok(cursor);
            }
            for (sequence, bytes) in page.events {
                if sequence > cursor + 1 {
                    self.add(&mut batch, wire::gap(cursor + 1, sequence - 1, "removed by retention")).await?;
                }
                if self.takes_stored_bytes {
                    self.add(&mut batch, EncodedEvent::from_stored(sequence, bytes)).await?;
                    cursor = sequence;
                    continue;
                }
                let Ok(event) = Event::decode(bytes.as_ref()) else {
                    tracing::error!(sequence, "stored event does not decode; the subscriber gets a gap");
                    self.add(&mut batch, wire::gap(sequence, sequence, "stored event is unreadable")).await?;
                    cursor = sequence;
                    continue;
                };
                if event.payload.as_ref().is_some_and(|payload| self.filter.matches(payload)) {
                    let redacted = if self.decrypted { None } else { wire::redacted(&event) };
                    let event = redacted.unwrap_or_else(|| EncodedEvent::from_stored(sequence, bytes));
                    self.add(&mut batch, event).await?;
                }
                cursor = sequence;
            }
            // Not held back while the next page is read.
            self.flush(&mut batch).await?;
        }
    }

    /// Adds `event` to `batch`, sending the batch first if it is full.
    async fn add(&self, batch: &mut EncodedBatch, event: EncodedEvent) -> Result<(), Ended> {
        if batch.is_full() {
            self.flush(batch).await?;
        }
        batch.push(event);
        Ok(())
    }

    async fn flush(&self, batch: &mut EncodedBatch) -> Result<(), Ended> {
        if batch.is_empty() {
            return Ok(());
        }
        self.send(batch.take()).await
    }

    async fn send(&self, batch: EncodedBatch) -> Result<(), Ended> {
        self.out.send(Ok(batch)).await.map_err(|_| Ended)
    }

    async fn fail(&self, status: Status) -> Result<(), Ended> {
        let _ = self.out.send(Err(status)).await;
        Err(Ended)
    }
}

fn shutting_down() -> Status {
    Status::unavailable("fan-out is shutting down; resubscribe with after_sequence = the last sequence you received")
}
