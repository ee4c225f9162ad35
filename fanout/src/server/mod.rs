//! Running the fan-out: one port serving gRPC (HTTP/2) and gRPC-Web
//! (HTTP/1.1, for the Worker, which cannot speak HTTP/2 outbound), and
//! optionally an ingest port for the edge's `Publish` calls.
//!
//! The ingest port is served by a runtime on a thread of its own. On the
//! main runtime a publish takes its turn behind every subscriber stream
//! with work at each of its steps (request in, hand-off to the writer,
//! answer out), so under heavy delivery the edge's acknowledgement waited
//! ~7 ms at p50; on its own thread it is woken at once. The price: ingest
//! does not slow down when delivery cannot keep up (docs/operations.md,
//! "The ingest port"; docs/performance-history.md, "2026-11-28, b56547d").

pub mod listener;
mod probes;
mod reconciling;
pub mod reload;
pub mod shutdown;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_web::GrpcWebLayer;

use std::path::PathBuf;
use std::sync::Arc;

use crate::auth::access::Access;
use crate::auth::{BearerToken, PublishGate};
use crate::delivery::hub::Hub;
use crate::graph::{lifecycle, reconciler::Reconciler};
use crate::grpc::service::{FanoutService, ServiceParts};
use crate::ingest::decrypt::Keyring;
use crate::ingest::Ingest;
use crate::jetstream::{copier, leader, publisher::Publisher, NatsOptions, SharedLog};
use crate::metrics::{self, grpc_layer::GrpcMetricsLayer};
use crate::pb::fanout_server::FanoutServer;
use graph_relay_log::seal::LogKeys;
use graph_relay_log::store::{Retention, Store};
use listener::ConnectionLimits;
use probes::Probes;

/// How long open streams get to end after the stop signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

pub struct ServeConfig {
    pub listen: SocketAddr,
    /// The ingest port (`--ingest-listen`), if any: Publish on its own thread.
    pub ingest_listen: Option<SocketAddr>,
    /// Where `GET /metrics` is served (`--metrics-listen`), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    pub ingest_token: BearerToken,
    /// Who may subscribe, and to what.
    pub access: Access,
    /// Where `access` and the reconciler's file come from, read again on SIGHUP.
    pub sources: reload::Sources,
    /// Private keys for rich notifications.
    pub keyring: Keyring,
    /// Events a live feed may hold before its subscriber reads from the log.
    pub subscriber_buffer: usize,
    /// Where the durable log lives.
    pub data_dir: PathBuf,
    /// Seals the log at rest (`--log-key-file`); taken by [`open_store`].
    pub log_keys: Option<LogKeys>,
    /// TLS on the listener (recommended beyond loopback).
    pub tls: Option<TlsFiles>,
    pub retention: Retention,
    /// Keeps Graph's subscriptions in line with a subscriptions file (`--subscriptions`).
    pub reconciler: Option<Reconciler>,
    /// The shared log (`--log nats`); `None`: the embedded log is the log.
    pub shared_log: Option<NatsOptions>,
    /// What one port and one connection may hold.
    pub limits: ServerLimits,
}

/// The bounds of each port, chosen so that no peer can make the server hold
/// more than an operator decided (docs/operations.md, "Bounds").
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub connections: ConnectionLimits,
    /// HTTP/2 streams (calls) one connection may have open at once: a client
    /// multiplexing subscribers on one connection gets this many.
    pub streams_per_connection: u32,
    /// Connections are closed at this age (`--max-connection-age`), so a
    /// balancer spreads subscriber streams again; `None`: never.
    pub max_connection_age: Option<Duration>,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self { connections: ConnectionLimits::default(), streams_per_connection: 1024, max_connection_age: None }
    }
}

/// How long calls may go on after their connection reached its age, at
/// most: a subscriber gets the GOAWAY, then this long (or half the age, if
/// less) before its stream is cut.
const CONNECTION_AGE_GRACE: Duration = Duration::from_secs(30);

/// A connection whose peer stops answering HTTP/2 pings for this long
/// after one is sent is closed (a vanished subscriber, a half-open socket).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// PEM files for TLS; with `client_ca`, clients must present a certificate
/// it signed (mutual TLS, e.g. the Worker's mTLS certificate binding).
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    fn server_config(&self) -> Result<ServerTlsConfig, Box<dyn std::error::Error>> {
        let read = |path: &PathBuf| std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()));
        let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(read(&self.cert)?, read(&self.key)?));
        if let Some(ca) = &self.client_ca {
            tls = tls.client_ca_root(Certificate::from_pem(read(ca)?));
        }
        Ok(tls)
    }
}

/// Binds `config.listen` and serves until `stop` resolves.
///
/// Prints `graph-relay listening on ADDR` on stdout once the port is bound,
/// so scripts and tests can wait for readiness and learn a port-0 address.
pub async fn serve(
    config: ServeConfig,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = config;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let ingest_listener = match config.ingest_listen {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await?),
        None => None,
    };
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await?),
        None => None,
    };
    let shared = match config.shared_log.take() {
        Some(options) => Some(SharedLog::connect(options, config.retention, config.log_keys.clone()).await?),
        None => None,
    };
    let store = open_store(&mut config)?;
    match &shared {
        Some(shared) => copier::check(shared, &store).await?,
        None if store.copy_of()?.is_some() => {
            return Err("this data directory holds a replica's copy of a NATS stream: start it with --log nats".into())
        }
        None => {}
    }
    println!("graph-relay listening on {}", listener.local_addr()?);
    if let Some(ingest) = &ingest_listener {
        println!("graph-relay ingest listening on {}", ingest.local_addr()?);
    }
    if let Some(metrics) = &metrics_listener {
        println!("graph-relay metrics listening on {}", metrics.local_addr()?);
    }
    let listeners = Listeners { main: listener, ingest: ingest_listener, metrics: metrics_listener };
    run(listeners, Log { store, shared }, config, stop).await
}

/// The log a server runs on.
pub struct Log {
    /// The embedded log; with a shared log, this replica's copy of it.
    pub store: Arc<Store>,
    /// The shared log, with `--log nats`.
    pub shared: Option<SharedLog>,
}

/// The bound ports `run` serves.
pub struct Listeners {
    /// Subscribers and publishers.
    pub main: tokio::net::TcpListener,
    /// Publishers only, served on a thread of its own.
    pub ingest: Option<tokio::net::TcpListener>,
    /// `GET /metrics`.
    pub metrics: Option<tokio::net::TcpListener>,
}

/// Opens the durable log (before the port is announced: a bad data dir or
/// log key fails fast).
pub fn open_store(config: &mut ServeConfig) -> Result<Arc<Store>, Box<dyn std::error::Error>> {
    if config.log_keys.is_none() && !config.keyring.is_empty() {
        tracing::warn!("rich notifications are stored decrypted in plaintext: --log-key-file seals the log");
    }
    Ok(Arc::new(Store::open(&config.data_dir, config.retention, config.log_keys.take())?))
}

/// Serves on `listener` until `stop` resolves, then ends every stream and
/// drains open connections for at most [`DRAIN_TIMEOUT`].
pub async fn run(
    listeners: Listeners,
    log: Log,
    config: ServeConfig,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error>> {
    let Log { store, shared } = log;
    let local = listeners.main.local_addr()?;
    let (limits, gate) = (config.limits, PublishGate::new(config.ingest_token.clone()));
    let head = store.next_sequence()? - 1;
    let hub = Hub::new(head, config.subscriber_buffer);
    let ingest = Ingest::start(store.clone(), hub.clone(), shared.clone().map(Publisher::new))?;
    let copying = shared.clone().map(|shared| tokio::spawn(copier::run(shared, ingest.clone())));
    let metrics_port = listeners.metrics.map(|listener| serve_metrics(listener, store.clone()));
    let mut directory = None;
    let mut configurations = None;
    let reconciler = config.reconciler.map(|mut reconciler| {
        directory = Some(reconciler.directory());
        configurations = Some(reconciler.configurations());
        // Resumes where the last run stopped, so no lifecycle event is skipped.
        let (store, hub) = (store.clone(), hub.clone());
        let open_feed = move |cursor: Option<u64>| reconciling::feed(store.clone(), hub.clone(), cursor.or(Some(head)));
        let publisher = Arc::new(reconciling::LogPublisher(ingest.clone()));
        spawn_reconciler(reconciler, shared.clone(), open_feed, publisher)
    });
    let (subscribers, in_force) = tokio::sync::watch::channel(Arc::new(config.access));
    let reloads = reload::on_hangup(config.sources, subscribers, configurations);
    let service = FanoutService::new(ServiceParts {
        subscribers: in_force,
        keyring: Arc::new(config.keyring),
        store,
        hub: hub.clone(),
        ingest: ingest.clone(),
        ingest_token: config.ingest_token,
        directory,
    });
    tracing::info!(data_dir = %config.data_dir.display(), head, "log opened");
    let tls = config.tls.as_ref().map(TlsFiles::server_config).transpose()?;
    let (probes, health) = Probes::new().await;
    let watching = shared.as_ref().map(|shared| tokio::spawn(probes.clone().follow(shared.connection())));
    // Dropped when `run` returns, which stops the ingest port too.
    let (_stop_ingest, ingest_stopped) = tokio::sync::watch::channel(());
    if let Some(listener) = listeners.ingest {
        let port = IngestPort {
            service: service.for_ingest_port(),
            health: health.clone(),
            tls: tls.clone(),
            limits,
            gate: gate.clone(),
        };
        serve_ingest_port(listener, port, ingest_stopped)?;
    }
    let incoming = listener::incoming(listeners.main, limits.connections);
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    // Set when the log failed rather than someone asking to stop.
    let fault = Arc::new(std::sync::OnceLock::new());
    let shutdown = {
        let (hub, fault, ingest, probes) = (hub.clone(), fault.clone(), ingest.clone(), probes.clone());
        async move {
            tokio::select! {
                _ = stop => {}
                reason = ingest.failed() => { let _ = fault.set(reason); }
            }
            // Health checks say so first, so balancers stop sending here.
            probes.not_serving().await;
            tracing::info!("stopping: ending subscriber streams");
            hub.close();
            let _ = stopped_tx.send(());
        }
    };
    tracing::info!(%local, "serving gRPC and gRPC-Web");
    if let Some(files) = &config.tls {
        tracing::info!(mutual = files.client_ca.is_some(), "TLS on");
    }
    let server = server_builder(tls, limits)?
        .layer(GrpcWebLayer::new())
        .layer(GrpcMetricsLayer)
        .layer(gate)
        .add_service(FanoutServer::new(service))
        .add_service(health)
        .add_service(probes::reflection().build_v1()?)
        .add_service(probes::reflection().build_v1alpha()?)
        .serve_with_incoming_shutdown(incoming, shutdown);
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result?,
        _ = async { let _ = stopped_rx.await; tokio::time::sleep(DRAIN_TIMEOUT).await } => {
            tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; exiting anyway");
        }
    }
    // Its state is saved after every change; an interrupted Graph call is
    // retried from that state by the next run.
    if let Some(task) = reconciler {
        task.abort();
    }
    for task in [metrics_port, copying, watching].into_iter().flatten() {
        task.abort();
    }
    reloads.abort();
    match fault.get() {
        Some(reason) => Err(format!("the log cannot be written ({reason}); exiting for a restart").into()),
        None => Ok(()),
    }
}

/// Runs the reconciler: here for as long as the server runs, or, with a
/// shared log, whenever this replica holds the lease (see `jetstream::leader`).
fn spawn_reconciler(
    mut reconciler: Reconciler,
    shared: Option<SharedLog>,
    mut open_feed: impl FnMut(Option<u64>) -> tokio::sync::mpsc::Receiver<lifecycle::FeedItem> + Send + 'static,
    publisher: Arc<reconciling::LogPublisher>,
) -> tokio::task::JoinHandle<()> {
    match shared {
        Some(shared) => tokio::spawn(leader::run(shared, reconciler, open_feed, publisher)),
        None => tokio::spawn(async move {
            metrics::get().reconciler_leader.set(1);
            lifecycle::supervise(&mut reconciler, &mut open_feed, publisher).await;
        }),
    }
}

/// Serves `/metrics` until aborted; each scrape first reads the log's size
/// and sequences and the open streams' positions.
fn serve_metrics(listener: tokio::net::TcpListener, store: Arc<Store>) -> tokio::task::JoinHandle<()> {
    metrics::on_scrape(move |metrics| match store.stats() {
        Ok(stats) => {
            let last = stats.next_sequence.saturating_sub(1);
            metrics.log_bytes.set(i64::try_from(stats.bytes).unwrap_or(i64::MAX));
            metrics.log_last_sequence.set(last as i64);
            metrics.log_oldest_sequence.set(stats.oldest_sequence.unwrap_or(0) as i64);
            metrics.streams.observe(metrics, last);
        }
        Err(e) => tracing::warn!("metrics: reading the log's stats: {e}"),
    });
    tokio::spawn(metrics::serve(listener, std::future::pending()))
}

/// gRPC and gRPC-Web (HTTP/1.1, for the Worker), with TLS if configured.
fn server_builder(tls: Option<ServerTlsConfig>, limits: ServerLimits) -> Result<Server, Box<dyn std::error::Error>> {
    let mut builder = Server::builder()
        .accept_http1(true)
        .max_concurrent_streams(limits.streams_per_connection)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT));
    if let Some(age) = limits.max_connection_age {
        builder = builder.max_connection_age(age).max_connection_age_grace(CONNECTION_AGE_GRACE.min(age / 2));
    }
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    Ok(builder)
}

/// What the ingest port serves, and how.
struct IngestPort {
    service: FanoutService,
    health: probes::Health,
    tls: Option<ServerTlsConfig>,
    limits: ServerLimits,
    gate: PublishGate,
}

/// Serves `service` on `listener` from a single-threaded runtime on the
/// `graph-relay-ingest` thread, until `stop`'s sender is dropped; in-flight
/// publishes finish first.
fn serve_ingest_port(
    listener: tokio::net::TcpListener,
    port: IngestPort,
    mut stop: tokio::sync::watch::Receiver<()>,
) -> Result<(), Box<dyn std::error::Error>> {
    let IngestPort { service, health, tls, limits, gate } = port;
    let local = listener.local_addr()?;
    let listener = listener.into_std()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let builder = server_builder(tls, limits)?;
    std::thread::Builder::new().name("graph-relay-ingest".into()).spawn(move || {
        runtime.block_on(async move {
            let listener = match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => listener,
                Err(e) => return tracing::error!(%local, "ingest port: {e}"),
            };
            tracing::info!(%local, "serving Publish on the ingest port");
            let incoming = listener::incoming(listener, limits.connections);
            let stopped = async move { while stop.changed().await.is_ok() {} };
            let served = builder
                .layer(GrpcWebLayer::new())
                .layer(GrpcMetricsLayer)
                .layer(gate)
                .add_service(FanoutServer::new(service))
                .add_service(health)
                .serve_with_incoming_shutdown(incoming, stopped)
                .await;
            if let Err(e) = served {
                tracing::error!(%local, "ingest port stopped: {e}");
            }
        })
    })?;
    Ok(())
}
