//! `graph-relay`: the fan-out server and its command-line tools. The
//! arguments are defined in `cli`; this runs what they ask for.

use clap::Parser;
use graph_relay_fanout::auth::BearerToken;
use graph_relay_fanout::cli::args::{
    Cli, Command, EmulateArgs, EmulateCommand, LogBackend, ServeArgs, SharedLogArgs, SubscriptionsCommand, TailArgs,
    TailFormat,
};
use graph_relay_fanout::cli::{emulator as remote, subscriptions as commands, tail};
use graph_relay_fanout::ingest::decrypt::Keyring;
use graph_relay_fanout::jetstream::NatsOptions;
use graph_relay_fanout::server::{self, shutdown};
use graph_relay_log::{seal::LogKeys, store::Retention};
use graph_relay_proto::v1::Filter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    graph_relay_fanout::cli::logging::init(cli.log_format);
    let result = match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::Tail(args) => tail::run(tail_config(args)).await,
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
        SubscriptionsCommand::Kinds { json } => {
            println!("{}", graph_relay_fanout::graph::kinds::render(json));
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
        Some(EmulateCommand::Lifecycle { emulator, subscription_id, event, force }) => {
            let body = json!({"subscription_id": subscription_id, "event": event, "force": force});
            remote::post(&emulator, "lifecycle", &body).await
        }
        Some(EmulateCommand::Approve { emulator, user_code, account }) => {
            remote::post(&emulator, "device/approve", &json!({"user_code": user_code, "account": account})).await
        }
        None => run_emulator(args).await,
    }
}

/// `graph-relay emulate` itself: a local Microsoft Graph.
#[cfg(feature = "emulator")]
async fn run_emulator(args: EmulateArgs) -> Result<(), Box<dyn std::error::Error>> {
    let config = graph_relay_fanout::emulator::EmulatorConfig {
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

#[cfg(not(feature = "emulator"))]
async fn run_emulator(_: EmulateArgs) -> Result<(), Box<dyn std::error::Error>> {
    Err("this graph-relay was built without the emulator (cargo feature `emulator`)".into())
}

fn hash_token() -> Result<(), Box<dyn std::error::Error>> {
    let mut token = String::new();
    std::io::stdin().read_line(&mut token)?;
    println!("{}", graph_relay_fanout::auth::access::hash_token(&token));
    Ok(())
}

async fn serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let ingest_token = BearerToken::new(&args.ingest_token).map_err(|e| format!("--ingest-token: {e}"))?;
    let subscriber_token = args.subscriber_token.as_deref().map(BearerToken::new).transpose();
    let sources = server::reload::Sources {
        subscribers_file: args.subscribers.clone(),
        subscriber_token: subscriber_token.map_err(|e| format!("--subscriber-token: {e}"))?,
        subscriptions_file: args.subscriptions_file.clone(),
    };
    let access = sources.access()?;
    let mut keyring = Keyring::default();
    for entry in &args.decryption_keys {
        let (id, path) = entry.split_once('=').ok_or("--decryption-key takes CERTIFICATE_ID=PATH")?;
        keyring.add_pem_file(id.trim(), std::path::Path::new(path.trim()))?;
    }
    let retention = Retention {
        max_age_ms: args.retention_max_age.as_millis() as u64,
        max_bytes: args.retention_max_bytes.as_u64(),
        dedup_window_ms: args.dedup_window.as_millis() as u64,
        dedup_max_keys: usize::try_from(args.dedup_max_keys).unwrap_or(usize::MAX),
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
        ingest_listen: args.ingest_listen,
        metrics_listen: args.metrics_listen,
        ingest_token,
        access,
        sources,
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
        shared_log: shared_log(args.shared),
        limits: server::ServerLimits {
            connections: server::listener::ConnectionLimits {
                max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
                first_byte_timeout: args.first_byte_timeout,
            },
            streams_per_connection: args.max_streams_per_connection,
            max_connection_age: args.max_connection_age,
        },
    };
    server::serve(config, shutdown::signal()).await
}

/// The shared log's options, with `--log nats`.
fn shared_log(args: SharedLogArgs) -> Option<NatsOptions> {
    (args.backend == LogBackend::Nats).then(|| NatsOptions {
        urls: args.nats_url,
        stream: args.nats_stream,
        replicas: usize::from(args.nats_replicas),
        credentials: args.nats_credentials,
        tls_ca: args.nats_tls_ca,
        tls_client: args.nats_tls_cert.zip(args.nats_tls_key),
        lease: args.nats_lease,
    })
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
        output: tail::Output::choose(if args.json { TailFormat::Json } else { args.format }),
    }
}
