//! One configuration against one system: subscribers ready, publish for the
//! duration, wait for every subscriber to get its share, read the server.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::measure::{self, Outcome, ProcStats};
use crate::workload::{self, EventStream, Sink, TENANTS};

/// What every run of one bench command shares, whatever its configuration.
#[derive(Clone, Copy)]
pub struct Setup {
    pub duration: Duration,
    /// Publish calls the one publisher keeps outstanding.
    pub in_flight: usize,
    /// The relay subscribers' HTTP/2 max frame size; `None`: tonic's default.
    pub frame_size: Option<u32>,
    /// The relay's log held at this retention size; `None`: a fresh log.
    pub log_bytes: Option<u64>,
    /// The relay's publisher calls its ingest port, not the main one.
    pub ingest_port: bool,
}

pub struct Plan {
    pub subscribers: usize,
    /// Each subscriber filters one tenant of ten (10% of the traffic).
    pub selective: bool,
    /// Notifications per second; `None` = as fast as the system takes them.
    pub rate: Option<f64>,
    pub setup: Setup,
    /// What the table calls this load: "saturation", "50%", "fixed".
    pub load: &'static str,
}

impl Plan {
    /// The tenant subscriber `i` filters on, if selective.
    pub fn tenant_of(&self, i: usize) -> Option<String> {
        self.selective.then(|| workload::tenant(i as u64))
    }
}

/// Runs `plan`: `streams` are the subscribers (already registered);
/// `connect` makes the publisher's connection, on the publisher's own thread.
pub async fn run<S: Sink>(
    system: &'static str,
    plan: &Plan,
    connect: impl Future<Output = Result<S, String>> + Send + 'static,
    streams: Vec<EventStream>,
    server: &ProcStats,
    origin: Instant,
) -> Result<Outcome, String> {
    let expected = Arc::new(AtomicU64::new(u64::MAX));
    let deadline = Instant::now() + plan.setup.duration + Duration::from_secs(30);
    let consumers: Vec<_> = streams
        .into_iter()
        .map(|stream| tokio::spawn(workload::consume(stream, expected.clone(), deadline, origin)))
        .collect();
    let bench = ProcStats::new(std::process::id());
    let (cpu_before, server_wait_before, bench_wait_before) =
        (server.cpu(), server.run_queue_wait(), bench.run_queue_wait());
    let start = Instant::now();
    let (rate, duration, in_flight) = (plan.rate, plan.setup.duration, plan.setup.in_flight);
    let (workload::Published { notifications: published, answers }, publisher_waited) = apart(async move {
        let sink = connect.await?;
        workload::publish(sink, rate, duration, in_flight, origin).await
    })
    .await?;
    if let Some(rate) = plan.rate {
        let offered = rate * plan.setup.duration.as_secs_f64();
        if (published as f64) < 0.95 * offered {
            eprintln!(
                "{system}: offered {rate:.0} notifications/s, took {:.0}/s: this run is at its saturation, not at the offered load",
                published as f64 / plan.setup.duration.as_secs_f64()
            );
        }
    }
    let share = if plan.selective { published / TENANTS } else { published };
    expected.store(share, Ordering::Release);
    let mut latencies = measure::histogram();
    let (mut delivered, mut last) = (0, start);
    for consumer in consumers {
        let seen = consumer.await.map_err(|e| e.to_string())?;
        delivered += seen.delivered;
        last = last.max(seen.last_at);
        latencies.add(&seen.latencies).map_err(|e| e.to_string())?;
    }
    let elapsed = last.saturating_duration_since(start).max(Duration::from_millis(1));
    let seconds = start.elapsed().as_secs_f64();
    let cpu = server.cpu().saturating_sub(cpu_before).as_secs_f64() / seconds;
    let in_cores = |waited: Duration| waited.as_secs_f64() / seconds;
    let server_waited =
        server.run_queue_wait().zip(server_wait_before).map(|(end, start)| in_cores(end.saturating_sub(start)));
    let bench_waited = bench
        .run_queue_wait()
        .zip(bench_wait_before)
        .zip(publisher_waited)
        .map(|((end, start), publisher)| in_cores(end.saturating_sub(start) + publisher));
    Ok(Outcome {
        system,
        round: 1,
        subscribers: plan.subscribers,
        selectivity: if plan.selective { "10%" } else { "all" },
        load: plan.load,
        in_flight: plan.setup.in_flight,
        published,
        delivered,
        expected: share * plan.subscribers as u64,
        elapsed,
        p50_us: latencies.value_at_quantile(0.50),
        p99_us: latencies.value_at_quantile(0.99),
        p999_us: latencies.value_at_quantile(0.999),
        answer_p50_us: answers.value_at_quantile(0.50),
        answer_p99_us: answers.value_at_quantile(0.99),
        server_cpu: cpu,
        server_waited,
        bench_waited,
        server_peak_rss_mb: server.status_kb("VmHWM") as f64 / 1024.0,
    })
}

/// Runs the publisher on its own thread and runtime. In production the
/// publisher (the edge, or any NATS producer) is another process; sharing
/// this process's runtime would queue each of its calls behind 100
/// subscriber tasks, and a system whose publish waits for an answer (the
/// relay's durable ack, JetStream's, NATS core's flush) would be measured
/// on the bench's own scheduling. Every system gets the same arrangement.
/// Also returns how long the thread waited for a core: it has exited by the
/// time the run's end is read, and its wait with it.
async fn apart<T: Send + 'static>(
    publisher: impl Future<Output = Result<T, String>> + Send + 'static,
) -> Result<(T, Option<Duration>), String> {
    let (done, result) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("bench-publisher".into())
        .spawn(move || {
            let outcome = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime.block_on(publisher),
                Err(e) => Err(e.to_string()),
            };
            let _ = done.send(outcome.map(|published| (published, measure::this_thread_run_queue_wait())));
        })
        .map_err(|e| e.to_string())?;
    let outcome = result.await.map_err(|_| "the publisher thread died".to_string())?;
    // Gone before the run's end is read, so its wait is not counted twice.
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|_| "the publisher thread panicked".to_string())?;
    outcome
}
