//! The single writer of the log: group commit, then live dispatch.
//!
//! Publish calls queue their notifications here and wait. The writer thread
//! takes everything queued at that moment (with concurrent publishers and
//! few requests queued, after a 250 µs linger for more: see `LINGER_BELOW`),
//! appends it in ONE durable
//! transaction (one fsync shared by every waiting publisher), answers the
//! publishers, and hands the new events to `dispatch`, which feeds them to the
//! hub in sequence order. So "stored" always means "on disk", live
//! delivery never runs ahead of the log, and matching a group against every
//! subscriber's filter overlaps the next group's commit instead of delaying
//! it. (Subscribers joining while the log is ahead of dispatch are covered by
//! the hub's `skip_through`.)
//!
//! # A failed commit stops the writer
//! After a disk error (ENOSPC, EIO) redb refuses every later transaction,
//! and after a failed fsync nothing the page cache holds can be trusted
//! either. So the writer answers the waiting publishers UNAVAILABLE (the edge
//! retries: nothing acknowledged is at risk, nothing unacknowledged was
//! acknowledged), stops, and reports the fault through [`Ingest::failed`];
//! the server then drains and exits non-zero, and its supervisor (systemd's
//! `Restart=`, Kubernetes) starts it again, which reopens the log and
//! re-derives its state from what is on disk.
//!
//! # With a shared log (`--log nats`)
//! Publish appends to the shared stream instead (`crate::jetstream`), and
//! the writer stores only what the replica's copier read back from it
//! (`Command::Copy`), each event under the stream's sequence: live delivery
//! still never runs ahead of the (local copy of the) log.

pub mod decrypt;
pub(crate) mod dispatch;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};
use tonic::Status;

use crate::delivery::hub::Hub;
use crate::jetstream::publisher::Publisher;
use dispatch::Dispatcher;
use graph_relay_log::prepared::{self, Prepared};
use graph_relay_log::store::Appended;
use graph_relay_log::{Copied, EventLog};
use graph_relay_proto::v1::Notification;

/// Publish requests one commit may take; bounds commit latency under load.
const MAX_GROUP: usize = 512;
/// With concurrent publishers, a commit that would carry fewer requests than
/// this first waits `LINGER` for more. Each commit has a fixed cost (redb's
/// commit, the fsync's kernel work, waking the writer) that a small group
/// shares among few notifications; fewer, fuller commits leave that CPU to
/// delivery (100 subscribers "10%": +3–6% delivered/s, −8% server CPU at
/// 50% load; docs/performance-history.md). A lone publisher never waits: its previous
/// commit had only its own request.
const LINGER_BELOW: usize = 4;
const LINGER: Duration = Duration::from_micros(250);
/// Publish requests waiting for the writer before publishers wait to queue.
const QUEUE: usize = 4096;
/// How often age retention (and dedup expiry) runs, loaded or not.
const PRUNE_EVERY: Duration = Duration::from_secs(30);
/// A commit that takes this long is logged. A commit usually takes ~1 ms,
/// most of it the disk's sync; when other I/O on the same disk holds the
/// sync back (on the benchmark VM, another process's writes or a removed
/// file's discard: 50–130 ms), every publish queued behind it and every live
/// delivery waits as long, and without this line the only trace would be a
/// latency spike at the subscribers (docs/performance-history.md, "Where the stalls came
/// from").
const SLOW_COMMIT: Duration = Duration::from_millis(100);

enum Command {
    Append {
        notifications: Vec<Prepared>,
        reply: oneshot::Sender<Result<Appended, String>>,
    },
    /// Events the copier read from the shared log, in its order.
    Copy(Vec<Copied>),
    Prune,
}

/// The handle publishers use; cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    commands: mpsc::Sender<Command>,
    /// Where Publish appends when the log is shared; `None`: the writer.
    shared: Option<Arc<Publisher>>,
    /// Why the writer stopped, once it has (see "A failed commit").
    fault: watch::Receiver<Option<String>>,
    /// The last sequence the writer stored (and dispatched).
    head: watch::Receiver<u64>,
}

impl Ingest {
    /// Starts the writer thread and the retention ticker.
    /// The writer takes the log through its facade ([`EventLog`]): append
    /// and prune are all it asks.
    /// With `shared`, Publish goes to the shared log and the writer stores
    /// what [`Ingest::copy`] hands it.
    pub fn start(store: Arc<dyn EventLog>, hub: Arc<Hub>, shared: Option<Arc<Publisher>>) -> std::io::Result<Self> {
        let (commands, receiver) = mpsc::channel(QUEUE);
        let (report_fault, fault) = watch::channel(None);
        let (report_head, head) = watch::channel(store.next_sequence().map_or(0, |next| next.saturating_sub(1)));
        let mut dispatch = Dispatcher::start(hub, dispatch::TASK_AT_MOST)?;
        std::thread::Builder::new().name("graph-relay-writer".into()).spawn(move || {
            let writer = Writer { store: store.as_ref(), dispatch: &mut dispatch, head: report_head };
            if let Err(fault) = write_loop(writer, receiver) {
                tracing::error!("the log cannot be written ({fault}): stopping so a supervisor restarts the fan-out");
                let _ = report_fault.send(Some(fault));
            }
        })?;
        let ticker = commands.downgrade();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(PRUNE_EVERY);
            loop {
                interval.tick().await;
                let Some(commands) = ticker.upgrade() else { return };
                if commands.send(Command::Prune).await.is_err() {
                    return;
                }
            }
        });
        Ok(Self { commands, shared, fault, head })
    }

    /// Hands the writer events read from the shared log; waits while its
    /// queue is full. False once the writer has stopped.
    pub async fn copy(&self, events: Vec<Copied>) -> bool {
        self.commands.send(Command::Copy(events)).await.is_ok()
    }

    /// Whether Publish appends to a shared log.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// The last sequence stored here.
    pub fn head(&self) -> u64 {
        *self.head.borrow()
    }

    /// Waits until this replica has stored `sequence` (a subscriber resuming
    /// from a cursor another replica gave it); false after `limit`.
    pub async fn stored(&self, sequence: u64, limit: Duration) -> bool {
        let mut head = self.head.clone();
        tokio::time::timeout(limit, head.wait_for(|head| *head >= sequence)).await.is_ok_and(|r| r.is_ok())
    }

    /// Resolves with the reason once the writer has stopped on a failed
    /// commit (never, while it works).
    pub async fn failed(&self) -> String {
        let mut fault = self.fault.clone();
        let reason = match fault.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            // The writer thread is gone without a report: it panicked.
            Err(_) => "the log writer stopped".to_owned(),
        };
        reason
    }

    /// Stores `notifications` durably; returns once they are on disk (or,
    /// with a shared log, acknowledged by its quorum).
    pub async fn publish(&self, notifications: Vec<Notification>) -> Result<Appended, Status> {
        if let Some(shared) = &self.shared {
            return shared.publish(notifications).await;
        }
        let notifications = prepared::prepare(notifications);
        let (reply, answer) = oneshot::channel();
        let unavailable = || Status::unavailable("the log writer has stopped");
        self.commands.send(Command::Append { notifications, reply }).await.map_err(|_| unavailable())?;
        match answer.await {
            Ok(Ok(appended)) => Ok(appended),
            Ok(Err(e)) => Err(Status::unavailable(format!("could not store: {e}"))),
            Err(_) => Err(unavailable()),
        }
    }
}

/// What the writer thread holds.
struct Writer<'a> {
    store: &'a dyn EventLog,
    dispatch: &'a mut Dispatcher,
    /// The last sequence stored, for [`Ingest::stored`].
    head: watch::Sender<u64>,
}

/// Commits until the publishers are gone (`Ok`) or a commit fails (`Err`,
/// after answering that commit's publishers).
fn write_loop(writer: Writer<'_>, mut commands: mpsc::Receiver<Command>) -> Result<(), String> {
    let Writer { store, dispatch, head } = writer;
    // Whether the last commit served several publishers at once.
    let mut concurrent = false;
    while let Some(first) = commands.blocking_recv() {
        let mut group = vec![first];
        take_queued(&mut commands, &mut group);
        if concurrent && group.len() < LINGER_BELOW {
            std::thread::sleep(LINGER);
            take_queued(&mut commands, &mut group);
        }
        concurrent = group.len() > 1;
        let mut requests = Vec::with_capacity(group.len());
        let mut replies = Vec::with_capacity(group.len());
        let (mut prune, mut copied) = (false, Vec::new());
        for command in group {
            match command {
                Command::Append { notifications, reply } => {
                    requests.push(notifications);
                    replies.push(reply);
                }
                Command::Copy(events) => copied.extend(events),
                Command::Prune => prune = true,
            }
        }
        if !copied.is_empty() {
            let stored = store.append_copied(copied, now_ms()).map_err(|e| format!("copying the shared log: {e}"))?;
            crate::metrics::get().copied.inc_by(stored.len() as u64);
            if let Some(last) = stored.last() {
                head.send_replace(last.encoded.sequence());
            }
            dispatch.send(stored);
        }
        if !requests.is_empty() {
            let (publishes, started) = (requests.len(), Instant::now());
            let appended = store.append(requests, now_ms());
            let took = started.elapsed();
            crate::metrics::get().commit_seconds.observe(took.as_secs_f64());
            if took >= SLOW_COMMIT {
                let took_ms = took.as_millis() as u64;
                tracing::warn!(
                    took_ms,
                    publishes,
                    "slow durable commit (the disk's sync?): publishes and live delivery waited"
                );
            }
            match appended {
                Ok((outcomes, stored)) => {
                    let metrics = crate::metrics::get();
                    metrics.published.inc_by(stored.len() as u64);
                    metrics.duplicates.inc_by(outcomes.iter().map(|o| u64::from(o.duplicates)).sum());
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        let _ = reply.send(Ok(outcome));
                    }
                    if let Some(last) = stored.last() {
                        head.send_replace(last.encoded.sequence());
                    }
                    dispatch.send(stored);
                }
                Err(e) => {
                    tracing::error!("append failed, publishers get UNAVAILABLE: {e}");
                    for reply in replies {
                        let _ = reply.send(Err(e.to_string()));
                    }
                    return Err(format!("append: {e}"));
                }
            }
        }
        // Also under constant load: appends enforce only the size limit.
        if prune {
            match store.prune(now_ms()) {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "retention removed events"),
                Err(e) => return Err(format!("retention: {e}")),
            }
        }
    }
    Ok(())
}

/// Adds what is queued right now to `group`, up to `MAX_GROUP`.
fn take_queued(commands: &mut mpsc::Receiver<Command>, group: &mut Vec<Command>) {
    while group.len() < MAX_GROUP {
        match commands.try_recv() {
            Ok(command) => group.push(command),
            Err(_) => break,
        }
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
