//! Dead letters: messages the consumer could not forward after every retry.
//!
//! The runtime moves them to the dead-letter queue; its consumer (this file)
//! parks each one in the `DEAD_LETTERS` KV namespace under
//! `<enqueued at, Unix ms>-<message id>`, where an operator can list them and
//! put them back on the queue (`/admin/dead-letters[/replay]`, bearer
//! `ADMIN_TOKEN`). Nothing acknowledged is ever silently gone.

use graph_relay_proto::v1::PublishRequest;
use prost::Message as _;
use worker::wasm_bindgen::JsValue;
use worker::{
    console_error, console_log, Env, MessageBatch, MessageExt, QueueContentType, RawMessageBuilder, Request, Result,
};

use super::queue::{self, bytes_value, value_bytes};
use crate::inbound::{Reply, Route};
use crate::secret;

const KV_BINDING: &str = "DEAD_LETTERS";
const DEFAULT_QUEUE: &str = "graph-relay-dead-letters";

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
        let key = format!("{:013}-{}", message.timestamp().as_millis(), message.id());
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

/// The operator routes. Disabled (404) unless `ADMIN_TOKEN` is set.
pub(crate) async fn handle(route: Route, req: &Request, env: &Env) -> Result<Reply> {
    let admin_token = match env.var("ADMIN_TOKEN") {
        Ok(token) if !token.to_string().is_empty() => token.to_string(),
        _ => return Ok(Reply::text(404, "operator routes are disabled: set the ADMIN_TOKEN secret")),
    };
    if !secret::bearer_matches(req.headers().get("authorization")?.as_deref(), &admin_token) {
        return Ok(Reply::text(401, "operator routes need authorization: Bearer <ADMIN_TOKEN>"));
    }
    let Ok(kv) = env.kv(KV_BINDING) else {
        return Ok(Reply::text(503, "no DEAD_LETTERS KV binding configured"));
    };
    let keys = list_keys(&kv).await?;
    if route != Route::ReplayDeadLetters {
        return Ok(Reply::text(200, format!("{} dead letters\n{}", keys.len(), keys.join("\n"))));
    }
    let Ok(queue) = env.queue(queue::BINDING) else {
        return Ok(Reply::text(503, "no NOTIFICATIONS queue binding: nothing to replay into"));
    };
    let mut replayed = 0;
    for key in &keys {
        let Some(bytes) = kv.get(key).bytes().await? else { continue };
        let message = RawMessageBuilder::new(bytes_value(&bytes)).build_with_content_type(QueueContentType::V8);
        queue.send_raw(message).await?;
        kv.delete(key).await?;
        replayed += 1;
    }
    console_log!("replayed {replayed} dead letters onto the queue");
    Ok(Reply::text(200, format!("replayed {replayed} dead letters")))
}

async fn list_keys(kv: &worker::kv::KvStore) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    let mut cursor = None;
    loop {
        let mut list = kv.list();
        if let Some(cursor) = cursor.take() {
            list = list.cursor(cursor);
        }
        let page = list.execute().await?;
        keys.extend(page.keys.into_iter().map(|k| k.name));
        match page.cursor {
            Some(next) if !page.list_complete => cursor = Some(next),
            _ => return Ok(keys),
        }
    }
}
