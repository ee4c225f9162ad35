//! Graph Relay under test: the real `graph-relay serve` binary, real gRPC.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use graph_relay_proto::v1::{fanout_client::FanoutClient, Filter, Notification, PublishRequest, SubscribeRequest};
use prost::Message;
use tonic::transport::Channel;

use crate::workload::{self, EventStream, Sink};

const INGEST: &str = "bench-ingest-token-0123456789";
const SUBSCRIBER: &str = "bench-subscriber-token-0123456789";
/// How long `fill_log` may take (a 1 GiB log fills in well under a minute).
const FILL_SECONDS_AT_MOST: u32 = 120;

pub struct RelayServer {
    child: Child,
    /// Where subscribers connect.
    pub url: String,
    /// The ingest port (`--ingest-listen`), for `--relay-ingest-port`
    /// runs and for `fill_log`.
    pub ingest_url: String,
    /// The server's data directory: removed on drop, read by `fill_log`.
    dir: tempfile::TempDir,
}

impl RelayServer {
    /// Starts `graph-relay serve` (next to this binary) on a free port, with
    /// its log's retention size set to `log_bytes` if given.
    pub fn start(log_bytes: Option<u64>) -> Result<Self, String> {
        Self::start_with(log_bytes, &[])
    }

    /// The same with more `serve` flags (`--log nats ...`: a replica of a
    /// relay on JetStream).
    pub fn start_with(log_bytes: Option<u64>, extra_args: &[String]) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let binary = exe.with_file_name("graph-relay");
        let mut child = Command::new(&binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--ingest-listen", "127.0.0.1:0"])
            .args(["--ingest-token", INGEST, "--subscriber-token", SUBSCRIBER])
            .arg("--data-dir")
            .arg(dir.path())
            .args(log_bytes.map(|bytes| format!("--retention-max-bytes={bytes}")))
            .args(extra_args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                format!("{}: {e} (build it: cargo build --release -p graph-relay-fanout)", binary.display())
            })?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        let addr = line.trim().strip_prefix("graph-relay listening on ").ok_or(format!("unexpected: {line}"))?;
        let url = format!("http://{addr}");
        line.clear();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        let addr = line.trim().strip_prefix("graph-relay ingest listening on ").ok_or(format!("unexpected: {line}"))?;
        Ok(Self { url, ingest_url: format!("http://{addr}"), child, dir })
    }

    /// Publishes until the log file has reached its retention size and
    /// stopped growing: from then on each commit writes into pages that
    /// retention freed, as in a relay that has run longer than its retention
    /// (on ext4 a write into allocated blocks makes a cheaper fdatasync than
    /// one that allocates). Returns the file's size.
    pub async fn fill_log(&self, log_bytes: u64) -> Result<u64, String> {
        let sink = RelaySink::connect(self.ingest_url.clone()).await?;
        let file = self.dir.path().join("events.redb");
        let per_notification = workload::notification(0).encoded_len() as u64;
        let (mut stored, mut last_len) = (0, 0);
        for _ in 0..FILL_SECONDS_AT_MOST {
            let chunk = workload::publish(sink.clone(), None, Duration::from_secs(1), 32, Instant::now()).await?;
            stored += chunk.notifications * per_notification;
            let len = std::fs::metadata(&file).map_err(|e| format!("{}: {e}", file.display()))?.len();
            if stored >= 2 * log_bytes && len <= last_len {
                return Ok(len);
            }
            last_len = len;
        }
        Err(format!("the relay's log did not settle at {log_bytes} bytes in {FILL_SECONDS_AT_MOST} s"))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A subscriber on its own connection (`tenant`: the 10% filter), which
    /// accepts HTTP/2 frames of up to `frame_size` bytes.
    pub async fn subscribe(&self, tenant: Option<String>, frame_size: Option<u32>) -> Result<EventStream, String> {
        let channel = Channel::from_shared(self.url.clone()).map_err(|e| e.to_string())?.max_frame_size(frame_size);
        self.subscribe_on(channel.connect().await.map_err(|e| e.to_string())?, tenant).await
    }

    /// A subscriber on an existing connection (many per connection).
    pub async fn subscribe_on(&self, channel: Channel, tenant: Option<String>) -> Result<EventStream, String> {
        let filter = Filter { tenant_ids: tenant.into_iter().collect(), ..Default::default() };
        let mut request = tonic::Request::new(SubscribeRequest { filter: Some(filter), after_sequence: None });
        request.metadata_mut().insert("authorization", format!("Bearer {SUBSCRIBER}").parse().expect("ascii"));
        let stream = FanoutClient::new(channel).subscribe(request).await.map_err(|e| e.to_string())?.into_inner();
        let batches = stream.filter_map(|batch| async move { batch.ok() });
        Ok(Box::pin(batches.flat_map(|batch| futures_util::stream::iter(batch.events))))
    }
}

impl Drop for RelayServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Not left to the TempDir: its removal would land in the next run.
        graph_relay_bench::durable::remove_run_dir(self.dir.path());
    }
}

#[derive(Clone)]
pub struct RelaySink {
    client: FanoutClient<Channel>,
}

impl RelaySink {
    pub async fn connect(url: String) -> Result<Self, String> {
        Ok(Self { client: FanoutClient::connect(url).await.map_err(|e| e.to_string())? })
    }
}

impl Sink for RelaySink {
    async fn send(&self, notifications: Vec<Notification>) -> Result<(), String> {
        let mut request = tonic::Request::new(PublishRequest { notifications });
        request.metadata_mut().insert("authorization", format!("Bearer {INGEST}").parse().expect("ascii"));
        self.client.clone().publish(request).await.map(|_| ()).map_err(|e| e.to_string())
    }
}
