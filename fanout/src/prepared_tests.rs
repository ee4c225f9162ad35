use super::*;
use graph_relay_proto::v1::{event::Payload, ChangeNotification, Event, LifecycleNotification};
use prost::Message;

use crate::wire;

fn change(id: &str, received_at_unix_ms: i64) -> Notification {
    let change = ChangeNotification {
        id: id.into(),
        subscription_id: "sub".into(),
        change_type: "updated".into(),
        resource: "users/u1/messages/m1".into(),
        tenant_id: "t1".into(),
        raw_json: format!(r#"{{"id":"{id}","padding":"{}"}}"#, "x".repeat(300)),
        ..Default::default()
    };
    Notification { kind: Some(Kind::Change(change)), received_at_unix_ms }
}

fn lifecycle() -> Notification {
    let lifecycle = LifecycleNotification {
        subscription_id: "sub".into(),
        lifecycle_event: "reauthorizationRequired".into(),
        ..Default::default()
    };
    Notification { kind: Some(Kind::Lifecycle(lifecycle)), received_at_unix_ms: 9 }
}

fn with_decrypted_data(mut notification: Notification) -> Notification {
    if let Some(Kind::Change(change)) = notification.kind.as_mut() {
        change.decrypted_resource_data_json = r#"{"subject":"secret"}"#.into();
    }
    notification
}

/// The key the log's records have always held: SHA-256 of `kind`'s encoding.
fn key_as_before(notification: &Notification) -> [u8; 32] {
    let mut identity = Vec::new();
    if let Some(kind) = &notification.kind {
        kind.encode(&mut identity);
    }
    Sha256::digest(identity).into()
}

#[test]
fn the_stored_bytes_are_exactly_the_encoded_event_whatever_the_sequence() {
    let notifications = [
        change("a", 1_700_000_000_000),
        change("b", 0),
        lifecycle(),
        Notification { kind: None, received_at_unix_ms: 5 },
        with_decrypted_data(change("c", -1)),
    ];
    // One-byte and two-byte varints, and the longest (10 bytes).
    for sequence in [1, 127, 128, 300_000, u64::MAX] {
        for notification in &notifications {
            let stored = Prepared::of(notification).into_stored(sequence);
            let expected = wire::EncodedEvent::from_event(&wire::to_event(sequence, notification.clone()));
            assert_eq!(stored.encoded, expected, "sequence {sequence}, {notification:?}");
        }
    }
}

#[test]
fn the_dedup_key_is_the_one_the_log_already_holds() {
    for notification in [change("a", 1), lifecycle(), with_decrypted_data(change("b", 2))] {
        assert_eq!(*Prepared::of(&notification).key(), key_as_before(&notification));
    }
    assert_eq!(*Prepared::of(&Notification::default()).key(), <[u8; 32]>::from(Sha256::digest(b"")));
}

#[test]
fn a_retry_has_the_same_key_and_another_notification_does_not() {
    let first = Prepared::of(&change("a", 1_000));
    assert_eq!(first.key(), Prepared::of(&change("a", 2_000)).key(), "only the edge's receive time differs");
    assert_ne!(first.key(), Prepared::of(&change("b", 1_000)).key());
    assert_ne!(first.key(), Prepared::of(&with_decrypted_data(change("a", 1_000))).key());
}

#[test]
fn decrypted_data_is_left_out_of_the_redacted_copy_only() {
    let notification = with_decrypted_data(change("a", 1));
    let stored = Prepared::of(&notification).into_stored(42);
    let full = Event::decode(stored.encoded.bytes().as_ref()).unwrap();
    let redacted = Event::decode(stored.redacted.as_ref().expect("a redacted copy").bytes().as_ref()).unwrap();
    let (Some(Payload::Change(full_change)), Some(Payload::Change(redacted_change))) = (full.payload, redacted.payload)
    else {
        panic!("change events expected")
    };
    assert_eq!(full_change.decrypted_resource_data_json, r#"{"subject":"secret"}"#);
    assert!(redacted_change.decrypted_resource_data_json.is_empty());
    assert_eq!(ChangeNotification { decrypted_resource_data_json: String::new(), ..full_change }, redacted_change);
    assert_eq!((redacted.sequence, redacted.received_at_unix_ms), (42, 1));
    assert!(Prepared::of(&change("b", 1)).into_stored(1).redacted.is_none(), "nothing to hide, no copy");
}

#[test]
fn a_record_takes_at_most_its_announced_length_and_no_more_than_10_bytes_less() {
    for sequence in [1, 128, u64::MAX] {
        for notification in [change("a", 1), lifecycle(), Notification::default()] {
            let announced = Prepared::of(&notification).record_len();
            let stored = Prepared::of(&notification).into_stored(sequence);
            let actual = crate::group::FRAME_OVERHEAD + crate::group::PREFIX + stored.encoded.bytes().len();
            assert!(actual <= announced && announced - actual <= 10, "sequence {sequence}: {actual} of {announced}");
        }
    }
}
