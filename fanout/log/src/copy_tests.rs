use super::*;
use crate::prepared::prepare;
use crate::route::Kind;
use crate::store::{Retention, Store};
use graph_relay_proto::v1::{event::Payload, notification::Kind as NoteKind, ChangeNotification, Event, Notification};
use prost::Message;

fn retention() -> Retention {
    Retention {
        max_age_ms: u64::MAX,
        max_bytes: u64::MAX,
        dedup_window_ms: 60_000,
        dedup_max_keys: 1000,
        cache_bytes: 1 << 20,
        shared_groups_bytes: 1 << 20,
    }
}

fn note(id: &str) -> Notification {
    let change = ChangeNotification { id: id.into(), ..Default::default() };
    Notification { kind: Some(NoteKind::Change(change)), received_at_unix_ms: 1, delivery_id: id.into() }
}

fn copied(sequence: u64, id: &str) -> Copied {
    Copied { sequence, stored_at_ms: 1_000, prepared: prepare(vec![note(id)]).remove(0) }
}

fn stored_ids(store: &Store, after: u64) -> Vec<(u64, String)> {
    let page = store.read_after(after, 100).unwrap();
    page.events()
        .into_iter()
        .map(|(sequence, bytes)| match Event::decode(bytes.as_ref()).unwrap().payload {
            Some(Payload::Change(change)) => (sequence, change.id),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

#[test]
fn copied_events_keep_the_shared_sequences_and_skip_what_was_copied_before() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), retention(), None).unwrap();
    let first = store.append_copied(vec![copied(1, "a"), copied(2, "b")], 2_000).unwrap();
    assert_eq!(first.iter().map(|s| s.encoded.sequence()).collect::<Vec<_>>(), [1, 2]);
    // A consumer redelivering 2 after a reconnect, then 3.
    let again = store.append_copied(vec![copied(2, "b"), copied(3, "c")], 2_000).unwrap();
    assert_eq!(again.iter().map(|s| s.encoded.sequence()).collect::<Vec<_>>(), [3]);
    assert_eq!(stored_ids(&store, 0), [(1, "a".into()), (2, "b".into()), (3, "c".into())]);
    assert_eq!(store.next_sequence().unwrap(), 4);
}

#[test]
fn a_jump_in_the_shared_sequences_becomes_a_gap_for_live_and_log_readers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), retention(), None).unwrap();
    store.append_copied(vec![copied(1, "a")], 2_000).unwrap();
    let live = store.append_copied(vec![copied(5, "e"), copied(6, "f")], 2_000).unwrap();
    let payload = Event::decode(live[0].encoded.bytes().as_ref()).unwrap().payload.unwrap();
    assert_eq!(crate::route::Route::of(&payload).kind, Kind::Gap, "every filter takes it");
    match Event::decode(live[0].encoded.bytes().as_ref()).unwrap().payload {
        Some(Payload::Gap(gap)) => {
            assert_eq!((gap.from_sequence, gap.to_sequence, gap.reason.as_str()), (2, 4, NOT_COPIED))
        }
        other => panic!("expected a gap, got {other:?}"),
    }
    assert_eq!(live[1..].iter().map(|s| s.encoded.sequence()).collect::<Vec<_>>(), [5, 6]);
    // The copy holds no record for 2..=4: a reader sees the jump.
    assert_eq!(stored_ids(&store, 1), [(5, "e".into()), (6, "f".into())]);
    drop(store);
    let store = Store::open(dir.path(), retention(), None).unwrap();
    assert_eq!(store.next_sequence().unwrap(), 7, "the head survives reopening");
}

#[test]
fn a_copy_that_starts_late_begins_at_the_shared_logs_first_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), retention(), None).unwrap();
    let live = store.append_copied(vec![copied(40, "x")], 2_000).unwrap();
    assert_eq!(live.len(), 2, "a gap for 1..=39, then the event");
    assert_eq!(stored_ids(&store, 0), [(40, "x".into())]);
}

#[test]
fn a_copy_belongs_to_one_shared_log_and_an_embedded_log_is_not_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), retention(), None).unwrap();
    assert_eq!(store.copy_of().unwrap(), None);
    store.claim_copy(7).unwrap();
    store.append_copied(vec![copied(1, "a")], 2_000).unwrap();
    store.claim_copy(7).unwrap();
    assert!(matches!(store.claim_copy(8), Err(crate::LogError::Copy(reason)) if reason.contains("another shared log")));
    drop(store);
    assert_eq!(Store::open(dir.path(), retention(), None).unwrap().copy_of().unwrap(), Some(7), "recorded durably");

    let embedded = tempfile::tempdir().unwrap();
    let store = Store::open(embedded.path(), retention(), None).unwrap();
    store.append(vec![prepare(vec![note("x")])], 1).unwrap();
    assert!(matches!(store.claim_copy(7), Err(crate::LogError::Copy(reason)) if reason.contains("embedded log")));
}
