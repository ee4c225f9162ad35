//! Dead letters: messages the consumer could not forward after every retry.
//!
//! The runtime moves them to the dead-letter queue; its consumer (this file)
//! parks each one in the `DEAD_LETTERS` KV namespace under
//! `dead-letter/<enqueued at, Unix ms>-<message id>`, where an operator can
//! list them and put them back on the queue (`/admin/dead-letters[/replay]`,
//! see `operator`). Nothing acknowledged is ever silently gone.

use graph_relay_proto::v1::PublishRequest;
use prost::Message as _;
use worker::kv::KvStore;
use worker::wasm_bindgen::JsValue;
use worker::{console_error, console_log, Env, MessageBatch, MessageExt, QueueContentType, RawMessageBuilder, Result};

use super::storage::{self, bytes_value, value_bytes, KV_BINDING};
use crate::inbound::Reply;

const DEFAULT_QUEUE: &str = "graph-relay-dead-letters";
/// Dead letters live under this KV key prefix (quarantine has its own).
const PREFIX: &str = "dead-letter/";

/// The dead-letter queue's name (`DEAD_LETTER_QUEUE`, default as in wrangler.toml).
pub(crate) fn queue_name(env: &Env) -> String {
    env.var("DEAD_LETTER_QUEUE").map(|v| v.to_string()).unwrap_or_else(|_| DEFAULT_QUEUE.to_owned())
}

/// Parks every dead-lettered message in KV, then acks it.
pub(crate) async fn park(batch: &MessageBatch<JsValue>, env: &Env) -> Result<()> {
    let kv = env.kv(KV_BINDING)?;
    for message in batch.raw_iter() {
        let Some(bytes) = value_bytes(&message.body()) else {
            console_error!("dead letter {} is not bytes; left on the dead-letter queue", message.id());
            message.retry();
            continue;
        };
        let key = format!("{PREFIX}{:013}-{}", message.timestamp().as_millis(), message.id());
        let count = PublishRequest::decode(bytes.as_slice()).map(|r| r.notifications.len()).unwrap_or(0);
        match kv.put_bytes(&key, &bytes)?.execute().await {
            Ok(()) => {
                console_error!(
                    "dead letter parked as {key} ({count} notifications); replay: POST /admin/dead-letters/replay"
                );
                message.ack();
            }
            Err(e) => {
                console_error!("could not park dead letter {}: {e}; retrying", message.id());
                message.retry();
            }
        }
    }
    Ok(())
}

/// Lists the parked dead letters.
pub(crate) async fn list(kv: &KvStore) -> Result<Reply> {
    let keys = storage::list_keys(kv, PREFIX).await?;
    let names: Vec<String> = keys.into_iter().map(|k| k.name).collect();
    Ok(Reply::text(200, format!("{} dead letters\n{}", names.len(), names.join("\n"))))
}

/// Puts every parked dead letter back on the queue, then removes it.
pub(crate) async fn replay(kv: &KvStore, env: &Env) -> Result<Reply> {
    let Some(queue) = storage::queue(env) else {
        return Ok(Reply::text(503, "no NOTIFICATIONS queue binding: nothing to replay into"));
    };
    let mut replayed = 0;
    for key in storage::list_keys(kv, PREFIX).await? {
        let Some(bytes) = kv.get(&key.name).bytes().await? else { continue };
        let message = RawMessageBuilder::new(bytes_value(&bytes)).build_with_content_type(QueueContentType::V8);
        queue.send_raw(message).await?;
        kv.delete(&key.name).await?;
        replayed += 1;
    }
    console_log!("replayed {replayed} dead letters onto the queue");
    Ok(Reply::text(200, format!("replayed {replayed} dead letters")))
}
