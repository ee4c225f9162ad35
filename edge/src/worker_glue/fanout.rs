//! `Fanout.Publish` over gRPC-Web, through the Workers `fetch` API.

use std::cell::RefCell;
use std::time::Duration;

use futures_util::future::{select, Either};
use graph_relay_proto::v1::{Notification, PublishRequest, PublishResponse};
use prost::Message;
use worker::{AbortController, Delay, Fetch, Headers, Method, Request, RequestInit};

use super::config::FanoutTarget;
use super::now_ms;
use crate::budget::Budget;
use crate::grpc_web;
use crate::replicas::{Failure, Health};

/// How long the fan-out may take while Graph waits, when the request's
/// budget has more left (see `crate::budget`); past it the edge answers 503
/// and Graph retries rather than counting the endpoint slow.
pub(crate) const SYNC_TIMEOUT: Duration = Duration::from_millis(2_000);

/// Publishes `notifications` within `timeout`; returns the fan-out's answer.
pub(crate) async fn publish(
    target: &FanoutTarget,
    notifications: Vec<Notification>,
    timeout: Duration,
) -> Result<PublishResponse, String> {
    call(target, PublishRequest { notifications }.encode_to_vec(), timeout).await
}

/// Publishes an encoded `PublishRequest` within what `budget` leaves.
pub(crate) async fn publish_encoded(
    target: &FanoutTarget,
    request: Vec<u8>,
    budget: &Budget,
) -> Result<PublishResponse, String> {
    let timeout = budget.step(now_ms(), SYNC_TIMEOUT).ok_or("no time left in this request to forward")?;
    call(target, request, timeout).await
}

thread_local! {
    /// Whose turn it is, and which replicas failed lately, in this isolate.
    static HEALTH: RefCell<Health> = RefCell::default();
}

/// Publishes an encoded `PublishRequest` within `timeout`, to the replicas
/// of `FANOUT_URL` in turn, failing over while one cannot take it (see
/// `crate::replicas`).
pub(crate) async fn call(
    target: &FanoutTarget,
    request: Vec<u8>,
    timeout: Duration,
) -> Result<PublishResponse, String> {
    let body = grpc_web::frame(&request);
    let urls = target.replicas.urls();
    let started = now_ms();
    let order = HEALTH.with(|health| health.borrow_mut().order(urls.len(), started));
    let mut failures = Vec::new();
    for index in order {
        let left = timeout.saturating_sub(Duration::from_millis(now_ms().saturating_sub(started)));
        if left.is_zero() {
            break;
        }
        match call_one(target, &urls[index], &body, left).await {
            Ok(reply) => {
                HEALTH.with(|health| health.borrow_mut().answered(index));
                return Ok(reply);
            }
            Err(failure) => {
                let message =
                    if urls.len() > 1 { format!("{}: {}", urls[index], failure.message) } else { failure.message };
                failures.push(message);
                if !failure.try_another {
                    break;
                }
                HEALTH.with(|health| health.borrow_mut().failed(index, now_ms()));
            }
        }
    }
    Err(failures.join("; "))
}

/// One replica's answer within `timeout`.
async fn call_one(
    target: &FanoutTarget,
    base: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<PublishResponse, Failure> {
    let headers = Headers::new();
    let set = |name: &str, value: &str| headers.set(name, value).map_err(|e| Failure::unreachable(e.to_string()));
    set("content-type", grpc_web::CONTENT_TYPE)?;
    set("x-grpc-web", "1")?;
    set("authorization", &format!("Bearer {}", target.token))?;
    let controller = AbortController::default();
    let signal = controller.signal();
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_headers(headers).with_body(Some(js_sys_bytes(body)));
    let url = format!("{base}{}", graph_relay_proto::PUBLISH_PATH);
    let request = Request::new_with_init(&url, &init).map_err(|e| Failure::unreachable(e.to_string()))?;
    // The whole exchange, reply body included, stops at the timeout; the
    // global fetch is also aborted (a binding's fetch takes no signal in
    // this workers-rs).
    let exchange = Box::pin(async {
        let mut response = match &target.mtls {
            Some(mtls) => mtls.fetch_request(request).await,
            None => Fetch::Request(request).send_with_signal(&signal).await,
        }
        .map_err(|e| Failure::unreachable(format!("fetch failed: {e}")))?;
        let status = response.status_code();
        let grpc_status = response.headers().get("grpc-status").ok().flatten();
        let grpc_message = response.headers().get("grpc-message").ok().flatten();
        let bytes = response.bytes().await.map_err(|e| Failure::unreachable(format!("reading reply: {e}")))?;
        grpc_web::unframe_reply(status, grpc_status.as_deref(), grpc_message.as_deref(), &bytes)
            .map_err(|e| Failure::answered(&e))
    });
    let reply = match select(exchange, Box::pin(Delay::from(timeout))).await {
        Either::Left((reply, _)) => reply?,
        Either::Right(_) => {
            controller.abort();
            return Err(Failure::unreachable(format!("no answer within {timeout:?}")));
        }
    };
    PublishResponse::decode(reply.as_slice())
        .map_err(|e| Failure { message: format!("decoding reply: {e}"), try_another: false })
}

fn js_sys_bytes(bytes: &[u8]) -> worker::wasm_bindgen::JsValue {
    worker::js_sys::Uint8Array::from(bytes).into()
}
