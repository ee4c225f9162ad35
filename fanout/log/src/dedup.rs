//! Recognising a notification seen before within the dedup window (Graph's
//! retries, the edge's queue redelivering a message).
//!
//! The index lives in memory, owned by the log, and is rebuilt from the log
//! when it opens: every record carries its dedup key, so the log itself is
//! the durable copy and a crash loses nothing. Not a redb table: dedup keys
//! are SHA-256 hashes, so every insert would land on a random B-tree page,
//! and a group commit of ~150 notifications would copy and write ~150 pages,
//! half of the writer's time (docs/performance-history.md, "dedup index").
//!
//! # Layout
//! - `seen`: key → when it was stored, the "seen within the window" answer.
//! - `order`: keys in the order they were stored, to expire the oldest in
//!   O(1) each, without touching the log.
//!
//! Memory: 16 bytes of key and 8 of time in each of the two, plus the hash
//! table's slack: 60–100 bytes per notification inside the window. The index
//! holds at most `max_keys` (`--dedup-max-keys`): past that the oldest keys
//! go early, so the window shrinks under a flood instead of memory growing
//! with it; a redelivery older than what is kept is stored again (a
//! duplicate, never a loss), and a warning says how far the window shrank.

use std::collections::{HashMap, HashSet, VecDeque};

/// The first 128 bits of the notification's SHA-256 identity: collisions
/// stay out of reach (~2^64 notifications) at half the memory.
pub(crate) type Key = [u8; 16];

pub(crate) fn key_of(identity: &[u8; 32]) -> Key {
    let mut key = [0; 16];
    key.copy_from_slice(&identity[..16]);
    key
}

pub(crate) struct Dedup {
    /// Answers "stored within the window?" for an incoming key.
    seen: HashMap<Key, u64>,
    /// (stored at, key) oldest first: expiry pops from the front instead of
    /// scanning `seen`.
    order: VecDeque<(u64, Key)>,
    /// A notification stored again within this many ms is a duplicate.
    window_ms: u64,
    /// Most keys kept; the oldest go first past it.
    max_keys: usize,
    /// Keys forgotten before their window passed, since the last warning.
    evicted: u64,
}

/// Keys forgotten early between two warnings about it.
const EVICTIONS_PER_WARNING: u64 = 100_000;

impl Dedup {
    pub(crate) fn new(window_ms: u64, max_keys: usize) -> Self {
        Self { seen: HashMap::new(), order: VecDeque::new(), window_ms, max_keys: max_keys.max(1), evicted: 0 }
    }

    /// Whether `key` was stored at or after `now_ms - window`.
    pub(crate) fn is_recent(&self, key: &Key, now_ms: u64) -> bool {
        let window_start = now_ms.saturating_sub(self.window_ms);
        self.seen.get(key).is_some_and(|&at| at >= window_start)
    }

    /// Records that `key` was stored at `at_ms` (call once it is durable).
    pub(crate) fn remember(&mut self, key: Key, at_ms: u64) {
        self.seen.insert(key, at_ms);
        self.order.push_back((at_ms, key));
        while self.seen.len() > self.max_keys {
            let Some((at, oldest)) = self.order.pop_front() else { break };
            if self.seen.get(&oldest) == Some(&at) {
                self.seen.remove(&oldest);
                self.evicted += 1;
                if self.evicted >= EVICTIONS_PER_WARNING {
                    let kept_ms = at_ms.saturating_sub(at);
                    tracing::warn!(
                        max_keys = self.max_keys,
                        kept_ms,
                        "dedup index full: keys leave before --dedup-window; raise --dedup-max-keys"
                    );
                    self.evicted = 0;
                }
            }
        }
    }

    /// Forgets keys stored before `now_ms - window`.
    pub(crate) fn expire(&mut self, now_ms: u64) {
        let window_start = now_ms.saturating_sub(self.window_ms);
        while let Some(&(at, key)) = self.order.front() {
            if at >= window_start {
                break;
            }
            self.order.pop_front();
            // A key stored again later has a newer time: that entry stays.
            if self.seen.get(&key) == Some(&at) {
                self.seen.remove(&key);
            }
        }
    }

    /// Keys remembered now (for the log line at open).
    pub(crate) fn len(&self) -> usize {
        self.seen.len()
    }
}

/// The keys one group commit adds, held back until the commit is durable
/// (a failed commit must not leave keys behind that would turn Graph's
/// retry of the same notification into a "duplicate").
#[derive(Default)]
pub(crate) struct Pending {
    keys: HashSet<Key>,
}

impl Pending {
    /// Whether `key` is already in this group, or recent in `dedup`.
    pub(crate) fn is_duplicate(&self, dedup: &Dedup, key: &Key, now_ms: u64) -> bool {
        self.keys.contains(key) || dedup.is_recent(key, now_ms)
    }

    pub(crate) fn add(&mut self, key: Key) {
        self.keys.insert(key);
    }

    /// Moves the group's keys into `dedup` once the commit is durable.
    pub(crate) fn commit_into(self, dedup: &mut Dedup, at_ms: u64) {
        for key in self.keys {
            dedup.remember(key, at_ms);
        }
        dedup.expire(at_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Key {
        [n; 16]
    }

    #[test]
    fn a_key_is_recent_until_the_window_passes() {
        let mut dedup = Dedup::new(100, 1_000);
        dedup.remember(key(1), 1_000);
        assert!(dedup.is_recent(&key(1), 1_100));
        assert!(!dedup.is_recent(&key(1), 1_101));
        assert!(!dedup.is_recent(&key(2), 1_000));
    }

    #[test]
    fn expiry_forgets_only_keys_older_than_the_window() {
        let mut dedup = Dedup::new(100, 1_000);
        dedup.remember(key(1), 1_000);
        dedup.remember(key(2), 1_050);
        dedup.expire(1_120);
        assert_eq!(dedup.len(), 1);
        assert!(dedup.is_recent(&key(2), 1_120));
    }

    #[test]
    fn a_key_stored_again_survives_the_expiry_of_its_first_storage() {
        let mut dedup = Dedup::new(100, 1_000);
        dedup.remember(key(1), 1_000);
        dedup.remember(key(1), 1_200); // stored again after the window
        dedup.expire(1_250);
        assert!(dedup.is_recent(&key(1), 1_250));
    }

    #[test]
    fn past_its_capacity_the_index_forgets_its_oldest_keys_first() {
        let mut dedup = Dedup::new(1_000_000, 3);
        for n in 1..=5 {
            dedup.remember(key(n), 1_000 + u64::from(n));
        }
        assert_eq!(dedup.len(), 3, "bounded");
        assert!(!dedup.is_recent(&key(1), 1_010) && !dedup.is_recent(&key(2), 1_010), "the oldest went");
        assert!((3..=5).all(|n| dedup.is_recent(&key(n), 1_010)));
        assert!(dedup.order.len() <= 3, "the order queue is bounded too");
    }

    #[test]
    fn pending_keys_count_as_duplicates_in_their_group_and_reach_the_index_on_commit() {
        let mut dedup = Dedup::new(100, 1_000);
        let mut pending = Pending::default();
        pending.add(key(1));
        assert!(pending.is_duplicate(&dedup, &key(1), 1_000));
        assert!(!dedup.is_recent(&key(1), 1_000), "not before the commit");
        pending.commit_into(&mut dedup, 1_000);
        assert!(dedup.is_recent(&key(1), 1_000));
    }
}
