//! Logs written by earlier versions, upgraded in place when opened.
//!
//! Earlier logs kept one `records` entry per event (same record bytes as a
//! group's frames, without the length) and an on-disk `dedup` table. Opening
//! moves the records into groups a chunk at a time, each chunk one durable
//! transaction (a crash mid-way resumes where it stopped; nothing is read
//! twice or lost), then drops the old tables. With a log key the moved
//! groups are sealed like any other (the old records' bytes stay in pages
//! redb has freed until it reuses them).

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};

use crate::group;
use crate::seal::{self, LogKeys};
use crate::store::{Result, GROUPS, META};

/// sequence -> stored at + dedup key + encoded event.
const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
/// dedup key -> sequence; now kept in memory.
const DEDUP: TableDefinition<[u8; 32], u64> = TableDefinition::new("dedup");
/// Records moved per transaction.
const CHUNK: usize = 4096;

/// Upgrades `db` if it holds an older layout, sealing the groups it makes
/// with `log_keys` if set; returns the records moved.
pub(crate) fn upgrade(db: &Database, log_keys: Option<&LogKeys>) -> Result<u64> {
    let txn = db.begin_write()?;
    txn.delete_table(DEDUP)?;
    txn.open_table(META)?.remove("dedup_pruned_through")?;
    txn.commit()?;
    let has_records = db.begin_read()?.list_tables()?.any(|table| table.name() == RECORDS.name());
    if !has_records {
        return Ok(0);
    }
    let mut moved = 0;
    loop {
        let txn = db.begin_write()?;
        let count = {
            let mut records = txn.open_table(RECORDS)?;
            let mut groups = txn.open_table(GROUPS)?;
            let mut meta = txn.open_table(META)?;
            let chunk: Vec<(u64, Vec<u8>)> = records
                .range::<u64>(..)?
                .take(CHUNK)
                .map(|entry| entry.map(|(k, v)| (k.value(), v.value().to_vec())))
                .collect::<std::result::Result<_, _>>()?;
            let mut group = Vec::new();
            let mut first = 0;
            let mut previous = None;
            // The old records were counted; frames and seals are new bytes.
            let mut added = (chunk.len() * group::FRAME_OVERHEAD) as u64;
            let mut put = |first: u64, group: &[u8]| -> Result<()> {
                let stored = seal::seal_if(log_keys, first, group)?;
                added += (stored.len() - group.len()) as u64;
                groups.insert(first, stored.as_ref())?;
                Ok(())
            };
            for (sequence, record) in &chunk {
                let contiguous = previous.is_some_and(|p: u64| p + 1 == *sequence);
                if !group.is_empty() && (!contiguous || group.len() >= group::MAX_BYTES) {
                    put(first, &group)?;
                    group.clear();
                }
                if group.is_empty() {
                    first = *sequence;
                }
                group::push_record(&mut group, record);
                previous = Some(*sequence);
                records.remove(*sequence)?;
            }
            if !group.is_empty() {
                put(first, &group)?;
            }
            let bytes = meta.get("bytes")?.map(|v| v.value()).unwrap_or(0);
            meta.insert("bytes", bytes + added)?;
            chunk.len()
        };
        if count == 0 {
            txn.delete_table(RECORDS)?;
        }
        txn.commit()?;
        moved += count as u64;
        if count == 0 {
            tracing::info!(records = moved, "log upgraded to grouped records");
            return Ok(moved);
        }
    }
}
