//! A log group's records with their routes, read once per group and shared
//! by every subscriber that scans it.
//!
//! A subscriber catching up from the log decides for every stored event
//! whether its filter takes it. Were each to read the event's route itself
//! (prost over the event's bytes, one counted slice of the shared group
//! buffer per field), 100 selective subscribers resuming together after a
//! restart would spend ~45% of the server's CPU reading routes and moving
//! that buffer's reference count between cores (`perf`,
//! docs/performance-history.md, "Selective herd"). The index reads each
//! route once, as offsets into the group; a
//! subscriber then checks its filter against plain slices and takes a
//! counted reference only to an event it keeps.
//!
//! # Layout
//! - `GroupIndex`: per record, its sequence, where its event lies in the
//!   group and where its route's fields lie in the event (`RouteSpans`).
//!   ~64 bytes per event, ~6% of a group of ~1 KB events, built on first use
//!   and kept with the cached group (`cache`), outside its byte budget.
//! - `PageGroup`: a group as a reader gets it, from the first record it
//!   wants.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::group;
use crate::route::{Route, RouteError, RouteSpans, StoredRoute};

/// One record of a group, located.
#[derive(Debug)]
pub struct Entry {
    pub sequence: u64,
    /// The event's offset and length in the group.
    start: u32,
    len: u32,
    route: Located,
}

impl Entry {
    /// Whether a subscriber without the decrypted scope needs a redacted copy.
    pub fn carries_decrypted_data(&self) -> bool {
        matches!(&self.route, Located::Route(spans) if spans.carries_decrypted_data())
    }
}

#[derive(Debug)]
enum Located {
    Route(RouteSpans),
    /// An event without a payload: no filter takes it.
    NoPayload,
    /// A route that does not read; the reason is read again when asked for,
    /// which only a damaged or foreign record ever makes anyone do.
    Unreadable,
}

/// A cached group.
#[derive(Clone)]
pub(crate) struct Cached {
    pub(crate) bytes: Bytes,
    /// Records in it: the next group starts at first + count.
    pub(crate) count: u64,
    /// Its records' routes, read by the first reader that needs them and
    /// then shared (see `index`).
    pub(crate) index: Arc<OnceLock<GroupIndex>>,
}

impl Cached {
    /// A group's bytes as stored, in a buffer of their own.
    pub(crate) fn new(bytes: Bytes) -> Self {
        let count = group::records(0, &bytes).count() as u64;
        Self { bytes, count, index: Default::default() }
    }
}

/// The records of one group, in sequence order.
#[derive(Debug, Default)]
pub struct GroupIndex {
    entries: Vec<Entry>,
}

impl GroupIndex {
    /// Reads every record's route of the group starting at `first`.
    fn build(first: u64, group: &Bytes) -> Self {
        let entries = group::records(first, group)
            .filter_map(|record| {
                let event = record.event();
                let start = offset_in(group, event);
                let (Ok(start_u32), Ok(len)) = (u32::try_from(start), u32::try_from(event.len())) else {
                    return None;
                };
                let route = match locate(group.slice(start..start + event.len())) {
                    Ok(Some(spans)) => Located::Route(spans),
                    Ok(None) => Located::NoPayload,
                    Err(_) => Located::Unreadable,
                };
                Some(Entry { sequence: record.sequence, start: start_u32, len, route })
            })
            .collect();
        Self { entries }
    }
}

/// Where `event`, a record's event read from `group`, starts in it. An
/// empty event (a record too short to hold one) may not point into the
/// group; it is read as empty all the same.
fn offset_in(group: &[u8], event: &[u8]) -> usize {
    if event.is_empty() {
        0
    } else {
        event.as_ptr() as usize - group.as_ptr() as usize
    }
}

fn locate(event: Bytes) -> Result<Option<RouteSpans>, RouteError> {
    StoredRoute::read(event.clone())?.spans(&event)
}

/// A group as one page read gives it to a reader: its records from the
/// first one wanted.
pub struct PageGroup {
    first: u64,
    cached: Cached,
    /// The first sequence the reader wants from this group.
    wanted: u64,
}

impl PageGroup {
    pub(crate) fn new(first: u64, cached: Cached, wanted: u64) -> Self {
        Self { first, cached, wanted }
    }

    /// The sequence after this group's last record.
    pub(crate) fn end(&self) -> u64 {
        self.first + self.cached.count
    }

    /// How many records the reader wants from this group.
    pub(crate) fn len(&self) -> usize {
        self.end().saturating_sub(self.wanted.max(self.first)) as usize
    }

    /// The events wanted with their sequences, without their routes: for a
    /// reader that takes every event as stored, which would pay for an index
    /// it never reads.
    pub fn stored_events(&self) -> impl Iterator<Item = (u64, Bytes)> + '_ {
        let bytes = &self.cached.bytes;
        group::records(self.first, bytes).filter(|record| record.sequence >= self.wanted).map(|record| {
            let event = record.event();
            let start = offset_in(bytes, event);
            (record.sequence, bytes.slice(start..start + event.len()))
        })
    }

    /// The records wanted, their routes read on the first call for this
    /// group by anyone.
    pub fn entries(&self) -> &[Entry] {
        let index = self.cached.index.get_or_init(|| GroupIndex::build(self.first, &self.cached.bytes));
        let from = index.entries.partition_point(|entry| entry.sequence < self.wanted);
        &index.entries[from..]
    }

    /// The stored event of `entry` (one of `entries`), sharing the group's
    /// buffer.
    pub fn event(&self, entry: &Entry) -> Bytes {
        match self.cached.bytes.get(self.range(entry)) {
            Some(_) => self.cached.bytes.slice(self.range(entry)),
            None => Bytes::new(),
        }
    }

    /// The route of `entry`; `None` for an event without a payload.
    pub fn route(&self, entry: &Entry) -> Result<Option<Route<'_>>, RouteError> {
        let event = self.cached.bytes.get(self.range(entry)).unwrap_or_default();
        match &entry.route {
            Located::Route(spans) => spans.route(event).map(Some),
            Located::NoPayload => Ok(None),
            Located::Unreadable => Err(locate(self.event(entry)).err().unwrap_or(RouteError::NotASlice)),
        }
    }

    /// Where `entry`'s event lies in the group (an entry of another group
    /// gets an empty or wrong slice, never a panic).
    fn range(&self, entry: &Entry) -> std::ops::Range<usize> {
        let start = entry.start as usize;
        start..start + entry.len as usize
    }
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
