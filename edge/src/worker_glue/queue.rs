//! The Cloudflare Queue between acknowledgement and forwarding.
//!
//! Producer: accepted items are split into messages (see `chunk`) and sent;
//! Graph gets 202 only once every send has resolved. Consumer: each message is
//! one `PublishRequest`, forwarded as is; success acks that message, failure
//! retries it with a growing delay. After the consumer's `max_retries` the
//! runtime moves it to the dead-letter queue (see `dead_letters`).

use std::time::Duration;

use graph_relay_proto::v1::{Notification, PublishRequest};
use prost::Message as _;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use worker::js_sys::{Array, Promise};
use worker::{
    console_error, console_log, event, Context, Env, MessageBatch, MessageExt, Queue, QueueRetryOptionsBuilder, Result,
};

use super::config::{FanoutTarget, RetryPolicy};
use super::storage::{bytes_value, value_bytes};
use super::{dead_letters, fanout};
use super::{describe, now_ms};
use crate::budget::{self, Budget};
use crate::chunk;
use crate::consumer;
use crate::pipeline;

/// The consumer is not racing Graph's 3 s, so it may wait longer.
const CONSUMER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the fast path may take, after the answer went out (the
/// runtime lets `waitUntil` work run for 30 s).
const FAST_PATH_TIMEOUT: Duration = Duration::from_secs(10);

/// What `enqueue` did: a summary for the log, and the queued messages (each
/// an encoded `PublishRequest`) for the fast path.
pub(crate) struct Enqueued {
    pub(crate) summary: String,
    pub(crate) messages: Vec<Vec<u8>>,
}

/// Queues `notifications` within the request's budget; items too large for
/// a message are forwarded to the fan-out right away. The messages are kept
/// for the fast path only when it will run (`keep`).
pub(crate) async fn enqueue(
    queue: &Queue,
    target: &FanoutTarget,
    notifications: Vec<Notification>,
    budget: &Budget,
    keep: bool,
) -> std::result::Result<Enqueued, String> {
    let chunks = chunk::split(notifications, chunk::MAX_MESSAGE_BYTES);
    let messages = chunks.messages.len();
    let queued = if keep { chunks.messages.clone() } else { Vec::new() };
    for batch in chunk::send_batches(chunks.messages) {
        let bodies: Array = batch.iter().map(|bytes| bytes_value(bytes)).collect();
        let timeout = budget.step(now_ms(), budget::ANSWER_WITHIN).ok_or("no time left in this request to queue")?;
        let within = send_within(queue.as_ref(), &bodies, timeout.as_millis() as f64).map_err(send_failed)?;
        if !JsFuture::from(within).await.map_err(send_failed)?.is_truthy() {
            return Err(pipeline::queue_late(timeout));
        }
    }
    let oversized = chunks.oversized.len();
    for request in chunk::split(chunks.oversized, chunk::MAX_PUBLISH_BYTES).messages {
        fanout::publish_encoded(target, request, budget)
            .await
            .map_err(|e| format!("forwarding {oversized} oversized items failed: {e}"))?;
    }
    let summary = pipeline::queued_summary(messages, oversized, keep);
    Ok(Enqueued { summary, messages: queued })
}

// The queue send and its deadline, in JavaScript (`send_within.mjs` says why;
// `edge/tests/send_within.test.mjs` tests it under Node).
#[wasm_bindgen(module = "/src/worker_glue/send_within.mjs")]
extern "C" {
    #[wasm_bindgen(catch)]
    pub(crate) fn send_within(queue: &JsValue, bodies: &Array, ms: f64) -> std::result::Result<Promise, JsValue>;
}

/// A refused or failed send, in words for the log (never a secret: the
/// runtime's error names the queue, not the message).
fn send_failed(error: JsValue) -> String {
    pipeline::queue_refused(&describe(error))
}

/// The fast path: the queued messages published straight to the fan-out,
/// after the 202, inside the request's `waitUntil`. The queue stays the
/// durable path: the consumer forwards the same messages later, and the
/// fan-out stores each delivery id once, so its forward is a recorded
/// duplicate. A failure here changes nothing: the queue delivers as it
/// would have.
pub(crate) async fn fast_path(target: FanoutTarget, messages: Vec<Vec<u8>>) {
    let count = messages.len();
    for (index, message) in messages.into_iter().enumerate() {
        if let Err(e) = fanout::call(&target, message, FAST_PATH_TIMEOUT).await {
            let line = serde_json::json!({"fastPath": "failed; the queue delivers", "message": index, "of": count, "error": e});
            console_error!("{line}");
            return;
        }
    }
}

#[event(queue)]
async fn consume(batch: MessageBatch<JsValue>, env: Env, _ctx: Context) -> Result<()> {
    if batch.queue() == dead_letters::queue_name(&env) {
        return dead_letters::park(&batch, &env).await;
    }
    let messages: Vec<Queued> = batch.raw_iter().map(Queued).collect();
    consumer::consume(&Forward(FanoutTarget::from_env(&env)), &messages, RetryPolicy::from_env(&env)).await;
    Ok(())
}

/// The fan-out the consumer publishes to, or why it cannot.
struct Forward(std::result::Result<FanoutTarget, String>);

impl consumer::Forwarder for Forward {
    fn ready(&self) -> std::result::Result<(), String> {
        self.0.as_ref().map(drop).map_err(Clone::clone)
    }

    async fn forward(&self, request: Vec<u8>) -> std::result::Result<String, String> {
        let target = self.0.as_ref().map_err(Clone::clone)?;
        let request = PublishRequest::decode(request.as_slice()).map_err(|e| format!("undecodable message: {e}"))?;
        let reply = fanout::publish(target, request.notifications, CONSUMER_TIMEOUT).await?;
        Ok(format!("{} stored, {} duplicates", reply.stored, reply.duplicates))
    }

    fn log(&self, line: &str) {
        console_log!("{line}");
    }

    fn log_error(&self, line: &str) {
        console_error!("{line}");
    }
}

/// A queue message, as the consumer's core sees it.
struct Queued(worker::RawMessage);

impl consumer::Message for Queued {
    fn id(&self) -> String {
        self.0.id()
    }

    fn age_seconds(&self) -> u64 {
        now_ms().saturating_sub(self.0.timestamp().as_millis()) / 1000
    }

    fn body(&self) -> Option<Vec<u8>> {
        value_bytes(&self.0.body())
    }

    fn ack(&self) {
        self.0.ack();
    }

    fn retry_in(&self, seconds: u32) {
        self.0.retry_with_options(&QueueRetryOptionsBuilder::new().with_delay_seconds(seconds).build());
    }
}
