//! Graph Relay's durable event log: every notification the fan-out accepts,
//! with its sequence, on disk before anyone is told "stored".
//!
//! # Layout
//! - [`store`]: the log on redb: append (group commit), read after a
//!   sequence, prune; `retention` inside it decides which groups go.
//! - [`schema`]: its tables and metadata keys, and the format it records.
//! - [`error`]: [`LogError`], by cause.
//! - [`prepared`]: a notification made ready by its publish handler
//!   (encoded once, delivery key); [`wire`]: events encoded once for every
//!   subscriber; [`route`]: what a filter reads of a stored event.
//! - `group`: several records in one stored value; `dedup`: recently
//!   stored delivery ids; [`seal`]: groups sealed at rest; `cache`: groups
//!   shared by readers; [`index`]: a group's records and their routes.
//! - `store::copy`: a replica's copy of a shared log, each event under the
//!   shared log's sequence (the NATS JetStream backend).
//! - [`EventLog`]: the facade the fan-out's writer uses, which a second
//!   backend implements.

pub mod error;
pub mod index;
pub mod prepared;
pub mod route;
pub mod schema;
pub mod seal;
pub mod store;
pub mod wire;

mod cache;
mod dedup;
mod group;

pub use error::{LogError, Result};
pub use store::copy::{Copied, NOT_COPIED};
pub use store::{Appended, LogStats, Page, Retention, Store, Stored};

use prepared::Prepared;

/// What the fan-out asks of its log, whatever keeps it.
pub trait EventLog: Send + Sync {
    /// Appends the notifications of several publish requests as ONE durable
    /// commit; a delivery id stored within the dedup window is a duplicate.
    fn append(&self, requests: Vec<Vec<Prepared>>, now_ms: u64) -> Result<(Vec<Appended>, Vec<Stored>)>;
    /// Stores events a shared log numbered, under their own sequences (see
    /// `store::copy`); returns what live subscribers get.
    fn append_copied(&self, events: Vec<Copied>, now_ms: u64) -> Result<Vec<Stored>>;
    /// About `limit` stored events after `cursor`, oldest first.
    fn read_after(&self, cursor: u64, limit: usize) -> Result<Page>;
    /// Removes what retention no longer keeps; returns how many events went.
    fn prune(&self, now_ms: u64) -> Result<u64>;
    /// The sequence the next stored event gets.
    fn next_sequence(&self) -> Result<u64>;
    /// Its size and the sequences it holds, for metrics.
    fn stats(&self) -> Result<LogStats>;
}

impl EventLog for Store {
    fn append(&self, requests: Vec<Vec<Prepared>>, now_ms: u64) -> Result<(Vec<Appended>, Vec<Stored>)> {
        Store::append(self, requests, now_ms)
    }

    fn append_copied(&self, events: Vec<Copied>, now_ms: u64) -> Result<Vec<Stored>> {
        Store::append_copied(self, events, now_ms)
    }

    fn read_after(&self, cursor: u64, limit: usize) -> Result<Page> {
        Store::read_after(self, cursor, limit)
    }

    fn prune(&self, now_ms: u64) -> Result<u64> {
        Store::prune(self, now_ms)
    }

    fn stats(&self) -> Result<LogStats> {
        Store::stats(self)
    }

    fn next_sequence(&self) -> Result<u64> {
        Store::next_sequence(self)
    }
}
