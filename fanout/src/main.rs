//! `graph-relay`: the fan-out server and its command-line tools.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;

use clap::{Args, Parser, Subcommand};
use graph_relay_fanout::emulator::{remote, EmulatorConfig};
use graph_relay_fanout::graph::{catalog::Permission, commands};
use graph_relay_fanout::{
    access::Access, auth::BearerToken, decrypt::Keyring, seal::LogKeys, server, shutdown, store::Retention, tail,
};
use graph_relay_proto::v1::Filter;

#[derive(Parser)]
#[command(
    name = "graph-relay",
    version,
    about = "Graph Relay fan-out: Microsoft Graph notifications to internal gRPC subscribers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the fan-out server (gRPC and gRPC-Web on one port).
    Serve(ServeArgs),
    /// Subscribe and print every matching event as one JSON line.
    Tail(TailArgs),
    /// Measure the real server in process over loopback (see BENCHMARKS.md).
    Bench(BenchArgs),
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

fn parse_permission(text: &str) -> Result<Permission, String> {
    match text {
        "application" => Ok(Permission::Application),
        "delegated-work" => Ok(Permission::DelegatedWork),
        "delegated-personal" => Ok(Permission::DelegatedPersonal),
        other => Err(format!("{other:?}: use application, delegated-work or delegated-personal")),
    }
}

#[derive(Args)]
struct SubscriptionsArgs {
    #[command(subcommand)]
    which: SubscriptionsCommand,
}

#[derive(Subcommand)]
enum SubscriptionsCommand {
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
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct EmulateArgs {
    #[command(subcommand)]
    which: Option<EmulateCommand>,
    #[arg(long, default_value = "127.0.0.1:8790")]
    listen: SocketAddr,
    #[arg(long, default_value = "00000000-0000-0000-0000-0000000000aa")]
    tenant_id: String,
    #[arg(long, default_value = "00000000-0000-0000-0000-0000000000bb")]
    client_id: String,
    /// The app's client secret.
    #[arg(long, env = "GRAPH_RELAY_EMULATOR_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// The app's certificate (PEM), for certificate credentials.
    #[arg(long)]
    client_certificate: Option<PathBuf>,
    /// Every subscription expires this soon after creation or renewal (e.g. 8s), to exercise renewals.
    #[arg(long, value_parser = humantime::parse_duration)]
    lifetime_override: Option<Duration>,
    /// Subscriptions the app may hold before 403.
    #[arg(long, default_value_t = 100)]
    quota: usize,
    /// First retry delay after a failed delivery; doubles each time.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    retry_base_delay: Duration,
}

#[derive(Subcommand)]
enum EmulateCommand {
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
struct BenchArgs {
    #[command(subcommand)]
    which: BenchCommand,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Durable Publish throughput/latency with group commit, then replay speed.
    Durable {
        /// Notifications per run.
        #[arg(long, default_value_t = 100_000)]
        notifications: usize,
        /// Notifications per Publish call.
        #[arg(long, default_value_t = 10)]
        batch: usize,
        /// Concurrent publishers, one run per value.
        #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
        publishers: Vec<usize>,
        /// Seal the log with a random log key (the cost of --log-key-file).
        #[arg(long)]
        sealed: bool,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "GRAPH_RELAY_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Bearer token the edge must present to Publish (at least 16 characters).
    #[arg(long, env = "GRAPH_RELAY_INGEST_TOKEN", hide_env_values = true)]
    ingest_token: String,
    /// Subscribers file (TOML): hashed tokens and their scopes.
    #[arg(long, env = "GRAPH_RELAY_SUBSCRIBERS")]
    subscribers: Option<PathBuf>,
    /// One subscriber token with every right (single team, `make dev`).
    #[arg(long, env = "GRAPH_RELAY_SUBSCRIBER_TOKEN", hide_env_values = true)]
    subscriber_token: Option<String>,
    /// Private key for rich notifications: CERTIFICATE_ID=PATH.pem (repeatable; old and new during rotation).
    #[arg(long = "decryption-key", env = "GRAPH_RELAY_DECRYPTION_KEYS", value_delimiter = ',')]
    decryption_keys: Vec<String>,
    /// Events a live subscriber may hold in memory before it reads from the log instead.
    #[arg(long, env = "GRAPH_RELAY_SUBSCRIBER_BUFFER", default_value_t = 4096)]
    subscriber_buffer: usize,
    /// TLS certificate chain (PEM) for the listener.
    #[arg(long, env = "GRAPH_RELAY_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for the listener.
    #[arg(long, env = "GRAPH_RELAY_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// CA (PEM) whose client certificates are required: mutual TLS.
    #[arg(long, env = "GRAPH_RELAY_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// Directory of the durable log.
    #[arg(long, env = "GRAPH_RELAY_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Log keys, one per line (64 hex characters, e.g. `openssl rand -hex 32`; the first seals): seals the log at rest.
    #[arg(long, env = "GRAPH_RELAY_LOG_KEY_FILE")]
    log_key_file: Option<PathBuf>,
    /// Events older than this are removed (e.g. 7d, 12h).
    #[arg(long, env = "GRAPH_RELAY_RETENTION_MAX_AGE", default_value = "7d", value_parser = humantime::parse_duration)]
    retention_max_age: Duration,
    /// The oldest events are removed while the log is larger than this (e.g. 10GiB, 500MB).
    #[arg(long, env = "GRAPH_RELAY_RETENTION_MAX_BYTES", default_value = "10GiB")]
    retention_max_bytes: ByteSize,
    /// Memory for the log's page cache (e.g. 64MiB); bounds what replaying subscribers cost.
    #[arg(long, env = "GRAPH_RELAY_CACHE_SIZE", default_value = "64MiB")]
    cache_size: ByteSize,
    /// Memory for log groups shared by subscribers catching up together (0 turns it off).
    #[arg(long, env = "GRAPH_RELAY_SHARED_GROUPS_SIZE", default_value = "32MiB")]
    shared_groups_size: ByteSize,
    /// A notification stored again within this window is a duplicate (Graph retries for 4 h).
    #[arg(long, env = "GRAPH_RELAY_DEDUP_WINDOW", default_value = "6h", value_parser = humantime::parse_duration)]
    dedup_window: Duration,
    /// Subscriptions file: keep Graph's subscriptions in line with it (create, renew, react to lifecycle events).
    #[arg(long, env = "GRAPH_RELAY_SUBSCRIPTIONS_FILE")]
    subscriptions_file: Option<PathBuf>,
}

#[derive(Args)]
struct TailArgs {
    /// The fan-out's URL.
    #[arg(long, env = "GRAPH_RELAY_SERVER", default_value = "http://127.0.0.1:50051")]
    server: String,
    /// Subscriber token.
    #[arg(long, env = "GRAPH_RELAY_TOKEN", hide_env_values = true)]
    token: String,
    /// Resource glob, e.g. 'users/*/messages/*' (repeatable).
    #[arg(long = "resource")]
    resources: Vec<String>,
    /// created, updated or deleted (repeatable).
    #[arg(long = "change-type")]
    change_types: Vec<String>,
    /// Graph subscription id (repeatable).
    #[arg(long = "subscription-id")]
    subscription_ids: Vec<String>,
    /// Tenant id (repeatable).
    #[arg(long = "tenant-id")]
    tenant_ids: Vec<String>,
    /// missed, subscriptionRemoved or reauthorizationRequired (repeatable).
    #[arg(long = "lifecycle-event")]
    lifecycle_events: Vec<String>,
    /// Replay stored events after this sequence first (0: everything retained).
    #[arg(long)]
    after_sequence: Option<u64>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let result = match Cli::parse().command {
        Command::Serve(args) => serve(args).await,
        Command::Tail(args) => tail::run(tail_config(args)).await,
        Command::Bench(args) => bench(args).await,
        Command::HashToken => hash_token(),
        Command::Subscriptions(args) => subscriptions(args.which).await,
        Command::Login { file, account } => commands::login(&file, account).await,
        Command::Emulate(args) => emulate(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("graph-relay: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn subscriptions(which: SubscriptionsCommand) -> Result<(), Box<dyn std::error::Error>> {
    let ok = match which {
        SubscriptionsCommand::Check { file } => commands::check(&file)?,
        SubscriptionsCommand::Sync { file, data_dir } => commands::sync(&file, &data_dir).await?,
        SubscriptionsCommand::List { data_dir } => {
            commands::list(&data_dir)?;
            true
        }
    };
    if ok {
        Ok(())
    } else {
        Err("see above".into())
    }
}

async fn emulate(args: EmulateArgs) -> Result<(), Box<dyn std::error::Error>> {
    use serde_json::json;
    match args.which {
        Some(EmulateCommand::Trigger { emulator, subscription_id, kind, change_type, count }) => {
            let body =
                json!({"subscription_id": subscription_id, "kind": kind, "change_type": change_type, "count": count});
            remote::post(&emulator, "trigger", &body).await
        }
        Some(EmulateCommand::Lifecycle { emulator, subscription_id, event }) => {
            remote::post(&emulator, "lifecycle", &json!({"subscription_id": subscription_id, "event": event})).await
        }
        Some(EmulateCommand::Approve { emulator, user_code, account }) => {
            remote::post(&emulator, "device/approve", &json!({"user_code": user_code, "account": account})).await
        }
        None => {
            let config = EmulatorConfig {
                listen: args.listen,
                tenant_id: args.tenant_id,
                client_id: args.client_id,
                client_secret: args.client_secret,
                client_certificate: args.client_certificate,
                lifetime_override: args.lifetime_override,
                quota: args.quota,
                retry_base_delay: args.retry_base_delay,
            };
            graph_relay_fanout::emulator::run(config, shutdown::signal()).await
        }
    }
}

fn hash_token() -> Result<(), Box<dyn std::error::Error>> {
    let mut token = String::new();
    std::io::stdin().read_line(&mut token)?;
    println!("{}", graph_relay_fanout::access::hash_token(&token));
    Ok(())
}

async fn serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let ingest_token = BearerToken::new(&args.ingest_token).map_err(|e| format!("--ingest-token: {e}"))?;
    let mut access = match &args.subscribers {
        Some(path) => Access::load(path)?,
        None => Access::default(),
    };
    if let Some(token) = &args.subscriber_token {
        BearerToken::new(token).map_err(|e| format!("--subscriber-token: {e}"))?;
        access.add_full_access("subscriber-token", token);
    }
    if access.is_empty() {
        return Err("no subscriber may connect: give --subscribers FILE and/or --subscriber-token".into());
    }
    let mut keyring = Keyring::default();
    for entry in &args.decryption_keys {
        let (id, path) = entry.split_once('=').ok_or("--decryption-key takes CERTIFICATE_ID=PATH")?;
        keyring.add_pem_file(id.trim(), std::path::Path::new(path.trim()))?;
    }
    let retention = Retention {
        max_age_ms: args.retention_max_age.as_millis() as u64,
        max_bytes: args.retention_max_bytes.as_u64(),
        dedup_window_ms: args.dedup_window.as_millis() as u64,
        cache_bytes: usize::try_from(args.cache_size.as_u64()).unwrap_or(usize::MAX),
        shared_groups_bytes: usize::try_from(args.shared_groups_size.as_u64()).unwrap_or(usize::MAX),
    };
    // Before the port is bound: a bad subscriptions file stops the start.
    let reconciler = match &args.subscriptions_file {
        Some(file) => Some(commands::reconciler(file, &args.data_dir)?),
        None => None,
    };
    let config = server::ServeConfig {
        listen: args.listen,
        ingest_token,
        access,
        keyring,
        subscriber_buffer: args.subscriber_buffer,
        data_dir: args.data_dir,
        log_keys: args.log_key_file.as_deref().map(LogKeys::read).transpose()?,
        tls: args.tls_cert.zip(args.tls_key).map(|(cert, key)| server::TlsFiles {
            cert,
            key,
            client_ca: args.tls_client_ca,
        }),
        retention,
        reconciler,
    };
    server::serve(config, shutdown::signal()).await
}

async fn bench(args: BenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    match args.which {
        BenchCommand::Durable { notifications, batch, publishers, sealed } => {
            graph_relay_fanout::bench::durable(graph_relay_fanout::bench::DurableBench {
                notifications,
                batch,
                publishers,
                sealed,
            })
            .await
            .map_err(|e| e.to_string().into())
        }
    }
}

fn tail_config(args: TailArgs) -> tail::TailConfig {
    tail::TailConfig {
        server: args.server,
        token: args.token,
        filter: Filter {
            resources: args.resources,
            change_types: args.change_types,
            subscription_ids: args.subscription_ids,
            tenant_ids: args.tenant_ids,
            lifecycle_events: args.lifecycle_events,
        },
        after_sequence: args.after_sequence,
    }
}
