//! `graph-relay-bench`: Graph Relay's fan-out side by side with NATS core
//! pub/sub and JetStream, same machine, same run, same bytes (BENCHMARKS.md).
//!
//! # Layout
//! - [`workload`]: the notifications, the publisher, the subscriber loop.
//! - [`runner`]: one configuration against one system.
//! - [`relay`], [`nats`]: starting and driving each system.
//! - [`measure`]: latency histograms, server CPU and memory from /proc.

mod measure;
mod nats;
mod relay;
mod runner;
mod workload;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use measure::{Outcome, ProcStats};
use runner::Plan;
use workload::EventStream;

#[derive(Parser)]
#[command(name = "graph-relay-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Throughput and latency with N subscribers, at saturation and at 50%.
    Fanout {
        #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
        subscribers: Vec<usize>,
        /// relay, nats, jetstream
        #[arg(long, value_delimiter = ',', default_value = "relay,nats,jetstream")]
        systems: Vec<String>,
        /// all (every subscriber gets everything), 10% (each gets one tenant of ten)
        #[arg(long, value_delimiter = ',', default_value = "all,10%")]
        filters: Vec<String>,
        /// Seconds of publishing per run.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Publish calls the one publisher keeps outstanding (all systems).
        #[arg(long, default_value_t = 32)]
        in_flight: usize,
        /// Where to write every outcome as CSV (for the plot).
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Instead of saturation then 50% of it: one run per configuration at
        /// this many notifications/s, the same offered load for every system.
        #[arg(long)]
        rate: Option<f64>,
    },
    /// Server memory per idle subscriber.
    Idle {
        #[arg(long, default_value_t = 10_000)]
        subscribers: usize,
        /// Subscriptions share this many connections.
        #[arg(long, default_value_t = 100)]
        connections: usize,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    measure::raise_fd_limit();
    let result = match Cli::parse().command {
        Command::Fanout { subscribers, systems, filters, seconds, in_flight, csv, rate } => {
            let selective = filters.iter().map(|f| selective(f)).collect::<Result<Vec<_>, _>>();
            let load = Load { duration: Duration::from_secs(seconds), in_flight, rate };
            match selective {
                Ok(selective) => fanout(&subscribers, &systems, &selective, load, csv).await,
                Err(e) => Err(e),
            }
        }
        Command::Idle { subscribers, connections } => idle(subscribers, connections).await,
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
    duration: Duration,
    in_flight: usize,
    /// A fixed offered load (notifications/s) instead of saturation + 50%.
    rate: Option<f64>,
}

async fn fanout(
    counts: &[usize],
    systems: &[String],
    filters: &[bool],
    load: Load,
    csv: Option<PathBuf>,
) -> Result<(), String> {
    let Load { duration, in_flight, rate } = load;
    if let Some(rate) = rate {
        println!("Offered load: {rate:.0} notifications/s for every system.\n");
    }
    println!("| system | subscribers | filter | load | delivered/s | p50 | p99 | p99.9 | delivered/expected | server CPU | server peak RSS |");
    println!("|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut outcomes = Vec::new();
    for &subscribers in counts {
        for &selective in filters {
            for system in systems {
                if rate.is_some() {
                    let plan = Plan { subscribers, selective, rate, duration, in_flight, load: "fixed" };
                    let outcome = one(system, &plan).await?;
                    print_row(&outcome);
                    outcomes.push(outcome);
                    continue;
                }
                let plan = Plan { subscribers, selective, rate: None, duration, in_flight, load: "saturation" };
                let saturated = one(system, &plan).await?;
                let half = saturated.sustained_rate() / 2.0;
                let relaxed = one(system, &Plan { rate: Some(half), load: "50%", ..plan }).await?;
                for outcome in [saturated, relaxed] {
                    print_row(&outcome);
                    outcomes.push(outcome);
                }
            }
        }
    }
    print_ratios(&outcomes);
    if let Some(path) = csv {
        write_csv(&path, &outcomes)?;
    }
    Ok(())
}

/// A fresh server per run, so peak memory belongs to that run.
async fn one(system: &str, plan: &Plan) -> Result<Outcome, String> {
    let origin = Instant::now();
    match system {
        "relay" => {
            let server = relay::RelayServer::start()?;
            let mut streams = Vec::with_capacity(plan.subscribers);
            for i in 0..plan.subscribers {
                streams.push(server.subscribe(plan.tenant_of(i)).await?);
            }
            let connect = relay::RelaySink::connect(server.url.clone());
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
        other => Err(format!("unknown system {other:?}: relay, nats or jetstream")),
    }
}

fn print_row(o: &Outcome) {
    println!(
        "| {} | {} | {} | {} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {}/{} | {:.2} | {:.0} MB |",
        o.system,
        o.subscribers,
        o.selectivity,
        o.load,
        o.delivered_per_second(),
        o.p50_us as f64 / 1000.0,
        o.p99_us as f64 / 1000.0,
        o.p999_us as f64 / 1000.0,
        o.delivered,
        o.expected,
        o.server_cpu,
        o.server_peak_rss_mb
    );
    let _ = std::io::stdout().flush();
}

/// Delivered/s at saturation: relay / NATS and relay / JetStream.
fn print_ratios(outcomes: &[Outcome]) {
    println!();
    println!("| subscribers | filter | relay delivered/s | ÷ NATS core | ÷ JetStream |");
    println!("|---:|---|---:|---:|---:|");
    let find = |system: &str, o: &Outcome| {
        outcomes.iter().find(|x| {
            x.system == system && x.subscribers == o.subscribers && x.selectivity == o.selectivity && x.load == o.load
        })
    };
    for relay in outcomes.iter().filter(|o| o.system == "relay" && o.load == "saturation") {
        let ratio = |system| {
            find(system, relay)
                .map(|other| format!("{:.2}", relay.delivered_per_second() / other.delivered_per_second()))
                .unwrap_or_else(|| "-".into())
        };
        println!(
            "| {} | {} | {:.0} | {} | {} |",
            relay.subscribers,
            relay.selectivity,
            relay.delivered_per_second(),
            ratio("nats"),
            ratio("jetstream")
        );
    }
}

fn write_csv(path: &PathBuf, outcomes: &[Outcome]) -> Result<(), String> {
    let mut text =
        String::from("system,subscribers,filter,load,delivered_per_s,p50_us,p99_us,p999_us,server_cpu,peak_rss_mb\n");
    for o in outcomes {
        text.push_str(&format!(
            "{},{},{},{},{:.0},{},{},{},{:.3},{:.1}\n",
            o.system,
            o.subscribers,
            o.selectivity,
            o.load,
            o.delivered_per_second(),
            o.p50_us,
            o.p99_us,
            o.p999_us,
            o.server_cpu,
            o.server_peak_rss_mb
        ));
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Server memory per idle subscriber: RSS before and after `count`
/// subscriptions spread over `connections` connections.
async fn idle(count: usize, connections: usize) -> Result<(), String> {
    println!("| system | idle subscribers | connections | server RSS before | after | per subscriber |");
    println!("|---|---:|---:|---:|---:|---:|");
    let per_connection = count.div_ceil(connections);
    {
        let server = relay::RelayServer::start()?;
        let stats = ProcStats::new(server.pid());
        let before = settle(&stats).await;
        let mut streams: Vec<EventStream> = Vec::with_capacity(count);
        for _ in 0..connections {
            let channel = tonic::transport::Channel::from_shared(server.url.clone()).map_err(|e| e.to_string())?;
            let channel = channel.connect().await.map_err(|e| e.to_string())?;
            for _ in 0..per_connection {
                streams.push(server.subscribe_on(channel.clone(), None).await?);
            }
        }
        print_idle("relay", count, connections, before, settle(&stats).await);
    }
    {
        let server = nats::NatsServer::start().await?;
        let stats = ProcStats::new(server.pid());
        let before = settle(&stats).await;
        let mut streams: Vec<EventStream> = Vec::with_capacity(count);
        let mut clients = Vec::new();
        for _ in 0..connections {
            let client = async_nats::connect(&server.url).await.map_err(|e| e.to_string())?;
            for _ in 0..per_connection {
                streams.push(server.core_subscribe_on(&client, None).await?);
            }
            clients.push(client);
        }
        print_idle("nats", count, connections, before, settle(&stats).await);
    }
    Ok(())
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

fn print_idle(system: &str, count: usize, connections: usize, before_kb: u64, after_kb: u64) {
    let per = after_kb.saturating_sub(before_kb) as f64 * 1024.0 / count as f64;
    println!(
        "| {system} | {count} | {connections} | {:.1} MB | {:.1} MB | {:.1} KB |",
        before_kb as f64 / 1024.0,
        after_kb as f64 / 1024.0,
        per / 1024.0
    );
}
