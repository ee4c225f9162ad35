//! Retention: the oldest groups go when the log is over its size or their
//! newest event is past its age.
//!
//! A group that does not open (sealed with a key no longer in the key file,
//! or altered) still goes when it is due: its size is known without opening
//! it, and its events are older than the next group's first one. Otherwise
//! it would stop retention for good, and, once the log is over its size,
//! fail every append (publishers would get UNAVAILABLE). Readers that reach
//! it still fail loudly: it may open again when its key is put back.

use redb::{ReadableTable, WriteTransaction};

use super::{Result, Store};
use crate::group;
use crate::schema::{BYTES, GROUPS, META, NEXT_SEQUENCE};
use crate::seal::{self, SealError};

/// The oldest group, as retention needs it.
struct Oldest {
    first: u64,
    /// Its size in the log (sealed, if it is).
    len: u64,
    /// Events in it.
    count: u64,
    /// When its newest event was stored; `None`: unknown (it does not open
    /// and no later group tells), so only the size limit removes it.
    newest_at: Option<u64>,
    /// Why it does not open, if it does not.
    unopened: Option<SealError>,
}

impl Store {
    /// Removes the oldest groups that age or size no longer keep; returns
    /// the events removed.
    pub(super) fn prune_in(&self, txn: &WriteTransaction, now_ms: u64) -> Result<u64> {
        let mut meta = txn.open_table(META)?;
        let mut groups = txn.open_table(GROUPS)?;
        let mut bytes = meta.get(BYTES)?.map(|v| v.value()).unwrap_or(0);
        let next_sequence = meta.get(NEXT_SEQUENCE)?.map(|v| v.value()).unwrap_or(1);
        let oldest_kept = now_ms.saturating_sub(self.retention.max_age_ms);
        let mut removed = 0;
        while let Some(oldest) = self.oldest(&groups, next_sequence)? {
            // Whole groups: a group goes once its newest event is too old.
            let too_old = oldest.newest_at.is_some_and(|at| at < oldest_kept);
            if bytes <= self.retention.max_bytes && !too_old {
                break;
            }
            if let Some(reason) = &oldest.unopened {
                let (from, to) = (oldest.first, oldest.first + oldest.count.saturating_sub(1));
                tracing::error!(from, to, "retention removes a log group that does not open: {reason}");
            }
            groups.remove(oldest.first)?;
            // Before the commit: a reader sent to redb a moment early only
            // reads what is still there.
            self.cache.forget_through(oldest.first);
            bytes = bytes.saturating_sub(oldest.len);
            removed += oldest.count;
        }
        meta.insert(BYTES, bytes)?;
        Ok(removed)
    }

    fn oldest(&self, groups: &redb::Table<'_, u64, &'static [u8]>, next_sequence: u64) -> Result<Option<Oldest>> {
        let Some((first, value)) = groups.first()? else { return Ok(None) };
        let (first, len) = (first.value(), value.value().len() as u64);
        let unopened = match seal::open(self.opening(), first, value.value()) {
            Ok(group) => {
                let (count, newest) = group::records(first, &group).fold((0, 0), |(n, _), r| (n + 1, r.stored_at()));
                return Ok(Some(Oldest { first, len, count, newest_at: Some(newest), unopened: None }));
            }
            Err(unopened) => unopened,
        };
        let (next_first, newest_at) = match groups.range(first + 1..)?.next().transpose()? {
            Some((next, value)) => {
                let opened = seal::open(self.opening(), next.value(), value.value()).ok();
                let first_at = opened.and_then(|g| group::records(next.value(), &g).next().map(|r| r.stored_at()));
                (next.value(), first_at)
            }
            None => (next_sequence, None),
        };
        let count = next_first.saturating_sub(first);
        Ok(Some(Oldest { first, len, count, newest_at, unopened: Some(unopened) }))
    }
}
