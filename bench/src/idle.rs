//! `graph-relay-bench idle`: what a waiting subscriber costs the server, and
//! what it still costs once a burst has passed through it.
//!
//! A subscriber that never received anything is the cheap case. A stream that
//! once sent full batches may keep buffers sized for them for as long as it
//! stays connected, and after a busy minute every subscriber of a fleet is in
//! that state. So the server's RSS is read three times: with no subscriber,
//! with all of them connected and idle, and idle again after each one has
//! taken `burst` notifications (every subscriber matches everything).

use std::time::Duration;

use futures_util::StreamExt;

use crate::measure::ProcStats;
use crate::workload::{self, EventStream, Sink, BATCH};
use crate::{nats, relay};

/// How long every subscriber gets to take the whole burst.
const BURST_DEADLINE: Duration = Duration::from_secs(120);

/// What to measure.
#[derive(Clone, Copy)]
pub struct Idle {
    /// Subscriptions in all.
    pub subscribers: usize,
    /// Connections they share.
    pub connections: usize,
    /// Notifications every subscriber takes before the last reading (0: none).
    pub burst: u64,
}

/// The server's RSS (KB) at each reading.
struct Readings {
    before: u64,
    connected: u64,
    /// After the burst, and how many subscribers took all of it.
    after_burst: Option<(u64, usize)>,
}

pub async fn run(idle: Idle) -> Result<(), String> {
    println!(
        "| system | idle subscribers | connections | server RSS before | connected | per subscriber | \
         after a burst of {} | per subscriber | took the whole burst |",
        idle.burst
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let per_connection = idle.subscribers.div_ceil(idle.connections);
    {
        let server = relay::RelayServer::start(None)?;
        let stats = ProcStats::new(server.pid());
        let before = settle(&stats).await;
        let mut streams: Vec<EventStream> = Vec::with_capacity(idle.subscribers);
        for _ in 0..idle.connections {
            let channel = tonic::transport::Channel::from_shared(server.url.clone()).map_err(|e| e.to_string())?;
            let channel = channel.connect().await.map_err(|e| e.to_string())?;
            for _ in 0..per_connection {
                streams.push(server.subscribe_on(channel.clone(), None).await?);
            }
        }
        let connected = settle(&stats).await;
        let sink = relay::RelaySink::connect(server.url.clone()).await?;
        let after_burst = burst_through(&sink, streams, idle.burst, &stats).await?;
        print_row("relay", idle, &Readings { before, connected, after_burst });
    }
    {
        let server = nats::NatsServer::start().await?;
        let stats = ProcStats::new(server.pid());
        let before = settle(&stats).await;
        let mut streams: Vec<EventStream> = Vec::with_capacity(idle.subscribers);
        let mut clients = Vec::new();
        for _ in 0..idle.connections {
            let client = async_nats::connect(&server.url).await.map_err(|e| e.to_string())?;
            for _ in 0..per_connection {
                streams.push(server.core_subscribe_on(&client, None).await?);
            }
            clients.push(client);
        }
        let connected = settle(&stats).await;
        let sink = nats::CoreSink::connect(server.url.clone()).await?;
        let after_burst = burst_through(&sink, streams, idle.burst, &stats).await?;
        print_row("nats", idle, &Readings { before, connected, after_burst });
    }
    Ok(())
}

/// Publishes `burst` notifications, waits until every subscriber has taken
/// them (or the deadline passed), and reads the RSS with all streams still
/// open. `None` when there is no burst.
async fn burst_through<S: Sink>(
    sink: &S,
    streams: Vec<EventStream>,
    burst: u64,
    stats: &ProcStats,
) -> Result<Option<(u64, usize)>, String> {
    if burst == 0 {
        return Ok(None);
    }
    let takers: Vec<_> = streams.into_iter().map(|stream| tokio::spawn(take(stream, burst))).collect();
    for first in (0..burst).step_by(BATCH as usize) {
        sink.send((first..(first + BATCH).min(burst)).map(workload::notification).collect()).await?;
    }
    let deadline = tokio::time::Instant::now() + BURST_DEADLINE;
    let (mut streams, mut whole) = (Vec::with_capacity(takers.len()), 0);
    for taker in takers {
        match tokio::time::timeout_at(deadline, taker).await {
            Ok(Ok((stream, took_all))) => {
                whole += usize::from(took_all);
                streams.push(stream);
            }
            Ok(Err(e)) => return Err(format!("a subscriber task failed: {e}")),
            Err(_) => {} // still short at the deadline: counted as not whole
        }
    }
    let rss = settle(stats).await;
    drop(streams);
    Ok(Some((rss, whole)))
}

/// Takes `count` events from `stream`; hands the stream back (still open)
/// and whether it got them all before it ended.
async fn take(mut stream: EventStream, count: u64) -> (EventStream, bool) {
    for _ in 0..count {
        if stream.next().await.is_none() {
            return (stream, false);
        }
    }
    (stream, true)
}

/// RSS once it has stopped moving (allocations settle after registration).
async fn settle(stats: &ProcStats) -> u64 {
    let mut last = stats.status_kb("VmRSS");
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = stats.status_kb("VmRSS");
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

fn print_row(system: &str, idle: Idle, readings: &Readings) {
    let mb = |kb: u64| format!("{:.1} MB", kb as f64 / 1024.0);
    let per = |kb: u64| format!("{:.1} KB", kb.saturating_sub(readings.before) as f64 / idle.subscribers as f64);
    let (burst_rss, burst_per, whole) = match readings.after_burst {
        Some((rss, whole)) => (mb(rss), per(rss), format!("{whole}/{}", idle.subscribers)),
        None => ("-".into(), "-".into(), "-".into()),
    };
    println!(
        "| {system} | {} | {} | {} | {} | {} | {burst_rss} | {burst_per} | {whole} |",
        idle.subscribers,
        idle.connections,
        mb(readings.before),
        mb(readings.connected),
        per(readings.connected),
    );
}
