use super::*;
use graph_relay_proto::v1::{event::Payload, ChangeNotification, Event, Gap, LifecycleNotification};
use prost::Message;

use crate::route::{Kind, Route, StoredRoute};

fn change(tenant: &str, decrypted: &str) -> Event {
    let change = ChangeNotification {
        subscription_id: "sub-1".into(),
        change_type: "created".into(),
        resource: "users/u/messages/m".into(),
        tenant_id: tenant.into(),
        raw_json: "x".repeat(1000),
        decrypted_resource_data_json: decrypted.into(),
        ..Default::default()
    };
    Event { payload: Some(Payload::Change(change)), ..Default::default() }
}

fn lifecycle() -> Event {
    let lifecycle = LifecycleNotification {
        subscription_id: "sub-2".into(),
        lifecycle_event: "missed".into(),
        tenant_id: "tenant-2".into(),
        ..Default::default()
    };
    Event { payload: Some(Payload::Lifecycle(lifecycle)), ..Default::default() }
}

/// Event.change (field 2) whose tenant_id (field 6) is not UTF-8.
const NOT_TEXT: &[u8] = &[0x12, 0x04, 0x32, 0x02, 0xff, 0xfe];

/// A group of `events` (encoded) starting at `first`, as the log stores it.
fn group_of(first: u64, events: &[Vec<u8>]) -> (u64, Cached) {
    let mut group = Vec::new();
    for event in events {
        group::push(&mut group, 0, &[7; 32], event);
    }
    (first, Cached::new(Bytes::from(group)))
}

fn mixed() -> Vec<Vec<u8>> {
    let gap = Event { payload: Some(Payload::Gap(Gap::default())), ..Default::default() };
    [change("tenant-1", ""), lifecycle(), gap, Event::default(), change("tenant-3", "{\"body\":1}")]
        .iter()
        .map(Message::encode_to_vec)
        .chain([NOT_TEXT.to_vec()])
        .collect()
}

#[test]
fn each_record_keeps_its_sequence_its_bytes_and_the_route_read_from_them() {
    let events = mixed();
    let (first, cached) = group_of(40, &events);
    let page = PageGroup::new(first, cached, first);
    let entries = page.entries();
    assert_eq!(entries.iter().map(|e| e.sequence).collect::<Vec<_>>(), (40..46).collect::<Vec<_>>());
    for (entry, event) in entries.iter().zip(&events) {
        assert_eq!(page.event(entry).as_ref(), event.as_slice(), "sequence {}", entry.sequence);
        let read = StoredRoute::read(Bytes::copy_from_slice(event)).unwrap();
        match read.route() {
            Ok(expected) => assert_eq!(page.route(entry).unwrap(), expected, "sequence {}", entry.sequence),
            Err(_) => assert!(matches!(page.route(entry), Err(RouteError::NotText(_))), "unreadable, and says why"),
        }
        assert_eq!(entry.carries_decrypted_data(), read.carries_decrypted_data());
    }
    assert_eq!(page.route(&entries[2]).unwrap().map(|r| r.kind), Some(Kind::Gap));
    assert_eq!(page.route(&entries[3]).unwrap(), None, "no payload, no route");
    assert!(entries[4].carries_decrypted_data());
}

#[test]
fn a_reader_gets_the_records_from_the_one_it_wants() {
    let (first, cached) = group_of(10, &mixed());
    assert_eq!(PageGroup::new(first, cached.clone(), 13).entries()[0].sequence, 13);
    assert!(PageGroup::new(first, cached.clone(), 16).entries().is_empty(), "past the group");
    assert_eq!(PageGroup::new(first, cached, 3).entries().len(), 6, "from before the group: all of it");
}

#[test]
fn a_reader_taking_every_event_as_stored_gets_the_same_events_without_an_index() {
    let events = mixed();
    let (first, cached) = group_of(20, &events);
    let page = PageGroup::new(first, cached.clone(), 22);
    let stored: Vec<(u64, Bytes)> = page.stored_events().collect();
    assert_eq!(stored.len(), page.len());
    assert_eq!(stored.iter().map(|(sequence, _)| *sequence).collect::<Vec<_>>(), (22..26).collect::<Vec<_>>());
    assert!(stored.iter().zip(&events[2..]).all(|((_, bytes), event)| bytes.as_ref() == event.as_slice()));
    assert!(cached.index.get().is_none(), "no route was read");
    assert_eq!(page.entries().len(), page.len(), "the index agrees on what the reader wants");
}

#[test]
fn routes_are_read_once_per_group_and_shared_by_every_reader() {
    let (first, cached) = group_of(1, &mixed());
    assert!(cached.index.get().is_none(), "nothing read before a reader asks");
    let one = PageGroup::new(first, cached.clone(), 1);
    let built = one.entries().as_ptr();
    assert!(cached.index.get().is_some(), "the cached group holds what the first reader read");
    let other = PageGroup::new(first, cached, 1);
    assert_eq!(other.entries().as_ptr(), built, "a second reader uses the same index");
}

#[test]
fn routes_on_the_index_select_as_routes_on_the_stored_bytes() {
    let events = mixed();
    let (first, cached) = group_of(1, &events);
    let page = PageGroup::new(first, cached, 1);
    // What a tenant filter asks of a route (the fan-out's filters are tested
    // against routes in its own tests): tenant-1's events, and every gap.
    let takes = |route: &Route<'_>| matches!(route.kind, Kind::Gap) || route.tenant_id.eq_ignore_ascii_case("TENANT-1");
    let taken: Vec<u64> = page
        .entries()
        .iter()
        .filter(|entry| page.route(entry).ok().flatten().is_some_and(|route| takes(&route)))
        .map(|entry| entry.sequence)
        .collect();
    assert_eq!(taken, [1, 3]);
    let from_bytes: Vec<u64> = events
        .iter()
        .zip(1u64..)
        .filter(|(event, _)| {
            StoredRoute::read(Bytes::copy_from_slice(event))
                .ok()
                .and_then(|r| r.route().ok().flatten().map(|r| takes(&r)))
                == Some(true)
        })
        .map(|(_, sequence)| sequence)
        .collect();
    assert_eq!(taken, from_bytes, "the index and the bytes select alike");
}

#[test]
fn a_record_too_short_to_hold_an_event_reads_as_empty_without_panicking() {
    // A frame of 3 bytes: shorter than the stored-at time and dedup key.
    let mut group = vec![0, 0, 0, 3, 1, 2, 3];
    group::push(&mut group, 0, &[0; 32], &change("tenant-1", "").encode_to_vec());
    let page = PageGroup::new(5, Cached::new(Bytes::from(group)), 5);
    let entries = page.entries();
    assert_eq!(entries.len(), 2);
    assert!(page.event(&entries[0]).is_empty());
    assert_eq!(page.route(&entries[0]).unwrap(), None);
    assert_eq!(page.route(&entries[1]).unwrap().map(|r| r.tenant_id), Some("tenant-1"));
}
