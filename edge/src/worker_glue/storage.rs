//! The Worker's storage bindings, named in one place: the queue's producer
//! binding and its message bodies, and the KV namespace of dead letters and
//! quarantined batches.

use worker::js_sys::Reflect;
use worker::js_sys::Uint8Array;
use worker::kv::KvStore;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::{Env, Queue, Result};

/// The producer binding in `wrangler.toml`; without it the edge runs in
/// synchronous mode (forward, then answer).
pub(crate) const QUEUE_BINDING: &str = "NOTIFICATIONS";

thread_local! {
    // The binding's name as a JavaScript string, made once: the request
    // path looks the queue up on every notification POST.
    static QUEUE_KEY: JsValue = JsValue::from_str(QUEUE_BINDING);
}

/// The queue producer, when bound (else synchronous mode). One property
/// read: `Env::queue` also compares the binding's constructor name, through
/// two string conversions, on every call.
pub(crate) fn queue(env: &Env) -> Option<Queue> {
    let binding = QUEUE_KEY.with(|key| Reflect::get(env, key)).ok()?;
    (!binding.is_undefined()).then(|| binding.unchecked_into())
}

/// The KV namespace holding dead letters and quarantined batches.
pub(crate) const KV_BINDING: &str = "DEAD_LETTERS";

/// Every key under `prefix`, with its metadata, following list cursors.
pub(crate) async fn list_keys(kv: &KvStore, prefix: &str) -> Result<Vec<worker::kv::Key>> {
    let mut keys = Vec::new();
    let mut cursor = None;
    loop {
        let mut list = kv.list().prefix(prefix.to_owned());
        if let Some(cursor) = cursor.take() {
            list = list.cursor(cursor);
        }
        let page = list.execute().await?;
        keys.extend(page.keys);
        match page.cursor {
            Some(next) if !page.list_complete => cursor = Some(next),
            _ => return Ok(keys),
        }
    }
}

/// A queue message body: the encoded `PublishRequest`'s bytes.
pub(crate) fn bytes_value(bytes: &[u8]) -> JsValue {
    Uint8Array::from(bytes).into()
}

pub(crate) fn value_bytes(value: &JsValue) -> Option<Vec<u8>> {
    value.dyn_ref::<Uint8Array>().map(Uint8Array::to_vec)
}
