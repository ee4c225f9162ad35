//! The gRPC face of the fan-out: the `graphrelay.v1.Fanout` service and
//! its codec.
//!
//! # Layout
//! - [`service`]: `Subscribe` and `Publish`, thin glue over ingest and delivery.
//! - [`codec`]: prost, encoding into a buffer reserved up front.

pub mod codec;
pub mod service;
