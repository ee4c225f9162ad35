//! The Rust worker side by side with the JavaScript peer a Cloudflare user
//! would write (`bench/js-peer/worker.js`), under `wrangler dev`, with the
//! same bindings (queue producer only: the request path is what is
//! measured), the same bodies, in the same run (`make bench`):
//!
//! - CPU per request in workerd itself: the user+system time of the
//!   `workerd` processes (from /proc) over a run of sequential requests,
//!   less what they spend idle over as long, divided by the requests. It is
//!   everything workerd does for a request: HTTP, the JavaScript glue, the
//!   wasm, WebCrypto, the local queue. Every worker runs at once; a round
//!   measures each case of each worker in turn (a worker runs alone, its
//!   caches warm), so a drift of the machine falls on all rounds alike; a
//!   cell is the median of the rounds, shown with half their spread. (Taking
//!   turns request by request was tried: switching processes on every
//!   request made every cell larger and noisier.) The machine's clock
//!   drifts by a fifth within minutes, more than the differences measured,
//!   so the last table also gives each POST's worker process CPU against
//!   its dev proxy's: the proxy does the same work for every worker, and
//!   the ratio cancels the drift.
//! - requests per second and p50/p99 acknowledgement latency under wrk
//!   (2 threads, 8 connections, 5 s), 10 basic items per request;
//! - the bundle wrangler uploads, raw and gzip.
//!
//! Cases: 10 basic items; 10 rich items with a token already verified;
//! 1 rich item with a token never seen before (RS256 runs).
//!
//! A third worker, `bench/js-peer/queue-floor.js`, only reads the body and
//! sends it to the queue: what every worker pays the platform per request
//! in queue mode. The last table is each worker's own CPU above it, two
//! ways: a POST's whole CPU (its worker's `/healthz` floor included) less
//! the queue floor's whole POST, which charges a worker everything it costs
//! beyond the platform's share; and, as the first table shows them, each
//! above its own worker's `/healthz`, which also takes out what a worker
//! spends on every request, and so flatters the Rust worker, whose
//! `/healthz` takes the full (async) route that its notification POSTs do
//! not.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use graph_relay_bench::stats::{median_and_spread, median_interval};
use graph_relay_tests::edge::{Edge, EdgeConfig};
use graph_relay_tests::tokens::{valid_claims, JwksServer, SigningKey, APP_ID, TENANT};
use graph_relay_tests::{graph, repo_root, CLIENT_STATE};
use serde_json::{json, Value};

/// Sequential requests per CPU measurement: ~1.5 s of CPU at 1.5 ms each,
/// against /proc's 10 ms clock ticks.
const REQUESTS: usize = 1_000;
/// Rounds of measurements by default; each cell is the median of its
/// rounds. `EDGE_COMPARE_ROUNDS` sets another count: more rounds narrow the
/// interval the drift-cancelled table gives each median.
const ROUNDS: usize = 7;
/// Requests before each measurement, not measured.
const WARM_UP: usize = 20;
/// How long each worker's idle CPU is sampled.
const IDLE_SAMPLE: Duration = Duration::from_secs(3);

fn items(count: usize, rich: bool) -> Vec<Value> {
    (0..count)
        .map(|i| {
            let mut item =
                graph::change(&format!("sub-{i}"), &format!("Users/u/Messages/m-{i}"), "created", TENANT, CLIENT_STATE);
            if rich {
                item["encryptedContent"] = json!({"data": "ZGF0YQ==", "dataKey": "a2V5", "dataSignature": "c2ln",
                    "encryptionCertificateId": "c1", "encryptionCertificateThumbprint": "t"});
            }
            item
        })
        .collect()
}

fn signed(items: Vec<Value>, token: String) -> String {
    let mut collection = graph::collection(items);
    collection["validationTokens"] = json!([token]);
    collection.to_string()
}

/// CPU of `edge`'s two workerd processes: the one that runs the worker
/// (and the local Queue), and wrangler's dev proxy in front of it. The
/// proxy does the same work for every worker's request, so the worker's
/// CPU against the proxy's cancels the machine's drift.
#[derive(Clone, Copy, Debug, Default)]
struct Cpu {
    worker: f64,
    proxy: f64,
}

impl Cpu {
    fn total(self) -> f64 {
        self.worker + self.proxy
    }
}

/// Clock ticks of CPU (user + system) the workerd processes of `edge` used
/// so far; the one started with an inspector runs the worker.
fn workerd_ticks(edge: &Edge) -> Cpu {
    let group = edge.process.id() as i64;
    let mut ticks = Cpu::default();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some((name, rest)) =
            stat.split_once(") ").map(|(head, rest)| (head.rsplit('(').next().unwrap_or(""), rest))
        else {
            continue;
        };
        let fields: Vec<&str> = rest.split(' ').collect();
        // After the name: state(0) ppid(1) pgrp(2) ... utime(11) stime(12).
        if name != "workerd" || fields.get(2).and_then(|g| g.parse::<i64>().ok()) != Some(group) {
            continue;
        }
        let used = (fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0)) as f64;
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("--inspector-addr") {
            ticks.worker += used;
        } else {
            ticks.proxy += used;
        }
    }
    ticks
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

/// Each workerd process's idle CPU, in ticks per second (timers, the dev
/// proxy's polling), to take out of every measurement of that worker.
async fn idle_rate(edge: &Edge) -> Cpu {
    let (start, clock) = (workerd_ticks(edge), Instant::now());
    tokio::time::sleep(IDLE_SAMPLE).await;
    let (end, seconds) = (workerd_ticks(edge), clock.elapsed().as_secs_f64());
    Cpu { worker: (end.worker - start.worker) / seconds, proxy: (end.proxy - start.proxy) / seconds }
}

/// CPU milliseconds per request for `bodies` POSTed one after another
/// (`None`: as many `GET /healthz`, the floor every request pays).
async fn cpu_per_request(edge: &Edge, idle: Cpu, bodies: Option<&[String]>) -> Cpu {
    let client = reqwest::Client::new();
    let url = format!("{}/graph/notifications", edge.url);
    let send = |body: Option<&String>| {
        let request = match body {
            Some(body) => client.post(&url).header("content-type", "application/json").body(body.clone()),
            None => client.get(format!("{}/healthz", edge.url)),
        };
        request.send()
    };
    // The last WARM_UP bodies warm the worker up, the others are measured
    // (fresh tokens stay fresh).
    let count = bodies.map_or(REQUESTS, |all| all.len() - WARM_UP);
    let body = |i: usize| bodies.map(|all| &all[i]);
    for i in count..count + WARM_UP {
        send(body(i)).await.unwrap();
    }
    let (start, clock) = (workerd_ticks(edge), Instant::now());
    for i in 0..count {
        let status = send(body(i)).await.expect("the worker answers").status().as_u16();
        assert!(status == 202 || (bodies.is_none() && status == 200), "answered {status}");
    }
    let (end, seconds) = (workerd_ticks(edge), clock.elapsed().as_secs_f64());
    let per_request = |used: f64, idle: f64| (used - idle * seconds).max(0.0) / ticks_per_second() * 1e3 / count as f64;
    Cpu {
        worker: per_request(end.worker - start.worker, idle.worker),
        proxy: per_request(end.proxy - start.proxy, idle.proxy),
    }
}

/// wrk against `url` with `body`: (requests/s, p50, p99).
fn load(url: &str, body: &str, dir: &Path) -> (String, String, String) {
    let body_path = dir.join("body.json");
    std::fs::write(&body_path, body).unwrap();
    let script = dir.join("post.lua");
    let lua = format!(
        "local f = io.open({:?}, 'rb')\nwrk.method = 'POST'\nwrk.body = f:read('*a')\nf:close()\nwrk.headers['content-type'] = 'application/json'\n",
        body_path.display().to_string()
    );
    std::fs::write(&script, lua).unwrap();
    let output = Command::new("wrk")
        .args(["-t2", "-c8", "-d5", "--latency", "-s"])
        .arg(&script)
        .arg(format!("{url}/graph/notifications"))
        .output()
        .expect("wrk (make bench-setup installs it)");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    let field = |prefix: &str| {
        report.lines().find_map(|l| l.trim().strip_prefix(prefix)).map(str::trim).unwrap_or("-").to_owned()
    };
    (field("Requests/sec:"), field("50%"), field("99%"))
}

fn gzip(bytes: &[u8]) -> usize {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap().len()
}

/// (raw, gzip) bytes of what wrangler uploads for the worker at `config`.
fn bundle(config: &Path, dir: &Path) -> (usize, usize) {
    let root = repo_root();
    let out = dir.join("bundle");
    let status = Command::new(root.join("node_modules/.bin/wrangler"))
        .current_dir(&root)
        .args(["deploy", "--dry-run", "--env", "dev", "--outdir"])
        .arg(&out)
        .arg("--config")
        .arg(config)
        .envs(graph_relay_tests::edge::OFFLINE_ENV.iter().copied())
        .output()
        .expect("wrangler");
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let files: Vec<Vec<u8>> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file() && e.path().extension().is_none_or(|x| x != "map"))
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    (files.iter().map(Vec::len).sum(), files.iter().map(|f| gzip(f)).sum())
}

#[tokio::main]
async fn main() {
    let root = repo_root();
    let key = &SigningKey::pair().0;
    let jwks = JwksServer::start(vec![key.jwk()]).await;
    let known = key.sign(&valid_claims());
    // A fresh token per request of each round: each is verified (RS256)
    // the first time. (Each worker is its own isolate, with its own cache.)
    let rounds = rounds();
    let fresh: Vec<Vec<String>> = (0..rounds)
        .map(|round| {
            (0..REQUESTS + WARM_UP)
                .map(|i| {
                    let mut claims = valid_claims();
                    claims["jti"] = json!(format!("bench-{round}-{i}"));
                    signed(items(1, true), key.sign(&claims))
                })
                .collect()
        })
        .collect();
    let basic = vec![graph::collection(items(10, false)).to_string(); REQUESTS + WARM_UP];
    let rich = vec![signed(items(10, true), known); REQUESTS + WARM_UP];
    let dir = tempfile::tempdir().unwrap();

    let peer = root.join("bench/js-peer/worker.js");
    let workers = [
        ("Rust (wasm)", None, "on"),
        ("Rust (wasm), REQUEST_LOGS=errors", None, "errors"),
        ("JavaScript peer", Some(peer), "on"),
        ("queue floor (read the body, one sendBatch, 202)", Some(root.join("bench/js-peer/queue-floor.js")), "on"),
    ];
    let mut edges = Vec::new();
    for (name, main, logs) in workers {
        let mut config = EdgeConfig::for_fanout("http://127.0.0.1:9".into())
            .with_jwks(&jwks.url)
            .var("FAST_PATH", "off")
            .var("REQUEST_LOGS", logs)
            .var("GRAPH_APP_IDS", APP_ID);
        config.consumers = false;
        // Only the Rust worker writes a line per request (the others never log).
        let logs_every_request = main.is_none() && logs == "on";
        config.main = main;
        let edge = Edge::start_with(config).await;
        let idle = idle_rate(&edge).await;
        edges.push((name, edge, idle, logs_every_request));
    }
    // floors[worker]: a GET /healthz's CPU (both processes), per round;
    // posts[worker][case]: each body's CPU by process, per round.
    let idle_rates: Vec<String> =
        edges.iter().map(|(_, _, idle, _)| format!("{:.2}", idle.worker + idle.proxy)).collect();
    let mut floors = vec![Vec::new(); edges.len()];
    let mut posts = vec![vec![Vec::new(); 3]; edges.len()];
    for fresh in &fresh {
        for (worker, (_, edge, idle, _)) in edges.iter().enumerate() {
            let floor = cpu_per_request(edge, *idle, None).await.total();
            floors[worker].push(floor);
            for (case, bodies) in [&basic, &rich, fresh].into_iter().enumerate() {
                let post = cpu_per_request(edge, *idle, Some(bodies)).await;
                posts[worker][case].push(post);
            }
        }
    }

    println!("CPU: workerd's, per request, above a GET /healthz's (the floor: HTTP, the dev proxy);");
    println!("the median of {rounds} rounds of {REQUESTS} requests, ± half the spread of the rounds; a round measures");
    println!(
        "each case of each worker in turn. Idle CPU taken out, per worker (ticks/s): {}.\n",
        idle_rates.join(", ")
    );
    println!("| worker | bundle raw | bundle gzip | requests/s | ack p50 | ack p99 | floor | 10 basic | 10 rich, known token | 1 rich, first-sight token |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut own = Vec::new();
    let whole: Vec<[f64; 3]> = posts.iter().map(|cases| whole_posts(cases)).collect();
    for (((name, edge, _, _), floors), cases) in edges.iter().zip(&floors).zip(&posts) {
        let (rate, p50, p99) = load(&edge.url, &basic[0], dir.path());
        let out = tempfile::tempdir().unwrap();
        let (raw, gz) = bundle(&edge.config_path(), out.path());
        let cells = above_floor(floors, cases);
        let shown: Vec<String> =
            cells.iter().map(|(median, spread)| format!("{median:.3} ms ±{:.3}", spread / 2.0)).collect();
        println!("| {name} | {raw} | {gz} | {rate} | {p50} | {p99} | {} |", shown.join(" | "));
        own.push((name, [cells[1].0, cells[2].0, cells[3].0]));
    }
    let (Some((_, queue)), Some(queue_whole)) = (own.pop(), whole.last()) else { return };
    println!("\nEach worker's own CPU: a whole POST (floor included) less the queue floor's whole POST;");
    println!("in brackets, the medians above (each less its own worker's floor) less the queue floor's.\n");
    println!("| worker | 10 basic | 10 rich, known token | 1 rich, first-sight token |");
    println!("|---|---:|---:|---:|");
    for ((name, cells), whole) in own.into_iter().zip(&whole) {
        let shown: Vec<String> =
            (0..3).map(|i| format!("{:.3} ms ({:.3} ms)", whole[i] - queue_whole[i], cells[i] - queue[i])).collect();
        println!("| {name} | {} |", shown.join(" | "));
    }
    // A worker that logs every request is left out: its lines reach
    // wrangler through the dev proxy's inspector relay, so its proxy does
    // more than the others'.
    let quiet: Vec<(&str, &[Vec<Cpu>])> = edges
        .iter()
        .zip(&posts)
        .filter(|((_, _, _, logs_every_request), _)| !logs_every_request)
        .map(|((name, _, _, _), cases)| (*name, cases.as_slice()))
        .collect();
    print_against_proxy(&quiet);
}

/// The drift-cancelled table: per case, each worker's process CPU against
/// its dev proxy's (median of the rounds), and its own CPU: per round, its
/// ratio less the queue floor's (the last worker) in the same round, times
/// the two proxies' mean CPU per POST in that round; the median of the
/// rounds, with a 95% interval for that median. Every worker here logs
/// nothing per request.
fn print_against_proxy(workers: &[(&str, &[Vec<Cpu>])]) {
    let ratio = |cpu: &Cpu| cpu.worker / cpu.proxy;
    let Some((_, floor)) = workers.last() else { return };
    println!("\nAgainst the dev proxy: each POST's worker process CPU over its dev proxy's, the median of the");
    println!("rounds ± half their spread; the proxy does the same work for every worker, so the ratio cancels");
    println!("the machine's drift. Own CPU: per round, the ratio less the queue floor's in that round, times");
    println!("the two proxies' mean CPU per POST; the median of the rounds, and in brackets a 95% interval for");
    println!("that median (order statistics, no assumption about the distribution).\n");
    println!("| worker | 10 basic | 10 rich, known token | 1 rich, first-sight token |");
    println!("|---|---:|---:|---:|");
    for (name, cases) in workers {
        let shown: Vec<String> = (0..3)
            .map(|case| {
                let (median, spread) = median_and_spread(cases[case].iter().map(ratio).collect());
                let own: Vec<f64> = cases[case]
                    .iter()
                    .zip(&floor[case])
                    .map(|(post, floor)| (ratio(post) - ratio(floor)) * (post.proxy + floor.proxy) / 2.0)
                    .collect();
                let interval = match median_interval(own.clone()) {
                    Some((low, high)) => format!(" [{low:.3}, {high:.3}]"),
                    None => String::new(),
                };
                format!("{median:.3} ±{:.3}: {:.3} ms{interval}", spread / 2.0, median_and_spread(own).0)
            })
            .collect();
        println!("| {name} | {} |", shown.join(" | "));
    }
}

/// The rounds to run: `EDGE_COMPARE_ROUNDS`, else [`ROUNDS`].
fn rounds() -> usize {
    match std::env::var("EDGE_COMPARE_ROUNDS") {
        Ok(text) => text.trim().parse().unwrap_or_else(|_| panic!("EDGE_COMPARE_ROUNDS is no count: {text:?}")),
        Err(_) => ROUNDS,
    }
}

/// A worker's medians and spreads: its floor (a GET /healthz), then each
/// case's POST above the floor of its round.
fn above_floor(floors: &[f64], cases: &[Vec<Cpu>]) -> Vec<(f64, f64)> {
    let above =
        cases.iter().map(|rounds| rounds.iter().zip(floors).map(|(post, floor)| post.total() - floor).collect());
    std::iter::once(floors.to_vec()).chain(above).map(median_and_spread).collect()
}

/// The median CPU of a whole POST of each case, floor included (both
/// processes).
fn whole_posts(cases: &[Vec<Cpu>]) -> [f64; 3] {
    [0, 1, 2].map(|case| median_and_spread(cases[case].iter().map(|post| post.total()).collect()).0)
}
