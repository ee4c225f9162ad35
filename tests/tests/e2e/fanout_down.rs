//! Synchronous mode (no queue binding): when the fan-out is unreachable the
//! edge answers 503, so Graph retries; the retry is delivered exactly once.

use graph_relay_proto::v1::Filter;
use graph_relay_tests::subscriber::{subscribe, subscription_id};
use graph_relay_tests::{edge::Edge, fanout::Fanout, graph, CLIENT_STATE};

#[tokio::test]
async fn fanout_down_means_503_then_graphs_retry_is_delivered_once() {
    let mut fanout = Fanout::start().await;
    let edge = Edge::start_sync(fanout.url()).await;
    let batch = graph::collection(vec![
        graph::change("retry-1", "users/u/messages/1", "created", "t", CLIENT_STATE),
        graph::change("retry-2", "users/u/messages/2", "created", "t", CLIENT_STATE),
    ]);

    fanout.kill();
    let answer = graph::deliver(&edge.url, "/graph/notifications", &batch).await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(answer.body, "notifications could not be stored; retry later");

    fanout.restart().await;
    let mut subscriber = subscribe(&fanout.url(), Filter::default()).await;
    // Graph retries the very same POST.
    assert_eq!(graph::deliver(&edge.url, "/graph/notifications", &batch).await.status, 202);
    let marker = graph::collection(vec![graph::change("marker", "r", "created", "t", CLIENT_STATE)]);
    assert_eq!(graph::deliver(&edge.url, "/graph/notifications", &marker).await.status, 202);
    let delivered: Vec<_> =
        subscriber.until_marker("marker").await.iter().map(|e| subscription_id(e).to_owned()).collect();
    assert_eq!(delivered, ["retry-1", "retry-2"]);
}
