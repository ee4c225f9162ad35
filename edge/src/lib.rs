//! Graph Relay's edge: the public `notificationUrl` and
//! `lifecycleNotificationUrl`, a Cloudflare Worker written in Rust.
//!
//! It answers Graph's validation handshake, validates every notification,
//! hands the accepted ones to the fan-out and acknowledges Graph quickly.
//!
//! # Layout
//! The protocol core is plain Rust, built natively (unit tests, reuse by the
//! end-to-end tests) and for `wasm32-unknown-unknown`:
//! - [`handshake`]: the `validationToken` reflection.
//! - [`budget`]: Graph's 3 s, shared by every slow step of a request.
//! - [`client_state`]: the accepted clientState set, compared in constant time.
//! - [`collection`]: parsing a notification collection into fan-out messages;
//!   [`envelope`]: its envelope read in one pass; [`json_object`]: an object
//!   read as raw fields borrowed from the body; [`item_fields`]: the fields
//!   of an item the edge reads, found in one pass.
//! - [`delivery`]: the identity of each accepted item (one delivery, not its content).
//! - [`grpc_web`]: framing the gRPC-Web call to the fan-out.
//! - [`chunk`]: splitting accepted items into queue messages (128 KB limit).
//! - [`consumer`]: the queue consumer's decisions (ack, retry, delays).
//! - [`secret`]: constant-time comparison of bearer tokens.
//! - [`validation_tokens`]: the rich-notification JWT rules; [`jwt`]: a
//!   token taken apart; [`rs256`]: the signature check behind a trait
//!   (WebCrypto in the Worker, RustCrypto natively).
//! - `verified_tokens`: tokens already verified, so repeats skip the RSA check.
//! - [`inbound`]: the HTTP decisions (routes, statuses, reasons).
//! - [`pipeline`]: a notification POST step by step over a small platform
//!   trait, every decision in it tested natively with a fake.
//! - [`intake`]: the quick route of the common POST, in synchronous steps
//!   the Worker's JavaScript entry drives; everything else takes `pipeline`.
//! - [`quarantine`]: what is kept of a batch refused for its tokens, bounded.
//! - [`request_log`]: one JSON log line per notification request.
//! - [`replicas`]: several fan-out URLs, taken in turn, failing over.
//!
//! The Worker glue (`worker_glue`, wasm32 only, feature `glue`) wires those
//! to `fetch`.

// A panic in a Worker can poison the isolate: outside tests, no unwrap/expect.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod budget;
pub mod chunk;
pub mod client_state;
pub mod collection;
pub mod consumer;
pub mod delivery;
pub mod envelope;
pub mod grpc_web;
pub mod handshake;
pub mod inbound;
pub mod intake;
pub mod item_fields;
pub mod json_object;
pub mod jwt;
pub mod pipeline;
pub mod quarantine;
pub mod replicas;
pub mod request_log;
pub mod rs256;
pub mod secret;
pub mod validation_tokens;
mod verified_tokens;

#[cfg(all(target_arch = "wasm32", feature = "glue"))]
mod worker_glue;
