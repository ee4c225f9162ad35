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
//!   prefix; replay sends the rest as it is. One insert per event.
//! - `dedup`: dedup key -> sequence, for recognising a notification again.
//! - `meta`: `next_sequence` (so sequences survive even a fully pruned log),
//!   `bytes` (size of the records), `dedup_pruned_through`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use graph_relay_proto::v1::{Event, Notification};
use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use sha2::{Digest, Sha256};

use crate::wire::{self, EncodedEvent};

const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
const DEDUP: TableDefinition<[u8; 32], u64> = TableDefinition::new("dedup");
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
}

impl Store {
    pub fn open(dir: &Path, retention: Retention) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(redb::Error::Io)?;
        let db = Database::builder().set_cache_size(retention.cache_bytes).create(dir.join("events.redb"))?;
        let txn = db.begin_write()?;
        {
            txn.open_table(RECORDS)?;
            txn.open_table(DEDUP)?;
            txn.open_table(META)?;
        }
        txn.commit()?;
        Ok(Self { db, retention, commits: AtomicU64::new(0) })
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
        let txn = self.db.begin_write()?;
        let mut outcomes = Vec::with_capacity(requests.len());
        let mut stored = Vec::new();
        {
            let mut meta = txn.open_table(META)?;
            let mut next = meta.get("next_sequence")?.map(|v| v.value()).unwrap_or(1);
            let mut bytes = meta.get("bytes")?.map(|v| v.value()).unwrap_or(0);
            let mut records = txn.open_table(RECORDS)?;
            let mut dedup = txn.open_table(DEDUP)?;
            let window_start = now_ms.saturating_sub(self.retention.dedup_window_ms);
            let mut record = Vec::new();
            for notifications in requests {
                let mut outcome = Appended::default();
                for (notification, key) in notifications {
                    let seen = dedup.get(key)?.map(|v| v.value());
                    let recent = match seen {
                        Some(seq) => records.get(seq)?.is_some_and(|v| stored_at(v.value()) >= window_start),
                        None => false,
                    };
                    if recent {
                        outcome.duplicates += 1;
                        continue;
                    }
                    let sequence = next;
                    next += 1;
                    let event = wire::to_event(sequence, notification);
                    let encoded = EncodedEvent::from_event(&event);
                    record.clear();
                    record.extend_from_slice(&now_ms.to_be_bytes());
                    record.extend_from_slice(&key);
                    record.extend_from_slice(encoded.bytes());
                    records.insert(sequence, record.as_slice())?;
                    dedup.insert(key, sequence)?;
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
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok((outcomes, stored))
    }

    /// Durable append transactions committed since opening.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Removes what retention no longer keeps (age, size, dedup window).
    pub fn prune(&self, now_ms: u64) -> Result<u64> {
        let txn = self.db.begin_write()?;
        let removed = self.prune_in(&txn, now_ms)?;
        txn.commit()?;
        Ok(removed)
    }

    fn prune_in(&self, txn: &WriteTransaction, now_ms: u64) -> Result<u64> {
        let mut meta = txn.open_table(META)?;
        let mut records = txn.open_table(RECORDS)?;
        let mut dedup = txn.open_table(DEDUP)?;
        let mut bytes = meta.get("bytes")?.map(|v| v.value()).unwrap_or(0);
        let oldest_kept = now_ms.saturating_sub(self.retention.max_age_ms);
        let mut removed = 0;
        loop {
            let Some((sequence, len, at, key)) = records.first()?.map(|(k, v)| {
                let record = v.value();
                (k.value(), record.len() as u64, stored_at(record), dedup_key_of(record))
            }) else {
                break;
            };
            if bytes <= self.retention.max_bytes && at >= oldest_kept {
                break;
            }
            records.remove(sequence)?;
            if dedup.get(key)?.is_some_and(|v| v.value() == sequence) {
                dedup.remove(key)?;
            }
            bytes = bytes.saturating_sub(len);
            removed += 1;
        }
        // Dedup keys outlive nothing: drop those older than the window.
        let window_start = now_ms.saturating_sub(self.retention.dedup_window_ms);
        let mut through = meta.get("dedup_pruned_through")?.map(|v| v.value()).unwrap_or(0);
        let mut expired = Vec::new();
        for entry in records.range(through + 1..)? {
            let (sequence, record) = entry?;
            if stored_at(record.value()) >= window_start {
                break;
            }
            expired.push((sequence.value(), dedup_key_of(record.value())));
        }
        for (sequence, key) in expired {
            if dedup.get(key)?.is_some_and(|v| v.value() == sequence) {
                dedup.remove(key)?;
            }
            through = sequence;
        }
        meta.insert("dedup_pruned_through", through)?;
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

fn stored_at(record: &[u8]) -> u64 {
    record.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).unwrap_or(0)
}

fn dedup_key_of(record: &[u8]) -> [u8; 32] {
    record.get(8..PREFIX).and_then(|b| b.try_into().ok()).unwrap_or([0; 32])
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
