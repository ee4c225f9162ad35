use super::*;
use graph_relay_proto::v1::{event::Payload, notification::Kind, ChangeNotification, Event, Notification};
use prost::Message;

use crate::prepared::prepare;
use redb::ReadableTableMetadata;

const DAY: u64 = 86_400_000;

fn retention() -> Retention {
    Retention {
        max_age_ms: 7 * DAY,
        max_bytes: u64::MAX,
        dedup_window_ms: DAY,
        dedup_max_keys: 1_000_000,
        cache_bytes: 16 << 20,
        shared_groups_bytes: 16 << 20,
    }
}

/// The item `id`, as one delivery: notes with the same id are the same
/// delivery arriving again (queue redelivery, a replay).
fn note(id: &str) -> Notification {
    let change = ChangeNotification { id: id.into(), resource: format!("users/u/messages/{id}"), ..Default::default() };
    Notification { kind: Some(Kind::Change(change)), received_at_unix_ms: 5, delivery_id: format!("request/{id}") }
}

fn delivered_as(mut notification: Notification, delivery_id: &str) -> Notification {
    notification.delivery_id = delivery_id.into();
    notification
}

fn ids(page: &Page) -> Vec<String> {
    page.events()
        .iter()
        .map(|(_, bytes)| match Event::decode(bytes.as_ref()).unwrap().payload {
            Some(Payload::Change(change)) => change.id,
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

#[test]
fn appends_in_one_group_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), retention(), None).unwrap();
    let (outcomes, stored) =
        store.append(vec![prepare(vec![note("a"), note("b")]), prepare(vec![note("c")])], 1_000).unwrap();
    assert_eq!(outcomes[0], Appended { first_sequence: 1, last_sequence: 2, stored: 2, duplicates: 0 });
    assert_eq!(outcomes[1], Appended { first_sequence: 3, last_sequence: 3, stored: 1, duplicates: 0 });
    assert_eq!(stored.iter().map(|s| s.encoded.sequence()).collect::<Vec<_>>(), [1, 2, 3]);
    drop(store);
    let store = Store::open(dir.path(), retention(), None).unwrap();
    assert_eq!(store.next_sequence().unwrap(), 4);
    let page = store.read_after(1, 10).unwrap();
    assert_eq!(ids(&page), ["b", "c"]);
    assert_eq!(page.next_sequence, 4);
}

#[test]
fn identical_items_of_two_deliveries_are_two_events_before_and_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), retention(), None).unwrap();
    let (first, second) = (delivered_as(note("a"), "r1/0"), delivered_as(note("a"), "r2/0"));
    let (outcomes, _) = store.append(vec![prepare(vec![first.clone()]), prepare(vec![second])], 1_000).unwrap();
    assert_eq!((outcomes[0].stored, outcomes[1].stored), (1, 1), "a user updated twice is two changes");
    drop(store);
    let store = Store::open_at(dir.path(), retention(), None, 2_000).unwrap();
    let (outcomes, _) = store.append(vec![prepare(vec![first, delivered_as(note("a"), "r3/0")])], 2_000).unwrap();
    assert_eq!((outcomes[0].stored, outcomes[0].duplicates), (1, 1), "only the redelivery of r1/0 is a duplicate");
}

#[test]
fn items_without_a_delivery_id_are_always_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), retention(), None).unwrap();
    let anonymous = delivered_as(note("a"), "");
    let (outcomes, _) = store.append(vec![prepare(vec![anonymous.clone(), anonymous.clone()])], 1_000).unwrap();
    assert_eq!(outcomes[0].stored, 2);
    drop(store);
    let store = Store::open_at(dir.path(), retention(), None, 2_000).unwrap();
    let (outcomes, _) = store.append(vec![prepare(vec![anonymous])], 2_000).unwrap();
    assert_eq!(outcomes[0].stored, 1, "the rebuilt index holds no key for them");
}

#[test]
fn duplicates_inside_the_window_are_recognised_even_within_one_group() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), retention(), None).unwrap();
    let mut retried = note("a");
    retried.received_at_unix_ms = 999; // Graph's retry arrives later.
    let (outcomes, _) = store.append(vec![prepare(vec![note("a")]), prepare(vec![retried, note("b")])], 1_000).unwrap();
    assert_eq!(outcomes[1], Appended { first_sequence: 2, last_sequence: 2, stored: 1, duplicates: 1 });
    let (outcomes, _) = store.append(vec![prepare(vec![note("b")])], 1_000 + DAY - 1).unwrap();
    assert_eq!(outcomes[0].duplicates, 1, "still inside the window");
    let (outcomes, _) = store.append(vec![prepare(vec![note("b")])], 1_000 + DAY + 1).unwrap();
    assert_eq!((outcomes[0].stored, outcomes[0].duplicates), (1, 0), "the window has passed");
}

#[test]
fn retention_by_age_and_size_removes_the_oldest_and_keeps_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), retention(), None).unwrap();
    store.append(vec![prepare(vec![note("old")])], 0).unwrap();
    store.append(vec![prepare(vec![note("new")])], 7 * DAY).unwrap();
    assert_eq!(store.prune(7 * DAY + 1).unwrap(), 1);
    assert_eq!(ids(&store.read_after(0, 10).unwrap()), ["new"]);

    // Size retention removes whole groups (one per commit here) from the front.
    let one_group =
        (group::FRAME_OVERHEAD + group::PREFIX + store.read_after(0, 1).unwrap().events()[0].1.len()) as u64;
    let small = Store { retention: Retention { max_bytes: one_group * 2, ..retention() }, ..store };
    assert_eq!(small.commits(), 2);
    for id in ["x", "y", "z"] {
        small.append(vec![prepare(vec![note(id)])], 7 * DAY).unwrap();
    }
    let page = small.read_after(0, 10).unwrap();
    assert_eq!(ids(&page), ["y", "z"], "size retention keeps the newest");
    assert_eq!(page.events()[0].0, 4);
    small.prune(100 * DAY).unwrap();
    let empty = small.read_after(0, 10).unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.next_sequence, 6, "sequences never restart, even with an empty log");
}

#[test]
fn a_commit_bigger_than_a_group_is_split_and_reads_resume_mid_group() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), retention(), None).unwrap();
    let big = |id: &str| {
        let mut n = note(id);
        if let Some(Kind::Change(change)) = n.kind.as_mut() {
            change.raw_json = "x".repeat(100 << 10);
        }
        n
    };
    let names: Vec<String> = (0..6).map(|i| format!("n{i}")).collect();
    store.append(vec![prepare(names.iter().map(|n| big(n)).collect())], 1_000).unwrap();
    let txn = store.db.begin_read().unwrap();
    let groups = txn.open_table(GROUPS).unwrap().len().unwrap();
    assert!(groups >= 2, "{groups} groups of at most ~{} bytes", group::MAX_BYTES);
    for cursor in 0..6u64 {
        let page = store.read_after(cursor, 100).unwrap();
        assert_eq!(ids(&page), names[cursor as usize..], "after {cursor}");
        assert_eq!(page.events()[0].0, cursor + 1);
    }
    assert_eq!(store.read_after(2, 1).unwrap().events()[0].0, 3, "a small page still starts right after the cursor");
}

#[test]
fn reopening_rebuilds_the_dedup_index_from_the_records_inside_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_at(dir.path(), retention(), None, 0).unwrap();
    for (i, at) in [0, DAY / 2, DAY, DAY + DAY / 2].into_iter().enumerate() {
        store.append(vec![prepare(vec![note(&format!("n{i}"))])], at).unwrap();
    }
    drop(store);
    // At 2 DAY the window starts at DAY: n2 and n3 are inside, n0 and n1 not.
    let now = 2 * DAY;
    let store = Store::open_at(dir.path(), retention(), None, now).unwrap();
    let (outcomes, _) = store.append(vec![prepare(vec![note("n0"), note("n1"), note("n2"), note("n3")])], now).unwrap();
    assert_eq!((outcomes[0].stored, outcomes[0].duplicates), (2, 2));
    assert_eq!(outcomes[0].first_sequence, 5, "n0 and n1 are stored again");
}

#[test]
fn appends_enforce_the_size_limit_and_leave_age_to_the_periodic_prune() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), retention(), None).unwrap();
    store.append(vec![prepare(vec![note("old")])], 0).unwrap();
    store.append(vec![prepare(vec![note("new")])], 8 * DAY).unwrap();
    assert_eq!(ids(&store.read_after(0, 10).unwrap()), ["old", "new"], "no group read per commit for age");
    assert_eq!(store.prune(8 * DAY).unwrap(), 1);
    assert_eq!(ids(&store.read_after(0, 10).unwrap()), ["new"]);
}

#[test]
fn reads_from_shared_copies_match_reads_from_the_log_and_skip_what_retention_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), retention(), None).unwrap();
    for commit in 0..5 {
        let notes = (0..3).map(|i| note(&format!("c{commit}-{i}"))).collect();
        store.append(vec![prepare(notes)], 1_000 + commit).unwrap();
    }
    // Warm: every group came from the writer's commits, so reads are served from memory.
    let warm: Vec<_> = (0..15u64).map(|cursor| ids(&store.read_after(cursor, 4).unwrap())).collect();
    drop(store);
    // Cold: a fresh process reads redb.
    let store = Store::open(dir.path(), retention(), None).unwrap();
    let cold: Vec<_> = (0..15u64).map(|cursor| ids(&store.read_after(cursor, 4).unwrap())).collect();
    assert_eq!(warm, cold);
    assert_eq!(warm[4], ["c1-1", "c1-2", "c2-0", "c2-1", "c2-2"], "a page ends after the group that reaches the limit");
    // Now cached by that read, then removed by retention: never served again.
    let aged = Store { retention: Retention { max_age_ms: 1, ..retention() }, ..store };
    assert_eq!(aged.read_after(0, 100).unwrap().events().len(), 15);
    aged.append(vec![prepare(vec![note("late")])], 10_000).unwrap();
    assert_eq!(aged.prune(10_001).unwrap(), 15);
    assert_eq!(ids(&aged.read_after(0, 100).unwrap()), ["late"]);
}

fn log_key(byte: u8) -> Option<LogKeys> {
    Some(LogKeys::parse(&format!("{byte:02x}").repeat(32)).unwrap())
}

/// A rich notification's decrypted data, as the log would otherwise hold it.
fn rich(id: &str) -> Notification {
    let mut notification = note(id);
    if let Some(Kind::Change(change)) = notification.kind.as_mut() {
        change.decrypted_resource_data_json = format!(r#"{{"body":"confidential-{id}"}}"#);
    }
    notification
}

fn file_holds(dir: &tempfile::TempDir, needle: &str) -> bool {
    let file = std::fs::read(dir.path().join("events.redb")).unwrap();
    file.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn a_sealed_log_holds_no_plaintext_and_reads_back_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), retention(), log_key(7)).unwrap();
    store.append(vec![prepare(vec![rich("a"), rich("b")])], 1_000).unwrap();
    drop(store);
    assert!(!file_holds(&dir, "confidential-"), "decrypted data is sealed on disk");
    assert!(!file_holds(&dir, "users/u/messages/"), "and so is the rest of each event");
    let store = Store::open_at(dir.path(), retention(), log_key(7), 2_000).unwrap();
    assert_eq!(ids(&store.read_after(0, 10).unwrap()), ["a", "b"]);
    let (outcomes, _) = store.append(vec![prepare(vec![rich("b")])], 2_000).unwrap();
    assert_eq!(outcomes[0].duplicates, 1, "the dedup index was rebuilt from sealed groups");
    assert_eq!(store.prune(1_000 + 8 * DAY).unwrap(), 2, "retention reads sealed groups too");
}

#[test]
fn a_sealed_log_does_not_open_without_its_key_or_with_another() {
    let dir = tempfile::tempdir().unwrap();
    Store::open(dir.path(), retention(), log_key(7)).unwrap().append(vec![prepare(vec![rich("a")])], 1_000).unwrap();
    let no_key = Store::open(dir.path(), retention(), None).err().unwrap().to_string();
    assert!(no_key.contains("this log is sealed") && no_key.contains("--log-key-file"), "{no_key}");
    let other = Store::open(dir.path(), retention(), log_key(8)).err().unwrap().to_string();
    assert!(other.contains("sealed with a key that is not in the log key file"), "{other}");
    assert!(Store::open(dir.path(), retention(), log_key(7)).is_ok(), "nothing was changed by the refusals");
}

#[test]
fn groups_stored_before_a_key_was_set_stay_readable_and_new_ones_are_sealed() {
    let dir = tempfile::tempdir().unwrap();
    Store::open(dir.path(), retention(), None).unwrap().append(vec![prepare(vec![rich("old")])], 1_000).unwrap();
    let store = Store::open(dir.path(), retention(), log_key(7)).unwrap();
    store.append(vec![prepare(vec![rich("new")])], 1_000).unwrap();
    drop(store);
    assert!(file_holds(&dir, "confidential-old") && !file_holds(&dir, "confidential-new"));
    let store = Store::open(dir.path(), retention(), log_key(7)).unwrap();
    assert_eq!(ids(&store.read_after(0, 10).unwrap()), ["old", "new"]);
}

#[test]
fn a_rotated_key_seals_new_groups_and_the_old_one_is_needed_until_its_groups_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = ("aa".repeat(32), "bb".repeat(32));
    let keys = |text: &str| Some(LogKeys::parse(text).unwrap());
    Store::open(dir.path(), retention(), keys(&a)).unwrap().append(vec![prepare(vec![rich("old")])], 1_000).unwrap();
    let store = Store::open(dir.path(), retention(), keys(&format!("{b}\n{a}"))).unwrap();
    store.append(vec![prepare(vec![rich("new")])], 2 * DAY).unwrap();
    assert_eq!(ids(&store.read_after(0, 10).unwrap()), ["old", "new"]);
    drop(store);
    let early = Store::open(dir.path(), retention(), keys(&b)).err().unwrap().to_string();
    assert!(early.contains("log group 1 is sealed with a key that is not in the log key file"), "{early}");
    let store = Store::open(dir.path(), retention(), keys(&format!("{b}\n{a}"))).unwrap();
    assert_eq!(store.prune(1_000 + 7 * DAY + 1).unwrap(), 1, "retention removed the old key's group");
    drop(store);
    let store = Store::open(dir.path(), retention(), keys(&b)).unwrap();
    assert_eq!(ids(&store.read_after(0, 10).unwrap()), ["new"]);
}

/// A log of three groups, `notes[i]` stored at `at[i]`: groups 1 and 3
/// sealed with key a, group 2 with key c, which is then dropped from the key
/// file. With the keys returned (a alone) the start check, which reads the
/// oldest and the newest group, passes, and group 2 does not open.
fn log_whose_middle_group_lost_its_key(
    dir: &tempfile::TempDir,
    notes: &[Notification],
    at: [u64; 3],
) -> Option<LogKeys> {
    let (a, c) = ("aa".repeat(32), "cc".repeat(32));
    let key_files = [a.clone(), format!("{c}\n{a}"), format!("{a}\n{c}")];
    for ((note, at), key_file) in notes.iter().zip(at).zip(key_files) {
        let store = Store::open_at(dir.path(), retention(), Some(LogKeys::parse(&key_file).unwrap()), at).unwrap();
        store.append(vec![prepare(vec![note.clone()])], at).unwrap();
    }
    Some(LogKeys::parse(&a).unwrap())
}

#[test]
fn retention_removes_a_group_that_does_not_open_when_it_is_due_instead_of_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let notes = vec![rich("g1"), rich("g2"), rich("g3")];
    let key_a = log_whose_middle_group_lost_its_key(&dir, &notes, [1_000, 2_000, 3 * DAY]);
    let store = Store::open(dir.path(), retention(), key_a).unwrap();
    let unreadable = store.read_after(1, 10).err().unwrap().to_string();
    assert!(unreadable.contains("log group 2 is sealed with a key that is not in the log key file"), "{unreadable}");
    // Past group 1's age, not group 3's: group 2 is no older than group 3's
    // first event, which is still kept, so group 2 stays too.
    assert_eq!(store.prune(1_000 + 7 * DAY + 1).unwrap(), 1);
    assert!(store.read_after(1, 10).is_err(), "group 2 is kept while it may be young");
    // Past group 3's first event: group 2 is certainly older; it goes.
    assert_eq!(store.prune(3 * DAY + 7 * DAY + 1).unwrap(), 2, "groups 2 and 3");
    assert!(store.read_after(0, 10).unwrap().is_empty());
    assert_eq!(store.next_sequence().unwrap(), 4);
}

#[test]
fn appends_over_the_size_limit_succeed_when_the_oldest_group_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let notes = vec![rich("g1"), rich("g2"), rich("g3")];
    let key_a = log_whose_middle_group_lost_its_key(&dir, &notes, [1_000; 3]);
    let store = Store::open(dir.path(), retention(), key_a).unwrap();
    let size = store.db.begin_read().unwrap().open_table(META).unwrap().get("bytes").unwrap().unwrap().value();
    // Room for about two groups: appending a fourth removes 1 and 2.
    let small = Store { retention: Retention { max_bytes: size * 3 / 4, ..retention() }, ..store };
    let (outcomes, _) = small.append(vec![prepare(vec![rich("g4")])], 1_000).unwrap();
    assert_eq!(outcomes[0].first_sequence, 4);
    assert_eq!(ids(&small.read_after(0, 10).unwrap()), ["g3", "g4"]);
}

#[test]
fn a_group_that_does_not_open_inside_the_dedup_window_does_not_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let notes = vec![rich("g1"), rich("g2"), rich("g3")];
    let key_a = log_whose_middle_group_lost_its_key(&dir, &notes, [1_000; 3]);
    let store = Store::open_at(dir.path(), retention(), key_a, 1_000).unwrap();
    let (outcomes, _) =
        store.append(vec![prepare(vec![notes[0].clone()]), prepare(vec![notes[1].clone()])], 2_000).unwrap();
    assert_eq!(outcomes[0].duplicates, 1, "group 1's keys were remembered");
    assert_eq!((outcomes[1].duplicates, outcomes[1].first_sequence), (0, 4), "group 2's could not be: stored again");
}

#[tokio::test]
async fn page_reads_take_turns_a_few_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), retention(), None).unwrap();
    let mut turns = Vec::new();
    for _ in 0..READERS_AT_ONCE {
        turns.push(store.read_turn().await.expect("a turn"));
    }
    let next = store.read_turn();
    tokio::pin!(next);
    use futures_util::FutureExt;
    assert!(next.as_mut().now_or_never().is_none(), "all {READERS_AT_ONCE} turns are taken: the next reader waits");
    turns.pop();
    assert!(next.await.is_some(), "a returned turn goes to the reader waiting");
}

#[test]
fn a_plaintext_group_swapped_into_a_sealed_log_fails_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), retention(), log_key(7)).unwrap();
    store.append(vec![prepare(vec![rich("a")])], 1_000).unwrap();
    store.append(vec![prepare(vec![rich("b")])], 1_000).unwrap();
    drop(store);
    // Someone with write access to the file puts a plaintext group in place of group 2.
    let forged = {
        let plain = Store::open(tempfile::tempdir().unwrap().path(), retention(), None).unwrap();
        let (_, stored) = plain.append(vec![prepare(vec![rich("forged")])], 1_000).unwrap();
        let mut group = Vec::new();
        crate::group::push(&mut group, 1_000, &[0; 32], stored[0].encoded.bytes());
        group
    };
    let db = Database::create(dir.path().join("events.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(GROUPS).unwrap().insert(2, forged.as_slice()).unwrap();
    txn.commit().unwrap();
    drop(db);
    let refused = Store::open(dir.path(), retention(), log_key(7)).err().expect("the newest group is checked at open");
    assert!(refused.to_string().contains("log group 2 is not sealed"), "{refused}");
}

#[test]
fn a_missing_log_key_is_a_key_error_and_a_log_of_another_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    Store::open(dir.path(), retention(), log_key(7)).unwrap().append(vec![prepare(vec![rich("a")])], 1_000).unwrap();
    let refused = Store::open(dir.path(), retention(), None).err().expect("refused without its key");
    assert!(
        matches!(refused, crate::LogError::Seal(seal::SealError::SealedLogWithoutKey { .. })),
        "a key problem, not a corrupted log: {refused:?}"
    );

    let other = tempfile::tempdir().unwrap();
    drop(Store::open(other.path(), retention(), None).unwrap());
    let db = Database::create(other.path().join("events.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(crate::schema::META).unwrap().insert(crate::schema::FORMAT_KEY, 2).unwrap();
    txn.commit().unwrap();
    drop(db);
    let refused = Store::open(other.path(), retention(), None).err().expect("another format is refused");
    assert!(matches!(refused, crate::LogError::Format { found: 2, expected: crate::schema::FORMAT }), "{refused:?}");
}

#[test]
fn stats_follow_appends_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), retention(), None).unwrap();
    assert_eq!(store.stats().unwrap(), LogStats { next_sequence: 1, oldest_sequence: None, bytes: 0 });
    store.append(vec![prepare(vec![note("old")])], 0).unwrap();
    let one = store.stats().unwrap();
    assert_eq!((one.next_sequence, one.oldest_sequence), (2, Some(1)));
    assert!(one.bytes > 0);
    store.append(vec![prepare(vec![note("new"), note("newer")])], 7 * DAY).unwrap();
    store.prune(7 * DAY + 1).unwrap();
    let after = store.stats().unwrap();
    assert_eq!((after.next_sequence, after.oldest_sequence), (4, Some(2)), "retention moved the oldest on");
    assert!(after.bytes > one.bytes, "two events in the group left, one before");
}
