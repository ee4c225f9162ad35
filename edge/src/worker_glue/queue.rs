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
use worker::wasm_bindgen::JsValue;
use worker::{
    console_error, console_log, event, Context, Delay, Env, MessageBatch, MessageExt, Queue, QueueContentType,
    QueueRetryOptionsBuilder, RawMessageBuilder, Result,
};

use futures_util::future::{select, Either};

use super::config::{FanoutTarget, RetryPolicy};
use super::storage::{bytes_value, value_bytes};
use super::{dead_letters, fanout};
use crate::budget::{self, Budget};
use crate::chunk;

/// The consumer is not racing Graph's 3 s, so it may wait longer.
const CONSUMER_TIMEOUT: Duration = Duration::from_secs(10);

/// Queues `notifications` within the request's budget; items too large for
/// a message are forwarded to the fan-out right away. Returns a summary for
/// the log.
pub(crate) async fn enqueue(
    queue: &Queue,
    target: &FanoutTarget,
    notifications: Vec<Notification>,
    budget: &Budget,
) -> std::result::Result<String, String> {
    let chunks = chunk::split(notifications, chunk::MAX_MESSAGE_BYTES);
    let messages = chunks.messages.len();
    for batch in chunk::send_batches(chunks.messages) {
        let batch: Vec<_> = batch
            .iter()
            .map(|bytes| RawMessageBuilder::new(bytes_value(bytes)).build_with_content_type(QueueContentType::V8))
            .collect();
        let timeout = budget.step(now_ms(), budget::ANSWER_WITHIN).ok_or("no time left in this request to queue")?;
        match select(Box::pin(queue.send_raw_batch(batch)), Box::pin(Delay::from(timeout))).await {
            Either::Left((sent, _)) => sent.map_err(|e| format!("queue send failed: {e}"))?,
            Either::Right(_) => return Err(format!("the queue did not take the batch within {timeout:?}")),
        }
    }
    let oversized = chunks.oversized.len();
    for request in chunk::split(chunks.oversized, chunk::MAX_PUBLISH_BYTES).messages {
        fanout::publish_encoded(target, request, budget)
            .await
            .map_err(|e| format!("forwarding {oversized} oversized items failed: {e}"))?;
    }
    Ok(format!("queued {messages} messages, forwarded {oversized} oversized items directly"))
}

fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}

#[event(queue)]
async fn consume(batch: MessageBatch<JsValue>, env: Env, _ctx: Context) -> Result<()> {
    if batch.queue() == dead_letters::queue_name(&env) {
        return dead_letters::park(&batch, &env).await;
    }
    let policy = RetryPolicy::from_env(&env);
    let target = match FanoutTarget::from_env(&env) {
        Ok(target) => target,
        Err(problem) => {
            console_error!("queue consumer misconfigured, retrying the batch later: {problem}");
            batch.retry_all_with_options(
                &QueueRetryOptionsBuilder::new().with_delay_seconds(policy.max_seconds).build(),
            );
            return Ok(());
        }
    };
    // After one failure, the rest of the batch is retried without trying:
    // the fan-out is most likely down and each try would wait for a timeout.
    let mut failed = false;
    for message in batch.raw_iter() {
        let outcome = if failed {
            Err("an earlier message of this batch failed".to_owned())
        } else {
            forward(&target, &message.body()).await
        };
        match outcome {
            Ok(stored) => {
                message.ack();
                console_log!("queue: forwarded message {} ({stored})", message.id());
            }
            Err(e) => {
                failed = true;
                let age = (worker::Date::now().as_millis().saturating_sub(message.timestamp().as_millis())) / 1000;
                let delay = policy.delay_seconds(age);
                console_error!("queue: message {} not forwarded ({e}); retrying in {delay}s", message.id());
                message.retry_with_options(&QueueRetryOptionsBuilder::new().with_delay_seconds(delay).build());
            }
        }
    }
    Ok(())
}

async fn forward(target: &FanoutTarget, body: &JsValue) -> std::result::Result<String, String> {
    let bytes = value_bytes(body).ok_or("message body is not bytes")?;
    let request = PublishRequest::decode(bytes.as_slice()).map_err(|e| format!("undecodable message: {e}"))?;
    let reply = fanout::publish(target, request.notifications, CONSUMER_TIMEOUT).await?;
    Ok(format!("{} stored, {} duplicates", reply.stored, reply.duplicates))
}
