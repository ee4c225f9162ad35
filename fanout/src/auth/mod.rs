//! Bearer-token checks for gRPC metadata.
//!
//! Tokens are kept only as SHA-256 digests and compared in constant time over
//! the digests, so neither a token's content nor its length leaks by timing.
//!
//! [`PublishGate`] checks the ingest token of a `Publish` from its headers,
//! before tonic reads and decodes its body (up to 4 MiB): a caller without
//! the token costs a header check, not a decode.

pub mod access;
pub mod grant;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::metadata::MetadataMap;
use tonic::Status;

/// One accepted bearer token, e.g. the edge's ingest token.
#[derive(Clone)]
pub struct BearerToken {
    /// Digest of the token; the token itself is not kept in memory.
    digest: [u8; 32],
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl BearerToken {
    pub fn new(token: &str) -> Result<Self, String> {
        if token.trim().len() < 16 {
            return Err("token must be at least 16 characters".into());
        }
        Ok(Self { digest: Sha256::digest(token.trim().as_bytes()).into() })
    }

    /// The token's SHA-256 (what the subscribers file holds).
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// Accepts `authorization: Bearer <token>`; anything else is
    /// `UNAUTHENTICATED`, with a reason that never echoes what was sent.
    pub fn check(&self, metadata: &MetadataMap) -> Result<(), Status> {
        let candidate: [u8; 32] = Sha256::digest(bearer(metadata)?.as_bytes()).into();
        if bool::from(self.digest.ct_eq(&candidate)) {
            Ok(())
        } else {
            Err(Status::unauthenticated("unknown token"))
        }
    }
}

/// A tower layer refusing a `Publish` without the ingest token before its
/// body is read; other calls pass (`Subscribe` checks its own tokens).
#[derive(Clone)]
pub struct PublishGate {
    token: BearerToken,
}

impl PublishGate {
    pub fn new(token: BearerToken) -> Self {
        Self { token }
    }
}

impl<S> tower::Layer<S> for PublishGate {
    type Service = Gated<S>;

    fn layer(&self, inner: S) -> Gated<S> {
        Gated { inner, token: self.token.clone() }
    }
}

/// The service behind a [`PublishGate`].
#[derive(Clone)]
pub struct Gated<S> {
    inner: S,
    token: BearerToken,
}

type Answer<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Gated<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Answer<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() == graph_relay_proto::PUBLISH_PATH {
            let metadata = MetadataMap::from_headers(request.headers().clone());
            if let Err(status) = self.token.check(&metadata) {
                return Box::pin(std::future::ready(Ok(status.into_http())));
            }
        }
        Box::pin(self.inner.call(request))
    }
}

/// The token of `authorization: Bearer <token>`, or `UNAUTHENTICATED`.
pub fn bearer(metadata: &MetadataMap) -> Result<&str, Status> {
    let header =
        metadata.get("authorization").ok_or_else(|| Status::unauthenticated("missing authorization: Bearer token"))?;
    let value = header.to_str().map_err(|_| Status::unauthenticated("authorization is not text"))?;
    value
        .split_once(' ')
        .filter(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .map(|(_, token)| token.trim())
        .ok_or_else(|| Status::unauthenticated("authorization must be: Bearer <token>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(value: &str) -> MetadataMap {
        let mut map = MetadataMap::new();
        map.insert("authorization", value.parse().unwrap());
        map
    }

    #[test]
    fn accepts_only_the_exact_bearer_token() {
        let token = BearerToken::new("0123456789abcdef").unwrap();
        assert!(token.check(&metadata("Bearer 0123456789abcdef")).is_ok());
        assert!(token.check(&metadata("bearer 0123456789abcdef")).is_ok());
        for bad in [
            "Bearer 0123456789abcdeF",
            "Bearer 0123456789abcde",
            "Basic 0123456789abcdef",
            "0123456789abcdef",
            "Bearer ",
        ] {
            let status = token.check(&metadata(bad)).unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{bad}");
            assert!(!status.message().contains("0123"), "status never echoes the token");
        }
        assert_eq!(token.check(&MetadataMap::new()).unwrap_err().code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn refuses_short_tokens_and_hides_them_in_debug() {
        assert!(BearerToken::new("short").is_err());
        assert_eq!(format!("{:?}", BearerToken::new("0123456789abcdef").unwrap()), "BearerToken(<redacted>)");
    }
}
