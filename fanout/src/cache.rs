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

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

use crate::group;

/// A cached group.
#[derive(Clone)]
pub(crate) struct Cached {
    pub(crate) bytes: Bytes,
    /// Records in it: the next group starts at first + count.
    pub(crate) count: u64,
}

#[derive(Default)]
struct Inner {
    groups: BTreeMap<u64, Cached>,
    /// First sequences in the order cached: the oldest insertion goes first.
    order: VecDeque<u64>,
    /// Bytes of `groups`, held under the budget.
    bytes: usize,
    /// Groups starting at or before this were removed by retention.
    removed_through: Option<u64>,
}

pub(crate) struct GroupCache {
    inner: Mutex<Inner>,
    /// What the groups may take (`--shared-groups-size`, 32 MiB: ~30,000
    /// events of 1 KB); the newest is kept even if larger; 0 keeps none.
    budget: usize,
}

impl GroupCache {
    pub(crate) fn new(budget: usize) -> Self {
        Self { inner: Mutex::new(Inner::default()), budget }
    }

    /// Caches a group starting at `first` (its bytes as stored, in a buffer
    /// of their own).
    pub(crate) fn insert(&self, first: u64, bytes: Bytes) {
        if self.budget == 0 {
            return;
        }
        let count = group::records(first, &bytes).count() as u64;
        let mut inner = self.lock();
        if inner.removed_through.is_some_and(|through| first <= through) || inner.groups.contains_key(&first) {
            return;
        }
        inner.bytes += bytes.len();
        inner.groups.insert(first, Cached { bytes, count });
        inner.order.push_back(first);
        while inner.bytes > self.budget && inner.order.len() > 1 {
            let Some(oldest) = inner.order.pop_front() else { break };
            if let Some(cached) = inner.groups.remove(&oldest) {
                inner.bytes -= cached.bytes.len();
            }
        }
    }

    /// The cached group holding `sequence`, with its first sequence.
    pub(crate) fn holding(&self, sequence: u64) -> Option<(u64, Cached)> {
        let inner = self.lock();
        let (first, cached) = inner.groups.range(..=sequence).next_back()?;
        (sequence < first + cached.count).then(|| (*first, cached.clone()))
    }

    /// Forgets the groups starting at or before `first`, for good.
    pub(crate) fn forget_through(&self, first: u64) {
        let mut inner = self.lock();
        inner.removed_through = Some(inner.removed_through.map_or(first, |through| through.max(first)));
        let kept = inner.groups.split_off(&(first + 1));
        let gone = std::mem::replace(&mut inner.groups, kept);
        for cached in gone.values() {
            inner.bytes -= cached.bytes.len();
        }
        inner.order.retain(|start| *start > first);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every change completes before the guard drops.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET_BYTES: usize = 32 << 20;

    fn group_of(first: u64, count: u64) -> Bytes {
        let mut group = Vec::new();
        for sequence in first..first + count {
            group::push(&mut group, 0, &[0; 32], sequence.to_string().as_bytes());
        }
        Bytes::from(group)
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
        let cache = GroupCache::new(group.len() + 1);
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
