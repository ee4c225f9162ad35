//! The log's tables and metadata keys, in one place.
//!
//! # Layout
//! - [`GROUPS`]: first sequence -> one commit group's records (see `group`),
//!   sealed when the log has keys (see `seal`).
//! - [`META`]: the counters and settings below, by key.

use redb::{Database, ReadableDatabase, TableDefinition};

use crate::error::{LogError, Result};

pub(crate) const GROUPS: TableDefinition<u64, &[u8]> = TableDefinition::new("groups");
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// `META`: the sequence the next stored event gets (kept so sequences
/// survive a fully pruned log).
pub(crate) const NEXT_SEQUENCE: &str = "next_sequence";
/// `META`: the bytes the groups take (what size retention counts).
pub(crate) const BYTES: &str = "bytes";
/// `META`: from this first sequence on every group is sealed.
pub(crate) const SEALED_FROM: &str = "sealed_from";
/// `META`: this log is a replica's copy of the shared log with this identity
/// (see `store::copy`); absent in an embedded log.
pub(crate) const COPY_OF: &str = "copy_of";
/// `META`: the format of the records and groups.
pub(crate) const FORMAT_KEY: &str = "format";

/// The format this version writes and reads: one value per commit group,
/// each record stored at + dedup key + encoded event.
pub const FORMAT: u64 = 1;

/// Records the format in a new log; refuses a log of another one.
pub(crate) fn check_format(db: &Database) -> Result<()> {
    let recorded = db.begin_read()?.open_table(META)?.get(FORMAT_KEY)?.map(|v| v.value());
    match recorded {
        Some(FORMAT) => Ok(()),
        Some(found) => Err(LogError::Format { found, expected: FORMAT }),
        None => {
            let txn = db.begin_write()?;
            txn.open_table(META)?.insert(FORMAT_KEY, FORMAT)?;
            txn.commit()?;
            Ok(())
        }
    }
}
