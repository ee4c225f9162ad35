//! The relay on a shared log (`serve --log nats`): one or two replicas on
//! one `nats-server` with JetStream (file storage, as the `jetstream`
//! system). The publisher calls the first replica; subscribers are spread
//! over the replicas in turn, so with two each replica reads the stream
//! once and serves half of them.
//!
//! "server CPU" and "peak RSS" are the first replica's; NATS's own share
//! is not in them (it is in the `jetstream` rows' figures).

use std::time::Instant;

use crate::measure::{Outcome, ProcStats};
use crate::nats::NatsServer;
use crate::relay::{RelayServer, RelaySink};
use crate::runner::{self, Plan};

/// `system` is what the tables call it: "relay-js" (one replica) or
/// "relay-js-2" (two).
pub async fn run(system: &'static str, replicas: usize, plan: &Plan, origin: Instant) -> Result<Outcome, String> {
    let nats = NatsServer::start().await?;
    let shared = ["--log".to_string(), "nats".into(), "--nats-url".into(), nats.url.clone()];
    let servers: Vec<RelayServer> =
        (0..replicas).map(|_| RelayServer::start_with(plan.setup.log_bytes, &shared)).collect::<Result<_, _>>()?;
    let mut streams = Vec::with_capacity(plan.subscribers);
    for i in 0..plan.subscribers {
        streams.push(servers[i % replicas].subscribe(plan.tenant_of(i), plan.setup.frame_size).await?);
    }
    let first = &servers[0];
    let url = if plan.setup.ingest_port { &first.ingest_url } else { &first.url };
    let connect = RelaySink::connect(url.clone());
    runner::run(system, plan, connect, streams, &ProcStats::new(first.pid()), origin).await
}
