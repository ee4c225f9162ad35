//! The durable event log, on redb (an embedded, crash-safe B-tree store).
//!
//! Every accepted notification is appended with the next sequence; a commit
//! with `Durability::Immediate` is fsynced before anyone is told "stored".
//! Only the ingest writer (see `ingest`) writes; readers run concurrently on
//! MVCC snapshots.
//!
//! # Layout
//! - `records`: sequence -> record = stored at (Unix ms, u64 BE) + dedup key
//!   (32 bytes) + the encoded `graphrelay.v1.Event`. Retention reads the
//!   prefix; replay sends the rest as it is; the dedup index is rebuilt from
//!   the prefixes inside the window at open. One (sequential) insert per event.
//! - `meta`: `next_sequence` (so sequences survive even a fully pruned log),
//!   `bytes` (size of the records).
//!
//! The dedup index is in memory (see `dedup` for why); logs written before
//! that had a `dedup` table, which opening drops.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use graph_relay_proto::v1::{Event, Notification};
use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use sha2::{Digest, Sha256};

use crate::dedup::{self, Dedup, Pending};
use crate::wire::{self, EncodedEvent};

const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
/// The on-disk dedup index of older logs, dropped at open.
const LEGACY_DEDUP: TableDefinition<[u8; 32], u64> = TableDefinition::new("dedup");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Stored-at time and dedup key in front of each event.
const PREFIX: usize = 8 + 32;

/// A notification with its dedup key, computed before it reaches the writer.
pub type Keyed = (Notification, [u8; 32]);

pub type Result<T> = std::result::Result<T, redb::Error>;

/// How long events and dedup keys are kept, and how much memory the log's
/// page cache may use.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub max_age_ms: u64,
    pub max_bytes: u64,
    /// A notification seen again within this window is a duplicate.
    pub dedup_window_ms: u64,
    /// redb's page cache (its own default is 1 GiB).
    pub cache_bytes: usize,
}

/// An event the log stored, with its decoded form for filter matching.
pub struct Stored {
    pub event: Event,
    pub encoded: EncodedEvent,
    /// The same event without decrypted resource data, for subscribers not
    /// allowed to see it; `None` when there is nothing to hide.
    pub redacted: Option<EncodedEvent>,
}

/// The outcome of one publish request inside a group commit.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Appended {
    pub first_sequence: u64,
    pub last_sequence: u64,
    pub stored: u32,
    pub duplicates: u32,
}

/// What a reader found after a cursor.
pub struct Page {
    pub events: Vec<(u64, Bytes)>,
    /// The sequence the next stored event will get (head + 1).
    pub next_sequence: u64,
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
}

impl Store {
    pub fn open(dir: &Path, retention: Retention) -> Result<Self> {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        Self::open_at(dir, retention, now_ms)
    }

    /// Opens as if the time were `now_ms` (which decides the dedup window).
    pub fn open_at(dir: &Path, retention: Retention, now_ms: u64) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(redb::Error::Io)?;
        let db = Database::builder().set_cache_size(retention.cache_bytes).create(dir.join("events.redb"))?;
        let txn = db.begin_write()?;
        {
            txn.open_table(RECORDS)?;
            txn.open_table(META)?.remove("dedup_pruned_through")?;
        }
        txn.delete_table(LEGACY_DEDUP)?;
        txn.commit()?;
        let dedup = rebuild_dedup(&db, retention.dedup_window_ms, now_ms)?;
        tracing::debug!(keys = dedup.len(), "dedup index rebuilt from the log");
        Ok(Self { db, retention, commits: AtomicU64::new(0), dedup: Mutex::new(dedup) })
    }

    fn dedup(&self) -> MutexGuard<'_, Dedup> {
        // The index holds no invariant a panicking holder could break halfway.
        self.dedup.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The sequence the next stored event gets (1 on a new log).
    pub fn next_sequence(&self) -> Result<u64> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(META)?.get("next_sequence")?.map(|v| v.value()).unwrap_or(1))
    }

    /// Appends the notifications of several publish requests in ONE durable
    /// transaction (group commit). Duplicates within the dedup window, even
    /// inside the same group, are recognised and not stored again.
    pub fn append(&self, requests: Vec<Vec<Keyed>>, now_ms: u64) -> Result<(Vec<Appended>, Vec<Stored>)> {
        let mut dedup = self.dedup();
        let mut pending = Pending::default();
        let txn = self.db.begin_write()?;
        let mut outcomes = Vec::with_capacity(requests.len());
        let mut stored = Vec::new();
        {
            let mut meta = txn.open_table(META)?;
            let mut next = meta.get("next_sequence")?.map(|v| v.value()).unwrap_or(1);
            let mut bytes = meta.get("bytes")?.map(|v| v.value()).unwrap_or(0);
            let mut records = txn.open_table(RECORDS)?;
            let mut record = Vec::new();
            for notifications in requests {
                let mut outcome = Appended::default();
                for (notification, identity) in notifications {
                    let key = dedup::key_of(&identity);
                    if pending.is_duplicate(&dedup, &key, now_ms) {
                        outcome.duplicates += 1;
                        continue;
                    }
                    pending.add(key);
                    let sequence = next;
                    next += 1;
                    let event = wire::to_event(sequence, notification);
                    let encoded = EncodedEvent::from_event(&event);
                    record.clear();
                    record.extend_from_slice(&now_ms.to_be_bytes());
                    record.extend_from_slice(&identity);
                    record.extend_from_slice(encoded.bytes());
                    records.insert(sequence, record.as_slice())?;
                    bytes += record.len() as u64;
                    outcome.first_sequence = if outcome.stored == 0 { sequence } else { outcome.first_sequence };
                    outcome.last_sequence = sequence;
                    outcome.stored += 1;
                    let redacted = wire::redacted(&event);
                    stored.push(Stored { event, encoded, redacted });
                }
                outcomes.push(outcome);
            }
            meta.insert("next_sequence", next)?;
            meta.insert("bytes", bytes)?;
        }
        self.prune_in(&txn, now_ms)?;
        txn.commit()?;
        pending.commit_into(&mut dedup, now_ms);
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok((outcomes, stored))
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

    fn prune_in(&self, txn: &WriteTransaction, now_ms: u64) -> Result<u64> {
        let mut meta = txn.open_table(META)?;
        let mut records = txn.open_table(RECORDS)?;
        let mut bytes = meta.get("bytes")?.map(|v| v.value()).unwrap_or(0);
        let oldest_kept = now_ms.saturating_sub(self.retention.max_age_ms);
        let mut removed = 0;
        loop {
            let Some((sequence, len, at)) = records.first()?.map(|(k, v)| {
                let record = v.value();
                (k.value(), record.len() as u64, stored_at(record))
            }) else {
                break;
            };
            if bytes <= self.retention.max_bytes && at >= oldest_kept {
                break;
            }
            records.remove(sequence)?;
            bytes = bytes.saturating_sub(len);
            removed += 1;
        }
        meta.insert("bytes", bytes)?;
        Ok(removed)
    }

    /// Up to `limit` stored events with sequence > `cursor`, oldest first.
    pub fn read_after(&self, cursor: u64, limit: usize) -> Result<Page> {
        let txn = self.db.begin_read()?;
        let next_sequence = txn.open_table(META)?.get("next_sequence")?.map(|v| v.value()).unwrap_or(1);
        let records = txn.open_table(RECORDS)?;
        let mut events = Vec::new();
        for entry in records.range(cursor.saturating_add(1)..)?.take(limit) {
            let (k, v) = entry?;
            events.push((k.value(), Bytes::copy_from_slice(v.value().get(PREFIX..).unwrap_or_default())));
        }
        Ok(Page { events, next_sequence })
    }
}

/// A notification's identity: every Graph field but clientState (already
/// gone) and the edge's receive time, which differs between Graph's retries.
pub fn dedup_key(notification: &Notification) -> [u8; 32] {
    let mut identity = Vec::with_capacity(notification.encoded_len());
    if let Some(kind) = &notification.kind {
        kind.encode(&mut identity);
    }
    Sha256::digest(identity).into()
}

/// Pairs each notification with its dedup key (done by the publish handler,
/// in parallel, so the single writer does not).
pub fn keyed(notifications: Vec<Notification>) -> Vec<Keyed> {
    notifications
        .into_iter()
        .map(|n| {
            let key = dedup_key(&n);
            (n, key)
        })
        .collect()
}

/// The dedup index of the records stored within the window before `now_ms`.
/// Records are in storage order, so a binary search finds the window's first
/// one and only the window is read (a clock stepped back can shift that
/// boundary by the size of the step: at worst a few keys more or fewer).
fn rebuild_dedup(db: &Database, window_ms: u64, now_ms: u64) -> Result<Dedup> {
    let mut dedup = Dedup::new(window_ms);
    let window_start = now_ms.saturating_sub(dedup.window_ms());
    let txn = db.begin_read()?;
    let records = txn.open_table(RECORDS)?;
    let Some((first, _)) = records.first()? else { return Ok(dedup) };
    let (mut low, mut high) = (first.value(), records.last()?.map(|(k, _)| k.value() + 1).unwrap_or(0));
    while low < high {
        let middle = low + (high - low) / 2;
        match records.get(middle)? {
            Some(record) if stored_at(record.value()) < window_start => low = middle + 1,
            _ => high = middle,
        }
    }
    for entry in records.range(low..)? {
        let (_, record) = entry?;
        dedup.remember(dedup::key_of(&dedup_key_of(record.value())), stored_at(record.value()));
    }
    Ok(dedup)
}

fn stored_at(record: &[u8]) -> u64 {
    record.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).unwrap_or(0)
}

fn dedup_key_of(record: &[u8]) -> [u8; 32] {
    record.get(8..PREFIX).and_then(|b| b.try_into().ok()).unwrap_or([0; 32])
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
