use super::*;
use graph_relay_proto::v1::{self as pb, notification::Kind, ChangeNotification, Event};
use prost::Message;
use tokio_stream::StreamExt;

fn note(tenant: &str) -> Notification {
    Notification {
        kind: Some(Kind::Change(ChangeNotification {
            tenant_id: tenant.into(),
            resource: "users/u".into(),
            change_type: "created".into(),
            ..Default::default()
        })),
        received_at_unix_ms: 1,
    }
}

fn tenant_filter(tenant: &str) -> Filter {
    Filter::compile(Some(&pb::Filter { tenant_ids: vec![tenant.into()], ..Default::default() })).unwrap()
}

async fn next_sequence(sub: &mut Subscription) -> u64 {
    let event = sub.next().await.expect("stream open").expect("event, not status");
    Event::decode(event.encode_to_vec().as_slice()).unwrap().sequence
}

#[tokio::test]
async fn each_subscriber_gets_exactly_its_matching_events_in_order() {
    let hub = Hub::new(16);
    let mut a = hub.subscribe(tenant_filter("a"));
    let mut b = hub.subscribe(tenant_filter("b"));
    let range = hub.publish(vec![note("a"), note("b"), note("a"), note("c")]).unwrap();
    assert_eq!(range, Some((1, 4)));
    assert_eq!(next_sequence(&mut a).await, 1);
    assert_eq!(next_sequence(&mut a).await, 3);
    assert_eq!(next_sequence(&mut b).await, 2);
    hub.close();
    assert_eq!(a.next().await.unwrap().unwrap_err().code(), tonic::Code::Unavailable);
    assert!(a.next().await.is_none());
    assert_eq!(b.next().await.unwrap().unwrap_err().code(), tonic::Code::Unavailable);
}

#[tokio::test]
async fn a_full_buffer_ends_only_that_subscriber_with_a_resume_hint() {
    let hub = Hub::new(2);
    let mut slow = hub.subscribe(Filter::default());
    let mut fast = hub.subscribe(Filter::default());
    for _ in 0..2 {
        hub.publish(vec![note("a")]).unwrap();
        next_sequence(&mut fast).await;
    }
    hub.publish(vec![note("a")]).unwrap();
    assert_eq!(next_sequence(&mut fast).await, 3, "the fast subscriber keeps pace");
    assert_eq!(hub.subscriber_count(), 1, "the lagging one is removed");
    assert_eq!(next_sequence(&mut slow).await, 1, "buffered events are still delivered");
    assert_eq!(next_sequence(&mut slow).await, 2);
    let status = slow.next().await.unwrap().unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(status.message().contains("at sequence 3"), "{}", status.message());
}

#[tokio::test]
async fn dropped_subscriptions_unregister_and_closed_hub_refuses_publish() {
    let hub = Hub::new(4);
    let sub = hub.subscribe(Filter::default());
    assert_eq!(hub.subscriber_count(), 1);
    drop(sub);
    assert_eq!(hub.subscriber_count(), 0);
    assert_eq!(hub.publish(vec![]).unwrap(), None);
    hub.close();
    assert_eq!(hub.publish(vec![note("a")]).unwrap_err().code(), tonic::Code::Unavailable);
    let mut late = hub.subscribe(Filter::default());
    assert_eq!(late.next().await.unwrap().unwrap_err().code(), tonic::Code::Unavailable);
}
