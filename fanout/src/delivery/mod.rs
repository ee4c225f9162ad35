//! Getting stored events to subscribers: live when they keep up, from the
//! log when they fall behind, filtered and scoped either way.
//!
//! # Layout
//! - [`hub`]: live feeds with bounded buffers, routed by tenant.
//! - [`subscriber`]: one subscriber's stream: log replay, live, gaps.
//! - [`filter`]: compiled subscriber filters, matched on stored routes.

pub mod filter;
pub(crate) mod hub;
pub(crate) mod subscriber;
