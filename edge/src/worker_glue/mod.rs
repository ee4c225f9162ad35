//! The Worker's event handlers: thin glue from Workers types to the core.
//!
//! # Layout
//! - this file: `#[event(fetch)]`, reading the request and writing replies.
//! - [`config`]: settings from `[vars]` and secrets.
//! - [`queue`]: the Cloudflare Queue producer and `#[event(queue)]` consumer.
//! - [`dead_letters`]: parking dead letters in KV; the operator routes.
//! - [`fanout`]: the gRPC-Web `Publish` call over `fetch`.
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
mod queue;

use graph_relay_proto::v1::Notification;
use worker::{console_error, console_log, event, Context, Env, Request, Response, Result};

use crate::inbound::{self, Reply, Route};
use config::Config;

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
    let method = req.method().to_string();
    let url = req.url()?;
    let route = match inbound::route(&method, url.path()) {
        Ok(route) => route,
        Err(reply) => return Ok(reply),
    };
    match route {
        Route::Health => return Ok(Reply::text(200, "ok")),
        Route::DeadLetters | Route::ReplayDeadLetters => return dead_letters::handle(route, &req, env).await,
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
    let batch = match inbound::accept_body(&body, &config.client_states, now_unix_ms()) {
        Ok(batch) => batch,
        Err(reply) => return Ok(reply),
    };
    for rejection in &batch.rejections {
        console_log!("{}: rejected {rejection}", route.name());
    }
    if batch.notifications.is_empty() {
        return Ok(Reply::accepted());
    }
    match deliver(env, &config, batch.notifications).await {
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

/// Stores the accepted items: on the queue when bound, else at the fan-out.
async fn deliver(env: &Env, config: &Config, notifications: Vec<Notification>) -> std::result::Result<String, String> {
    match env.queue(queue::BINDING) {
        Ok(queue) => queue::enqueue(&queue, &config.fanout, notifications).await,
        Err(_) => {
            let reply = fanout::publish(&config.fanout, notifications, fanout::SYNC_TIMEOUT).await?;
            Ok(format!("forwarded: {} stored, {} duplicates", reply.stored, reply.duplicates))
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
