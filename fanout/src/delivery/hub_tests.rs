use super::*;
use graph_relay_proto::v1::{self as pb, notification::Kind, ChangeNotification, Notification};

use graph_relay_log::prepared::Prepared;

fn stored(sequence: u64, tenant: &str) -> Stored {
    let change = ChangeNotification { tenant_id: tenant.into(), resource: "users/u".into(), ..Default::default() };
    Prepared::of(&Notification { kind: Some(Kind::Change(change)), received_at_unix_ms: 1, ..Default::default() })
        .into_stored(sequence)
}

fn tenant(tenant: &str) -> Arc<Filter> {
    Arc::new(Filter::compile(Some(&pb::Filter { tenant_ids: vec![tenant.into()], ..Default::default() })).unwrap())
}

fn live(join: (u64, Join)) -> Feed {
    match join.1 {
        Join::Live(feed) => feed,
        _ => panic!("expected to go live"),
    }
}

fn drain(feed: &mut Feed) -> Vec<u64> {
    let mut sequences = Vec::new();
    while let Ok(event) = feed.receiver.try_recv() {
        sequences.push(event.sequence());
    }
    sequences
}

#[test]
fn each_feed_gets_exactly_its_matching_events_in_order() {
    let hub = Hub::new(0, 16);
    let mut a = live(hub.join(None, tenant("a"), true));
    let mut b = live(hub.join(None, tenant("b"), true));
    hub.dispatch(&[stored(1, "a"), stored(2, "b"), stored(3, "a"), stored(4, "c")]);
    assert_eq!(drain(&mut a), [1, 3]);
    assert_eq!(drain(&mut b), [2]);
}

#[test]
fn joining_needs_a_caught_up_cursor_and_skips_what_was_read() {
    let hub = Hub::new(10, 16);
    assert!(matches!(hub.join(Some(9), tenant("a"), true).1, Join::Behind));
    // Events 11 and 12 are in the log but not dispatched yet; the subscriber
    // read them from the log already.
    let (cursor, join) = hub.join(Some(12), tenant("a"), true);
    assert_eq!(cursor, 12);
    let Join::Live(mut feed) = join else { panic!("live") };
    hub.dispatch(&[stored(11, "a"), stored(12, "a"), stored(13, "a")]);
    assert_eq!(drain(&mut feed), [13], "no duplicate at the seam");
    assert_eq!(hub.join(None, tenant("a"), true).0, 13, "a new subscriber starts at the head");
}

#[test]
fn a_full_feed_is_dropped_without_touching_the_others() {
    let hub = Hub::new(0, 2);
    let mut slow = live(hub.join(None, tenant("a"), true));
    let mut fast = live(hub.join(None, tenant("a"), true));
    for sequence in 1..=2 {
        hub.dispatch(&[stored(sequence, "a")]);
        assert_eq!(drain(&mut fast), [sequence]);
    }
    hub.dispatch(&[stored(3, "a")]);
    assert_eq!(drain(&mut fast), [3], "the fast feed keeps pace");
    assert_eq!(hub.live_count(), 1);
    assert_eq!(drain(&mut slow), [1, 2], "what was buffered is still delivered");
    assert!(slow.receiver.try_recv().is_err() && slow.receiver.is_closed(), "then the feed ends");
}

#[test]
fn dropping_a_feed_leaves_and_closing_refuses_joins() {
    let hub = Hub::new(0, 4);
    let feed = live(hub.join(None, tenant("a"), true));
    assert_eq!(hub.live_count(), 1);
    drop(feed);
    assert_eq!(hub.live_count(), 0);
    hub.close();
    assert!(matches!(hub.join(None, tenant("a"), true).1, Join::Closed));
    assert!(hub.is_closed());
}

fn filter(tenants: &[&str], resources: &[&str]) -> Arc<Filter> {
    let filter = pb::Filter {
        tenant_ids: tenants.iter().map(|t| t.to_string()).collect(),
        resources: resources.iter().map(|r| r.to_string()).collect(),
        ..Default::default()
    };
    Arc::new(Filter::compile(Some(&filter)).unwrap())
}

#[test]
fn the_tenant_index_routes_case_insensitively_and_still_applies_the_whole_filter() {
    let hub = Hub::new(0, 16);
    let mut two_tenants = live(hub.join(None, filter(&["A", "b"], &[]), true));
    let mut any_tenant = live(hub.join(None, filter(&[], &["users/*"]), true));
    let mut a_elsewhere = live(hub.join(None, filter(&["a"], &["groups/*"]), true));
    hub.dispatch(&[stored(1, "a"), stored(2, "B"), stored(3, "c")]);
    assert_eq!(drain(&mut two_tenants), [1, 2], "each event once, tenant case ignored");
    assert_eq!(drain(&mut any_tenant), [1, 2, 3]);
    assert!(drain(&mut a_elsewhere).is_empty(), "its tenant, but not its resources");
}

#[test]
fn a_dropped_or_lagging_feed_leaves_the_tenant_index() {
    let hub = Hub::new(0, 1);
    let gone = live(hub.join(None, tenant("a"), true));
    let mut lagging = live(hub.join(None, tenant("a"), true));
    drop(gone);
    hub.dispatch(&[stored(1, "a"), stored(2, "a")]);
    assert_eq!(drain(&mut lagging), [1], "dropped when its buffer of 1 was full");
    assert_eq!(hub.live_count(), 0);
    let mut fresh = live(hub.join(None, tenant("a"), true));
    hub.dispatch(&[stored(3, "a")]);
    assert_eq!(drain(&mut fresh), [3], "a new feed of the same tenant is indexed again");
    assert!(hub.lock().by_tenant.get("a").is_some_and(|ids| ids.len() == 1));
}

#[test]
fn an_event_whose_route_does_not_read_sends_every_feed_back_to_the_log() {
    let hub = Hub::new(0, 16);
    let mut a = live(hub.join(None, tenant("a"), true));
    let mut b = live(hub.join(None, tenant("b"), true));
    let unreadable =
        Stored { encoded: EncodedEvent::from_stored(2, bytes::Bytes::from_static(b"\x12\xff")), redacted: None };
    hub.dispatch(&[stored(1, "a"), unreadable, stored(3, "b")]);
    assert_eq!(drain(&mut a), [1], "what came before is delivered");
    assert!(a.receiver.is_closed() && b.receiver.is_closed(), "no feed goes on past the event it cannot be told about");
    assert_eq!(drain(&mut b), Vec::<u64>::new());
    assert_eq!(hub.live_count(), 0);
    assert_eq!(hub.join(None, tenant("b"), true).0, 3, "the head still moved on: the log has them all");
}

#[test]
fn decrypted_data_goes_only_to_feeds_allowed_to_see_it() {
    let hub = Hub::new(0, 16);
    let mut allowed = live(hub.join(None, tenant("a"), true));
    let mut not_allowed = live(hub.join(None, tenant("a"), false));
    let change = ChangeNotification {
        tenant_id: "a".into(),
        decrypted_resource_data_json: r#"{"subject":"secret"}"#.into(),
        ..Default::default()
    };
    hub.dispatch(&[Prepared::of(&Notification {
        kind: Some(Kind::Change(change)),
        received_at_unix_ms: 1,
        ..Default::default()
    })
    .into_stored(1)]);
    let decrypted = |feed: &mut Feed| {
        let event = feed.receiver.try_recv().expect("delivered");
        let event = <pb::Event as prost::Message>::decode(event.bytes().as_ref()).expect("an event");
        let Some(pb::event::Payload::Change(change)) = event.payload else { panic!("a change") };
        change.decrypted_resource_data_json
    };
    assert_eq!(decrypted(&mut allowed), r#"{"subject":"secret"}"#);
    assert_eq!(decrypted(&mut not_allowed), "");
}
