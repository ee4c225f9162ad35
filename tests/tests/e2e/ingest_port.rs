//! The ingest port (`--ingest-listen`): the edge publishes there, on a
//! thread of its own; subscribers stay on the main port.

use graph_relay_proto::v1::{fanout_client::FanoutClient, Filter, PublishRequest, SubscribeRequest};
use graph_relay_tests::edge::{Edge, EdgeConfig, Mode};
use graph_relay_tests::publisher::{change, Publisher};
use graph_relay_tests::subscriber::{subscribe, subscription_id, try_subscribe};
use graph_relay_tests::{fanout::Fanout, graph, CLIENT_STATE};
use tonic::{Code, Request};

async fn with_ingest_port() -> Fanout {
    Fanout::start_with(&["--ingest-listen", "127.0.0.1:0"]).await
}

#[tokio::test]
async fn the_edge_publishes_through_the_ingest_port_in_both_modes() {
    let fanout = with_ingest_port().await;
    assert_ne!(fanout.ingest_addr, Some(fanout.addr), "a port of its own");
    let mut subscriber = subscribe(&fanout.url(), Filter::default()).await;
    for (mode, subscription) in [(Mode::Queue, "queued"), (Mode::Sync, "forwarded")] {
        let edge = Edge::start_with(EdgeConfig { mode, ..EdgeConfig::for_fanout(fanout.ingest_url()) }).await;
        let batch =
            graph::collection(vec![graph::change(subscription, "Users/u/Messages/m", "created", "t", CLIENT_STATE)]);
        let answer = graph::deliver(&edge.url, "/graph/notifications", &batch).await;
        assert_eq!(answer.status, 202, "{}", answer.body);
        assert_eq!(subscription_id(&subscriber.next().await), subscription, "delivered on the main port");
    }
}

#[tokio::test]
async fn the_ingest_port_refuses_subscribers_and_checks_the_ingest_token() {
    let fanout = with_ingest_port().await;
    let refused = try_subscribe(&fanout.ingest_url(), SubscribeRequest::default()).await.err().expect("refused");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("main port"), "says where to go: {}", refused.message());

    let mut subscriber = subscribe(&fanout.url(), Filter::default()).await;
    let mut intruder = Request::new(PublishRequest { notifications: vec![change("intruder", 1)] });
    intruder.metadata_mut().insert("authorization", "Bearer wrong-token-0123456789".parse().unwrap());
    let mut client = FanoutClient::connect(fanout.ingest_url()).await.unwrap();
    assert_eq!(client.publish(intruder).await.unwrap_err().code(), Code::Unauthenticated);
    let stored = Publisher::connect(&fanout.ingest_url()).await.publish(vec![change("edge", 2)]).await.unwrap();
    assert_eq!(stored.stored, 1);
    let event = subscriber.next().await;
    assert_eq!((subscription_id(&event), event.sequence), ("edge", stored.first_sequence), "nothing from the intruder");
}

#[tokio::test]
async fn a_stop_ends_both_ports_cleanly_with_a_publisher_connected() {
    let mut fanout = with_ingest_port().await;
    let mut publisher = Publisher::connect(&fanout.ingest_url()).await;
    publisher.publish(vec![change("before-stop", 1)]).await.unwrap();
    // Under the fan-out's own 10 s drain limit: nothing was left hanging.
    let status = fanout.stop(std::time::Duration::from_secs(8)).expect("exited within 8 s");
    assert!(status.success(), "{status}");
}

graph_relay_tests::on_both_logs! {
    async fn both_ports_share_one_log_and_one_sequence() {
        let fanout = with_ingest_port().await;
        let mut main = Publisher::connect(&fanout.url()).await;
        let mut ingest = Publisher::connect(&fanout.ingest_url()).await;
        let mut last = 0;
        for round in 0..5 {
            for (publisher, port) in [(&mut main, "main"), (&mut ingest, "ingest")] {
                let id = format!("{port}-{round}");
                let stored = publisher.publish(vec![change(&id, round)]).await.unwrap();
                assert_eq!(stored.first_sequence, last + 1, "{id}: the next sequence of the one log");
                last = stored.first_sequence;
            }
        }
        let mut replay =
            try_subscribe(&fanout.url(), SubscribeRequest { filter: None, after_sequence: Some(0) }).await.expect("replay");
        for round in 0..5 {
            for port in ["main", "ingest"] {
                assert_eq!(subscription_id(&replay.next().await), format!("{port}-{round}"));
            }
        }
    }
}
