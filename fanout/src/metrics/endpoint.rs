//! `GET /metrics` over plain HTTP/1.1, on a port of its own so a scraper
//! never shares the subscribers' connection limits and the metrics port can
//! stay inside the monitoring network.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Scrapes served at once; more wait for the listener's backlog. Scrapers
/// are a handful of Prometheus servers, not the public.
const CONNECTIONS: usize = 16;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `/metrics` on `listener` until `stop` resolves.
pub async fn serve(listener: TcpListener, stop: impl Future<Output = ()>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS));
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            _ = &mut stop => return,
            permit = slots.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => return },
        };
        let (socket, _) = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("metrics port: accept: {e}");
                    continue;
                }
            },
        };
        tokio::spawn(async move {
            let service = hyper::service::service_fn(answer);
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Some(std::time::Duration::from_secs(10)))
                .serve_connection(TokioIo::new(socket), service);
            if let Err(e) = connection.await {
                tracing::debug!("metrics port: {e}");
            }
            drop(permit);
        });
    }
}

async fn answer(request: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status, content_type, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        if let Ok(value) = http::HeaderValue::from_str(content_type) {
            response.headers_mut().insert(http::header::CONTENT_TYPE, value);
        }
        Ok(response)
    };
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => reply(StatusCode::OK, OPENMETRICS, super::get().render()),
        (_, "/metrics") => reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET /metrics\n".into()),
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "metrics are at GET /metrics\n".into()),
    }
}
