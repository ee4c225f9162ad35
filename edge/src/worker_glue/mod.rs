//! The Worker's event handlers: thin glue from Workers types to the core
//! (`crate::pipeline` decides; this implements its `Platform`).
//!
//! # Layout
//! - `entry.mjs`: the Worker's entry, in JavaScript: the common notification
//!   POST takes the quick route (`quick_route.mjs` driving [`intake`], over
//!   `crate::intake`); every other request comes here.
//! - this file: `#[event(fetch)]`, the full route: reading the request and
//!   writing replies.
//! - [`config`]: settings from `[vars]` and secrets.
//! - [`queue`]: the Cloudflare Queue producer and `#[event(queue)]` consumer.
//! - [`dead_letters`]: parking dead letters in KV, replaying them.
//! - [`jwks`]: the identity platform's signing keys, cached.
//! - [`quarantine`]: batches refused for their validationTokens.
//! - [`operator`]: the `/admin/...` routes.
//! - [`fanout`]: the gRPC-Web `Publish` call over `fetch`.
//! - [`storage`]: the queue and KV bindings, named in one place.
//! - [`webcrypto`]: RS256 signature checks by the runtime's WebCrypto.
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
mod intake;
mod jwks;
mod operator;
mod quarantine;
mod queue;
mod storage;
mod webcrypto;

use std::cell::RefCell;
use std::rc::Rc;

use graph_relay_proto::v1::Notification;
use worker::js_sys;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{console_error, console_log, event, web_sys, Context, Env, Request, Result};

use crate::budget::Budget;
use crate::chunk;
use crate::client_state::ClientStates;
use crate::collection::Batch;
use crate::inbound::{self, Reply, Route};
use crate::intake::Handover;
use crate::pipeline;
use crate::validation_tokens::{Keys, Policy};
use jwks::JwksSource;

// The runtime's own request, not `worker::Request`: converting to that reads
// `request.cf`, an object the runtime builds on access and the edge never
// needs. Only the operator routes convert.
#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, ctx: Context) -> Result<web_sys::Response> {
    let reply = match handle(req, &env, &ctx).await {
        Ok(reply) => reply,
        Err(e) => {
            console_error!("internal error: {e}");
            Reply::text(500, "internal error")
        }
    };
    respond(reply)
}

/// The full route for a POST whose body the quick route parsed, from its
/// token check on.
pub(crate) async fn parsed_route(handover: Handover, env: Env, ctx: Context) -> Result<web_sys::Response> {
    let platform = WorkerPlatform { env: &env, ctx: &ctx, request: RefCell::new(None) };
    let Handover { route, batch, budget, started_ms } = handover;
    respond(pipeline::parsed_post(&platform, route, batch, &budget, started_ms).await)
}

async fn handle(req: web_sys::Request, env: &Env, ctx: &Context) -> Result<Reply> {
    let budget = Budget::starting_at(now_ms());
    let method = req.method();
    let url = req.url();
    let (path, query) = inbound::path_and_query(&url);
    let route = match inbound::route(&method, path) {
        Ok(route) => route,
        Err(reply) => return Ok(reply),
    };
    match route {
        Route::Health => return Ok(inbound::health(&config::problems(env))),
        Route::DeadLetters | Route::ReplayDeadLetters | Route::Quarantine => {
            return operator::handle(route, &Request::from(req), env).await
        }
        Route::Notifications | Route::Lifecycle => {}
    }
    let headers = req.headers();
    let (content_type, content_length) = (headers.get("content-type")?, headers.get("content-length")?);
    let post = pipeline::Post {
        route,
        query,
        content_type: content_type.as_deref(),
        content_length: content_length.as_deref(),
    };
    let platform = WorkerPlatform { env, ctx, request: RefCell::new(Some(req)) };
    Ok(pipeline::notification_post(&platform, post, &budget).await)
}

/// The Worker's side of the request path: its bindings, settings and log.
struct WorkerPlatform<'a> {
    env: &'a Env,
    /// Work that may outlive the answer (the fast path) is handed to it.
    ctx: &'a Context,
    /// Taken when the body is read (once); none when the quick route
    /// parsed it.
    request: RefCell<Option<web_sys::Request>>,
}

impl pipeline::Platform for WorkerPlatform<'_> {
    type Signatures = webcrypto::WebCrypto;

    fn signatures(&self) -> &webcrypto::WebCrypto {
        webcrypto::verifier()
    }

    fn now_ms(&self) -> u64 {
        now_ms()
    }

    fn logs_every_request(&self) -> bool {
        config::flags(self.env).logs_every_request
    }

    fn log(&self, line: &str) {
        console_log!("{line}");
    }

    fn log_error(&self, line: &str) {
        console_error!("{line}");
    }

    fn client_states(&self) -> std::result::Result<Rc<ClientStates>, String> {
        config::config(self.env).map(|config| Rc::clone(&config.client_states))
    }

    fn token_policy(&self) -> std::result::Result<Rc<Policy>, String> {
        config::policy(self.env)
    }

    async fn body(&self) -> std::result::Result<Vec<u8>, String> {
        let request = self.request.borrow_mut().take();
        let request = request.ok_or("the body was read already")?;
        let read = request.array_buffer().map_err(describe)?;
        let buffer = JsFuture::from(read).await.map_err(describe)?;
        Ok(js_sys::Uint8Array::new(&buffer).to_vec())
    }

    async fn keys(&self, budget: &Budget) -> std::result::Result<Rc<Keys>, String> {
        JwksSource::of(self.env).keys(budget).await
    }

    async fn refreshed_keys(&self, budget: &Budget) -> Option<std::result::Result<Rc<Keys>, String>> {
        JwksSource::of(self.env).refresh(budget).await
    }

    async fn quarantine(&self, route: Route, batch: &Batch, reason: &str) {
        quarantine::park(self.env, route, batch, reason, now_ms()).await;
    }

    /// On the queue when bound, else at the fan-out (in as many publishes
    /// as its limits need: a 1 MiB body can hold more items than one
    /// publish may carry).
    async fn deliver(&self, notifications: Vec<Notification>, budget: &Budget) -> std::result::Result<String, String> {
        let config = config::config(self.env)?;
        match storage::queue(self.env) {
            Some(queue) => {
                let fast_path = config::flags(self.env).fast_path;
                let enqueued = queue::enqueue(&queue, &config.fanout, notifications, budget, fast_path).await?;
                if fast_path {
                    self.ctx.wait_until(queue::fast_path(config.fanout.clone(), enqueued.messages));
                }
                Ok(enqueued.summary)
            }
            None => {
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
}

/// The reply as the runtime's own response (a `worker::Response` would be
/// one more conversion per request).
fn respond(reply: Reply) -> Result<web_sys::Response> {
    let headers = web_sys::Headers::new()?;
    headers.set("content-type", "text/plain; charset=utf-8")?;
    headers.set("x-content-type-options", "nosniff")?;
    if let Some(allow) = reply.allow {
        headers.set("allow", allow)?;
    }
    if reply.status == 503 {
        headers.set("retry-after", "10")?;
    }
    let init = web_sys::ResponseInit::new();
    init.set_status(reply.status);
    init.set_headers(&headers);
    Ok(web_sys::Response::new_with_opt_str_and_init(Some(&reply.body), &init)?)
}

/// A JavaScript exception as text, for the glue's errors and log lines.
pub(crate) fn describe(error: JsValue) -> String {
    error
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| error.as_string())
        .unwrap_or_else(|| "an unknown JavaScript error".into())
}

/// The Worker's clock, Unix milliseconds: one place for every step of the glue.
/// `Date.now()` itself: `worker::Date::now()` builds a `Date` object on
/// every call, and the request path asks the time at each step.
pub(crate) fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}
