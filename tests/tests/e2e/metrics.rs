//! `GET /metrics` scraped before and after traffic: the counters move by
//! exactly what was sent, and the state gauges describe the log and the
//! subscribers as they are.

use std::collections::HashMap;

use graph_relay_proto::v1::SubscribeRequest;
use graph_relay_tests::fanout::Fanout;
use graph_relay_tests::publisher::{change, changes, Publisher};
use graph_relay_tests::subscriber::subscribe_as;
use graph_relay_tests::{NO_DECRYPT_TOKEN, SUBSCRIBER_TOKEN};

fn value(metrics: &HashMap<String, f64>, series: &str) -> f64 {
    metrics.get(series).copied().unwrap_or(0.0)
}

fn moved(before: &HashMap<String, f64>, after: &HashMap<String, f64>, series: &str) -> f64 {
    value(after, series) - value(before, series)
}

const PUBLISH_OK: &str =
    r#"grpc_server_handled_total{grpc_service="graphrelay.v1.Fanout",grpc_method="Publish",grpc_code="OK"}"#;
const PUBLISH_REFUSED: &str = r#"grpc_server_handled_total{grpc_service="graphrelay.v1.Fanout",grpc_method="Publish",grpc_code="UNAUTHENTICATED"}"#;

graph_relay_tests::on_both_logs! {
    async fn counters_move_by_exactly_what_was_sent_and_gauges_show_the_log_and_its_subscribers() {
        let fanout = Fanout::start_with(&["--metrics-listen", "127.0.0.1:0"]).await;
        let before = fanout.metrics().await;
        assert_eq!(value(&before, "graph_relay_log_last_sequence"), 0.0);

        let mut reader = subscribe_as(&fanout.url(), SUBSCRIBER_TOKEN, SubscribeRequest::default()).await.unwrap();
        let mut publisher = Publisher::connect(&fanout.url()).await;
        publisher.publish(changes("s", 0..5)).await.unwrap();
        // The same two deliveries again (a queue redelivery): duplicates, not events.
        publisher.publish(vec![change("s", 0), change("s", 1)]).await.unwrap();
        let mut refused = graph_relay_proto::v1::fanout_client::FanoutClient::connect(fanout.url()).await.unwrap();
        let request = graph_relay_tests::subscriber::with_token(
            graph_relay_proto::v1::PublishRequest { notifications: changes("s", 9..10) },
            "not-the-ingest-token-at-all",
        );
        assert_eq!(refused.publish(request).await.unwrap_err().code(), tonic::Code::Unauthenticated);
        for _ in 0..5 {
            reader.next().await;
        }

        let after = fanout.metrics().await;
        assert_eq!(moved(&before, &after, "graph_relay_notifications_published_total"), 5.0);
        assert_eq!(moved(&before, &after, "graph_relay_notifications_duplicate_total"), 2.0);
        assert_eq!(moved(&before, &after, "graph_relay_publish_duration_seconds_count"), 2.0);
        assert_eq!(moved(&before, &after, PUBLISH_OK), 2.0);
        assert_eq!(moved(&before, &after, PUBLISH_REFUSED), 1.0, "refused at the gate, still counted");
        assert!(moved(&before, &after, "graph_relay_log_commit_duration_seconds_count") >= 1.0);
        assert_eq!(value(&after, "graph_relay_log_last_sequence"), 5.0);
        assert_eq!(value(&after, "graph_relay_log_oldest_sequence"), 1.0);
        assert!(value(&after, "graph_relay_log_size_bytes") > 0.0);
        assert_eq!(value(&after, r#"graph_relay_subscriber_streams{subscriber="everything"}"#), 1.0);
        assert_eq!(value(&after, r#"graph_relay_subscriber_lag_events{subscriber="everything"}"#), 0.0);

        // A subscriber that reads nothing while far more than its connection's
        // buffers hold is stored falls behind, and the gauge says by how much.
        let _stalled = subscribe_as(&fanout.url(), NO_DECRYPT_TOKEN, SubscribeRequest::default()).await.unwrap();
        let padding = "x".repeat(4096);
        for round in 0..40u64 {
            let mut batch = changes("bulk", round * 100..round * 100 + 100);
            for notification in &mut batch {
                if let Some(graph_relay_proto::v1::notification::Kind::Change(change)) = notification.kind.as_mut() {
                    change.raw_json = format!(r#"{{"padding":"{padding}"}}"#);
                }
            }
            publisher.publish(batch).await.unwrap();
        }
        let stalled = fanout.metrics().await;
        let lag = value(&stalled, r#"graph_relay_subscriber_lag_events{subscriber="no-decrypt"}"#);
        assert!(lag > 0.0 && lag <= 4000.0, "lag {lag} of 4000 unread events");
        assert_eq!(value(&stalled, r#"graph_relay_subscriber_streams{subscriber="no-decrypt"}"#), 1.0);
        assert_eq!(moved(&after, &stalled, "graph_relay_notifications_published_total"), 4000.0);
        drop(reader);
    }
}
