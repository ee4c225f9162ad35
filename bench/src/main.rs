//! `graph-relay-bench`: Graph Relay's fan-out side by side with NATS core
//! pub/sub and JetStream, same machine, same run, same bytes (docs/performance-history.md).
//!
//! # Layout
//! - [`workload`]: the notifications, the publisher, the subscriber loop.
//! - [`runner`]: one configuration against one system.
//! - [`relay`], [`nats`]: starting and driving each system.
//! - [`measure`]: latency histograms, server CPU and memory from /proc.
//! - [`idle`]: memory per waiting subscriber.
//! - [`disk`]: how long the disk takes to sync a commit, without the relay.

mod disk;
mod idle;
mod measure;
mod nats;
mod relay;
mod report;
mod runner;
mod saturation;
mod shared_log;
mod workload;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use measure::{Outcome, ProcStats};
use runner::{Plan, Setup};

#[derive(Parser)]
#[command(name = "graph-relay-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Durable Publish throughput and latency with group commit, for several
    /// numbers of publishers, then the speed of replaying the log.
    Durable {
        /// Notifications per run.
        #[arg(long, default_value_t = 100_000)]
        notifications: usize,
        /// Notifications per Publish call.
        #[arg(long, default_value_t = 10)]
        batch: usize,
        /// Concurrent publishers, one run per value.
        #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
        publishers: Vec<usize>,
        /// Seal the log with a random log key (the cost of --log-key-file).
        #[arg(long)]
        sealed: bool,
        /// Selective subscribers resuming from the start at once, after the runs (0: none).
        #[arg(long, default_value_t = 100)]
        herd: usize,
    },
    /// Throughput and latency with N subscribers, at saturation and at 50%,
    /// then the relay and NATS core at one equal load.
    Fanout {
        #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
        subscribers: Vec<usize>,
        /// relay, nats, jetstream; relay-js and relay-js-2: the relay on a
        /// shared JetStream log with one and two replicas (`--log nats`)
        #[arg(long, value_delimiter = ',', default_value = "relay,nats,jetstream")]
        systems: Vec<String>,
        /// all (every subscriber gets everything), 10% (each gets one tenant of ten)
        #[arg(long, value_delimiter = ',', default_value = "all,10%")]
        filters: Vec<String>,
        /// Seconds of publishing per run.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Publish calls the one publisher keeps outstanding, the same depths
        /// for every system. Saturation tries them in turn and keeps the run
        /// that delivered most, stopping once a deeper one adds under 5%: a
        /// publisher that waits for each answer (the relay's fsync, JetStream's
        /// ack) delivers at most depth ÷ answer time (Little's law), so a
        /// single shallow depth can measure the publisher's window instead of
        /// the system. A deeper run counts only if every subscriber got all it
        /// published before the deadline. Paced runs allow the depth that
        /// saturated.
        #[arg(long, value_delimiter = ',', default_value = "32,64,128")]
        in_flight: Vec<usize>,
        /// Where to write every outcome as CSV (for the plot).
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Instead of saturation then 50% of it: one run per configuration at
        /// this many notifications/s, the same offered load for every system.
        #[arg(long)]
        rate: Option<f64>,
        /// Runs the whole plan this many times (the systems alternate within
        /// each round) and summarises each configuration across rounds.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// The relay subscribers' HTTP/2 max frame size in bytes (their
        /// SETTINGS_MAX_FRAME_SIZE; tonic's default is 16384). docs/operations.md,
        /// "Subscribing at high volume".
        #[arg(long, value_parser = clap::value_parser!(u32).range(16_384..=16_777_215))]
        subscriber_frame_size: Option<u32>,
        /// Holds the relay's log at this retention size (MiB) through every
        /// run: the server starts with `--retention-max-bytes` set to it and is
        /// filled past it before subscribers join, so commits reuse the pages
        /// retention frees, as in a relay that has run longer than its
        /// retention. Without it each run starts on an empty, growing log.
        #[arg(long, value_parser = clap::value_parser!(u64).range(16..=65_536))]
        log_at_retention: Option<u64>,
        /// The relay's publisher calls its ingest port (`--ingest-listen`, a
        /// thread of its own) instead of the port the subscribers share.
        /// docs/performance-history.md, "2026-11-28, b56547d": faster answers, and at saturation the
        /// publisher then outruns live delivery.
        #[arg(long)]
        relay_ingest_port: bool,
    },
    /// Server memory per idle subscriber, connected and after a burst.
    Idle {
        #[arg(long, default_value_t = 10_000)]
        subscribers: usize,
        /// Subscriptions share this many connections.
        #[arg(long, default_value_t = 100)]
        connections: usize,
        /// Notifications every subscriber takes before the last reading
        /// (0: no burst).
        #[arg(long, default_value_t = 1000)]
        burst: u64,
    },
    /// How long the disk under a directory takes to make a write durable:
    /// the floor under every durable publish, and the source of its stalls.
    Fsync {
        /// A directory on the disk to measure (default: where the relay's
        /// benchmark logs live, the temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// KiB written before each sync (a commit of ~30 notifications of
        /// ~1 KB, plus redb's pages).
        #[arg(long, default_value_t = 32)]
        write_kib: usize,
        /// A sync at least this long counts as a stall.
        #[arg(long, default_value_t = 15)]
        stall_ms: u64,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    measure::raise_fd_limit();
    let result = match Cli::parse().command {
        Command::Durable { notifications, batch, publishers, sealed, herd } => {
            let bench = graph_relay_bench::durable::DurableBench { notifications, batch, publishers, sealed, herd };
            graph_relay_bench::durable::durable(bench).await.map_err(|e| e.to_string())
        }
        Command::Fanout {
            subscribers,
            systems,
            filters,
            seconds,
            in_flight,
            csv,
            rate,
            rounds,
            subscriber_frame_size,
            log_at_retention,
            relay_ingest_port,
        } => {
            let selective = filters.iter().map(|f| selective(f)).collect::<Result<Vec<_>, _>>();
            let duration = Duration::from_secs(seconds);
            let mut depths: Vec<usize> = in_flight.into_iter().filter(|&depth| depth > 0).collect();
            depths.sort_unstable();
            depths.dedup();
            let setup = Setup {
                duration,
                in_flight: depths.last().copied().unwrap_or(32),
                frame_size: subscriber_frame_size,
                log_bytes: log_at_retention.map(|mib| mib << 20),
                ingest_port: relay_ingest_port,
            };
            let load = Load { rate, rounds: rounds.max(1), depths, setup };
            match selective {
                Ok(selective) => fanout(&subscribers, &systems, &selective, load, csv).await,
                Err(e) => Err(e),
            }
        }
        Command::Idle { subscribers, connections, burst } => {
            idle::run(idle::Idle { subscribers, connections, burst }).await
        }
        Command::Fsync { dir, seconds, write_kib, stall_ms } => disk::run(disk::Probe {
            dir: dir.unwrap_or_else(std::env::temp_dir),
            duration: Duration::from_secs(seconds),
            write_bytes: write_kib << 10,
            file_bytes: 64 << 20,
            stall: Duration::from_millis(stall_ms),
        }),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("graph-relay-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `10%` → each subscriber filters one tenant of ten; `all` → no filter.
fn selective(filter: &str) -> Result<bool, String> {
    match filter {
        "all" => Ok(false),
        "10%" => Ok(true),
        other => Err(format!("unknown filter {other:?}: all or 10%")),
    }
}

/// How hard and how long the publisher pushes.
struct Load {
    /// A fixed offered load (notifications/s) instead of saturation + 50%.
    rate: Option<f64>,
    /// Repetitions of the whole plan.
    rounds: usize,
    /// Publisher depths saturation tries, shallowest first (`--in-flight`).
    depths: Vec<usize>,
    /// What every run shares (its `in_flight`: the deepest depth, which a
    /// fixed `--rate` run allows).
    setup: Setup,
}

impl Load {
    /// One run of a configuration under this load, at `rate` (`None`:
    /// saturation) with `in_flight` calls allowed, called `label` in the tables.
    fn plan(
        &self,
        subscribers: usize,
        selective: bool,
        rate: Option<f64>,
        in_flight: usize,
        label: &'static str,
    ) -> Plan {
        Plan { subscribers, selective, rate, setup: Setup { in_flight, ..self.setup }, load: label }
    }
}

async fn fanout(
    counts: &[usize],
    systems: &[String],
    filters: &[bool],
    load: Load,
    csv: Option<PathBuf>,
) -> Result<(), String> {
    if let Some(rate) = load.rate {
        println!("Offered load: {rate:.0} notifications/s for every system.\n");
    }
    if let Some(size) = load.setup.frame_size {
        println!("Relay subscribers' HTTP/2 max frame size: {size} bytes.\n");
    }
    if let Some(bytes) = load.setup.log_bytes {
        println!("Relay log held at its retention size: {} MiB.\n", bytes >> 20);
    }
    if load.setup.ingest_port {
        println!("Relay publisher on the ingest port (--ingest-listen).\n");
    }
    println!("| system | subscribers | filter | load | calls in flight | delivered/s | p50 | p99 | p99.9 | publish answered p50 / p99 | delivered/expected | server CPU | waiting for a core: server / bench | server peak RSS |");
    println!("|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut outcomes = Vec::new();
    for round in 1..=load.rounds {
        for &subscribers in counts {
            for &selective in filters {
                let mut ran = Vec::new();
                for system in systems {
                    ran.extend(configuration(system, subscribers, selective, &load).await?);
                }
                let equal = equal_load(&ran, subscribers, selective, &load).await?;
                for mut outcome in ran.into_iter().chain(equal) {
                    outcome.round = round;
                    report::print_row(&outcome);
                    outcomes.push(outcome);
                }
            }
        }
    }
    report::print_ratios(&outcomes);
    report::print_rounds(&outcomes, load.rounds);
    if let Some(path) = csv {
        report::write_csv(&path, &outcomes)?;
    }
    Ok(())
}

/// One system in one configuration: at `rate` when given, else at
/// saturation and then at half of what that delivered.
async fn configuration(system: &str, subscribers: usize, selective: bool, load: &Load) -> Result<Vec<Outcome>, String> {
    if load.rate.is_some() {
        let plan = load.plan(subscribers, selective, load.rate, load.setup.in_flight, "fixed");
        return Ok(vec![one(system, &plan).await?]);
    }
    let saturated = saturate(system, subscribers, selective, load).await?;
    let half = saturated.sustained_rate() / 2.0;
    let relaxed = one(system, &load.plan(subscribers, selective, Some(half), saturated.in_flight, "50%")).await?;
    Ok(vec![saturated, relaxed])
}

/// The system's saturation: the run that delivered most over the publisher
/// depths tried (shallowest first), stopping as `saturation::keep_deeper`
/// says. Each depth tried is reported on stderr.
async fn saturate(system: &str, subscribers: usize, selective: bool, load: &Load) -> Result<Outcome, String> {
    let mut best: Option<Outcome> = None;
    for &depth in &load.depths {
        let outcome = one(system, &load.plan(subscribers, selective, None, depth, "saturation")).await?;
        eprintln!(
            "{system} × {subscribers} {}: {depth} calls in flight delivered {:.0}/s",
            outcome.selectivity,
            outcome.delivered_per_second()
        );
        let Some(previous) = best.take() else {
            best = Some(outcome);
            continue;
        };
        let (kept, go_deeper) = saturation::keep_deeper(previous, outcome);
        best = Some(kept);
        if !go_deeper {
            break;
        }
    }
    best.ok_or_else(|| "no publisher depth to try (--in-flight)".to_string())
}

/// The relay and NATS core again, each at the same offered load: the lower
/// of their two 50% loads. "p99 at 50%" puts each system at half of its own
/// saturation, so the system that saturates higher is measured under more
/// traffic; this run compares the two at one load that both carry at half
/// their saturation or less. (JetStream saturates at a fraction of either, so
/// it is left at its own 50%.)
async fn equal_load(ran: &[Outcome], subscribers: usize, selective: bool, load: &Load) -> Result<Vec<Outcome>, String> {
    let half =
        |system| ran.iter().find(|o| o.system == system && o.load == "saturation").map(|o| o.sustained_rate() / 2.0);
    let (Some(relay), Some(nats)) = (half("relay"), half("nats")) else { return Ok(Vec::new()) };
    // The same publisher for both: the deeper of their two saturating depths.
    let depth = ran
        .iter()
        .filter(|o| o.load == "saturation" && (o.system == "relay" || o.system == "nats"))
        .map(|o| o.in_flight)
        .max()
        .unwrap_or(load.setup.in_flight);
    let plan = load.plan(subscribers, selective, Some(relay.min(nats)), depth, "equal");
    Ok(vec![one("relay", &plan).await?, one("nats", &plan).await?])
}

/// A fresh server per run, so peak memory belongs to that run.
async fn one(system: &str, plan: &Plan) -> Result<Outcome, String> {
    let origin = Instant::now();
    match system {
        "relay" => {
            let server = relay::RelayServer::start(plan.setup.log_bytes)?;
            if let Some(bytes) = plan.setup.log_bytes {
                let len = server.fill_log(bytes).await?;
                eprintln!("relay log filled: {} MiB on disk", len >> 20);
            }
            let mut streams = Vec::with_capacity(plan.subscribers);
            for i in 0..plan.subscribers {
                streams.push(server.subscribe(plan.tenant_of(i), plan.setup.frame_size).await?);
            }
            let url = if plan.setup.ingest_port { &server.ingest_url } else { &server.url };
            let connect = relay::RelaySink::connect(url.clone());
            runner::run("relay", plan, connect, streams, &ProcStats::new(server.pid()), origin).await
        }
        "nats" => {
            let server = nats::NatsServer::start().await?;
            let mut streams = Vec::with_capacity(plan.subscribers);
            for i in 0..plan.subscribers {
                streams.push(server.core_subscribe(plan.tenant_of(i)).await?);
            }
            let connect = nats::CoreSink::connect(server.url.clone());
            runner::run("nats", plan, connect, streams, &ProcStats::new(server.pid()), origin).await
        }
        "jetstream" => {
            let server = nats::NatsServer::start().await?;
            server.create_stream().await?;
            let mut streams = Vec::with_capacity(plan.subscribers);
            for i in 0..plan.subscribers {
                streams.push(server.jetstream_subscribe(plan.tenant_of(i)).await?);
            }
            let connect = nats::JetStreamSink::connect(server.url.clone());
            runner::run("jetstream", plan, connect, streams, &ProcStats::new(server.pid()), origin).await
        }
        "relay-js" => shared_log::run("relay-js", 1, plan, origin).await,
        "relay-js-2" => shared_log::run("relay-js-2", 2, plan, origin).await,
        other => Err(format!("unknown system {other:?}: relay, relay-js, relay-js-2, nats or jetstream")),
    }
}
