//! Harness for Graph Relay's end-to-end tests: real processes on loopback.
//!
//! # Layout
//! - [`fanout`]: the `graph-relay serve` binary, on a port it reports.
//! - [`edge`]: the built worker under `wrangler dev` (workerd).
//! - [`graph`]: what Graph would send: payloads and the webhook POST.
//! - [`subscriber`]: a real gRPC subscriber with bounded waits.
//! - [`emulator`]: `graph-relay emulate` (the Graph stand-in) and the whole stack around it.
//! - [`nats`]: real `nats-server` nodes and clusters, for `--log nats`;
//!   [`on_both_logs!`] runs a behaviour test on each log backend.
//!
//! Every process is started in its own process group and killed with it when
//! its handle drops, so a failing test leaves nothing running. Readiness is
//! awaited (a printed address, a 200 from `/healthz`), never slept for.

pub mod edge;
pub mod emulator;
pub mod encryption;
pub mod endpoint;
pub mod fanout;
pub mod graph;
pub mod nats;
pub mod process;
pub mod publisher;
pub mod subscriber;
pub mod tokens;

use std::path::PathBuf;
use std::time::Duration;

/// Upper bound for any single wait; a healthy run needs a fraction of it.
pub const WAIT: Duration = Duration::from_secs(30);

/// The ingest token shared by the edge and the fan-out in tests.
pub const INGEST_TOKEN: &str = "test-ingest-token-0123456789";

/// Subscriber tokens of every test fan-out (see `fanout::subscribers_file`).
/// Full scope, decrypted data included:
pub const SUBSCRIBER_TOKEN: &str = "test-subscriber-token-0123456789";
/// Only tenant `tenant-a`, only `users/*/messages/*`, no decrypted data:
pub const SCOPED_TOKEN: &str = "test-scoped-token-0123456789";
/// Every tenant and resource, but no decrypted data:
pub const NO_DECRYPT_TOKEN: &str = "test-no-decrypt-token-0123456789";

/// The clientState the test edge accepts (with a second, rotated value).
pub const CLIENT_STATE: &str = "test-client-state";
pub const ROTATED_CLIENT_STATE: &str = "rotated-client-state";

/// The repository root (where `wrangler.toml` and `target/` live).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("loopback is available")
}

/// Runs each test once on the embedded log (`<name>::embedded`) and once on
/// the shared NATS JetStream log (`<name>::nats`, a `nats-server` of its
/// own): every `Fanout` the test starts uses that backend. The body is the
/// test's, unchanged (not a thinner copy per backend).
#[macro_export]
macro_rules! on_both_logs {
    ($($(#[doc = $doc:literal])* async fn $name:ident() $body:block)*) => {$(
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread")]
            async fn embedded() {
                $crate::fanout::on_log($crate::fanout::Backend::Embedded, async $body).await
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn nats() {
                $crate::fanout::on_log($crate::fanout::Backend::Nats, async $body).await
            }
        }
    )*};
}
