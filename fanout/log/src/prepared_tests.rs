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
    Notification { kind: Some(Kind::Change(change)), received_at_unix_ms, ..Default::default() }
}

fn lifecycle() -> Notification {
    let lifecycle = LifecycleNotification {
        subscription_id: "sub".into(),
        lifecycle_event: "reauthorizationRequired".into(),
        ..Default::default()
    };
    Notification { kind: Some(Kind::Lifecycle(lifecycle)), received_at_unix_ms: 9, ..Default::default() }
}

fn with_decrypted_data(mut notification: Notification) -> Notification {
    if let Some(Kind::Change(change)) = notification.kind.as_mut() {
        change.decrypted_resource_data_json = r#"{"subject":"secret"}"#.into();
    }
    notification
}

#[test]
fn the_stored_bytes_are_exactly_the_encoded_event_whatever_the_sequence() {
    let notifications = [
        change("a", 1_700_000_000_000),
        change("b", 0),
        lifecycle(),
        Notification { kind: None, received_at_unix_ms: 5, ..Default::default() },
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

fn delivered(mut notification: Notification, delivery_id: &str) -> Notification {
    notification.delivery_id = delivery_id.into();
    notification
}

#[test]
fn the_dedup_key_is_the_delivery_not_the_content() {
    let first = Prepared::of(&delivered(change("a", 1_000), "r1/0"));
    let redelivered = Prepared::of(&delivered(change("a", 2_000), "r1/0"));
    let same_bytes_again = Prepared::of(&delivered(change("a", 1_000), "r2/0"));
    assert_eq!(first.key(), redelivered.key(), "a redelivery of one delivery");
    assert_ne!(first.key(), same_bytes_again.key(), "identical items acknowledged twice are two events");
    assert_ne!(first.key(), Prepared::of(&delivered(change("a", 1_000), "r1/1")).key());
}

#[test]
fn an_item_without_a_delivery_id_has_no_key_and_a_keyed_one_never_the_marker() {
    assert_eq!(Prepared::of(&change("a", 1)).key(), None);
    let keyed = Prepared::of(&delivered(lifecycle(), "r/0"));
    assert!(keyed.key().is_some_and(|key| *key != NO_KEY));
}

#[test]
fn delivery_keys_never_equal_the_content_hashes_older_logs_hold() {
    let notification = change("a", 1);
    let mut encoded = Vec::new();
    if let Some(kind) = &notification.kind {
        kind.encode(&mut encoded);
    }
    // An id spelled exactly like the content cannot meet its old hash.
    let spelled = String::from_utf8_lossy(&encoded).into_owned();
    let old: [u8; 32] = Sha256::digest(&encoded).into();
    assert_ne!(delivery_key(&spelled), Some(old));
}

#[test]
fn the_delivery_id_stays_out_of_the_event_subscribers_get() {
    let with_id = Prepared::of(&delivered(with_decrypted_data(change("a", 1)), "r/0")).into_stored(3);
    let without = Prepared::of(&with_decrypted_data(change("a", 1))).into_stored(3);
    assert_eq!(with_id.encoded, without.encoded);
    assert_eq!(with_id.redacted, without.redacted);
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
