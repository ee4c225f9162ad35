//! Shared in-memory copies of log groups, for subscribers reading the log.
//!
//! A subscriber that overflowed its live buffer reads the log from its
//! cursor, and after a burst many do so together, a few groups apart. Read
//! from redb, every one of them paid a page read and a copy of each group:
//! with 100 lagging subscribers, ~20% of the server's CPU. Here a group is
//! copied once (or not at all: the writer hands over the bytes it just
//! committed) and every reader slices the same buffer.
//!
//! Groups are immutable and never overlap, so a cached group that holds the
//! wanted sequence is exactly what the log holds. Retention calls
//! [`GroupCache::forget_through`] when it removes groups; a reader that
//! copied a group just before that cannot put it back (the watermark).
//!
//! Eviction is segmented (SLRU), so one reader scanning a deep history
//! cannot push out what a crowd of laggers shares: a group enters
//! *probation*; a second reader that finds it there moves it to *protected*
//! (at most `PROTECTED_SHARE` of the budget). Probation is evicted first,
//! oldest insertion first; the oldest protected group drops back to
//! probation when protected is full.
//!
//! # Layout
//! - `groups`: first sequence → the group and its segment.
//! - `probation`, `protected`: first sequences, oldest first. They may hold
//!   stale entries (a group promoted, evicted or removed since); those are
//!   skipped when popped, so a hit never searches a queue.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use crate::index::Cached;

/// Protected groups may take this share of the budget (numerator / 4).
const PROTECTED_QUARTERS: usize = 3;

struct Entry {
    cached: Cached,
    /// Found by a reader after it was cached: shared, worth keeping.
    protected: bool,
}

#[derive(Default)]
struct Inner {
    groups: BTreeMap<u64, Entry>,
    /// Probationary first sequences, oldest insertion first (may be stale).
    probation: VecDeque<u64>,
    /// Protected first sequences, oldest promotion first (may be stale).
    protected: VecDeque<u64>,
    /// Bytes of `groups`, held under the budget.
    bytes: usize,
    /// Bytes of the protected groups.
    protected_bytes: usize,
    /// Groups starting at or before this were removed by retention.
    removed_through: Option<u64>,
}

impl Inner {
    /// Pops the oldest live entry of a segment's queue.
    fn pop_oldest(&mut self, protected: bool) -> Option<u64> {
        loop {
            let queue = if protected { &mut self.protected } else { &mut self.probation };
            let first = queue.pop_front()?;
            if self.groups.get(&first).is_some_and(|e| e.protected == protected) {
                return Some(first);
            }
        }
    }

    fn evict(&mut self, first: u64) {
        if let Some(entry) = self.groups.remove(&first) {
            self.bytes -= entry.cached.bytes.len();
            if entry.protected {
                self.protected_bytes -= entry.cached.bytes.len();
            }
        }
    }

    fn demote_oldest_protected(&mut self) {
        let Some(first) = self.pop_oldest(true) else { return };
        if let Some(entry) = self.groups.get_mut(&first) {
            entry.protected = false;
            self.protected_bytes -= entry.cached.bytes.len();
            self.probation.push_back(first);
        }
    }
}

pub(crate) struct GroupCache {
    inner: Mutex<Inner>,
    /// What the groups may take (`--shared-groups-size`, 32 MiB: ~30,000
    /// events of 1 KB); a group larger than this is kept while it is the
    /// only one; 0 keeps none.
    budget: usize,
}

impl GroupCache {
    pub(crate) fn new(budget: usize) -> Self {
        Self { inner: Mutex::new(Inner::default()), budget }
    }

    /// Whether this cache keeps anything (a budget of 0 keeps nothing): lets
    /// a writer skip preparing groups it would only throw away.
    pub(crate) fn keeps_any(&self) -> bool {
        self.budget > 0
    }

    /// Caches the group starting at `first`, on probation.
    pub(crate) fn insert(&self, first: u64, cached: Cached) {
        if !self.keeps_any() {
            return;
        }
        let mut inner = self.lock();
        if inner.removed_through.is_some_and(|through| first <= through) || inner.groups.contains_key(&first) {
            return;
        }
        inner.bytes += cached.bytes.len();
        inner.groups.insert(first, Entry { cached, protected: false });
        inner.probation.push_back(first);
        while inner.bytes > self.budget && inner.groups.len() > 1 {
            let Some(oldest) = inner.pop_oldest(false).or_else(|| inner.pop_oldest(true)) else { break };
            inner.evict(oldest);
        }
    }

    /// The cached group holding `sequence`, with its first sequence. A
    /// probationary group found here has a second reader: it is protected.
    pub(crate) fn holding(&self, sequence: u64) -> Option<(u64, Cached)> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let (first, entry) = inner.groups.range_mut(..=sequence).next_back()?;
        if sequence >= first + entry.cached.count {
            return None;
        }
        let (first, found) = (*first, entry.cached.clone());
        if !entry.protected {
            entry.protected = true;
            inner.protected_bytes += found.bytes.len();
            inner.protected.push_back(first);
            while inner.protected_bytes > self.budget / 4 * PROTECTED_QUARTERS && inner.protected.len() > 1 {
                inner.demote_oldest_protected();
            }
        }
        Some((first, found))
    }

    /// Forgets the groups starting at or before `first`, for good.
    pub(crate) fn forget_through(&self, first: u64) {
        let mut inner = self.lock();
        inner.removed_through = Some(inner.removed_through.map_or(first, |through| through.max(first)));
        let kept = inner.groups.split_off(&(first + 1));
        let gone = std::mem::replace(&mut inner.groups, kept);
        for entry in gone.values() {
            inner.bytes -= entry.cached.bytes.len();
            if entry.protected {
                inner.protected_bytes -= entry.cached.bytes.len();
            }
        }
        inner.probation.retain(|start| *start > first);
        inner.protected.retain(|start| *start > first);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every change completes before the guard drops.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group;
    use bytes::Bytes;

    const BUDGET_BYTES: usize = 32 << 20;

    fn group_of(first: u64, count: u64) -> Cached {
        let mut group = Vec::new();
        for sequence in first..first + count {
            group::push(&mut group, 0, &[0; 32], format!("{sequence:08}").as_bytes());
        }
        Cached::new(Bytes::from(group))
    }

    #[test]
    fn finds_the_group_holding_a_sequence_and_nothing_between_groups() {
        let cache = GroupCache::new(BUDGET_BYTES);
        cache.insert(1, group_of(1, 3));
        cache.insert(10, group_of(10, 2));
        let (first, cached) = cache.holding(3).expect("1..=3 is cached");
        assert_eq!((first, cached.count), (1, 3));
        assert!(cache.holding(4).is_none(), "4..=9 is not cached");
        assert!(cache.holding(12).is_none(), "past the last group");
        assert!(cache.holding(0).is_none());
    }

    #[test]
    fn the_budget_forgets_the_first_cached_but_keeps_the_newest() {
        let group = group_of(1, 4);
        let cache = GroupCache::new(group.bytes.len() + 1);
        cache.insert(1, group);
        cache.insert(5, group_of(5, 4));
        assert!(cache.holding(1).is_none(), "the first was forgotten");
        assert!(cache.holding(8).is_some());
        let tiny = GroupCache::new(1);
        tiny.insert(1, group_of(1, 2));
        assert!(tiny.holding(2).is_some(), "a group over the budget alone is kept");
        let off = GroupCache::new(0);
        off.insert(1, group_of(1, 2));
        assert!(off.holding(1).is_none(), "a budget of 0 keeps nothing");
    }

    #[test]
    fn one_deep_scan_does_not_push_out_the_groups_readers_share() {
        let size = group_of(1, 4).bytes.len();
        let cache = GroupCache::new(size * 8);
        let shared: Vec<u64> = (0..4).map(|i| 10_001 + 4 * i).collect();
        for &first in &shared {
            cache.insert(first, group_of(first, 4));
            assert!(cache.holding(first).is_some(), "a second reader finds it");
        }
        // A reader replaying old history: 20 groups, each read once.
        for first in (1..=77).step_by(4) {
            cache.insert(first, group_of(first, 4));
        }
        for &first in &shared {
            assert!(cache.holding(first).is_some(), "shared group {first} survived the scan");
        }
        assert!(cache.holding(77).is_some(), "the scan's newest is cached");
        assert!(cache.holding(1).is_none(), "the scan's oldest went first");
    }

    #[test]
    fn shared_groups_take_at_most_their_share_and_make_room_in_order() {
        let size = group_of(1, 4).bytes.len();
        let cache = GroupCache::new(size * 8);
        // Every group found again: protected tops out at 6 of 8, the oldest
        // drop back to probation and are the first to go.
        for first in (1..=77).step_by(4) {
            cache.insert(first, group_of(first, 4));
            assert!(cache.holding(first).is_some());
        }
        let held: Vec<u64> = (1..=77).step_by(4).filter(|&first| cache.holding(first).is_some()).collect();
        assert_eq!(held, (49..=77).step_by(4).collect::<Vec<u64>>(), "the newest 8 groups");
    }

    #[test]
    fn groups_removed_by_retention_are_never_served_again() {
        let cache = GroupCache::new(BUDGET_BYTES);
        cache.insert(1, group_of(1, 2));
        cache.insert(3, group_of(3, 2));
        cache.insert(5, group_of(5, 2));
        cache.forget_through(3);
        assert!(cache.holding(1).is_none() && cache.holding(4).is_none());
        assert!(cache.holding(6).is_some());
        cache.insert(3, group_of(3, 2));
        assert!(cache.holding(3).is_none(), "a reader's late copy of a removed group is refused");
    }
}
