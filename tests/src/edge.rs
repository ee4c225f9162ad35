//! The real edge worker under `wrangler dev` (workerd).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::Process;

/// The Worker's entry as `wrangler.toml` names it (`main`): the tests run
/// the repository's worker unless a config names another.
const WORKER_MAIN: &str = "edge/src/worker_glue/entry.mjs";

/// How the edge stores what it acknowledges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The repository's `wrangler.toml` (its `[env.dev]`) as it is:
    /// Cloudflare Queue in between.
    Queue,
    /// The same without the queue bindings: forward, then answer.
    Sync,
}

/// How to run the worker: the real `wrangler.toml`, adjusted, plus `--var`s.
pub struct EdgeConfig {
    pub fanout_url: String,
    pub client_states: String,
    pub fanout_token: String,
    pub mode: Mode,
    /// Overrides the consumer's `max_retries` (dead-letter tests).
    pub max_retries: Option<u32>,
    /// Extra `--var`s, e.g. `ADMIN_TOKEN` or `RETRY_BASE_DELAY_SECONDS`.
    pub vars: Vec<(String, String)>,
    /// Whether the queue consumers run (off: items stay on the queue, as
    /// when only the request path is measured).
    pub consumers: bool,
    /// Another worker script under the same bindings (the JavaScript peer).
    pub main: Option<std::path::PathBuf>,
}

impl EdgeConfig {
    pub fn for_fanout(fanout_url: String) -> Self {
        Self {
            fanout_url,
            client_states: format!("{},{}", crate::CLIENT_STATE, crate::ROTATED_CLIENT_STATE),
            fanout_token: crate::INGEST_TOKEN.into(),
            mode: Mode::Queue,
            max_retries: None,
            vars: Vec::new(),
            consumers: true,
            main: None,
        }
    }

    pub fn sync(fanout_url: String) -> Self {
        Self { mode: Mode::Sync, ..Self::for_fanout(fanout_url) }
    }

    /// Accepts rich notifications signed by the keys `jwks_url` serves
    /// (see `tokens`).
    pub fn with_jwks(self, jwks_url: &str) -> Self {
        self.var("GRAPH_JWKS_URL", jwks_url).var("GRAPH_APP_IDS", crate::tokens::APP_ID)
    }

    pub fn var(mut self, name: &str, value: &str) -> Self {
        self.vars.push((name.into(), value.into()));
        self
    }

    /// `--var`s for the required settings; an empty one is left out.
    fn required_vars(&self) -> Vec<String> {
        let settings = [
            ("FANOUT_URL", &self.fanout_url),
            ("CLIENT_STATES", &self.client_states),
            ("FANOUT_TOKEN", &self.fanout_token),
        ];
        settings
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .flat_map(|(name, value)| ["--var".to_owned(), format!("{name}:{value}")])
            .collect()
    }

    /// Whether every required setting is given (else `/healthz` says 503).
    fn is_complete(&self) -> bool {
        !self.client_states.is_empty() && !self.fanout_token.is_empty()
    }

    /// The repository's wrangler.toml with this config's adjustments.
    fn wrangler_toml(&self, root: &std::path::Path) -> String {
        let original = std::fs::read_to_string(root.join("wrangler.toml")).expect("wrangler.toml");
        let main = self.main.clone().unwrap_or_else(|| root.join(WORKER_MAIN));
        let mut toml =
            original.replace(&format!("main = {WORKER_MAIN:?}"), &format!("main = {:?}", main.display().to_string()));
        if self.mode == Mode::Sync {
            let is_queue = |line: &str| line.starts_with("[[queues.") || line.starts_with("[[env.dev.queues.");
            let queue_block = |block: &&str| block.lines().any(is_queue);
            toml = toml.split("\n\n").filter(|block| !queue_block(block)).collect::<Vec<_>>().join("\n\n");
            assert!(!toml.lines().any(is_queue), "sync mode still has a queue binding");
        }
        if !self.consumers {
            let consumer = |block: &&str| block.lines().any(|line| line.starts_with("[[env.dev.queues.consumers]]"));
            toml = toml.split("\n\n").filter(|block| !consumer(block)).collect::<Vec<_>>().join("\n\n");
        }
        if let Some(retries) = self.max_retries {
            toml = toml.replace("max_retries = 10", &format!("max_retries = {retries}"));
        }
        toml
    }
}

/// A running worker; killed with its whole process group on drop.
pub struct Edge {
    pub process: Process,
    pub url: String,
    /// Local state (`--persist-to`), the wrangler log and its configuration.
    dir: tempfile::TempDir,
}

impl Edge {
    /// The wrangler configuration it runs (`--env dev`).
    pub fn config_path(&self) -> std::path::PathBuf {
        self.dir.path().join("wrangler.toml")
    }

    /// The edge in queue mode, as `wrangler.toml` configures it.
    pub async fn start(fanout_url: String) -> Edge {
        Self::start_with(EdgeConfig::for_fanout(fanout_url)).await
    }

    /// The edge in synchronous mode (no queue binding).
    pub async fn start_sync(fanout_url: String) -> Edge {
        Self::start_with(EdgeConfig::sync(fanout_url)).await
    }

    pub async fn start_with(config: EdgeConfig) -> Edge {
        let root = crate::repo_root();
        assert!(
            root.join("edge/build/index.js").exists(),
            "the worker is not built: run `make test` (or `make edge`) first"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("wrangler.toml");
        std::fs::write(&config_path, config.wrangler_toml(&root)).expect("writing the test wrangler.toml");
        // A port free a moment ago can be taken by a parallel test before workerd
        // binds it: then, and only then, try again with other ports.
        for attempt in 1..=3 {
            let port = crate::free_port();
            let mut command = Command::new(root.join("node_modules/.bin/wrangler"));
            command
                .current_dir(&root)
                .args(["dev", "--env", "dev"])
                .arg("--config")
                .arg(&config_path)
                .args(["--ip", "127.0.0.1", "--port", &port.to_string()])
                .args(["--inspector-port", &crate::free_port().to_string(), "--show-interactive-dev-session=false"])
                .arg("--persist-to")
                .arg(dir.path().join("state"))
                .args(config.required_vars())
                .args(config.vars.iter().flat_map(|(name, value)| ["--var".to_owned(), format!("{name}:{value}")]))
                .envs(OFFLINE_ENV.iter().copied());
            let log = dir.path().join(format!("wrangler-{attempt}.log"));
            let mut process = Process::spawn("wrangler dev", command, &log);
            let url = format!("http://127.0.0.1:{port}");
            match await_ready(&mut process, &url, config.is_complete()).await {
                Ok(()) => return Edge { process, url, dir },
                Err(log) if attempt < 3 && log.contains("Address already in use") => continue,
                Err(log) => panic!("wrangler dev did not start:\n{}", crate::process::tail(&log)),
            }
        }
        unreachable!("the loop returns or panics")
    }
}

/// Polls `/healthz` until the worker answers 200 (or, `complete` false, the
/// 503 of a worker missing a setting); the log if it exits or never does.
async fn await_ready(process: &mut Process, url: &str, complete: bool) -> Result<(), String> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(response) = client.get(format!("{url}/healthz")).send().await {
            if response.status() == 200 || (!complete && response.status() == 503) {
                return Ok(());
            }
        }
        if !process.is_running() || Instant::now() >= deadline {
            return Err(process.log_text());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Keeps wrangler from reaching for the network: no telemetry, no error
/// reports, no fetch of request.cf data, no update banner.
pub const OFFLINE_ENV: [(&str, &str); 4] = [
    ("WRANGLER_SEND_METRICS", "false"),
    ("WRANGLER_SEND_ERROR_REPORTS", "false"),
    ("CLOUDFLARE_CF_FETCH_ENABLED", "false"),
    ("WRANGLER_HIDE_BANNER", "true"),
];
