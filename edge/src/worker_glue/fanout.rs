//! `Fanout.Publish` over gRPC-Web, through the Workers `fetch` API.

use std::time::Duration;

use futures_util::future::{select, Either};
use graph_relay_proto::v1::{Notification, PublishRequest, PublishResponse};
use prost::Message;
use worker::{AbortController, Delay, Fetch, Headers, Method, Request, RequestInit};

use super::config::FanoutTarget;
use crate::grpc_web;

/// How long the fan-out may take while Graph waits. Graph allows 3 s for the
/// whole exchange; past this we answer 503 and let Graph retry rather than be
/// counted slow.
pub(crate) const SYNC_TIMEOUT: Duration = Duration::from_millis(2_000);

/// Publishes `notifications`; returns the fan-out's answer.
pub(crate) async fn publish(
    target: &FanoutTarget,
    notifications: Vec<Notification>,
    timeout: Duration,
) -> Result<PublishResponse, String> {
    let body = grpc_web::frame(&PublishRequest { notifications }.encode_to_vec());
    let headers = Headers::new();
    let set = |name: &str, value: &str| headers.set(name, value).map_err(|e| e.to_string());
    set("content-type", grpc_web::CONTENT_TYPE)?;
    set("x-grpc-web", "1")?;
    set("authorization", &format!("Bearer {}", target.token))?;
    let controller = AbortController::default();
    let signal = controller.signal();
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_headers(headers).with_body(Some(js_sys_bytes(&body)));
    let url = format!("{}{}", target.url, graph_relay_proto::PUBLISH_PATH);
    let request = Request::new_with_init(&url, &init).map_err(|e| e.to_string())?;
    // Both paths stop waiting at the timeout; the global fetch is also
    // aborted (a binding's fetch takes no signal in this workers-rs).
    let call = Box::pin(async {
        match &target.mtls {
            Some(mtls) => mtls.fetch_request(request).await,
            None => Fetch::Request(request).send_with_signal(&signal).await,
        }
    });
    let mut response = match select(call, Box::pin(Delay::from(timeout))).await {
        Either::Left((response, _)) => response.map_err(|e| format!("fetch failed: {e}"))?,
        Either::Right(_) => {
            controller.abort();
            return Err(format!("no answer within {timeout:?}"));
        }
    };
    let status = response.status_code();
    let grpc_status = response.headers().get("grpc-status").ok().flatten();
    let grpc_message = response.headers().get("grpc-message").ok().flatten();
    let bytes = response.bytes().await.map_err(|e| format!("reading reply: {e}"))?;
    let reply = grpc_web::unframe_reply(status, grpc_status.as_deref(), grpc_message.as_deref(), &bytes)
        .map_err(|e| e.to_string())?;
    PublishResponse::decode(reply.as_slice()).map_err(|e| format!("decoding reply: {e}"))
}

fn js_sys_bytes(bytes: &[u8]) -> worker::wasm_bindgen::JsValue {
    worker::js_sys::Uint8Array::from(bytes).into()
}
