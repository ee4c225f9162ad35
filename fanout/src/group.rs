//! Several log records in one stored value: the unit the log writes.
//!
//! A group commit stores its events as one redb value keyed by the first
//! event's sequence, instead of one B-tree entry per event. With ~1 KB
//! events a 4 KiB leaf held three records, so a commit of ~100 events
//! allocated, copied and wrote ~35 pages and as many B-tree updates; now it
//! is one insert and one contiguous value (+11–13% delivered/s at 100
//! subscribers with the 10% filter, BENCHMARKS.md "log groups").
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

/// Appends a record in the pre-group layout (prefix + event) as a frame.
pub(crate) fn push_record(group: &mut Vec<u8>, record: &[u8]) {
    group.extend_from_slice(&(record.len() as u32).to_be_bytes());
    group.extend_from_slice(record);
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
