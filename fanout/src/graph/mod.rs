//! Everything that talks to Microsoft Graph about subscriptions: what may be
//! subscribed to, the subscriptions file, and keeping Graph in line with it.
//!
//! # Layout
//! - [`catalog`]: the 19 resource kinds as data (paths, lifetimes, changeTypes, permissions).
//! - [`check`]: the rules Graph applies to a subscription, checked before calling it.
//! - [`plan`]: the subscriptions file (TOML).

pub mod catalog;
pub mod check;
pub mod plan;

#[cfg(test)]
mod check_tests;
