//! The quick route's glue (see `crate::intake`): a class the Worker's
//! JavaScript (`quick_route.mjs`, called by `entry.mjs`) drives, one
//! instance per notification POST, every step a synchronous call except the
//! queue send it awaits.
//!
//! It calls, in order: [`NotificationIntake::start`] (no instance:
//! the full route), [`NotificationIntake::accept`] with the body (for tokens
//! seen for the first time, it awaits [`NotificationIntake::verifying`] and
//! hands the outcome to [`NotificationIntake::verified`]), then for items to
//! queue [`NotificationIntake::send`] and [`NotificationIntake::finish`]; it
//! answers with `status` and `text`, or, for a body handed back, with
//! [`NotificationIntake::full`].

use std::rc::Rc;

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::js_sys::{Array, Promise};
use worker::wasm_bindgen::JsCast;
use worker::worker_sys::Context as JsContext;
use worker::{console_error, console_log, Context, Env, Queue};

use super::config::{self, Config};
use super::jwks::JwksSource;
use super::{describe, now_ms, queue};
use super::{storage, webcrypto};
use crate::collection::Batch;
use crate::delivery::RequestId;
use crate::inbound::Reply;
use crate::intake::{Accepted, Intake, Tokens};
use crate::pipeline::LogLine;
use crate::validation_tokens::{self, Keys, Policy, TokenChecks};

/// [`NotificationIntake::accept`]'s verdicts (the entry names them alike).
const ANSWER: u8 = 0;
const SEND: u8 = 1;
const FULL: u8 = 2;
const VERIFY: u8 = 3;

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
    /// Tokens seen for the first time, their signatures being checked.
    pending: Option<PendingTokens>,
}

/// A batch's tokens while WebCrypto checks their signatures.
struct PendingTokens {
    checks: TokenChecks,
    /// The keys and policy they are checked with, kept for the verdict.
    keys: Rc<Keys>,
    policy: Rc<Policy>,
    /// All the signatures' promises in one: an array of booleans.
    verifying: Promise,
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
            pending: None,
        })
    }

    /// Takes the body: `0` the answer is ready, `1` there are items to
    /// `send`, `2` the request takes the full route (with this body), `3`
    /// token signatures are being checked (`verifying`, then `verified`).
    pub fn accept(&mut self, body: &[u8]) -> u8 {
        let (Some(intake), Ok(request_id)) = (self.intake.as_mut(), RequestId::random()) else { return FULL };
        let (env, client_states) = (&self.env, &self.config.client_states);
        let mut pending = None;
        let accepted = intake.accept(body, client_states, &request_id, now_ms(), |batch| {
            let (tokens, checking) = quick_tokens(env, batch);
            pending = checking;
            tokens
        });
        self.pending = pending;
        self.take(accepted)
    }

    /// The signatures' checks `accept` started: a promise of an array of
    /// booleans, one per signature.
    pub fn verifying(&self) -> Option<Promise> {
        self.pending.as_ref().map(|pending| pending.verifying.clone())
    }

    /// Takes what `verifying` came to (its array, or what it threw) and
    /// goes on as `accept` does.
    pub fn verified(&mut self, outcome: JsValue) -> u8 {
        let (Some(intake), Some(pending)) = (self.intake.as_mut(), self.pending.take()) else { return FULL };
        let verdicts: Vec<Result<bool, String>> = match outcome.dyn_ref::<Array>() {
            Some(verdicts) => verdicts.iter().map(|v| v.as_bool().ok_or_else(|| describe(v))).collect(),
            None => vec![Err(describe(outcome))],
        };
        let now = now_ms();
        let passed = |batch: &Batch| {
            let PendingTokens { checks, keys, policy, .. } = pending;
            checks.conclude(verdicts, &batch.rich_tenants, &keys, &policy, now / 1000).is_ok()
        };
        let accepted = intake.verified(passed, now);
        self.take(accepted)
    }

    /// Keeps what `accept` or `verified` decided, and says it as a number.
    fn take(&mut self, accepted: Accepted) -> u8 {
        match accepted {
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
            Accepted::Verify => VERIFY,
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

/// What the quick route makes of a batch's validationTokens: passed when
/// each was verified before with keys still fresh; being checked when the
/// rest need only signatures WebCrypto can check with keys it imported
/// already (the promises start here); anything else (a token refused, no
/// fresh keys, a key to import) is the full route's to decide.
fn quick_tokens(env: &Env, batch: &Batch) -> (Tokens, Option<PendingTokens>) {
    let (Ok(policy), Some(keys)) = (config::policy(env), JwksSource::of(env).fresh()) else {
        return (Tokens::Unknown, None);
    };
    let (tokens, tenants, now) = (batch.validation_tokens.as_ref(), &batch.rich_tenants, now_ms() / 1000);
    let Ok(checks) = validation_tokens::take_apart(tokens, tenants, &keys, &policy, now) else {
        return (Tokens::Unknown, None);
    };
    if checks.refused() {
        return (Tokens::Unknown, None);
    }
    if checks.signatures().next().is_none() {
        let passed = checks.conclude(Vec::new(), tenants, &keys, &policy, now).is_ok();
        return (if passed { Tokens::Vouched } else { Tokens::Unknown }, None);
    }
    let verifier = webcrypto::verifier();
    let started: Option<Array> = checks
        .signatures()
        .map(|token| verifier.start_verify(&token.key, token.signed.as_bytes(), &token.signature))
        .collect();
    match started {
        Some(started) => {
            let verifying = Promise::all(&started);
            (Tokens::Verifying, Some(PendingTokens { checks, keys, policy, verifying }))
        }
        None => (Tokens::Unknown, None),
    }
}

fn log(line: Option<LogLine>) {
    match line {
        Some(LogLine { text, error: true }) => console_error!("{text}"),
        Some(LogLine { text, error: false }) => console_log!("{text}"),
        None => {}
    }
}
