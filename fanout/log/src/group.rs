//! Several log records in one stored value: the unit the log writes.
//!
//! A group commit stores its events as one redb value keyed by the first
//! event's sequence, instead of one B-tree entry per event. With ~1 KB
//! events a 4 KiB leaf held three records, so a commit of ~100 events
//! allocated, copied and wrote ~35 pages and as many B-tree updates; now it
//! is one insert and one contiguous value (+11–13% delivered/s at 100
//! subscribers with the 10% filter, docs/performance-history.md "log groups").
//!
//! # Layout
//! A value is a run of frames in sequence order; sequences inside a group are
//! consecutive, so only the first is stored (in the key):
//! `[record length: u32 BE][record]`, record = stored at (Unix ms, u64 BE) +
//! dedup key (32 bytes) + the encoded `graphrelay.v1.Event`.

/// A group is closed at about this size, so reading from the middle of one
/// (a resuming subscriber) never parses much that it skips.
pub(crate) const MAX_BYTES: usize = 256 << 10;
/// Stored-at time and dedup key in front of each event.
pub(crate) const PREFIX: usize = 8 + 32;
/// The length in front of each record: what a record adds to a group
/// besides itself.
pub(crate) const FRAME_OVERHEAD: usize = 4;

/// Appends one record to `group`.
pub(crate) fn push(group: &mut Vec<u8>, stored_at_ms: u64, dedup_key: &[u8; 32], event: &[u8]) {
    group.extend_from_slice(&((PREFIX + event.len()) as u32).to_be_bytes());
    group.extend_from_slice(&stored_at_ms.to_be_bytes());
    group.extend_from_slice(dedup_key);
    group.extend_from_slice(event);
}

/// Packs one commit's records into groups: a group closes once it has
/// reached [`MAX_BYTES`] and the next record starts a new one, so a commit of
/// any size becomes as many values as its bytes need and no more.
pub(crate) struct Packer {
    /// The group being filled.
    group: Vec<u8>,
    /// Its first record's sequence: the key it is stored under.
    first: u64,
    /// What the commit's records still to come take at most: each new
    /// group's buffer is sized from it, so it is not regrown as it fills.
    left: usize,
}

impl Packer {
    /// A packer for records taking `left` bytes at most, the first of them
    /// stored as `first`.
    pub(crate) fn new(left: usize, first: u64) -> Packer {
        Packer { group: buffer(left), first, left }
    }

    /// Adds the record of `sequence` (`record_len` as `Prepared::record_len`
    /// counted it). Returns the group it closed, with its first sequence, if
    /// this record starts a new one.
    pub(crate) fn push(
        &mut self,
        sequence: u64,
        record_len: usize,
        stored_at_ms: u64,
        dedup_key: &[u8; 32],
        event: &[u8],
    ) -> Option<(u64, Vec<u8>)> {
        let closed = (self.group.len() >= MAX_BYTES).then(|| {
            let full = std::mem::replace(&mut self.group, buffer(self.left));
            (std::mem::replace(&mut self.first, sequence), full)
        });
        push(&mut self.group, stored_at_ms, dedup_key, event);
        self.skip(record_len);
        closed
    }

    /// A record counted in `left` that is not stored (a duplicate).
    pub(crate) fn skip(&mut self, record_len: usize) {
        self.left = self.left.saturating_sub(record_len);
    }

    /// The last group, with its first sequence, unless it is empty.
    pub(crate) fn finish(self) -> Option<(u64, Vec<u8>)> {
        (!self.group.is_empty()).then_some((self.first, self.group))
    }
}

/// A buffer for a new group: room for what is left of the commit (`left`
/// bytes at most), up to a full group and a record of up to 16 KiB past it,
/// since a group closes once it has reached `MAX_BYTES`. The cache keeps the
/// buffer, so room the group does not use would be held unseen.
fn buffer(left: usize) -> Vec<u8> {
    Vec::with_capacity(left.min(MAX_BYTES + (16 << 10)))
}

/// One record of a group.
pub(crate) struct Record<'a> {
    pub(crate) sequence: u64,
    bytes: &'a [u8],
}

impl<'a> Record<'a> {
    pub(crate) fn stored_at(&self) -> u64 {
        self.bytes.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).unwrap_or(0)
    }

    pub(crate) fn dedup_key(&self) -> [u8; 32] {
        self.bytes.get(8..PREFIX).and_then(|b| b.try_into().ok()).unwrap_or([0; 32])
    }

    /// The encoded `Event`.
    pub(crate) fn event(&self) -> &'a [u8] {
        self.bytes.get(PREFIX..).unwrap_or_default()
    }
}

/// The records of the group whose first sequence is `first`. A frame that
/// does not fit (never written by us: redb commits are atomic) ends the
/// iteration; the sequences it held then read as missing, which subscribers
/// see as an explicit gap, not a silent hole.
pub(crate) fn records(first: u64, group: &[u8]) -> impl Iterator<Item = Record<'_>> {
    let mut rest = group;
    let mut sequence = first;
    std::iter::from_fn(move || {
        let length = rest.get(..FRAME_OVERHEAD).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes)? as usize;
        let bytes = rest.get(FRAME_OVERHEAD..FRAME_OVERHEAD + length)?;
        rest = &rest[FRAME_OVERHEAD + length..];
        let record = Record { sequence, bytes };
        sequence += 1;
        Some(record)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_with_consecutive_sequences_and_their_parts() {
        let mut group = Vec::new();
        push(&mut group, 7, &[1; 32], b"first");
        push(&mut group, 8, &[2; 32], b"");
        let records: Vec<_> = records(40, &group).collect();
        assert_eq!(records.len(), 2);
        assert_eq!((records[0].sequence, records[0].stored_at(), records[0].event()), (40, 7, &b"first"[..]));
        assert_eq!((records[1].sequence, records[1].dedup_key(), records[1].event()), (41, [2; 32], &b""[..]));
    }

    /// A record's bytes in a group, as `Prepared::record_len` counts them.
    fn record_len(event: &[u8]) -> usize {
        FRAME_OVERHEAD + PREFIX + event.len()
    }

    #[test]
    fn a_commit_is_packed_into_groups_that_close_at_the_size_limit() {
        let event = vec![5; 10 << 10];
        let count = 60u64;
        let mut packer = Packer::new(record_len(&event) * count as usize, 100);
        let mut groups: Vec<(u64, Vec<u8>)> = (100..100 + count)
            .filter_map(|sequence| packer.push(sequence, record_len(&event), 9, &[3; 32], &event))
            .collect();
        groups.extend(packer.finish());
        // 10 KiB records: a group reaches 256 KiB at its 26th.
        let firsts: Vec<u64> = groups.iter().map(|(first, _)| *first).collect();
        assert_eq!(firsts, [100, 126, 152]);
        let sequences: Vec<u64> = groups
            .iter()
            .flat_map(|(first, group)| records(*first, group).map(|r| r.sequence).collect::<Vec<_>>())
            .collect();
        assert_eq!(sequences, (100..100 + count).collect::<Vec<_>>(), "every record once, in order");
        assert!(groups.iter().all(|(_, group)| records(0, group).all(|r| r.event() == &event[..])));
    }

    #[test]
    fn group_buffers_are_sized_for_what_is_left_and_never_regrown() {
        let event = vec![5; 10 << 10];
        let (stored, duplicates) = (30usize, 4usize);
        let mut packer = Packer::new(record_len(&event) * (stored + duplicates), 1);
        for _ in 0..duplicates {
            packer.skip(record_len(&event));
        }
        let full: Vec<_> = (1..=stored as u64)
            .filter_map(|sequence| packer.push(sequence, record_len(&event), 9, &[3; 32], &event))
            .collect();
        let (_, last) = packer.finish().expect("the records after the first group");
        assert_eq!(full.len(), 1);
        // The first buffer was capped at a group and one record past it; the
        // second had room for exactly the 4 records left, not for the skipped.
        assert_eq!(full[0].1.capacity(), MAX_BYTES + (16 << 10));
        assert_eq!(last.capacity(), 4 * record_len(&event));
        assert_eq!(last.len(), last.capacity(), "filled exactly, so never regrown");
    }

    #[test]
    fn a_commit_of_duplicates_only_writes_no_group() {
        let mut packer = Packer::new(record_len(b"dup") * 2, 7);
        packer.skip(record_len(b"dup"));
        packer.skip(record_len(b"dup"));
        assert!(packer.finish().is_none());
    }

    #[test]
    fn a_truncated_frame_ends_the_group_instead_of_reading_garbage() {
        let mut group = Vec::new();
        push(&mut group, 7, &[1; 32], b"whole");
        push(&mut group, 7, &[1; 32], b"cut short");
        group.truncate(group.len() - 3);
        assert_eq!(records(1, &group).count(), 1);
        assert_eq!(records(1, &[0, 0]).count(), 0, "not even a length");
    }
}
