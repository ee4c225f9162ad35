//! Everything that talks to Microsoft Graph about subscriptions: what may be
//! subscribed to, the subscriptions file, and keeping Graph in line with it.
//!
//! # Layout
//! - [`backoff`]: how long an entry waits after a failed call.
//! - [`catalog`]: the 19 resource kinds as data (paths, lifetimes, changeTypes, permissions).
//! - [`check`]: the rules Graph applies to a subscription, checked before calling it.
//! - [`plan`]: the subscriptions file (TOML).
//! - [`credentials`]: access tokens (client secret, certificate, device-code login).
//! - [`client`]: Graph's `/subscriptions` API and what its errors mean.
//! - [`ledger`]: the reconciler's state, kept across restarts.
//! - [`listing`]: Graph's subscription list, trusted no more than needed.
//! - [`reconciler`]: create, renew, adopt, recreate, delete.
//! - [`lifecycle`]: lifecycle events from the log drive the reconciler.
//! - [`resync`]: the `resyncNeeded` owed after Graph lost a subscription;
//!   `losses`: noticing the losses and paying those debts.
//! - [`configuration`]: a subscriptions file checked and made ready;
//!   [`reload`]: handing one to the running reconciler.
//! - [`kinds`]: `subscriptions kinds`, the catalog as a table.

pub(crate) mod backoff;
pub mod catalog;
pub mod check;
pub mod client;
pub mod configuration;
pub mod credentials;
mod gauges;
pub mod kinds;
pub mod ledger;
pub mod lifecycle;
pub mod listing;
mod losses;
pub mod paths;
pub mod plan;
pub mod reconciler;
pub mod reload;
pub mod resync;

/// A reauthorize and a renewing PATCH never both within this (docs/graph-protocol.md 6).
pub const REAUTHORIZE_WINDOW_MS: u64 = 10 * 60 * 1000;

#[cfg(test)]
mod check_tests;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use graph_relay_proto::v1::Notification;

/// The wall clock, in Unix milliseconds: Graph's expiries and the
/// reconciler's schedule are wall-clock times.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A publish under way: `Ok` with the sequence it was stored at (`None`:
/// the log already held it), for the log line.
pub type Publishing<'a> = Pin<Box<dyn Future<Output = Result<Option<u64>, String>> + Send + 'a>>;

/// Where the reconciler's own events (`resyncNeeded`) go: the fan-out's
/// log, through whatever stores the edge's notifications. Graph management
/// knows no more of the server than this and the lifecycle feed it is
/// handed (see `lifecycle::FeedItem`).
pub trait Publish: Send + Sync {
    fn publish(&self, notification: Notification) -> Publishing<'_>;
}

/// What makes two subscriptions the same to Graph (its 409): the resource
/// (leading `/` optional, any case) and the set of changeTypes.
pub fn subscription_identity(resource: &str, change_types: &str) -> (String, Vec<String>) {
    let mut types: Vec<String> =
        change_types.split(',').map(|t| t.trim().to_ascii_lowercase()).filter(|t| !t.is_empty()).collect();
    types.sort();
    types.dedup();
    (resource.trim_start_matches('/').to_ascii_lowercase(), types)
}

/// A subscription's resource as its notifications name it: no leading `/`
/// and no query (`$select`, `$filter` shape the subscription, not the path).
pub fn resource_path(resource: &str) -> &str {
    resource.split('?').next().unwrap_or("").trim_start_matches('/')
}

/// `bytes` random bytes, base64url: ids, codes and secrets of the identity flows.
pub fn random_token(bytes: usize) -> String {
    use base64::Engine;
    let mut buf = vec![0u8; bytes];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// Graph's `dateTimeOffset` (RFC 3339, UTC) for milliseconds since the epoch.
pub fn format_time(unix_ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(unix_ms)).to_string()
}

/// Milliseconds since the epoch for Graph's `dateTimeOffset` (up to 7 fraction digits).
pub fn parse_time(text: &str) -> Option<u64> {
    let time = humantime::parse_rfc3339_weak(text.trim_end_matches('Z').trim_end_matches("+00:00")).ok()?;
    time.duration_since(SystemTime::UNIX_EPOCH).ok().map(|d| d.as_millis() as u64)
}

#[cfg(test)]
mod time_tests {
    #[test]
    fn resource_paths_drop_the_slash_and_the_query() {
        assert_eq!(super::resource_path("/users/u1/messages?$select=subject"), "users/u1/messages");
        assert_eq!(super::resource_path("users"), "users");
    }

    #[test]
    fn graph_times_round_trip_and_accept_seven_fraction_digits() {
        let ms = 1_795_000_000_123;
        assert_eq!(super::parse_time(&super::format_time(ms)), Some(ms));
        assert_eq!(super::parse_time("2016-11-20T18:23:45.9356913Z"), Some(1_479_666_225_935));
        assert_eq!(super::parse_time("tomorrow"), None);
    }
}
