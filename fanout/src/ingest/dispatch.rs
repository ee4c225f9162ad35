//! Hands each committed group to the hub, in commit order, from where the
//! wake-ups it causes cost least.
//!
//! Dispatching a group wakes every subscriber stream it reaches. Woken from a
//! task on the runtime, a stream goes on that worker's own run queue: no
//! shared lock, and the workers are not woken from outside. Woken from a
//! thread of our own, every stream goes through the runtime's shared queue.
//! With 100 to 250 subscribers the task is better (100 × "10%" at 220k
//! deliveries/s, p99 4.3–4.6 ms against 4.9–6.4 with the thread;
//! docs/performance-history.md). But a worker's run queue holds 256 tasks: a dispatch that
//! wakes more spills the rest into the shared queue, and the next dispatch's
//! own wake-up then lands behind them (1000 subscribers: the task started
//! 3.4 ms after its commit at p50, the thread 4 µs; at 400 the two are level).
//! So while more feeds are live than that queue holds (`TASK_AT_MOST`),
//! groups go to a thread instead;
//! so does a group big enough to hold a runtime worker for long (`TASK_WORK`:
//! a burst of backlog from the edge can commit thousands of events at once).
//!
//! # Layout
//! Two routes, each consuming its groups in order: a runtime task and the
//! `graph-relay-dispatch` thread. The writer picks one per group; when the
//! choice changes it first waits for the other route to drain, so no group
//! is ever dispatched before an earlier one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::delivery::hub::Hub;
use graph_relay_log::store::Stored;

/// Up to this many live feeds a dispatch runs as a task: what a runtime
/// worker's local run queue holds.
pub(crate) const TASK_AT_MOST: usize = 256;
/// Groups queued on each route at most. Dispatch only copies into bounded
/// subscriber buffers, so it keeps up unless starved of CPU; when it does
/// not, the writer waits here (and publishers behind it) rather than
/// committed groups piling up in memory.
pub(crate) const QUEUE: usize = 1024;
/// At most this many (event, live feed) pairs per group on the task route:
/// ~0.7 ms of matching and `try_send` (~45 ns a pair in docs/performance-history.md's
/// 2026-11-28, a80772d timings). A bigger group would stall that worker's other tasks.
pub(crate) const TASK_WORK: usize = 16_384;

/// The writer's side of dispatch.
pub(crate) struct Dispatcher {
    /// Asked for its live feed count before each group.
    hub: Arc<Hub>,
    /// Groups for the task route.
    task: mpsc::Sender<Vec<Stored>>,
    /// Groups for the thread route.
    thread: mpsc::Sender<Vec<Stored>>,
    /// Groups handed to either route and not dispatched yet: what a change
    /// of route waits for.
    pending: Arc<AtomicUsize>,
    /// The route the last group took.
    on_thread: bool,
    /// Up to this many live feeds, groups take the task route.
    task_at_most: usize,
}

impl Dispatcher {
    /// Starts both routes; must be called inside the runtime.
    pub(crate) fn start(hub: Arc<Hub>, task_at_most: usize) -> std::io::Result<Self> {
        Self::start_queueing(hub, task_at_most, QUEUE)
    }

    /// [`Dispatcher::start`] with `queue` groups at most on each route.
    fn start_queueing(hub: Arc<Hub>, task_at_most: usize, queue: usize) -> std::io::Result<Self> {
        let pending = Arc::new(AtomicUsize::new(0));
        let (thread, mut groups) = mpsc::channel::<Vec<Stored>>(queue);
        let (on_hub, done) = (hub.clone(), pending.clone());
        std::thread::Builder::new().name("graph-relay-dispatch".into()).spawn(move || {
            while let Some(stored) = groups.blocking_recv() {
                on_hub.dispatch(&stored);
                done.fetch_sub(1, Ordering::AcqRel);
            }
        })?;
        let (task, mut groups) = mpsc::channel::<Vec<Stored>>(queue);
        let (on_hub, done) = (hub.clone(), pending.clone());
        tokio::spawn(async move {
            while let Some(stored) = groups.recv().await {
                on_hub.dispatch(&stored);
                done.fetch_sub(1, Ordering::AcqRel);
            }
        });
        Ok(Self { hub, task, thread, pending, on_thread: false, task_at_most })
    }

    /// Dispatches `stored` after every group sent before it.
    pub(crate) fn send(&mut self, stored: Vec<Stored>) {
        let live = self.hub.live_count();
        let on_thread = live > self.task_at_most || stored.len().saturating_mul(live) > TASK_WORK;
        if on_thread != self.on_thread {
            self.drain();
            self.on_thread = on_thread;
        }
        self.pending.fetch_add(1, Ordering::AcqRel);
        let sent = send_waiting(if on_thread { &self.thread } else { &self.task }, stored);
        if !sent {
            self.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Waits until both routes have dispatched everything sent so far, or
    /// until one of them is gone (the task with its runtime at shutdown):
    /// what it held is not coming.
    fn drain(&self) {
        while self.pending.load(Ordering::Acquire) > 0 && !self.task.is_closed() && !self.thread.is_closed() {
            std::thread::sleep(Duration::from_micros(20));
        }
    }
}

/// Queues `stored`, waiting while the route is full (the writer is a plain
/// thread, and `blocking_send` would refuse to run inside the runtime that
/// tests call it from); false if the route is gone.
fn send_waiting(route: &mpsc::Sender<Vec<Stored>>, mut stored: Vec<Stored>) -> bool {
    loop {
        match route.try_send(stored) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
            Err(mpsc::error::TrySendError::Full(back)) => {
                stored = back;
                std::thread::sleep(Duration::from_micros(20));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::filter::Filter;
    use crate::delivery::hub::{Feed, Join};
    use graph_relay_log::prepared::Prepared;
    use graph_relay_proto::v1::{notification::Kind, ChangeNotification, Notification};

    fn stored(sequence: u64) -> Stored {
        let change = ChangeNotification { tenant_id: "t".into(), ..Default::default() };
        Prepared::of(&Notification { kind: Some(Kind::Change(change)), received_at_unix_ms: 1, ..Default::default() })
            .into_stored(sequence)
    }

    fn group(sequence: u64) -> Vec<Stored> {
        vec![stored(sequence)]
    }

    fn join(hub: &Arc<Hub>) -> Feed {
        match hub.join(None, Arc::new(Filter::compile(None).unwrap()), true).1 {
            Join::Live(feed) => feed,
            _ => panic!("expected to go live"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn groups_keep_their_order_while_the_route_changes_back_and_forth() {
        let hub = Hub::new(0, 100_000);
        let mut feed = join(&hub);
        // One live feed takes the task; a second one tips it to the thread.
        let mut dispatcher = Dispatcher::start(hub.clone(), 1).unwrap();
        let mut routes = Vec::new();
        let mut extra = None;
        for sequence in 1..=2_000u64 {
            if sequence % 7 == 0 {
                extra = match extra.take() {
                    None => Some(join(&hub)),
                    Some(_) => None,
                };
            }
            dispatcher.send(group(sequence));
            routes.push(dispatcher.on_thread);
        }
        assert!(routes.contains(&true) && routes.contains(&false), "both routes were taken");
        let mut received = Vec::new();
        while received.len() < 2_000 {
            received.push(feed.receiver.recv().await.unwrap().sequence());
        }
        let first_out_of_order = received.iter().zip(1u64..).position(|(got, wanted)| *got != wanted);
        assert_eq!(first_out_of_order, None, "every group once, in commit order");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_route_makes_the_writer_wait_instead_of_queueing_more() {
        let hub = Hub::new(0, 16);
        let mut dispatcher = Dispatcher::start_queueing(hub, TASK_AT_MOST, 2).unwrap();
        let (sent, reports) = std::sync::mpsc::channel();
        // The writer's thread; the task route runs only when this test yields.
        let writer = std::thread::spawn(move || {
            for sequence in 1..=3 {
                dispatcher.send(group(sequence));
                sent.send(sequence).unwrap();
            }
        });
        assert_eq!((reports.recv().unwrap(), reports.recv().unwrap()), (1, 2));
        let third = reports.recv_timeout(Duration::from_millis(200));
        assert!(third.is_err(), "a third group was queued beyond the bound: {third:?}");
        while reports.try_recv().is_err() {
            tokio::task::yield_now().await; // the task route drains; the writer goes on
        }
        writer.join().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn few_feeds_take_the_task_and_many_the_thread() {
        let hub = Hub::new(0, 16);
        let _feeds: Vec<Feed> = (0..3).map(|_| join(&hub)).collect();
        let mut dispatcher = Dispatcher::start(hub.clone(), 3).unwrap();
        dispatcher.send(group(1));
        assert!(!dispatcher.on_thread, "3 feeds: the task");
        let _fourth = join(&hub);
        dispatcher.send(group(2));
        assert!(dispatcher.on_thread, "4 feeds: the thread");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_too_big_for_a_task_takes_the_thread() {
        let hub = Hub::new(0, 100_000);
        let mut feeds: Vec<Feed> = (0..2).map(|_| join(&hub)).collect();
        let mut dispatcher = Dispatcher::start(hub.clone(), TASK_AT_MOST).unwrap();
        let small = TASK_WORK / 2;
        dispatcher.send((1..=small as u64).map(stored).collect());
        assert!(!dispatcher.on_thread, "{small} events × 2 feeds fit a task");
        dispatcher.send((small as u64 + 1..=small as u64 + 1 + small as u64).map(stored).collect());
        assert!(dispatcher.on_thread, "{} events × 2 feeds do not", small + 1);
        for feed in &mut feeds {
            let last = 2 * small as u64 + 1;
            let mut next = 1;
            while next <= last {
                assert_eq!(feed.receiver.recv().await.unwrap().sequence(), next);
                next += 1;
            }
        }
    }
}
