use super::*;
use graph_relay_proto::v1::{ChangeNotification, EncryptedContent, Event, Gap, LifecycleNotification};
use prost::Message;

/// A change event with every field set, so the route must skip each field
/// it does not read, of every wire type, before and after the ones it reads.
fn change_event(decrypted: &str) -> Event {
    let change = ChangeNotification {
        id: "id-1".into(),
        subscription_id: "sub-1".into(),
        subscription_expiration_date_time: "2026-11-30T18:23:45Z".into(),
        change_type: "updated".into(),
        resource: "/Users/u-1/Messages/m-1".into(),
        tenant_id: "tenant-1".into(),
        organization_id: "tenant-1".into(),
        resource_data_json: r#"{"id":"m-1"}"#.into(),
        encrypted_content: Some(EncryptedContent { data: "ZGF0YQ==".into(), ..Default::default() }),
        raw_json: "x".repeat(1000),
        decrypted_resource_data_json: decrypted.into(),
        decryption_error: String::new(),
    };
    Event { sequence: 42, payload: Some(Payload::Change(change)), received_at_unix_ms: 1_795_000_000_000 }
}

fn lifecycle_event() -> Event {
    let lifecycle = LifecycleNotification {
        subscription_id: "sub-2".into(),
        lifecycle_event: "reauthorizationRequired".into(),
        resource: "teams/t/channels/c".into(),
        tenant_id: "tenant-2".into(),
        raw_json: "{}".into(),
        reason: "token expires".into(),
        previous_subscription_id: "sub-0".into(),
        ..Default::default()
    };
    Event { sequence: 7, payload: Some(Payload::Lifecycle(lifecycle)), received_at_unix_ms: 1 }
}

fn stored(event: &Event) -> Bytes {
    Bytes::from(event.encode_to_vec())
}

#[test]
fn the_stored_route_is_the_route_of_the_decoded_event() {
    let gap = Event { sequence: 9, payload: Some(Payload::Gap(Gap::default())), received_at_unix_ms: 0 };
    for event in [change_event(""), lifecycle_event(), gap] {
        let read = StoredRoute::read(stored(&event)).unwrap();
        let payload = event.payload.as_ref().unwrap();
        assert_eq!(read.route().unwrap(), Some(Route::of(payload)), "{payload:?}");
    }
    let event = change_event("");
    assert_eq!(Route::of(event.payload.as_ref().unwrap()).kind, Kind::Change("updated"));
}

#[test]
fn an_event_without_a_payload_has_no_route() {
    let read = StoredRoute::read(stored(&Event { sequence: 1, ..Default::default() })).unwrap();
    assert_eq!(read.route().unwrap(), None);
}

#[test]
fn the_route_borrows_the_stored_buffer_instead_of_copying_it() {
    let bytes = stored(&change_event(""));
    let read = StoredRoute::read(bytes.clone()).unwrap();
    let route = read.route().unwrap().unwrap();
    let within = bytes.as_ptr_range();
    for field in [route.subscription_id, route.tenant_id, route.resource] {
        assert!(within.contains(&field.as_ptr()), "{field} was copied");
    }
}

/// The spans kept by the group index give back the route read from the
/// bytes, for every kind of event, and read nothing when there is no
/// payload (this also fails if prost stops decoding fields as slices).
#[test]
fn spans_give_back_the_route_they_were_read_from() {
    let gap = Event { sequence: 9, payload: Some(Payload::Gap(Gap::default())), received_at_unix_ms: 0 };
    let empty = Event { sequence: 1, ..Default::default() };
    for event in [change_event(""), change_event("{}"), lifecycle_event(), gap, empty] {
        let bytes = stored(&event);
        let read = StoredRoute::read(bytes.clone()).unwrap();
        let spans = read.spans(&bytes).unwrap();
        let route = spans.map(|spans| spans.route(&bytes).unwrap());
        assert_eq!(route, read.route().unwrap(), "{event:?}");
        let decrypted = spans.is_some_and(|spans| spans.carries_decrypted_data());
        assert_eq!(decrypted, read.carries_decrypted_data(), "{event:?}");
    }
}

#[test]
fn spans_of_other_bytes_or_text_that_is_not_utf8_are_errors() {
    let bytes = stored(&change_event(""));
    let read = StoredRoute::read(bytes.clone()).unwrap();
    let elsewhere = Bytes::from(bytes.to_vec());
    assert!(matches!(read.spans(&elsewhere), Err(RouteError::NotASlice)), "fields are not slices of a copy");
    let change = Bytes::from_static(&[0x12, 0x04, 0x32, 0x02, 0xff, 0xfe]);
    let not_text = StoredRoute::read(change.clone()).unwrap().spans(&change).unwrap_err();
    assert!(matches!(not_text, RouteError::NotText(_)), "{not_text}");
}

#[test]
fn decrypted_data_is_noticed_so_it_can_be_redacted() {
    let read = |event: &Event| StoredRoute::read(stored(event)).unwrap().carries_decrypted_data();
    assert!(read(&change_event(r#"{"body":"secret"}"#)));
    assert!(!read(&change_event("")));
    assert!(!read(&lifecycle_event()));
}

#[test]
fn unreadable_bytes_give_a_specific_error() {
    let mut bytes = change_event("").encode_to_vec();
    bytes.truncate(bytes.len() - 10);
    let truncated = StoredRoute::read(Bytes::from(bytes)).unwrap_err();
    assert!(matches!(truncated, RouteError::Decode(_)), "{truncated}");

    // Event.change (field 2) whose tenant_id (field 6) holds bytes that are not UTF-8
    let change = [0x12, 0x04, 0x32, 0x02, 0xff, 0xfe];
    let read = StoredRoute::read(Bytes::copy_from_slice(&change)).unwrap();
    let not_text = read.route().unwrap_err();
    assert!(matches!(not_text, RouteError::NotText(_)), "{not_text}");
}
