use super::*;
use graph_relay_proto::v1::{event::Payload, notification::Kind, ChangeNotification};

const DAY: u64 = 86_400_000;

fn retention() -> Retention {
    Retention { max_age_ms: 7 * DAY, max_bytes: u64::MAX, dedup_window_ms: DAY, cache_bytes: 16 << 20 }
}

fn note(id: &str) -> Notification {
    let change = ChangeNotification { id: id.into(), resource: format!("users/u/messages/{id}"), ..Default::default() };
    Notification { kind: Some(Kind::Change(change)), received_at_unix_ms: 5 }
}

fn ids(page: &Page) -> Vec<String> {
    page.events
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
    let store = Store::open(dir.path(), retention()).unwrap();
    let (outcomes, stored) =
        store.append(vec![keyed(vec![note("a"), note("b")]), keyed(vec![note("c")])], 1_000).unwrap();
    assert_eq!(outcomes[0], Appended { first_sequence: 1, last_sequence: 2, stored: 2, duplicates: 0 });
    assert_eq!(outcomes[1], Appended { first_sequence: 3, last_sequence: 3, stored: 1, duplicates: 0 });
    assert_eq!(stored.iter().map(|s| s.encoded.sequence()).collect::<Vec<_>>(), [1, 2, 3]);
    drop(store);
    let store = Store::open(dir.path(), retention()).unwrap();
    assert_eq!(store.next_sequence().unwrap(), 4);
    let page = store.read_after(1, 10).unwrap();
    assert_eq!(ids(&page), ["b", "c"]);
    assert_eq!(page.next_sequence, 4);
}

#[test]
fn duplicates_inside_the_window_are_recognised_even_within_one_group() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), retention()).unwrap();
    let mut retried = note("a");
    retried.received_at_unix_ms = 999; // Graph's retry arrives later.
    let (outcomes, _) = store.append(vec![keyed(vec![note("a")]), keyed(vec![retried, note("b")])], 1_000).unwrap();
    assert_eq!(outcomes[1], Appended { first_sequence: 2, last_sequence: 2, stored: 1, duplicates: 1 });
    let (outcomes, _) = store.append(vec![keyed(vec![note("b")])], 1_000 + DAY - 1).unwrap();
    assert_eq!(outcomes[0].duplicates, 1, "still inside the window");
    let (outcomes, _) = store.append(vec![keyed(vec![note("b")])], 1_000 + DAY + 1).unwrap();
    assert_eq!((outcomes[0].stored, outcomes[0].duplicates), (1, 0), "the window has passed");
}

#[test]
fn retention_by_age_and_size_removes_the_oldest_and_keeps_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), retention()).unwrap();
    store.append(vec![keyed(vec![note("old")])], 0).unwrap();
    store.append(vec![keyed(vec![note("new")])], 7 * DAY).unwrap();
    assert_eq!(store.prune(7 * DAY + 1).unwrap(), 1);
    assert_eq!(ids(&store.read_after(0, 10).unwrap()), ["new"]);

    let one_event = store.read_after(0, 1).unwrap().events[0].1.len() as u64;
    let record = one_event + PREFIX as u64;
    let small = Store { retention: Retention { max_bytes: record * 2, ..retention() }, ..store };
    assert_eq!(small.commits(), 2);
    small.append(vec![keyed(vec![note("x"), note("y"), note("z")])], 7 * DAY).unwrap();
    let page = small.read_after(0, 10).unwrap();
    assert_eq!(ids(&page), ["y", "z"], "size retention keeps the newest");
    assert_eq!(page.events[0].0, 4);
    small.prune(100 * DAY).unwrap();
    let empty = small.read_after(0, 10).unwrap();
    assert!(empty.events.is_empty());
    assert_eq!(empty.next_sequence, 6, "sequences never restart, even with an empty log");
}

#[test]
fn reopening_rebuilds_the_dedup_index_from_the_records_inside_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_at(dir.path(), retention(), 0).unwrap();
    for (i, at) in [0, DAY / 2, DAY, DAY + DAY / 2].into_iter().enumerate() {
        store.append(vec![keyed(vec![note(&format!("n{i}"))])], at).unwrap();
    }
    drop(store);
    // At 2 DAY the window starts at DAY: n2 and n3 are inside, n0 and n1 not.
    let now = 2 * DAY;
    let store = Store::open_at(dir.path(), retention(), now).unwrap();
    let (outcomes, _) = store.append(vec![keyed(vec![note("n0"), note("n1"), note("n2"), note("n3")])], now).unwrap();
    assert_eq!((outcomes[0].stored, outcomes[0].duplicates), (2, 2));
    assert_eq!(outcomes[0].first_sequence, 5, "n0 and n1 are stored again");
}

#[test]
fn a_log_with_the_old_on_disk_dedup_table_opens_and_loses_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::create(dir.path().join("events.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(LEGACY_DEDUP).unwrap().insert([7; 32], 1).unwrap();
        txn.commit().unwrap();
    }
    let store = Store::open(dir.path(), retention()).unwrap();
    let txn = store.db.begin_read().unwrap();
    assert!(txn.open_table(LEGACY_DEDUP).is_err(), "the table is gone");
}
