//! The quick route's glue (see `crate::intake`): a class the Worker's
//! JavaScript (`quick_route.mjs`, called by `entry.mjs`) drives, one
//! instance per notification POST, every step a synchronous call except the
//! queue send it awaits.
//!
//! It calls, in order: [`NotificationIntake::start`] (no instance:
//! the full route), [`NotificationIntake::accept`] with the body, then for
//! items to queue [`NotificationIntake::send`] and
//! [`NotificationIntake::finish`]; it answers with `status` and `text`, or,
//! for a body handed back, with [`NotificationIntake::full`].

use std::rc::Rc;

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::js_sys::{Array, Promise};
use worker::worker_sys::Context as JsContext;
use worker::{console_error, console_log, Context, Env, Queue};

use super::config::{self, Config};
use super::jwks::JwksSource;
use super::storage;
use super::{describe, now_ms, queue};
use crate::delivery::RequestId;
use crate::inbound::Reply;
use crate::intake::{Accepted, Intake};
use crate::pipeline::LogLine;
use crate::validation_tokens;

/// [`NotificationIntake::accept`]'s verdicts (the entry names them alike).
const ANSWER: u8 = 0;
const SEND: u8 = 1;
const FULL: u8 = 2;

/// One notification POST on the quick route.
#[wasm_bindgen]
pub struct NotificationIntake {
    /// Taken by `finish`.
    intake: Option<Intake>,
    env: Env,
    /// The isolate's settings, looked up once per request.
    config: Rc<Config>,
    /// The producer binding the items go to.
    queue: Queue,
    /// The answer, once known.
    reply: Reply,
    /// The messages for the queue, kept for the fast path after the answer.
    messages: Vec<Vec<u8>>,
    /// How long the send may take, in milliseconds.
    deadline_ms: f64,
    /// Whether the fast path runs (`FAST_PATH`).
    fast_path: bool,
}

#[wasm_bindgen]
impl NotificationIntake {
    /// The quick route for this request, or `undefined` when it takes the
    /// full one: not a plain notification POST, synchronous mode (no queue
    /// binding), or settings that do not parse (the full route says which).
    pub fn start(
        method: &str,
        url: &str,
        content_type: Option<String>,
        content_length: Option<String>,
        env: Env,
    ) -> Option<NotificationIntake> {
        let queue = storage::queue(&env)?;
        let config = config::config(&env).ok()?;
        let flags = config::flags(&env);
        let (content_type, content_length) = (content_type.as_deref(), content_length.as_deref());
        let intake = Intake::start(method, url, content_type, content_length, now_ms(), flags.logs_every_request)?;
        Some(Self {
            intake: Some(intake),
            env,
            config,
            queue,
            reply: Reply::accepted(),
            messages: Vec::new(),
            deadline_ms: 0.0,
            fast_path: flags.fast_path,
        })
    }

    /// Takes the body: `0` the answer is ready, `1` there are items to
    /// `send`, `2` the request takes the full route (with this body).
    pub fn accept(&mut self, body: &[u8]) -> u8 {
        let (Some(intake), Ok(request_id)) = (self.intake.as_mut(), RequestId::random()) else { return FULL };
        let (env, client_states) = (&self.env, &self.config.client_states);
        match intake.accept(body, client_states, &request_id, now_ms(), |batch| vouched(env, batch)) {
            Accepted::Answer(reply, line) => {
                log(line);
                self.reply = reply;
                ANSWER
            }
            Accepted::Send { messages, deadline } => {
                (self.messages, self.deadline_ms) = (messages, deadline.as_millis() as f64);
                SEND
            }
            Accepted::Full => FULL,
        }
    }

    /// The full route's answer to a request whose body `accept` parsed
    /// and handed back for its tokens: a promise of the response; nothing
    /// when the full route must read the body afresh (items too large for
    /// a message: the entry hands it the request again, with this body).
    pub fn full(&mut self, ctx: JsContext) -> Option<Promise> {
        let handover = self.intake.take().and_then(Intake::handover)?;
        let env = self.env.clone();
        Some(wasm_bindgen_futures::future_to_promise(async move {
            Ok(super::parsed_route(handover, env, Context::new(ctx)).await?.into())
        }))
    }

    /// Sends the accepted items to the queue: a promise of `true` once it
    /// holds them, `false` when the deadline passed first; it rejects (or
    /// this throws) when the queue refuses them.
    pub fn send(&mut self) -> Result<Promise, JsValue> {
        let bodies: Array = self.messages.iter().map(|bytes| storage::bytes_value(bytes)).collect();
        queue::send_within(self.queue.as_ref(), &bodies, self.deadline_ms)
    }

    /// Takes what the send came to (`true`, `false`, or what it threw) and
    /// sets the answer; returns the fast path's promise, for the request's
    /// `waitUntil`, when it runs.
    pub fn finish(&mut self, sent: JsValue) -> Option<Promise> {
        let intake = self.intake.take()?;
        let outcome = sent.as_bool().ok_or_else(|| describe(sent));
        let held = outcome == Ok(true);
        let (reply, line) = intake.finish(outcome, self.fast_path, now_ms());
        log(line);
        self.reply = reply;
        if !(self.fast_path && held) {
            return None;
        }
        let (target, messages) = (self.config.fanout.clone(), std::mem::take(&mut self.messages));
        Some(wasm_bindgen_futures::future_to_promise(async move {
            queue::fast_path(target, messages).await;
            Ok(JsValue::UNDEFINED)
        }))
    }

    /// The answer's status.
    pub fn status(&self) -> u16 {
        self.reply.status
    }

    /// The answer's plain-text body.
    pub fn text(&self) -> String {
        self.reply.body.clone()
    }
}

/// Whether a batch that needs its validationTokens checked passes on
/// tokens this isolate verified before, with keys still fresh; anything
/// else (a token never seen, a refusal, no keys) is the full route's to
/// decide.
fn vouched(env: &Env, batch: &crate::collection::Batch) -> bool {
    let (Ok(policy), Some(keys)) = (config::policy(env), JwksSource::of(env).fresh()) else { return false };
    let tokens = batch.validation_tokens.as_ref();
    let verdict =
        validation_tokens::check_batch_remembered(tokens, &batch.rich_tenants, &keys, &policy, now_ms() / 1000);
    matches!(verdict, Some(Ok(_)))
}

fn log(line: Option<LogLine>) {
    match line {
        Some(LogLine { text, error: true }) => console_error!("{text}"),
        Some(LogLine { text, error: false }) => console_log!("{text}"),
        None => {}
    }
}
