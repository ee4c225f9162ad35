//! `graph-relay`: the fan-out server and its command-line tools.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};
use graph_relay_fanout::{auth::BearerToken, server, shutdown, tail};
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
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "GRAPH_RELAY_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Bearer token the edge must present to Publish (at least 16 characters).
    #[arg(long, env = "GRAPH_RELAY_INGEST_TOKEN", hide_env_values = true)]
    ingest_token: String,
    /// Events a subscriber may have in flight before its stream is ended as lagging.
    #[arg(long, env = "GRAPH_RELAY_SUBSCRIBER_BUFFER", default_value_t = 4096)]
    subscriber_buffer: usize,
}

#[derive(Args)]
struct TailArgs {
    /// The fan-out's URL.
    #[arg(long, env = "GRAPH_RELAY_SERVER", default_value = "http://127.0.0.1:50051")]
    server: String,
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
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("graph-relay: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let ingest_token = BearerToken::new(&args.ingest_token).map_err(|e| format!("--ingest-token: {e}"))?;
    let config = server::ServeConfig { listen: args.listen, ingest_token, subscriber_buffer: args.subscriber_buffer };
    server::serve(config, shutdown::signal()).await
}

fn tail_config(args: TailArgs) -> tail::TailConfig {
    tail::TailConfig {
        server: args.server,
        filter: Filter {
            resources: args.resources,
            change_types: args.change_types,
            subscription_ids: args.subscription_ids,
            tenant_ids: args.tenant_ids,
            lifecycle_events: args.lifecycle_events,
        },
    }
}
