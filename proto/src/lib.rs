//! The Graph Relay gRPC contract (`graphrelay.v1`).
//!
//! # Layout
//! - `proto/graphrelay/v1/*.proto`: the contract, the source of truth.
//! - [`v1`]: the generated prost messages, plus the tonic client
//!   (`v1::fanout_client`) when the `grpc` feature is on. Without it the crate
//!   builds for `wasm32-unknown-unknown`, which is how the edge uses it.

/// Generated from `graphrelay/v1/*.proto`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/graphrelay.v1.rs"));
}

/// The gRPC path of `Fanout.Publish`, which the edge posts gRPC-Web frames to.
pub const PUBLISH_PATH: &str = "/graphrelay.v1.Fanout/Publish";

/// Most notifications one `Publish` may carry; the fan-out refuses more
/// (`INVALID_ARGUMENT`) and the edge splits larger batches.
pub const MAX_PUBLISH_NOTIFICATIONS: usize = 10_000;
