//! Running the fan-out: one port serving gRPC (HTTP/2) and gRPC-Web
//! (HTTP/1.1, for the Worker, which cannot speak HTTP/2 outbound).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_web::GrpcWebLayer;

use std::path::PathBuf;
use std::sync::Arc;

use crate::access::Access;
use crate::auth::BearerToken;
use crate::decrypt::Keyring;
use crate::graph::{lifecycle, reconciler::Reconciler};
use crate::hub::Hub;
use crate::ingest::Ingest;
use crate::pb::fanout_server::FanoutServer;
use crate::seal::LogKeys;
use crate::service::{FanoutService, ServiceParts};
use crate::store::{Retention, Store};

/// How long open streams get to end after the stop signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

pub struct ServeConfig {
    pub listen: SocketAddr,
    pub ingest_token: BearerToken,
    /// Who may subscribe, and to what.
    pub access: Access,
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
}

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
    let store = open_store(&mut config)?;
    println!("graph-relay listening on {}", listener.local_addr()?);
    run(listener, store, config, stop).await
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
    listener: tokio::net::TcpListener,
    store: Arc<Store>,
    config: ServeConfig,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error>> {
    let local = listener.local_addr()?;
    let head = store.next_sequence()? - 1;
    let hub = Hub::new(head, config.subscriber_buffer);
    let ingest = Ingest::start(store.clone(), hub.clone())?;
    let mut directory = None;
    let reconciler = config.reconciler.map(|reconciler| {
        directory = Some(reconciler.directory());
        // Resumes where the last run stopped, so no lifecycle event is skipped.
        let cursor = reconciler.lifecycle_cursor().unwrap_or(head);
        let feed = lifecycle::feed(store.clone(), hub.clone(), Some(cursor));
        tokio::spawn(reconciler.run(feed, ingest.clone()))
    });
    let service = FanoutService::new(ServiceParts {
        access: Arc::new(config.access),
        keyring: Arc::new(config.keyring),
        store,
        hub: hub.clone(),
        ingest,
        ingest_token: config.ingest_token,
        directory,
    });
    tracing::info!(data_dir = %config.data_dir.display(), head, "log opened");
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = {
        let hub = hub.clone();
        async move {
            stop.await;
            tracing::info!("stopping: ending subscriber streams");
            hub.close();
            let _ = stopped_tx.send(());
        }
    };
    tracing::info!(%local, "serving gRPC and gRPC-Web");
    let mut builder = Server::builder();
    if let Some(tls) = &config.tls {
        builder = builder.tls_config(tls.server_config()?)?;
        tracing::info!(mutual = tls.client_ca.is_some(), "TLS on");
    }
    let server = builder
        .accept_http1(true)
        .layer(GrpcWebLayer::new())
        .add_service(FanoutServer::new(service))
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
    Ok(())
}
