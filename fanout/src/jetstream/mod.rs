//! The shared log on NATS JetStream (`--log nats`): several fan-out
//! replicas append to one stream and each serves its own subscribers.
//!
//! The stream's sequence is `Event.sequence`, one sequence space for every
//! replica, so a subscriber resumes on any of them with its cursor.
//!
//! # Layout
//! - [`publisher`]: Publish appends each notification to the stream and
//!   answers once JetStream acknowledged it (stored on a quorum of the
//!   stream's replicas); the delivery id is the `Nats-Msg-Id`, and the
//!   stream's duplicate window is `--dedup-window`, so de-duplication holds
//!   across replicas for as long as on the embedded log.
//! - [`copier`]: each replica reads the stream ONCE, in order, into a copy
//!   on its own disk (the embedded log, keyed by the stream's sequences)
//!   through the single writer, which dispatches to live subscribers. So
//!   filters, scopes, batching, catch-up, redaction and gaps are the
//!   embedded log's, and a replay reads the local disk, not the network.
//! - [`leader`]: the reconciler runs on one replica at a time, under a
//!   lease in a KV bucket; [`state`]: its state, in another.
//! - This file: the options, connecting, and the stream's configuration.

pub mod copier;
pub mod leader;
pub mod publisher;
pub mod state;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use tokio::sync::watch;

use graph_relay_log::seal::LogKeys;
use graph_relay_log::store::Retention;

/// How long a JetStream request (a publish's acknowledgement, a KV write)
/// may take before the caller is told UNAVAILABLE: well inside the edge's
/// budget for a Publish, far above a quorum write on a healthy cluster.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a starting replica keeps trying to reach the stream (a NATS
/// cluster electing a leader answers nothing for a few seconds).
pub(crate) const STARTUP_PATIENCE: Duration = Duration::from_secs(60);
/// Publishes awaiting JetStream's acknowledgement at once, per replica.
const ACKS_IN_FLIGHT: usize = 4096;

/// How to reach the shared log (`serve --log nats ...`).
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// Server URLs (`--nats-url`): the client fails over between them.
    pub urls: Vec<String>,
    /// The stream's name (`--nats-stream`); its KV buckets are named after it.
    pub stream: String,
    /// Copies of the stream (and buckets) the cluster keeps (`--nats-replicas`).
    pub replicas: usize,
    /// A NATS credentials file (`--nats-credentials`).
    pub credentials: Option<PathBuf>,
    /// CA for the servers' TLS certificates (`--nats-tls-ca`).
    pub tls_ca: Option<PathBuf>,
    /// Client certificate and key for mutual TLS (`--nats-tls-cert`, `--nats-tls-key`).
    pub tls_client: Option<(PathBuf, PathBuf)>,
    /// How long the reconciler's lease lasts without renewal (`--nats-lease`).
    pub lease: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SharedLogError {
    #[error("connecting to NATS ({urls}): {reason}")]
    Connect { urls: String, reason: String },
    #[error("NATS credentials file {path}: {reason}")]
    Credentials { path: String, reason: String },
    #[error("JetStream stream {stream}: {reason}")]
    Stream { stream: String, reason: String },
    #[error("JetStream KV bucket {bucket}: {reason}")]
    Bucket { bucket: String, reason: String },
}

/// A connection to the shared log, shared by the publisher, the copier and
/// the leader.
#[derive(Clone)]
pub struct SharedLog {
    pub(crate) context: jetstream::Context,
    pub(crate) options: NatsOptions,
    /// The one subject the stream holds.
    pub(crate) subject: String,
    /// Seal messages at rest, as the embedded log seals its groups.
    pub(crate) keys: Option<Arc<LogKeys>>,
    /// Whether the client is connected now (health reports it).
    pub(crate) connected: watch::Receiver<bool>,
}

impl SharedLog {
    /// Connects (failing fast when no server answers) and creates or
    /// updates the stream with `retention`'s limits.
    pub async fn connect(
        options: NatsOptions,
        retention: Retention,
        keys: Option<LogKeys>,
    ) -> Result<Self, SharedLogError> {
        let urls = options.urls.join(",");
        let (report, connected) = watch::channel(false);
        let report = Arc::new(report);
        let mut connect = async_nats::ConnectOptions::new()
            .name("graph-relay")
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None)
            .event_callback(move |event| {
                let report = report.clone();
                async move { on_event(&report, event) }
            });
        if let Some(path) = &options.credentials {
            let failed = |e: std::io::Error| SharedLogError::Credentials {
                path: path.display().to_string(),
                reason: e.to_string(),
            };
            connect = connect.credentials_file(path).await.map_err(failed)?;
        }
        if let Some(ca) = &options.tls_ca {
            connect = connect.require_tls(true).add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &options.tls_client {
            connect = connect.require_tls(true).add_client_certificate(cert.clone(), key.clone());
        }
        let client = connect
            .connect(options.urls.as_slice())
            .await
            .map_err(|e| SharedLogError::Connect { urls: urls.clone(), reason: e.to_string() })?;
        let context = jetstream::ContextBuilder::new()
            .timeout(REQUEST_TIMEOUT)
            .max_ack_inflight(ACKS_IN_FLIGHT)
            .backpressure_on_inflight(true)
            .build(client);
        let subject = format!("{}.events", options.stream);
        let shared = Self { context, options, subject, keys: keys.map(Arc::new), connected };
        shared.ensure_stream(retention).await?;
        Ok(shared)
    }

    /// Creates the stream, or brings an existing one's limits in line.
    /// While the cluster elects a leader (a node just died) JetStream's API
    /// times out: that is retried for [`STARTUP_PATIENCE`], not fatal.
    async fn ensure_stream(&self, retention: Retention) -> Result<(), SharedLogError> {
        let wanted = stream_config(&self.options, &self.subject, retention);
        let failed = |reason: String| SharedLogError::Stream { stream: self.options.stream.clone(), reason };
        let started = std::time::Instant::now();
        loop {
            let attempt = match self.context.get_stream(&self.options.stream).await {
                Ok(mut stream) => match stream.info().await {
                    Ok(info) if same_limits(&info.config, &wanted) => Ok(()),
                    Ok(_) => self.context.update_stream(wanted.clone()).await.map(drop).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                },
                Err(e) if is_missing(&e.kind()) => {
                    self.context.create_stream(wanted.clone()).await.map(drop).map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            match attempt {
                Ok(()) => return Ok(()),
                Err(reason) if started.elapsed() >= STARTUP_PATIENCE => return Err(failed(reason)),
                Err(reason) => {
                    tracing::warn!("JetStream stream {}: {reason}; trying again", self.options.stream);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Whether the client is connected now.
    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Resolves whenever the connection comes or goes.
    pub fn connection(&self) -> watch::Receiver<bool> {
        self.connected.clone()
    }
}

/// The stream: one subject, limits from the log's retention, and a
/// duplicate window as long as the embedded log's dedup window (JetStream
/// refuses one longer than the stream's age limit).
fn stream_config(options: &NatsOptions, subject: &str, retention: Retention) -> stream::Config {
    let max_age = Duration::from_millis(retention.max_age_ms);
    stream::Config {
        name: options.stream.clone(),
        subjects: vec![subject.to_owned()],
        max_age,
        max_bytes: i64::try_from(retention.max_bytes).unwrap_or(i64::MAX),
        duplicate_window: Duration::from_millis(retention.dedup_window_ms).min(max_age),
        num_replicas: options.replicas,
        storage: stream::StorageType::File,
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    }
}

fn is_missing(kind: &jetstream::context::GetStreamErrorKind) -> bool {
    use jetstream::context::GetStreamErrorKind::JetStream;
    matches!(kind, JetStream(e) if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND)
}

/// Whether `existing` already has the limits `wanted` sets.
fn same_limits(existing: &stream::Config, wanted: &stream::Config) -> bool {
    existing.subjects == wanted.subjects
        && existing.max_age == wanted.max_age
        && existing.max_bytes == wanted.max_bytes
        && existing.duplicate_window == wanted.duplicate_window
        && existing.num_replicas == wanted.num_replicas
}

fn on_event(report: &watch::Sender<bool>, event: async_nats::Event) {
    match event {
        async_nats::Event::Connected => {
            tracing::info!("connected to NATS");
            report.send_replace(true);
        }
        async_nats::Event::Disconnected | async_nats::Event::Closed => {
            tracing::warn!("lost NATS: Publish answers UNAVAILABLE and health NOT_SERVING until it is back");
            report.send_replace(false);
        }
        other => tracing::info!("NATS: {other}"),
    }
}
