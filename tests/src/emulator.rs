//! The Graph emulator (`graph-relay emulate`) as a child process, and the
//! whole system around it: emulator + fan-out + edge under wrangler dev.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::edge::{Edge, EdgeConfig};
use crate::fanout::Fanout;
use crate::process::Process;

pub const TENANT_ID: &str = "11111111-2222-3333-4444-555555555555";
pub const CLIENT_ID: &str = "66666666-7777-8888-9999-000000000000";
pub const CLIENT_SECRET: &str = "emulated-client-secret-0123456789";

/// A running emulator.
pub struct Emulator {
    process: Process,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Emulator {
    pub async fn start(extra_args: &[&str]) -> Emulator {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut command = Command::new(crate::fanout::binary());
        command
            .args(["emulate", "--listen", "127.0.0.1:0", "--tenant-id", TENANT_ID, "--client-id", CLIENT_ID])
            .args(["--client-secret", CLIENT_SECRET, "--retry-base-delay", "1s"])
            .args(extra_args)
            .env("RUST_LOG", "info");
        let mut process = Process::spawn("emulator", command, &dir.path().join("emulator.log"));
        let addr = process.wait_for_line("graph-relay emulate listening on ").await;
        Emulator { process, url: format!("http://{addr}"), _dir: dir }
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/common/discovery/v2.0/keys", self.url)
    }

    pub fn log_text(&self) -> String {
        self.process.log_text()
    }

    pub async fn control(&self, path: &str, body: Value) -> Value {
        let response = reqwest::Client::new()
            .post(format!("{}/emulator/{path}", self.url))
            .json(&body)
            .send()
            .await
            .expect("emulator reachable");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "/emulator/{path} answered {status}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    pub async fn state(&self) -> Value {
        reqwest::get(format!("{}/emulator/state", self.url))
            .await
            .expect("emulator reachable")
            .json()
            .await
            .expect("JSON")
    }

    pub async fn counter(&self, name: &str) -> u64 {
        self.state().await["counters"][name].as_u64().unwrap_or(0)
    }

    /// Polls the emulator's state until `done` holds (bounded by `within`).
    pub async fn wait_until(&self, what: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let state = self.state().await;
            if done(&state) {
                return state;
            }
            assert!(
                Instant::now() < deadline,
                "emulator never reached: {what}\nstate: {state:#}\nlog:\n{}",
                crate::process::tail(&self.log_text())
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The live subscriptions, by resource.
    pub async fn subscriptions(&self) -> Vec<Value> {
        self.state().await["subscriptions"].as_array().cloned().unwrap_or_default()
    }

    /// A client-credentials token, as the app would get one.
    pub async fn app_token(&self) -> String {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ];
        let reply: Value = reqwest::Client::new()
            .post(format!("{}/{TENANT_ID}/oauth2/v2.0/token", self.url))
            .form(&form)
            .send()
            .await
            .expect("token endpoint")
            .json()
            .await
            .expect("JSON");
        reply["access_token"].as_str().expect("access_token").to_string()
    }
}

/// Emulator, fan-out and edge wired together, plus a place for files.
pub struct Stack {
    pub emulator: Emulator,
    pub fanout: Fanout,
    pub edge: Edge,
    pub dir: tempfile::TempDir,
}

impl Stack {
    /// Starts the three; the fan-out has no subscriptions file yet (it needs the edge's URL).
    pub async fn start(emulator_args: &[&str], fanout_args: &[&str]) -> Stack {
        let emulator = Emulator::start(emulator_args).await;
        let fanout = Fanout::start_with(fanout_args).await;
        let config = EdgeConfig::for_fanout(fanout.url())
            .var("GRAPH_JWKS_URL", &emulator.jwks_url())
            .var("GRAPH_APP_IDS", CLIENT_ID);
        let edge = Edge::start_with(config).await;
        Stack { emulator, fanout, edge, dir: tempfile::tempdir().expect("temp dir") }
    }

    /// The `[graph]` and `[edge]` sections pointing at this stack, then `entries`.
    pub fn subscriptions_file(&self, graph_credentials: &str, entries: &str) -> PathBuf {
        let text = format!(
            "[graph]\ntenant_id = {TENANT_ID:?}\nclient_id = {CLIENT_ID:?}\nbase_url = \"{url}/v1.0\"\nlogin_url = {url:?}\n\
             token_file = \"logins.json\"\n{graph_credentials}\n\n\
             [edge]\nnotification_url = \"{edge}/graph/notifications\"\nlifecycle_notification_url = \"{edge}/graph/lifecycle\"\n\
             client_state_env = \"GRAPH_RELAY_CLIENT_STATE\"\n\n{entries}",
            url = self.emulator.url,
            edge = self.edge.url,
        );
        let path = self.dir.path().join("subscriptions.toml");
        std::fs::write(&path, text).expect("writing the subscriptions file");
        path
    }

    /// `graph-relay ARGS` with the environment a reconciler needs; (success, stdout+stderr).
    pub fn run(&self, args: &[&str]) -> (bool, String) {
        let output = command(self.dir.path()).args(args).output().expect("graph-relay runs");
        let text = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
        (output.status.success(), text)
    }

    /// `graph-relay login` for `account`, completing the device-code sign-in on the emulator.
    pub async fn login(&self, file: &Path, account: &str) {
        let log = self.dir.path().join(format!("login-{account}.log"));
        let mut cmd = command(self.dir.path());
        cmd.arg("login").arg(file).args(["--account", account]);
        let mut process = Process::spawn("login", cmd, &log);
        let rest = process.wait_for_line("approve the code ").await;
        let code = rest.split(':').next().expect("user code").to_string();
        self.emulator.control("device/approve", json!({"user_code": code, "account": account})).await;
        process.wait_for_log("signed in; refresh token stored").await;
    }
}

/// `graph-relay` with the clientState the test edge accepts.
pub fn command(dir: &Path) -> Command {
    let mut command = Command::new(crate::fanout::binary());
    command
        .current_dir(dir)
        .env("GRAPH_RELAY_CLIENT_STATE", crate::CLIENT_STATE)
        .env("GRAPH_CLIENT_SECRET", CLIENT_SECRET);
    command
}
