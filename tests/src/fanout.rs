//! The real fan-out binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use crate::nats::Nats;
use crate::process::Process;

/// Which log the fan-outs a test starts run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// redb in the data directory (`--log redb`, the default).
    Embedded,
    /// A NATS JetStream stream (`--log nats`) on a `nats-server` of the test's own.
    Nats,
}

tokio::task_local! {
    /// The NATS server of a test run by `on_log(Backend::Nats, ..)`.
    static SHARED_LOG: Option<Arc<Nats>>;
}

/// Runs `test` with every `Fanout` it starts on `backend` (see
/// [`crate::on_both_logs`]); a NATS server is started for it and stopped after.
pub async fn on_log<F: std::future::Future<Output = ()>>(backend: Backend, test: F) {
    let nats = match backend {
        Backend::Embedded => None,
        Backend::Nats => Some(Arc::new(Nats::single().await)),
    };
    SHARED_LOG.scope(nats, test).await
}

/// `serve` flags for the shared log the current test runs on, if any.
fn shared_log_args() -> Vec<String> {
    let nats = SHARED_LOG.try_with(|nats| nats.clone()).ok().flatten();
    nats.map(|nats| ["--log".to_string(), "nats".into(), "--nats-url".into(), nats.urls()].into()).unwrap_or_default()
}

/// A running `graph-relay serve`, restartable on the same port and data.
pub struct Fanout {
    process: Option<Process>,
    pub addr: SocketAddr,
    /// The ingest port, when started with `--ingest-listen`.
    pub ingest_addr: Option<SocketAddr>,
    /// `GET /metrics`, when started with `--metrics-listen`.
    pub metrics_addr: Option<SocketAddr>,
    /// Logs (one file per start) and the durable data directory.
    dir: tempfile::TempDir,
    starts: usize,
    /// Extra `serve` flags (retention, buffers) kept across restarts.
    extra_args: Vec<String>,
    /// Where the log lives, when not in `dir` (a filesystem of the test's own).
    data_dir: Option<PathBuf>,
}

/// The fan-out binary built by `make test` (or `cargo build -p graph-relay-fanout`).
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("GRAPH_RELAY_BIN") {
        return path.into();
    }
    let path = crate::repo_root().join("target/debug/graph-relay");
    assert!(
        path.exists(),
        "{} is missing: run `make test` (or `cargo build -p graph-relay-fanout`) first",
        path.display()
    );
    path
}

impl Fanout {
    /// Starts on a free port.
    pub async fn start() -> Fanout {
        Self::start_with(&[]).await
    }

    /// Starts on a free port with extra `serve` flags.
    pub async fn start_with(extra_args: &[&str]) -> Fanout {
        Self::start_on(None, extra_args).await
    }

    /// Starts with its log in `data_dir` (default: a temporary directory).
    pub async fn start_on(data_dir: Option<PathBuf>, extra_args: &[&str]) -> Fanout {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut extra_args: Vec<String> = extra_args.iter().map(|a| a.to_string()).collect();
        extra_args.extend(shared_log_args());
        let mut fanout = Fanout {
            process: None,
            addr: "127.0.0.1:0".parse().unwrap(),
            ingest_addr: None,
            metrics_addr: None,
            dir,
            starts: 0,
            extra_args,
            data_dir,
        };
        fanout.launch().await;
        fanout
    }

    /// Waits for the fan-out to exit by itself; its status, or `None` if it
    /// still runs after `limit`.
    pub async fn exited_within(&mut self, limit: std::time::Duration) -> Option<std::process::ExitStatus> {
        let status = self.process.as_mut().expect("fan-out started").exited_within(limit).await;
        if status.is_some() {
            self.process = None;
        }
        status
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The ingest port's URL; the fan-out must run with `--ingest-listen`.
    pub fn ingest_url(&self) -> String {
        format!("http://{}", self.ingest_addr.expect("started with --ingest-listen"))
    }

    /// SIGKILL: the process dies as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// SIGTERM: a graceful stop; the exit status, unless `grace` passed first.
    pub fn stop(&mut self, grace: std::time::Duration) -> Option<std::process::ExitStatus> {
        self.process.take().and_then(|mut process| process.stop(grace))
    }

    /// Starts again on the same address (after [`Fanout::kill`], or after it
    /// exited by itself, as a supervisor does).
    pub async fn restart(&mut self) {
        self.kill();
        self.launch().await;
    }

    /// Restarts (as after a crash) with more `serve` flags, kept from now on.
    pub async fn restart_with(&mut self, more_args: &[&str]) {
        self.extra_args.extend(more_args.iter().map(|a| a.to_string()));
        self.restart().await;
    }

    /// The durable data directory (log and subscription state).
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| self.dir.path().join("data"))
    }

    /// Waits until the current process logged `needle` `count` times.
    pub async fn wait_for_log_count(&mut self, needle: &str, count: usize) -> String {
        self.process.as_mut().expect("fan-out running").wait_for_log_count(needle, count).await
    }

    /// Waits until the current process logged `needle`.
    pub async fn wait_for_log(&mut self, needle: &str) -> String {
        self.process.as_mut().expect("fan-out running").wait_for_log(needle).await
    }

    pub fn log_text(&self) -> String {
        self.process.as_ref().map(Process::log_text).unwrap_or_default()
    }

    async fn launch(&mut self) {
        self.starts += 1;
        let log = self.dir.path().join(format!("fanout-{}.log", self.starts));
        let subscribers = self.dir.path().join("subscribers.toml");
        std::fs::write(&subscribers, subscribers_file()).expect("writing the subscribers file");
        let mut command = Command::new(binary());
        command
            .args(["serve", "--listen", &self.addr.to_string(), "--ingest-token", crate::INGEST_TOKEN])
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--subscribers")
            .arg(&subscribers)
            .args(&self.extra_args)
            // What a reconciler (--subscriptions-file) reads from its environment.
            .env("GRAPH_RELAY_CLIENT_STATE", crate::CLIENT_STATE)
            .env("GRAPH_CLIENT_SECRET", crate::emulator::CLIENT_SECRET)
            .env("RUST_LOG", "info");
        let mut process = Process::spawn("fan-out", command, &log);
        let addr = process.wait_for_line("graph-relay listening on ").await;
        self.addr = addr.parse().expect("fan-out printed its address");
        if self.extra_args.iter().any(|arg| arg == "--ingest-listen") {
            let ingest = process.wait_for_line("graph-relay ingest listening on ").await;
            self.ingest_addr = Some(ingest.parse().expect("fan-out printed its ingest address"));
        }
        if self.extra_args.iter().any(|arg| arg == "--metrics-listen") {
            let metrics = process.wait_for_line("graph-relay metrics listening on ").await;
            self.metrics_addr = Some(metrics.parse().expect("fan-out printed its metrics address"));
        }
        self.process = Some(process);
    }

    /// The subscribers file it reads (written afresh at each start).
    pub fn subscribers_path(&self) -> PathBuf {
        self.dir.path().join("subscribers.toml")
    }

    /// SIGHUP: read the subscribers and subscriptions files again.
    pub fn hang_up(&self) {
        self.process.as_ref().expect("fan-out running").signal(libc::SIGHUP);
    }

    /// `GET /metrics`, parsed: `name{labels}` -> value.
    pub async fn metrics(&self) -> std::collections::HashMap<String, f64> {
        let addr = self.metrics_addr.expect("started with --metrics-listen");
        let response = reqwest::get(format!("http://{addr}/metrics")).await.expect("metrics port answers");
        assert!(response.status().is_success(), "GET /metrics: {}", response.status());
        let text = response.text().await.expect("metrics text");
        parse_metrics(&text)
    }
}

/// The text exposition's samples: `name{labels}` -> value (comments skipped).
pub fn parse_metrics(text: &str) -> std::collections::HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// A token's hex SHA-256, as the subscribers file holds it.
pub fn token_sha256(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The test subscribers: hashed tokens and scopes, as an operator writes them.
pub fn subscribers_file() -> String {
    let hash = token_sha256;
    format!(
        r#"
[[subscriber]]
name = "everything"
token_sha256 = "{}"
decrypted_data = true

[[subscriber]]
name = "tenant-a-mail"
token_sha256 = "{}"
tenants = ["tenant-a"]
resources = ["users/*/messages/*"]

[[subscriber]]
name = "no-decrypt"
token_sha256 = "{}"
"#,
        hash(crate::SUBSCRIBER_TOKEN),
        hash(crate::SCOPED_TOKEN),
        hash(crate::NO_DECRYPT_TOKEN)
    )
}
