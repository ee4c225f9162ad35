//! The command line: `graph-relay`'s subcommands and their arguments (clap),
//! kept apart from what `main` does with them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::graph::catalog::Permission;
use bytesize::ByteSize;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "graph-relay",
    version,
    about = "Graph Relay fan-out: Microsoft Graph notifications to internal gRPC subscribers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// How log lines go to stderr: `text` for people, `json` (one object a
    /// line) for log shippers.
    #[arg(long, global = true, env = "GRAPH_RELAY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the fan-out server (gRPC and gRPC-Web on one port).
    Serve(Box<ServeArgs>),
    /// Subscribe and print every matching event as one JSON line.
    Tail(TailArgs),
    /// Print the SHA-256 of a subscriber token read from stdin, for the subscribers file.
    HashToken,
    /// Check, apply or show the subscriptions file (declarative Graph subscriptions).
    Subscriptions(SubscriptionsArgs),
    /// Sign in for delegated permissions (device code); stores the refresh token (0600).
    Login {
        /// The subscriptions file (its [graph] section and token_file).
        file: PathBuf,
        /// The account type that signs in.
        #[arg(long, default_value = "delegated-work", value_parser = parse_permission)]
        account: Permission,
    },
    /// A local Microsoft Graph + identity platform for development and tests.
    Emulate(EmulateArgs),
}

pub fn parse_permission(text: &str) -> Result<Permission, String> {
    match text {
        "application" => Ok(Permission::Application),
        "delegated-work" => Ok(Permission::DelegatedWork),
        "delegated-personal" => Ok(Permission::DelegatedPersonal),
        other => Err(format!("{other:?}: use application, delegated-work or delegated-personal")),
    }
}

#[derive(Args)]
pub struct SubscriptionsArgs {
    #[command(subcommand)]
    pub which: SubscriptionsCommand,
}

#[derive(Subcommand)]
pub enum SubscriptionsCommand {
    /// Validate every entry against Graph's rules, without calling Graph.
    Check { file: PathBuf },
    /// Make Graph match the file once (create, renew due, delete removed).
    Sync {
        file: PathBuf,
        #[arg(long, env = "GRAPH_RELAY_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
    },
    /// Each subscription, its resource, expiry and health.
    List {
        #[arg(long, env = "GRAPH_RELAY_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
    },
    /// The 19 resource kinds Graph notifies about: paths, change types, lifetimes, permissions, rules.
    Kinds {
        /// One JSON array, for tools.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EmulateArgs {
    #[command(subcommand)]
    pub which: Option<EmulateCommand>,
    #[arg(long, default_value = "127.0.0.1:8790")]
    pub listen: SocketAddr,
    #[arg(long, default_value = "00000000-0000-0000-0000-0000000000aa")]
    pub tenant_id: String,
    #[arg(long, default_value = "00000000-0000-0000-0000-0000000000bb")]
    pub client_id: String,
    /// The app's client secret.
    #[arg(long, env = "GRAPH_RELAY_EMULATOR_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// The app's certificate (PEM), for certificate credentials.
    #[arg(long)]
    pub client_certificate: Option<PathBuf>,
    /// Every subscription expires this soon after creation or renewal (e.g. 8s), to exercise renewals.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub lifetime_override: Option<Duration>,
    /// At most this many subscriptions for the app, whatever the kinds' own quotas (a test knob).
    #[arg(long)]
    pub quota: Option<usize>,
    /// First retry delay after a failed delivery; doubles each time.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub retry_base_delay: Duration,
}

#[derive(Subcommand)]
pub enum EmulateCommand {
    /// Send change notifications for active subscriptions.
    Trigger {
        #[arg(long, default_value = "http://127.0.0.1:8790")]
        emulator: String,
        #[arg(long)]
        subscription_id: Option<String>,
        /// Row label or resource type (e.g. message, chatMessage, "Teams team").
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        change_type: Option<String>,
        #[arg(long, default_value_t = 1)]
        count: usize,
    },
    /// Send a lifecycle event (missed, subscriptionRemoved, reauthorizationRequired).
    Lifecycle {
        #[arg(long, default_value = "http://127.0.0.1:8790")]
        emulator: String,
        #[arg(long)]
        subscription_id: String,
        #[arg(long)]
        event: String,
        /// Send it even where Graph never sends that event for the subscription's kind.
        #[arg(long)]
        force: bool,
    },
    /// Complete a device-code sign-in.
    Approve {
        #[arg(long, default_value = "http://127.0.0.1:8790")]
        emulator: String,
        #[arg(long)]
        user_code: String,
        #[arg(long, default_value = "delegated-work", value_parser = parse_permission)]
        account: Permission,
    },
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "GRAPH_RELAY_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// A second address, for the edge's Publish calls only, served on a thread of its own so
    /// the edge's acks never wait behind subscriber streams (Subscribe is refused there).
    #[arg(long, env = "GRAPH_RELAY_INGEST_LISTEN")]
    pub ingest_listen: Option<SocketAddr>,
    /// Serve Prometheus metrics over HTTP at GET /metrics on this address
    /// (keep it inside the monitoring network).
    #[arg(long, env = "GRAPH_RELAY_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Bearer token the edge must present to Publish (at least 16 characters).
    #[arg(long, env = "GRAPH_RELAY_INGEST_TOKEN", hide_env_values = true)]
    pub ingest_token: String,
    /// Subscribers file (TOML): hashed tokens and their scopes.
    #[arg(long, env = "GRAPH_RELAY_SUBSCRIBERS")]
    pub subscribers: Option<PathBuf>,
    /// One subscriber token with every right (single team, `make dev`).
    #[arg(long, env = "GRAPH_RELAY_SUBSCRIBER_TOKEN", hide_env_values = true)]
    pub subscriber_token: Option<String>,
    /// Private key for rich notifications: CERTIFICATE_ID=PATH.pem (repeatable; old and new during rotation).
    #[arg(long = "decryption-key", env = "GRAPH_RELAY_DECRYPTION_KEYS", value_delimiter = ',')]
    pub decryption_keys: Vec<String>,
    /// Events a live subscriber may hold in memory before it reads from the log instead.
    #[arg(long, env = "GRAPH_RELAY_SUBSCRIBER_BUFFER", default_value_t = 4096)]
    pub subscriber_buffer: usize,
    /// TLS certificate chain (PEM) for the listener.
    #[arg(long, env = "GRAPH_RELAY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for the listener.
    #[arg(long, env = "GRAPH_RELAY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) whose client certificates are required: mutual TLS.
    #[arg(long, env = "GRAPH_RELAY_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Directory of the durable log.
    #[arg(long, env = "GRAPH_RELAY_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Log keys, one per line (64 hex characters, e.g. `openssl rand -hex 32`; the first seals): seals the log at rest.
    #[arg(long, env = "GRAPH_RELAY_LOG_KEY_FILE")]
    pub log_key_file: Option<PathBuf>,
    /// Events older than this are removed (e.g. 7d, 12h).
    #[arg(long, env = "GRAPH_RELAY_RETENTION_MAX_AGE", default_value = "7d", value_parser = humantime::parse_duration)]
    pub retention_max_age: Duration,
    /// The oldest events are removed while the log is larger than this (e.g. 10GiB, 500MB).
    #[arg(long, env = "GRAPH_RELAY_RETENTION_MAX_BYTES", default_value = "10GiB")]
    pub retention_max_bytes: ByteSize,
    /// Memory for the log's page cache (e.g. 64MiB); bounds what replaying subscribers cost.
    #[arg(long, env = "GRAPH_RELAY_CACHE_SIZE", default_value = "64MiB")]
    pub cache_size: ByteSize,
    /// Memory for log groups shared by subscribers catching up together (0 turns it off).
    #[arg(long, env = "GRAPH_RELAY_SHARED_GROUPS_SIZE", default_value = "32MiB")]
    pub shared_groups_size: ByteSize,
    /// A delivery stored again within this window is a duplicate (Graph retries for 4 h).
    #[arg(long, env = "GRAPH_RELAY_DEDUP_WINDOW", default_value = "6h", value_parser = humantime::parse_duration)]
    pub dedup_window: Duration,
    /// Most delivery ids the dedup index keeps in memory (60–100 bytes each); past it the oldest go early.
    #[arg(long, env = "GRAPH_RELAY_DEDUP_MAX_KEYS", default_value_t = 2_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub dedup_max_keys: u64,
    /// Connections each port holds at once; more wait in the kernel's backlog.
    #[arg(long, env = "GRAPH_RELAY_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
    /// A connection that sends nothing for this long after connecting is closed.
    #[arg(long, env = "GRAPH_RELAY_FIRST_BYTE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub first_byte_timeout: Duration,
    /// Close connections this old (after 30 s of grace), so long-lived subscriber streams spread
    /// again over replicas behind a balancer; subscribers resume from their cursor (e.g. 30m).
    #[arg(long, env = "GRAPH_RELAY_MAX_CONNECTION_AGE", value_parser = humantime::parse_duration)]
    pub max_connection_age: Option<Duration>,
    /// HTTP/2 streams (calls) one connection may have open at once.
    #[arg(long, env = "GRAPH_RELAY_MAX_STREAMS_PER_CONNECTION", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams_per_connection: u32,
    /// Subscriptions file: keep Graph's subscriptions in line with it (create, renew, react to lifecycle events).
    #[arg(long, env = "GRAPH_RELAY_SUBSCRIPTIONS_FILE")]
    pub subscriptions_file: Option<PathBuf>,
    #[command(flatten)]
    pub shared: SharedLogArgs,
}

/// Where the log lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogBackend {
    /// On this machine's disk (redb, in --data-dir): one replica.
    Redb,
    /// A NATS JetStream stream shared by several replicas (--data-dir holds this replica's copy).
    Nats,
}

/// `--log nats` and its NATS options.
#[derive(Args)]
pub struct SharedLogArgs {
    /// Where the log lives: `redb` (embedded, the default) or `nats` (shared by several replicas).
    #[arg(long = "log", env = "GRAPH_RELAY_LOG", value_enum, default_value_t = LogBackend::Redb)]
    pub backend: LogBackend,
    /// NATS server URLs, comma-separated (e.g. nats://h1:4222,nats://h2:4222); required with --log nats.
    #[arg(long, env = "GRAPH_RELAY_NATS_URL", value_delimiter = ',', required_if_eq("backend", "nats"))]
    pub nats_url: Vec<String>,
    /// The JetStream stream holding the events (its KV buckets are named after it).
    #[arg(long, env = "GRAPH_RELAY_NATS_STREAM", default_value = "graph-relay-events", value_parser = parse_stream_name)]
    pub nats_stream: String,
    /// Copies of the stream the NATS cluster keeps (1, 3 or 5; 3 in production).
    #[arg(long, env = "GRAPH_RELAY_NATS_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub nats_replicas: u8,
    /// A NATS credentials file (.creds: JWT and NKey seed).
    #[arg(long, env = "GRAPH_RELAY_NATS_CREDENTIALS")]
    pub nats_credentials: Option<PathBuf>,
    /// CA (PEM) for the NATS servers' TLS certificates (requires TLS).
    #[arg(long, env = "GRAPH_RELAY_NATS_TLS_CA")]
    pub nats_tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for NATS mutual TLS.
    #[arg(long, env = "GRAPH_RELAY_NATS_TLS_CERT", requires = "nats_tls_key")]
    pub nats_tls_cert: Option<PathBuf>,
    /// Client key (PEM) for NATS mutual TLS.
    #[arg(long, env = "GRAPH_RELAY_NATS_TLS_KEY", requires = "nats_tls_cert")]
    pub nats_tls_key: Option<PathBuf>,
    /// How long the reconciler's lease lasts unrenewed: another replica takes over within it.
    #[arg(long, env = "GRAPH_RELAY_NATS_LEASE", default_value = "15s", value_parser = parse_lease)]
    pub nats_lease: Duration,
}

/// JetStream stream names: no spaces, dots, `*`, `>` or path separators.
fn parse_stream_name(name: &str) -> Result<String, String> {
    let valid =
        !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    valid
        .then(|| name.to_owned())
        .ok_or_else(|| format!("{name:?}: a stream name takes letters, digits, - and _ (at most 64)"))
}

/// At least 3 s: the lease is renewed every third of it.
fn parse_lease(text: &str) -> Result<Duration, String> {
    let lease = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    (lease >= Duration::from_secs(3)).then_some(lease).ok_or_else(|| format!("{text}: the lease is at least 3s"))
}

#[derive(Args)]
pub struct TailArgs {
    /// The fan-out's URL.
    #[arg(long, env = "GRAPH_RELAY_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// Subscriber token.
    #[arg(long, env = "GRAPH_RELAY_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Resource glob, e.g. 'users/*/messages/*' (repeatable).
    #[arg(long = "resource")]
    pub resources: Vec<String>,
    /// created, updated or deleted (repeatable).
    #[arg(long = "change-type")]
    pub change_types: Vec<String>,
    /// Graph subscription id (repeatable).
    #[arg(long = "subscription-id")]
    pub subscription_ids: Vec<String>,
    /// Tenant id (repeatable).
    #[arg(long = "tenant-id")]
    pub tenant_ids: Vec<String>,
    /// missed, subscriptionRemoved or reauthorizationRequired (repeatable).
    #[arg(long = "lifecycle-event")]
    pub lifecycle_events: Vec<String>,
    /// Replay stored events after this sequence first (0: everything retained).
    #[arg(long)]
    pub after_sequence: Option<u64>,
    /// `readable`: a line per event for people (the default on a terminal);
    /// `json`: a JSON object per line (the default when piped).
    #[arg(long, value_enum, default_value_t = TailFormat::Auto)]
    pub format: TailFormat,
    /// Same as `--format json`.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TailFormat {
    Auto,
    Readable,
    Json,
}
