//! Appending events that another log numbered: a replica's copy of a shared
//! log (the NATS JetStream backend) keeps each event under the sequence the
//! shared log gave it, so a cursor means the same on every replica.
//!
//! The shared log has already decided what is a duplicate, so nothing here
//! is checked against the dedup index. Sequences only grow: an event at or
//! below the copy's head was copied before (a consumer redelivering after a
//! reconnect) and is skipped; one past the head + 1 means the shared log no
//! longer held the events between (its retention removed them before this
//! replica read them), and live subscribers are told with a `Gap`, as
//! readers of the copy are by the jump itself.

use redb::ReadableDatabase;

use crate::error::LogError;
use crate::group::Packer;
use crate::prepared::{Prepared, NO_KEY};
use crate::schema::{COPY_OF, GROUPS, META};
use crate::wire;

use super::{Head, Result, Store, Stored};

/// One event of the shared log, as the copy stores it.
pub struct Copied {
    /// Its sequence in the shared log.
    pub sequence: u64,
    /// When the shared log stored it (Unix ms): what age retention counts.
    pub stored_at_ms: u64,
    pub prepared: Prepared,
}

/// What the reason of a `Gap` for events the copy never received says.
pub const NOT_COPIED: &str = "removed from the shared log before this replica read it";

impl Store {
    /// The identity of the shared log this is a copy of; `None`: an
    /// embedded log (or a new one).
    pub fn copy_of(&self) -> Result<Option<u64>> {
        Ok(self.db.begin_read()?.open_table(META)?.get(COPY_OF)?.map(|v| v.value()))
    }

    /// Makes this log the copy of the shared log `identity`: a new log
    /// becomes one; a copy of it stays one; a copy of another shared log, or
    /// an embedded log that holds events, is refused (its sequences would
    /// mean other events).
    pub fn claim_copy(&self, identity: u64) -> Result<()> {
        match self.copy_of()? {
            Some(recorded) if recorded == identity => Ok(()),
            Some(_) => Err(LogError::Copy(
                "this data directory holds a copy of another shared log (or of this one before it was recreated): move it away to copy this one afresh",
            )),
            None if self.next_sequence()? > 1 => Err(LogError::Copy(
                "this data directory holds an embedded log (--log redb): give the replica a data directory of its own",
            )),
            None => {
                let txn = self.db.begin_write()?;
                txn.open_table(META)?.insert(COPY_OF, identity)?;
                txn.commit()?;
                Ok(())
            }
        }
    }

    /// Stores `events` (in sequence order) under their own sequences in ONE
    /// durable commit; returns what live subscribers get, gaps included.
    pub fn append_copied(&self, events: Vec<Copied>, now_ms: u64) -> Result<Vec<Stored>> {
        let txn = self.db.begin_write()?;
        let mut stored = Vec::with_capacity(events.len());
        let mut written = Vec::new();
        let over_size;
        {
            let mut meta = txn.open_table(META)?;
            let Head { mut next, bytes } = Head::read(&meta)?;
            let mut groups = txn.open_table(GROUPS)?;
            let mut left: usize = events.iter().map(|e| e.prepared.record_len()).sum();
            let mut packer = Packer::new(left, next);
            for Copied { sequence, stored_at_ms, prepared } in events {
                let record_len = prepared.record_len();
                left = left.saturating_sub(record_len);
                if sequence < next {
                    packer.skip(record_len);
                    continue;
                }
                if sequence > next {
                    // Groups hold consecutive sequences: the jump closes one.
                    let full = std::mem::replace(&mut packer, Packer::new(left + record_len, sequence));
                    if let Some((first, group)) = full.finish() {
                        self.put_group(&mut groups, first, group, &mut written)?;
                    }
                    stored.push(Stored { encoded: wire::gap(next, sequence - 1, NOT_COPIED), redacted: None });
                }
                let key = prepared.key().copied().unwrap_or(NO_KEY);
                let event = prepared.into_stored(sequence);
                if let Some((first, full)) =
                    packer.push(sequence, record_len, stored_at_ms, &key, event.encoded.bytes())
                {
                    self.put_group(&mut groups, first, full, &mut written)?;
                }
                next = sequence + 1;
                stored.push(event);
            }
            over_size = self.close_commit(packer, Head { next, bytes }, &mut groups, &mut meta, &mut written)?;
        }
        self.commit_groups(txn, over_size, written, now_ms)?;
        Ok(stored)
    }
}

#[cfg(test)]
#[path = "copy_tests.rs"]
mod tests;
