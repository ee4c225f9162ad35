//! Two deliveries the edge acknowledged are two events, even when Graph's
//! items are byte for byte the same; one delivery arriving twice is one.

use graph_relay_proto::v1::{event::Payload, Filter};
use graph_relay_tests::edge::{Edge, EdgeConfig, Mode};
use graph_relay_tests::publisher::{self, Publisher};
use graph_relay_tests::subscriber::{item, subscribe};
use graph_relay_tests::{fanout::Fanout, graph, CLIENT_STATE};

/// A user updated twice: Graph's basic notification for users carries no
/// etag, so both deliveries are the same bytes.
fn user_updated() -> serde_json::Value {
    let mut item = graph::change("sub-users", "Users/u-1", "updated", "tenant-a", CLIENT_STATE);
    item["resourceData"] = serde_json::json!({"@odata.type": "#Microsoft.Graph.User", "id": "u-1"});
    item
}

async fn identical_deliveries_are_each_delivered(mode: Mode) {
    let fanout = Fanout::start().await;
    let edge = Edge::start_with(EdgeConfig { mode, ..EdgeConfig::for_fanout(fanout.url()) }).await;
    let mut subscriber = subscribe(&fanout.url(), Filter::default()).await;
    let change = graph::collection(vec![user_updated()]);
    let missed = graph::collection(vec![graph::lifecycle("sub-users", "missed", "tenant-a", CLIENT_STATE)]);
    let mut events = Vec::new();
    for (route, body) in [("/graph/notifications", &change), ("/graph/lifecycle", &missed)] {
        for _ in 0..2 {
            let answer = graph::deliver(&edge.url, route, body).await;
            assert_eq!(answer.status, 202, "{}", answer.body);
            // Each delivery's event before the next POST: in queue mode the
            // fast paths of two requests may land in either order.
            events.push(subscriber.next().await);
        }
    }
    let marker = graph::collection(vec![graph::change("marker", "Users/m", "updated", "t", CLIENT_STATE)]);
    assert_eq!(graph::deliver(&edge.url, "/graph/notifications", &marker).await.status, 202);
    assert!(subscriber.until_marker("marker").await.is_empty(), "no event beyond the four deliveries");

    let kinds: Vec<&str> = events
        .iter()
        .map(|event| match &event.payload {
            Some(Payload::Change(change)) => change.change_type.as_str(),
            Some(Payload::Lifecycle(lifecycle)) => lifecycle.lifecycle_event.as_str(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["updated", "updated", "missed", "missed"], "every acknowledged delivery, once");
    assert_eq!(item(&events[0]), item(&events[1]), "the same bytes, two events");
    assert!(events.windows(2).all(|pair| pair[0].sequence < pair[1].sequence));
}

graph_relay_tests::on_both_logs! {
    async fn identical_deliveries_are_two_events_through_the_queue() {
        identical_deliveries_are_each_delivered(Mode::Queue).await;
    }

    async fn identical_deliveries_are_two_events_in_synchronous_mode() {
        identical_deliveries_are_each_delivered(Mode::Sync).await;
    }

    async fn one_delivery_published_again_is_stored_once_and_an_anonymous_item_every_time() {
        let fanout = Fanout::start().await;
        let mut publisher = Publisher::connect(&fanout.url()).await;
        let delivery = publisher::changes("sub", 0..3);
        let first = publisher.publish(delivery.clone()).await.unwrap();
        let again = publisher.publish(delivery).await.unwrap();
        assert_eq!((first.stored, again.stored, again.duplicates), (3, 0, 3), "a redelivery or replay");

        let mut anonymous = publisher::change("sub", 9);
        anonymous.delivery_id.clear();
        let first = publisher.publish(vec![anonymous.clone()]).await.unwrap();
        let again = publisher.publish(vec![anonymous]).await.unwrap();
        assert_eq!((first.stored, again.stored), (1, 1), "no identity, no proof of a duplicate");

        let mut overlong = publisher::change("sub", 10);
        overlong.delivery_id = "x".repeat(129);
        let refused = publisher.publish(vec![overlong]).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert!(refused.message().contains("delivery_id"), "{refused}");
    }
}
