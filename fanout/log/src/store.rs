//! The durable event log, on redb (an embedded, crash-safe B-tree store).
//!
//! Every accepted notification is appended with the next sequence; a commit
//! with `Durability::Immediate` is fsynced before anyone is told "stored".
//! Only the ingest writer (see `ingest`) writes; readers run concurrently on
//! MVCC snapshots.
//!
//! # Layout
//! - `groups`: first sequence -> the records of one commit (see `group`),
//!   each = stored at (Unix ms) + dedup key (the delivery id's hash, or
//!   zeros for an item without one; older records hold a content hash) + the encoded
//!   `graphrelay.v1.Event`. Retention removes whole groups from the front;
//!   replay sends the events as they are; the dedup index is rebuilt from the
//!   records inside the window at open. One insert per commit (per 256 KiB).
//! - `meta`: `next_sequence` (so sequences survive even a fully pruned log),
//!   `bytes` (size of the groups).
//!
//! The dedup index is in memory (see `dedup` for why); readers share copies
//! of the groups they read, and of the newest ones (see `cache`). The
//! tables and metadata keys are in `schema`, whose `FORMAT` a log records:
//! a log of another format is refused, not misread.
//! With a log key, group values are sealed at rest (see `seal`); the cache
//! holds them opened. Retention (`retention`) removes the oldest groups.
//! `commit` ends every commit (the writer's appends and a replica's copies,
//! `copy`) the same way.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable};

use crate::cache::GroupCache;
use crate::dedup::{self, Dedup, Pending};
use crate::group;
use crate::index::Cached;
use crate::index::PageGroup;
pub use crate::prepared::Stored;
use crate::prepared::{Prepared, NO_KEY};
use crate::seal::{self, LogKeys};

pub use crate::error::Result;
use crate::schema::{self, BYTES, GROUPS, META, NEXT_SEQUENCE, SEALED_FROM};

/// Subscribers' page reads at once (`Store::read_turn`).
const READERS_AT_ONCE: usize = 4;

/// How long events and dedup keys are kept, and how much memory the log's
/// page cache may use.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub max_age_ms: u64,
    pub max_bytes: u64,
    /// A delivery seen again within this window is a duplicate.
    pub dedup_window_ms: u64,
    /// Most delivery ids the dedup index keeps (see `dedup`).
    pub dedup_max_keys: usize,
    /// redb's page cache (its own default is 1 GiB).
    pub cache_bytes: usize,
    /// Groups shared by readers (see `cache`); 0 keeps none.
    pub shared_groups_bytes: usize,
}

/// The outcome of one publish request inside a group commit.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Appended {
    pub first_sequence: u64,
    pub last_sequence: u64,
    pub stored: u32,
    pub duplicates: u32,
}

impl Appended {
    /// Counts the stored event `sequence` (stored in order).
    fn count(&mut self, sequence: u64) {
        if self.stored == 0 {
            self.first_sequence = sequence;
        }
        self.last_sequence = sequence;
        self.stored += 1;
    }
}

/// What a reader found after a cursor.
pub struct Page {
    /// The groups holding the events after the cursor, in order, each from
    /// the first record wanted.
    pub groups: Vec<PageGroup>,
    /// The sequence the next stored event will get (head + 1).
    pub next_sequence: u64,
}

impl Page {
    /// Whether the cursor was at the end of the log.
    pub fn is_empty(&self) -> bool {
        self.groups.iter().all(|group| group.len() == 0)
    }

    /// Reads the routes of the page's groups not read yet by any reader
    /// (see `index`): on the reading thread, not on the runtime.
    pub fn read_routes(&self) {
        for group in &self.groups {
            group.entries();
        }
    }

    /// Every event of the page with its sequence (readers go group by group).
    #[cfg(test)]
    pub fn events(&self) -> Vec<(u64, Bytes)> {
        self.groups.iter().flat_map(PageGroup::stored_events).collect()
    }
}

/// What the log holds at one moment (see [`Store::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// The sequence the next stored event gets.
    pub next_sequence: u64,
    /// The first sequence retention still keeps; `None` while the log is empty.
    pub oldest_sequence: Option<u64>,
    /// Bytes the stored groups take (what size retention counts).
    pub bytes: u64,
}

pub struct Store {
    db: Database,
    retention: Retention,
    /// Durable appends so far: with the publish count, shows how many
    /// publishers each fsync served (group commit at work).
    commits: AtomicU64,
    /// Keys stored within the dedup window. Only the writer locks it (never
    /// contended); a lock rather than `&mut self` keeps `Store` shareable
    /// with readers.
    dedup: Mutex<Dedup>,
    /// Groups readers share instead of each reading and copying them.
    cache: GroupCache,
    /// Seal the groups this store writes and open sealed ones; `None`: groups
    /// are stored as they are, and a sealed one does not open.
    log_keys: Option<LogKeys>,
    /// Every group from this first sequence on is sealed (`meta`'s
    /// `sealed_from`); a plaintext one there was swapped in and fails.
    sealed_from: Option<u64>,
    /// Turns for subscribers reading pages (see `read_turn`).
    readers: tokio::sync::Semaphore,
}

impl Store {
    pub fn open(dir: &Path, retention: Retention, log_keys: Option<LogKeys>) -> Result<Self> {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        Self::open_at(dir, retention, log_keys, now_ms)
    }

    /// Opens as if the time were `now_ms` (which decides the dedup window).
    /// The oldest and the newest group must open with `keys`: a missing
    /// key, or an old one dropped too early from the key file, fails here,
    /// not at a subscriber's first replay.
    pub fn open_at(dir: &Path, retention: Retention, log_keys: Option<LogKeys>, now_ms: u64) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(crate::error::LogError::Directory)?;
        let db = Database::builder().set_cache_size(retention.cache_bytes).create(dir.join("events.redb"))?;
        let txn = db.begin_write()?;
        {
            txn.open_table(GROUPS)?;
            txn.open_table(META)?;
        }
        txn.commit()?;
        schema::check_format(&db)?;
        let sealed_from = sealed_from(&db, log_keys.is_some())?;
        let opening = seal::Opening { keys: log_keys.as_ref(), sealed_from };
        let groups = db.begin_read()?.open_table(GROUPS)?;
        for (first, group) in [groups.first()?, groups.last()?].into_iter().flatten() {
            seal::open(opening, first.value(), group.value())?;
        }
        drop(groups);
        let dedup = rebuild_dedup(&db, opening, retention, now_ms)?;
        tracing::debug!(keys = dedup.len(), "dedup index rebuilt from the log");
        let cache = GroupCache::new(retention.shared_groups_bytes);
        let readers = tokio::sync::Semaphore::new(READERS_AT_ONCE);
        let dedup = Mutex::new(dedup);
        Ok(Self { db, retention, commits: AtomicU64::new(0), dedup, cache, log_keys, sealed_from, readers })
    }

    /// How this store opens its groups.
    pub(crate) fn opening(&self) -> seal::Opening<'_> {
        seal::Opening { keys: self.log_keys.as_ref(), sealed_from: self.sealed_from }
    }

    fn dedup(&self) -> MutexGuard<'_, Dedup> {
        // The index holds no invariant a panicking holder could break halfway.
        self.dedup.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The sequence the next stored event gets (1 on a new log).
    pub fn next_sequence(&self) -> Result<u64> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(META)?.get(NEXT_SEQUENCE)?.map(|v| v.value()).unwrap_or(1))
    }

    /// Appends the notifications of several publish requests in ONE durable
    /// transaction (group commit). A delivery id stored within the dedup
    /// window, even inside the same group, is a duplicate and not stored
    /// again; an item without one is always stored.
    pub fn append(&self, requests: Vec<Vec<Prepared>>, now_ms: u64) -> Result<(Vec<Appended>, Vec<Stored>)> {
        let mut dedup = self.dedup();
        let mut pending = Pending::default();
        let txn = self.db.begin_write()?;
        let mut outcomes = Vec::with_capacity(requests.len());
        let mut stored = Vec::new();
        let mut written = Vec::new();
        let over_size;
        {
            let mut meta = txn.open_table(META)?;
            let Head { mut next, bytes } = Head::read(&meta)?;
            let mut groups = txn.open_table(GROUPS)?;
            let mut packer = group::Packer::new(requests.iter().flatten().map(Prepared::record_len).sum(), next);
            for notifications in requests {
                let mut outcome = Appended::default();
                for prepared in notifications {
                    let identity = prepared.key().copied().unwrap_or(NO_KEY);
                    if let Some(key) = prepared.key().map(dedup::key_of) {
                        if pending.is_duplicate(&dedup, &key, now_ms) {
                            packer.skip(prepared.record_len());
                            outcome.duplicates += 1;
                            continue;
                        }
                        pending.add(key);
                    }
                    let record_len = prepared.record_len();
                    let event = prepared.into_stored(next);
                    if let Some((first, full)) = packer.push(next, record_len, now_ms, &identity, event.encoded.bytes())
                    {
                        self.put_group(&mut groups, first, full, &mut written)?;
                    }
                    outcome.count(next);
                    next += 1;
                    stored.push(event);
                }
                outcomes.push(outcome);
            }
            let end = Head { next, bytes };
            over_size = self.close_commit(packer, end, &mut groups, &mut meta, &mut written)?;
        }
        self.commit_groups(txn, over_size, written, now_ms)?;
        pending.commit_into(&mut dedup, now_ms);
        Ok((outcomes, stored))
    }

    /// Waits for a turn to read a page for a subscriber: with 1000
    /// subscribers catching up at once, unbounded readers each held a page
    /// and the groups it copied, and peak memory was ~25% higher at the same
    /// throughput (docs/performance-history.md, "2026-11-28, b56547d"). Turns are given in order.
    pub async fn read_turn(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.readers.acquire().await.ok()
    }

    /// What the log holds now, for metrics: one read transaction.
    pub fn stats(&self) -> Result<LogStats> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let next_sequence = meta.get(NEXT_SEQUENCE)?.map(|v| v.value()).unwrap_or(1);
        let bytes = meta.get(BYTES)?.map(|v| v.value()).unwrap_or(0);
        let oldest_sequence = txn.open_table(GROUPS)?.first()?.map(|(first, _)| first.value());
        Ok(LogStats { next_sequence, oldest_sequence, bytes })
    }

    /// Durable append transactions committed since opening.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Removes what retention no longer keeps (age, size, dedup window).
    pub fn prune(&self, now_ms: u64) -> Result<u64> {
        self.dedup().expire(now_ms);
        let txn = self.db.begin_write()?;
        let removed = self.prune_in(&txn, now_ms)?;
        txn.commit()?;
        Ok(removed)
    }

    /// Up to about `limit` stored events with sequence > `cursor`, oldest
    /// first (whole groups are read, so a page may end a little later). Their
    /// routes are read when a reader first asks (see `index`).
    pub fn read_after(&self, cursor: u64, limit: usize) -> Result<Page> {
        let txn = self.db.begin_read()?;
        let next_sequence = txn.open_table(META)?.get(NEXT_SEQUENCE)?.map(|v| v.value()).unwrap_or(1);
        let wanted = cursor.saturating_add(1);
        let (mut groups, mut events, mut next) = (Vec::new(), 0, wanted);
        while events < limit {
            let Some((first, cached)) = self.cache.holding(next) else { break };
            let group = PageGroup::new(first, cached, next);
            events += group.len();
            next = group.end();
            groups.push(group);
        }
        if events >= limit {
            return Ok(Page { groups, next_sequence });
        }
        let stored = txn.open_table(GROUPS)?;
        // The group holding `next` starts at or before it.
        let start = stored.range(..=next)?.next_back().transpose()?.map_or(next, |(k, _)| k.value());
        for entry in stored.range(start..)? {
            let (first, group) = entry?;
            let shared = match seal::open(self.opening(), first.value(), group.value())? {
                std::borrow::Cow::Borrowed(plain) => Bytes::copy_from_slice(plain),
                std::borrow::Cow::Owned(opened) => Bytes::from(opened),
            };
            let cached = Cached::new(shared);
            self.cache.insert(first.value(), cached.clone());
            let group = PageGroup::new(first.value(), cached, next);
            events += group.len();
            groups.push(group);
            if events >= limit {
                break;
            }
        }
        Ok(Page { groups, next_sequence })
    }
}

/// The dedup index of the records stored within the window before `now_ms`.
/// Groups are in storage order, so a binary search over their first
/// sequences finds the window's first group and only the window is read (a
/// clock stepped back can shift that boundary by the size of the step: at
/// worst a few keys more or fewer).
fn rebuild_dedup(db: &Database, opening: seal::Opening<'_>, retention: Retention, now_ms: u64) -> Result<Dedup> {
    let mut dedup = Dedup::new(retention.dedup_window_ms, retention.dedup_max_keys);
    let window_start = now_ms.saturating_sub(retention.dedup_window_ms);
    let txn = db.begin_read()?;
    let groups = txn.open_table(GROUPS)?;
    let Some((first, _)) = groups.first()? else { return Ok(dedup) };
    let (mut low, mut high) = (first.value(), groups.last()?.map(|(k, _)| k.value() + 1).unwrap_or(0));
    // The first group whose newest event is inside the window. A group that
    // does not open counts as inside: the scan then starts a little early.
    while low < high {
        let middle = low + (high - low) / 2;
        let newest = match groups.range(..=middle)?.next_back().transpose()? {
            Some((k, v)) => seal::open(opening, k.value(), v.value())
                .ok()
                .map(|group| group::records(k.value(), &group).last().map_or(0, |r| r.stored_at())),
            None => None,
        };
        match newest {
            Some(at) if at < window_start => low = middle + 1,
            _ => high = middle,
        }
    }
    let start = groups.range(..=low)?.next_back().transpose()?.map_or(low, |(k, _)| k.value());
    for entry in groups.range(start..)? {
        let (first, group) = entry?;
        // Not a reason to refuse to start (the oldest and newest groups were
        // checked): its keys are not remembered, so a Graph retry of one of
        // its notifications may be stored again, a duplicate and never a loss.
        let group = match seal::open(opening, first.value(), group.value()) {
            Ok(group) => group,
            Err(e) => {
                tracing::error!(group = first.value(), "dedup index: skipping a log group that does not open: {e}");
                continue;
            }
        };
        for record in group::records(first.value(), &group) {
            if record.stored_at() >= window_start && record.dedup_key() != NO_KEY {
                dedup.remember(dedup::key_of(&record.dedup_key()), record.stored_at());
            }
        }
    }
    Ok(dedup)
}

/// The first sequence from which every group is sealed: read from `meta`,
/// and recorded (durably) the first time the log is opened with a key. A
/// sealed log opened without a key is refused.
fn sealed_from(db: &Database, has_keys: bool) -> Result<Option<u64>> {
    let recorded = db.begin_read()?.open_table(META)?.get(SEALED_FROM)?.map(|v| v.value());
    match (recorded, has_keys) {
        (Some(sealed_from), false) => Err(seal::SealError::SealedLogWithoutKey { sealed_from }.into()),
        (Some(sealed_from), true) => Ok(Some(sealed_from)),
        (None, false) => Ok(None),
        (None, true) => {
            let txn = db.begin_write()?;
            let sealed_from = {
                let mut meta = txn.open_table(META)?;
                let next = meta.get(NEXT_SEQUENCE)?.map(|v| v.value()).unwrap_or(1);
                meta.insert(SEALED_FROM, next)?;
                next
            };
            txn.commit()?;
            Ok(Some(sealed_from))
        }
    }
}

#[path = "retention.rs"]
mod retention;

#[path = "copy.rs"]
pub mod copy;

#[path = "commit.rs"]
mod commit;
use commit::Head;

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
