//! `graph-relay-bench durable`: measurements against the real server, in
//! process, over loopback gRPC (not a test: it asserts nothing, it reports).
//!
//! Publish throughput and latency through the durable log with
//! group commit, for several numbers of concurrent publishers, then the
//! speed of replaying the whole log to a resuming subscriber, and of scanning
//! it for a selective one (its filter takes a tenth of the publishers), and
//! for a herd of selective ones resuming together, as after a restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use graph_relay_proto::v1::{
    fanout_client::FanoutClient, notification::Kind, ChangeNotification, Filter, Notification, PublishRequest,
    SubscribeRequest,
};
use tonic::transport::Channel;

use graph_relay_fanout::auth::access::Access;
use graph_relay_fanout::auth::BearerToken;
use graph_relay_fanout::server::{self, ServeConfig};
use graph_relay_log::seal::LogKeys;
use graph_relay_log::store::{Retention, Store};

const TOKEN: &str = "bench-ingest-token-0123456789";

pub struct DurableBench {
    /// Notifications per run.
    pub notifications: usize,
    /// Notifications per Publish call (the edge sends one Graph batch).
    pub batch: usize,
    /// Concurrent publisher counts to measure, one run each.
    pub publishers: Vec<usize>,
    /// Seal the log with a fresh random key (what `--log-key-file` costs).
    pub sealed: bool,
    /// Selective subscribers resuming from the start at once (0: none).
    pub herd: usize,
}

/// One run's figures.
pub struct Run {
    pub publishers: usize,
    /// Notifications stored (whole Publish calls per publisher).
    pub stored: usize,
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub publishes_per_commit: f64,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Removes a finished run's data directory and waits until the filesystem
/// has dealt with the removal, so that one run's cleanup is not measured in
/// the next run. On ext4 mounted with `discard` (the measuring machine's root), the blocks
/// a removal frees are discarded at the next journal commit, up to 5 s
/// later, and an `fdatasync` issued meanwhile waits behind it: 50–130 ms
/// stalls of the next run's durable commits (docs/performance-history.md, "Where the
/// stalls came from"). `sync` makes that commit happen now.
pub fn remove_run_dir(dir: &std::path::Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        eprintln!("could not remove {}: {e}", dir.display());
    }
    if let Err(e) = std::process::Command::new("sync").status() {
        eprintln!("could not run sync after removing {}: {e}", dir.display());
    }
}

/// Runs every configuration; prints a Markdown table as it goes.
pub async fn durable(bench: DurableBench) -> Result<(), BoxError> {
    let key = bench.sealed.then(|| (0..32).map(|_| format!("{:02x}", rand::random::<u8>())).collect::<String>());
    let key = key.as_deref();
    println!("Log sealed with a log key: {}.\n", if key.is_some() { "yes" } else { "no" });
    println!("| publishers | notifications/s | Publish p50 | Publish p99 | publishes per fsync |");
    println!("|---:|---:|---:|---:|---:|");
    let mut last = None;
    for &publishers in &bench.publishers {
        let (run, dir) = durable_run(&bench, publishers, key).await?;
        println!(
            "| {} | {:.0} | {:.2} ms | {:.2} ms | {:.1} |",
            run.publishers,
            run.per_second,
            ms(run.p50),
            ms(run.p99),
            run.publishes_per_commit
        );
        if let Some((previous, _)) = last.replace((dir, run.stored)) {
            remove_run_dir(previous.path());
        }
    }
    if let (Some((dir, stored)), Some(&publishers)) = (last, bench.publishers.last()) {
        let (events, elapsed) = replay(&dir, vec![(Filter::default(), stored)], key).await?;
        println!();
        println!(
            "replay of {events} stored events to one subscriber: {:.0} events/s",
            events as f64 / elapsed.as_secs_f64()
        );
        let chosen = (publishers / 10).max(1);
        let filter = Filter { subscription_ids: (0..chosen).map(subscription_id).collect(), ..Default::default() };
        let (events, elapsed) = replay(&dir, vec![(filter, stored / publishers * chosen)], key).await?;
        println!(
            "selective replay (the subscription ids of {chosen} of {publishers} publishers): \
             {events} of {stored} stored events delivered, {:.0} stored events scanned/s",
            stored as f64 / elapsed.as_secs_f64()
        );
        if bench.herd > 0 {
            // Each takes one publisher's subscription: 1/publishers of the log.
            let herd = (0..bench.herd)
                .map(|i| {
                    let filter =
                        Filter { subscription_ids: vec![subscription_id(i % publishers)], ..Default::default() };
                    (filter, stored / publishers)
                })
                .collect();
            let (events, elapsed) = replay(&dir, herd, key).await?;
            println!(
                "selective herd ({} subscribers resuming at once, each taking one publisher's subscription): \
                 {events} events delivered in {:.2} s, {:.0} stored events scanned/s in all",
                bench.herd,
                elapsed.as_secs_f64(),
                (stored * bench.herd) as f64 / elapsed.as_secs_f64()
            );
        }
    }
    Ok(())
}

async fn durable_run(
    bench: &DurableBench,
    publishers: usize,
    key: Option<&str>,
) -> Result<(Run, tempfile::TempDir), BoxError> {
    let dir = tempfile::tempdir()?;
    let server = start(&dir, key).await?;
    let (url, store) = (server.url.clone(), server.store.clone());
    let calls = bench.notifications / bench.batch / publishers;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for publisher in 0..publishers {
        let mut client = FanoutClient::connect(url.clone()).await?;
        let batch = bench.batch;
        tasks.push(tokio::spawn(async move { publish_loop(&mut client, publisher, calls, batch).await }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let run = Run {
        publishers,
        stored: latencies.len() * bench.batch,
        per_second: (latencies.len() * bench.batch) as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        publishes_per_commit: latencies.len() as f64 / store.commits().max(1) as f64,
    };
    drop(store);
    server.stop().await;
    Ok((run, dir))
}

async fn publish_loop(
    client: &mut FanoutClient<Channel>,
    publisher: usize,
    calls: usize,
    batch: usize,
) -> Result<Vec<Duration>, tonic::Status> {
    let mut latencies = Vec::with_capacity(calls);
    for call in 0..calls {
        let notifications = (0..batch).map(|i| notification(publisher, call * batch + i)).collect();
        let mut request = tonic::Request::new(PublishRequest { notifications });
        request.metadata_mut().insert("authorization", format!("Bearer {TOKEN}").parse().expect("ascii"));
        let started = Instant::now();
        client.publish(request).await?;
        latencies.push(started.elapsed());
    }
    Ok(latencies)
}

/// Restarts a server on the log of a finished run and has one subscriber per
/// filter resume from the start, all at once, each on its own connection,
/// until each has what its filter takes (`expected`): a restart's catch-up,
/// in which every subscriber scans every stored event whatever it takes.
/// Returns the events delivered and the time until the last one was done.
async fn replay(
    dir: &tempfile::TempDir,
    subscribers: Vec<(Filter, usize)>,
    key: Option<&str>,
) -> Result<(usize, Duration), BoxError> {
    let server = start(dir, key).await?;
    let mut clients = Vec::new();
    for _ in &subscribers {
        clients.push(FanoutClient::connect(server.url.clone()).await?);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for ((filter, expected), mut client) in subscribers.into_iter().zip(clients) {
        tasks.push(tokio::spawn(async move {
            let mut request = tonic::Request::new(SubscribeRequest { filter: Some(filter), after_sequence: Some(0) });
            request.metadata_mut().insert("authorization", format!("Bearer {TOKEN}").parse().expect("ascii"));
            let mut stream = client.subscribe(request).await?.into_inner();
            let mut events = 0;
            while events < expected {
                match stream.message().await? {
                    Some(batch) => events += batch.events.len(),
                    None => break,
                }
            }
            Ok::<usize, tonic::Status>(events)
        }));
    }
    let mut events = 0;
    for task in tasks {
        events += task.await??;
    }
    let elapsed = started.elapsed();
    server.stop().await;
    Ok((events, elapsed))
}

/// A bench server on a data directory.
struct BenchServer {
    url: String,
    store: Arc<Store>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl BenchServer {
    /// Stops the server and waits until the log is closed, so the next run
    /// can open the same directory (redb allows one opener at a time).
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
        // The writer thread lets go of the store once the service is gone.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&self.store) > 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn start(dir: &tempfile::TempDir, key: Option<&str>) -> Result<BenchServer, BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let mut access = Access::default();
    access.add_full_access("bench", TOKEN);
    let mut config = ServeConfig {
        listen: listener.local_addr()?,
        ingest_listen: None,
        metrics_listen: None,
        sources: Default::default(),
        ingest_token: BearerToken::new(TOKEN)?,
        access,
        keyring: Default::default(),
        subscriber_buffer: 4096,
        data_dir: dir.path().to_owned(),
        log_keys: key.map(LogKeys::parse).transpose()?,
        tls: None,
        retention: Retention {
            max_age_ms: u64::MAX,
            max_bytes: u64::MAX,
            dedup_window_ms: 6 * 3_600_000,
            dedup_max_keys: 2_000_000,
            cache_bytes: 64 << 20,
            shared_groups_bytes: 32 << 20,
        },
        reconciler: None,
        shared_log: None,
        limits: server::ServerLimits::default(),
    };
    let store = server::open_store(&mut config).map_err(|e| e.to_string())?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = server::Log { store: store.clone(), shared: None };
    let task = tokio::spawn(async move {
        let stop = async move {
            let _ = stopped.await;
        };
        if let Err(e) =
            server::run(server::Listeners { main: listener, ingest: None, metrics: None }, serving, config, stop).await
        {
            eprintln!("bench server failed: {e}");
        }
    });
    Ok(BenchServer { url, store, stop, task })
}

/// A ~1 KB Outlook message notification, as the edge would publish it.
///
/// Serialised from typed structs (fields in the sorted order a
/// `serde_json::Value` would print), not through a `Value` tree: the fanout
/// bench's one publisher makes ~20k of these per second on the machine it
/// measures; with the tree's map inserts and frees its thread took 9.6% of
/// the machine's samples at 22k/s, now 7.4%.
pub fn notification(publisher: usize, n: usize) -> Notification {
    let subscription_id = subscription_id(publisher);
    let tenant_id = "84bd8158-6d4d-4958-8b9f-9d6445542f95";
    let expiration = "2026-11-30T18:23:45.9356913+00:00";
    let resource = format!("Users/3f4d7b1c-0000-4000-8000-{publisher:012}/Messages/AAMkAGI2TG93AAA{n:020}=");
    let id = format!("AAMkAGI2TG93AAA{n:020}=");
    let resource_data = MessageData {
        etag: "W/\"CQAAABYAAADHcgC8Hl9tRZ/hc1wEUs1TAAAwR4Hg\"",
        odata_id: &resource,
        odata_type: "#Microsoft.Graph.Message",
        id: &id,
    };
    let raw = RawChange {
        change_type: "created",
        organization_id: tenant_id,
        resource: &resource,
        resource_data: &resource_data,
        subscription_expiration_date_time: expiration,
        subscription_id: &subscription_id,
        tenant_id,
    };
    let resource_data_json = serde_json::to_string(&resource_data).unwrap_or_default();
    let raw_json = serde_json::to_string(&raw).unwrap_or_default();
    let change = ChangeNotification {
        id: String::new(),
        subscription_id,
        subscription_expiration_date_time: expiration.into(),
        change_type: "created".into(),
        resource,
        tenant_id: tenant_id.into(),
        organization_id: tenant_id.into(),
        resource_data_json,
        encrypted_content: None,
        raw_json,
        ..Default::default()
    };
    Notification { kind: Some(Kind::Change(change)), received_at_unix_ms: 1_795_000_000_000, ..Default::default() }
}

/// The Graph subscription whose notifications `publisher` sends.
fn subscription_id(publisher: usize) -> String {
    format!("c6a1c1f2-9f2d-4f7e-8a8e-{publisher:012}")
}

#[derive(serde::Serialize)]
struct MessageData<'a> {
    #[serde(rename = "@odata.etag")]
    etag: &'a str,
    #[serde(rename = "@odata.id")]
    odata_id: &'a str,
    #[serde(rename = "@odata.type")]
    odata_type: &'a str,
    id: &'a str,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct RawChange<'a> {
    change_type: &'a str,
    organization_id: &'a str,
    resource: &'a str,
    resource_data: &'a MessageData<'a>,
    subscription_expiration_date_time: &'a str,
    subscription_id: &'a str,
    tenant_id: &'a str,
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_runs_directory_is_gone_with_everything_in_it() {
        let parent = tempfile::tempdir().unwrap();
        let run = parent.path().join("run");
        std::fs::create_dir_all(run.join("nested")).unwrap();
        std::fs::write(run.join("nested").join("events.redb"), b"log").unwrap();
        remove_run_dir(&run);
        assert!(!run.exists());
        assert!(parent.path().exists(), "only the run's own directory goes");
    }

    /// The typed structs print the bytes a `serde_json::Value` (sorted keys)
    /// printed before them, so benchmark series stay comparable.
    #[test]
    fn notification_json_is_what_a_value_tree_prints() {
        let Some(Kind::Change(change)) = notification(7, 42).kind else { panic!("not a change") };
        let resource = "Users/3f4d7b1c-0000-4000-8000-000000000007/Messages/AAMkAGI2TG93AAA00000000000000000042=";
        let data = serde_json::json!({
            "@odata.type": "#Microsoft.Graph.Message",
            "@odata.id": resource,
            "@odata.etag": "W/\"CQAAABYAAADHcgC8Hl9tRZ/hc1wEUs1TAAAwR4Hg\"",
            "id": "AAMkAGI2TG93AAA00000000000000000042=",
        });
        let raw = serde_json::json!({
            "subscriptionId": "c6a1c1f2-9f2d-4f7e-8a8e-000000000007",
            "subscriptionExpirationDateTime": "2026-11-30T18:23:45.9356913+00:00",
            "changeType": "created",
            "resource": resource,
            "resourceData": data,
            "tenantId": "84bd8158-6d4d-4958-8b9f-9d6445542f95",
            "organizationId": "84bd8158-6d4d-4958-8b9f-9d6445542f95",
        });
        assert_eq!(change.resource, resource);
        assert_eq!(change.resource_data_json, data.to_string());
        assert_eq!(change.raw_json, raw.to_string());
    }
}
