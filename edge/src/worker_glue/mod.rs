//! The Worker's event handlers: thin glue from Workers types to the core.
//!
//! # Layout
//! - this file: `#[event(fetch)]`, reading the request and writing replies.
//! - [`config`]: settings from `[vars]` and secrets.
//! - [`queue`]: the Cloudflare Queue producer and `#[event(queue)]` consumer.
//! - [`dead_letters`]: parking dead letters in KV, replaying them.
//! - [`jwks`]: the identity platform's signing keys, cached.
//! - [`quarantine`]: batches refused for their validationTokens.
//! - [`operator`]: the `/admin/...` routes.
//! - [`fanout`]: the gRPC-Web `Publish` call over `fetch`.
//! - [`storage`]: the queue and KV bindings, named in one place.
//!
//! Two delivery modes: with the `NOTIFICATIONS` queue binding, 202 means
//! "durably queued"; without it (synchronous mode), 202 means "stored by the
//! fan-out". Either way a failure is a 503, so Graph retries.
//!
//! Nothing here may panic on input: a panic can poison the isolate for every
//! later request. All fallible steps return replies or `worker::Error`s.

mod config;
mod dead_letters;
mod fanout;
mod jwks;
mod operator;
mod quarantine;
mod queue;
mod storage;

use graph_relay_proto::v1::Notification;
use worker::{console_error, console_log, event, Context, Env, Request, Response, Result};

use crate::budget::Budget;
use crate::chunk;
use crate::collection::Batch;
use crate::delivery::RequestId;
use crate::inbound::{self, Reply, Route};
use crate::validation_tokens;
use config::{Config, TokenPolicy};
use jwks::JwksSource;

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let reply = match handle(req, &env).await {
        Ok(reply) => reply,
        Err(e) => {
            console_error!("internal error: {e}");
            Reply::text(500, "internal error")
        }
    };
    respond(reply)
}

async fn handle(mut req: Request, env: &Env) -> Result<Reply> {
    let budget = Budget::starting_at(now_unix_ms() as u64);
    let method = req.method().to_string();
    let url = req.url()?;
    let route = match inbound::route(&method, url.path()) {
        Ok(route) => route,
        Err(reply) => return Ok(reply),
    };
    match route {
        Route::Health => return Ok(Reply::text(200, "ok")),
        Route::DeadLetters | Route::ReplayDeadLetters | Route::Quarantine => {
            return operator::handle(route, &req, env).await
        }
        Route::Notifications | Route::Lifecycle => {}
    }
    if let Some(reply) = inbound::handshake(url.query().unwrap_or("")) {
        console_log!("{}: validation handshake answered with {}", route.name(), reply.status);
        return Ok(reply);
    }
    let headers = req.headers();
    if let Err(reply) =
        inbound::check_headers(headers.get("content-type")?.as_deref(), headers.get("content-length")?.as_deref())
    {
        return Ok(reply);
    }
    let config = match Config::from_env(env) {
        Ok(config) => config,
        Err(problem) => {
            console_error!("edge misconfigured: {problem}");
            return Ok(Reply::text(503, "edge is misconfigured; retry later"));
        }
    };
    let body = req.bytes().await?;
    let request_id = match RequestId::random() {
        Ok(id) => id,
        Err(e) => {
            console_error!("{}: {e}", route.name());
            return Ok(Reply::text(503, "no request id could be made; retry later"));
        }
    };
    let batch = match inbound::accept_body(&body, &config.client_states, now_unix_ms(), &request_id) {
        Ok(batch) => batch,
        Err(reply) => return Ok(reply),
    };
    for line in batch.rejection_summary() {
        console_log!("{}: {line}", route.name());
    }
    match check_validation_tokens(env, &batch, &budget).await {
        Ok(()) => {}
        Err(Refusal::Retry(reply)) => return Ok(reply),
        Err(Refusal::Quarantine(reason)) => {
            quarantine::park(env, route, &batch, &reason, now_unix_ms() as u64).await;
            return Ok(Reply::accepted());
        }
    }
    if batch.notifications.is_empty() {
        return Ok(Reply::accepted());
    }
    match deliver(env, &config, batch.notifications, &budget).await {
        Ok(summary) => {
            console_log!("{}: {summary}", route.name());
            Ok(Reply::accepted())
        }
        Err(e) => {
            console_error!("{}: not stored, asking Graph to retry: {e}", route.name());
            Ok(Reply::text(503, "notifications could not be stored; retry later"))
        }
    }
}

/// Why a batch with validationTokens was not let through.
enum Refusal {
    /// We could not check (configuration, keys unavailable): Graph retries.
    Retry(Reply),
    /// The tokens are bad: 202, nothing delivered, recorded.
    Quarantine(String),
}

/// Checks every validationToken before anything of the batch is delivered.
async fn check_validation_tokens(env: &Env, batch: &Batch, budget: &Budget) -> std::result::Result<(), Refusal> {
    if !batch.needs_token_check() {
        return Ok(());
    }
    let policy = TokenPolicy::from_env(env).map_err(|problem| {
        console_error!("edge misconfigured for rich notifications: {problem}");
        Refusal::Retry(Reply::text(503, "edge is misconfigured; retry later"))
    })?;
    let unavailable = |e: String| {
        console_error!("signing keys unavailable: {e}");
        Refusal::Retry(Reply::text(503, "signing keys unavailable; retry later"))
    };
    let source = JwksSource::from_env(env);
    let keys = source.keys(budget).await.map_err(unavailable)?;
    let tokens = batch.validation_tokens.as_ref();
    let now_s = (now_unix_ms() / 1000) as u64;
    let verdict = match validation_tokens::check_batch(tokens, &batch.rich_tenants, &keys, &policy, now_s) {
        Err(e) if e.is_unknown_key() => {
            let Some(refreshed) = source.refresh(budget).await else {
                return Err(unavailable("no time left to refetch them for an unknown kid".to_owned()));
            };
            let keys = refreshed.map_err(unavailable)?;
            validation_tokens::check_batch(tokens, &batch.rich_tenants, &keys, &policy, now_s)
        }
        verdict => verdict,
    };
    verdict.map(|_| ()).map_err(|e| Refusal::Quarantine(e.to_string()))
}

/// Stores the accepted items within the request's budget: on the queue
/// when bound, else at the fan-out (in as many publishes as its limits
/// need: a 1 MiB body can hold more items than one publish may carry).
async fn deliver(
    env: &Env,
    config: &Config,
    notifications: Vec<Notification>,
    budget: &Budget,
) -> std::result::Result<String, String> {
    match env.queue(storage::QUEUE_BINDING) {
        Ok(queue) => queue::enqueue(&queue, &config.fanout, notifications, budget).await,
        Err(_) => {
            let chunks = chunk::split(notifications, chunk::MAX_PUBLISH_BYTES);
            let (mut stored, mut duplicates) = (0, 0);
            for request in chunks.messages {
                let reply = fanout::publish_encoded(&config.fanout, request, budget).await?;
                (stored, duplicates) = (stored + reply.stored, duplicates + reply.duplicates);
            }
            Ok(format!("forwarded: {stored} stored, {duplicates} duplicates"))
        }
    }
}

fn respond(reply: Reply) -> Result<Response> {
    let mut builder = Response::builder()
        .with_status(reply.status)
        .with_header("content-type", "text/plain; charset=utf-8")?
        .with_header("x-content-type-options", "nosniff")?;
    if let Some(allow) = reply.allow {
        builder = builder.with_header("allow", allow)?;
    }
    if reply.status == 503 {
        builder = builder.with_header("retry-after", "10")?;
    }
    Ok(builder.fixed(reply.body.into_bytes()))
}

fn now_unix_ms() -> i64 {
    worker::Date::now().as_millis() as i64
}
