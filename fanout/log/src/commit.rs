//! The end of every commit, shared by the writer's appends and a
//! replica's copies: the last group stored, the head recorded, size
//! retention, the commit itself, and the new groups handed to readers.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use redb::ReadableTable;

use super::{Result, Store};
use crate::group;
use crate::index::Cached;
use crate::schema::{BYTES, NEXT_SEQUENCE};
use crate::seal;

/// Where a commit leaves the log: the next sequence and the groups' size
/// before its own groups are counted.
pub(crate) struct Head {
    pub(crate) next: u64,
    pub(crate) bytes: u64,
}

impl Head {
    /// The head the last commit recorded (an empty log's: sequence 1, no bytes).
    pub(crate) fn read(meta: &redb::Table<'_, &'static str, u64>) -> Result<Head> {
        let next = meta.get(NEXT_SEQUENCE)?.map(|v| v.value()).unwrap_or(1);
        let bytes = meta.get(BYTES)?.map(|v| v.value()).unwrap_or(0);
        Ok(Head { next, bytes })
    }
}

impl Store {
    /// Stores a commit's last group and records its head; returns whether
    /// the log is now over its size.
    pub(crate) fn close_commit(
        &self,
        packer: group::Packer,
        head: Head,
        groups: &mut redb::Table<'_, u64, &'static [u8]>,
        meta: &mut redb::Table<'_, &'static str, u64>,
        written: &mut Vec<(u64, Bytes, u64)>,
    ) -> Result<bool> {
        if let Some((first, last)) = packer.finish() {
            self.put_group(groups, first, last, written)?;
        }
        let bytes = head.bytes + written.iter().map(|(_, _, stored)| stored).sum::<u64>();
        meta.insert(NEXT_SEQUENCE, head.next)?;
        meta.insert(BYTES, bytes)?;
        Ok(bytes > self.retention.max_bytes)
    }

    /// Commits `txn` (after removing what size no longer keeps) and shares
    /// the groups it wrote with readers.
    pub(crate) fn commit_groups(
        &self,
        txn: redb::WriteTransaction,
        over_size: bool,
        written: Vec<(u64, Bytes, u64)>,
        now_ms: u64,
    ) -> Result<()> {
        // Size is enforced at once; age by the periodic `prune` (reading the
        // oldest group on every commit would cost a group read per commit).
        if over_size {
            self.prune_in(&txn, now_ms)?;
        }
        txn.commit()?;
        // Subscribers just behind read these next: from memory.
        if self.cache.keeps_any() {
            for (first, group, _) in written {
                self.cache.insert(first, Cached::new(group));
            }
        }
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Stores one group of a commit (sealed, with a key), and hands the
    /// buffer itself on to the cache, with the size it takes in the log.
    pub(crate) fn put_group(
        &self,
        groups: &mut redb::Table<'_, u64, &'static [u8]>,
        first: u64,
        group: Vec<u8>,
        written: &mut Vec<(u64, Bytes, u64)>,
    ) -> Result<()> {
        let stored_len = {
            let stored = seal::seal_if(self.log_keys.as_ref(), first, &group)?;
            groups.insert(first, stored.as_ref())?;
            stored.len() as u64
        };
        written.push((first, Bytes::from(group), stored_len));
        Ok(())
    }
}
