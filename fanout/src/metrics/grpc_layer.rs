//! A tower layer on the gRPC server: every call counted when it starts and
//! when it ends (with its status code), and timed to its end: for a
//! Subscribe stream that is the stream's whole life.
//!
//! Names as the gRPC ecosystem's Prometheus interceptors have them
//! (`grpc_server_started_total`, `grpc_server_handled_total`,
//! `grpc_server_handling_seconds`), so existing dashboards fit. The method
//! label takes only the methods this server has; anything else is `unknown`.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The methods served, as (service, method).
const METHODS: &[(&str, &str)] = &[
    ("graphrelay.v1.Fanout", "Subscribe"),
    ("graphrelay.v1.Fanout", "Publish"),
    ("grpc.health.v1.Health", "Check"),
    ("grpc.health.v1.Health", "Watch"),
    ("grpc.reflection.v1.ServerReflection", "ServerReflectionInfo"),
    ("grpc.reflection.v1alpha.ServerReflection", "ServerReflectionInfo"),
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    grpc_service: &'static str,
    grpc_method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandledLabels {
    grpc_service: &'static str,
    grpc_method: &'static str,
    grpc_code: &'static str,
}

type Constructor = fn() -> Histogram;

pub struct GrpcMetrics {
    started: Family<MethodLabels, Counter>,
    handled: Family<HandledLabels, Counter>,
    handling: Family<MethodLabels, Histogram, Constructor>,
}

impl Default for GrpcMetrics {
    fn default() -> Self {
        let buckets: Constructor = || Histogram::new(exponential_buckets(0.000_1, 2.0, 20));
        Self { started: Family::default(), handled: Family::default(), handling: Family::new_with_constructor(buckets) }
    }
}

impl GrpcMetrics {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register("grpc_server_started", "gRPC calls started", self.started.clone());
        registry.register("grpc_server_handled", "gRPC calls ended, by status code", self.handled.clone());
        let seconds = "gRPC calls from start to end (a stream's whole life), in seconds";
        registry.register("grpc_server_handling_seconds", seconds, self.handling.clone());
    }
}

fn method_of(path: &str) -> MethodLabels {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (service, method) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    match METHODS.iter().find(|(s, m)| *s == service && *m == method) {
        Some((grpc_service, grpc_method)) => MethodLabels { grpc_service, grpc_method },
        None => MethodLabels { grpc_service: "unknown", grpc_method: "unknown" },
    }
}

/// The canonical name of a `grpc-status` value (`OK`, `UNAVAILABLE`, ...).
fn code_name(status: Option<&http::HeaderValue>) -> &'static str {
    let code = status.and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i32>().ok());
    match code.map(tonic::Code::from_i32) {
        None => "UNKNOWN",
        Some(code) => match code {
            tonic::Code::Ok => "OK",
            tonic::Code::Cancelled => "CANCELLED",
            tonic::Code::Unknown => "UNKNOWN",
            tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
            tonic::Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            tonic::Code::NotFound => "NOT_FOUND",
            tonic::Code::AlreadyExists => "ALREADY_EXISTS",
            tonic::Code::PermissionDenied => "PERMISSION_DENIED",
            tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
            tonic::Code::Aborted => "ABORTED",
            tonic::Code::OutOfRange => "OUT_OF_RANGE",
            tonic::Code::Unimplemented => "UNIMPLEMENTED",
            tonic::Code::Internal => "INTERNAL",
            tonic::Code::Unavailable => "UNAVAILABLE",
            tonic::Code::DataLoss => "DATA_LOSS",
            tonic::Code::Unauthenticated => "UNAUTHENTICATED",
        },
    }
}

/// Counts and times every call of the service it wraps.
#[derive(Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = Measured<S>;
    fn layer(&self, inner: S) -> Measured<S> {
        Measured { inner }
    }
}

#[derive(Clone)]
pub struct Measured<S> {
    inner: S,
}

impl<S, B, ReqBody> tower::Service<http::Request<ReqBody>> for Measured<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<B>>,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let method = method_of(request.uri().path());
        super::get().grpc.started.get_or_create(&method).inc();
        let call = Call { method, started: Instant::now(), ended: false };
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut call = call;
            let response = match response.await {
                Ok(response) => response,
                Err(e) => {
                    call.end(None);
                    return Err(e);
                }
            };
            // A trailers-only answer (an error before any message) carries
            // its status in the headers.
            if let Some(status) = response.headers().get("grpc-status") {
                call.end(Some(status));
            }
            Ok(response.map(|body| tonic::body::Body::new(ObservedBody { inner: body, call })))
        })
    }
}

/// One call being measured; recorded once, at its status or when dropped.
struct Call {
    method: MethodLabels,
    started: Instant,
    ended: bool,
}

impl Call {
    fn end(&mut self, status: Option<&http::HeaderValue>) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let metrics = &super::get().grpc;
        let code = if status.is_none() { "CANCELLED" } else { code_name(status) };
        let MethodLabels { grpc_service, grpc_method } = self.method.clone();
        metrics.handled.get_or_create(&HandledLabels { grpc_service, grpc_method, grpc_code: code }).inc();
        metrics.handling.get_or_create(&self.method).observe(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // Gone before its trailers: the client went away or the server stopped.
        self.end(None);
    }
}

pin_project_lite::pin_project! {
    /// The response body, watched for the trailers that end the call.
    struct ObservedBody<B> {
        #[pin]
        inner: B,
        call: Call,
    }
}

impl<B: Body<Data = Bytes>> Body for ObservedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let frame = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &frame {
            if let Some(trailers) = frame.trailers_ref() {
                this.call.end(Some(trailers.get("grpc-status").unwrap_or(&http::HeaderValue::from_static("0"))));
            }
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_served_methods_become_label_values() {
        assert_eq!(method_of("/graphrelay.v1.Fanout/Publish").grpc_method, "Publish");
        assert_eq!(method_of("/graphrelay.v1.Fanout/Anything").grpc_method, "unknown");
        assert_eq!(method_of("/x/../../etc").grpc_service, "unknown");
        assert_eq!(code_name(Some(&http::HeaderValue::from_static("16"))), "UNAUTHENTICATED");
        assert_eq!(code_name(Some(&http::HeaderValue::from_static("nope"))), "UNKNOWN");
    }
}
