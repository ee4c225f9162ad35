//! Only the edge, with the ingest token, may publish.

use graph_relay_proto::v1::{
    fanout_client::FanoutClient, notification::Kind, ChangeNotification, Filter, Notification, PublishRequest,
    SubscribeRequest,
};
use graph_relay_tests::edge::{Edge, EdgeConfig};
use graph_relay_tests::subscriber::{subscribe, subscription_id, try_subscribe};
use graph_relay_tests::{fanout::Fanout, graph, CLIENT_STATE, INGEST_TOKEN};
use tonic::{Code, Request};

fn publish_request(subscription_id: &str, token: Option<&str>) -> Request<PublishRequest> {
    let change = ChangeNotification {
        subscription_id: subscription_id.into(),
        resource: "r".into(),
        change_type: "created".into(),
        ..Default::default()
    };
    let notification = Notification { kind: Some(Kind::Change(change)), received_at_unix_ms: 1, ..Default::default() };
    let mut request = Request::new(PublishRequest { notifications: vec![notification] });
    if let Some(token) = token {
        request.metadata_mut().insert("authorization", token.parse().unwrap());
    }
    request
}

#[tokio::test]
async fn publish_requires_the_exact_ingest_token() {
    let fanout = Fanout::start().await;
    let mut subscriber = subscribe(&fanout.url(), Filter::default()).await;
    let mut client = FanoutClient::connect(fanout.url()).await.unwrap();
    let wrong = [None, Some("Bearer wrong-token-0123456789"), Some(INGEST_TOKEN), Some("Basic dGVzdA==")];
    for token in wrong {
        let status = client.publish(publish_request("intruder", token)).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{token:?}");
    }
    let ok =
        client.publish(publish_request("edge", Some(&format!("Bearer {INGEST_TOKEN}")))).await.unwrap().into_inner();
    assert_eq!(ok.stored, 1);
    assert!(ok.first_sequence > 0 && ok.first_sequence == ok.last_sequence);
    let event = subscriber.next().await;
    assert_eq!((subscription_id(&event), event.sequence), ("edge", ok.first_sequence), "no intruder event came first");
}

#[tokio::test]
async fn an_edge_with_the_wrong_token_answers_503_and_delivers_nothing() {
    let fanout = Fanout::start().await;
    let config = EdgeConfig { fanout_token: "not-the-ingest-token-xyz".into(), ..EdgeConfig::sync(fanout.url()) };
    let edge = Edge::start_with(config).await;
    let mut subscriber = subscribe(&fanout.url(), Filter::default()).await;
    let batch = graph::collection(vec![graph::change("s", "r", "created", "t", CLIENT_STATE)]);
    assert_eq!(graph::deliver(&edge.url, "/graph/notifications", &batch).await.status, 503);
    let mut client = FanoutClient::connect(fanout.url()).await.unwrap();
    client.publish(publish_request("marker", Some(&format!("Bearer {INGEST_TOKEN}")))).await.unwrap();
    assert!(subscriber.until_marker("marker").await.is_empty());
}

#[tokio::test]
async fn subscribe_refuses_invalid_filters_with_the_reason() {
    let fanout = Fanout::start().await;
    let bad = SubscribeRequest {
        filter: Some(Filter { resources: vec!["users/[".into()], ..Default::default() }),
        after_sequence: None,
    };
    let status = try_subscribe(&fanout.url(), bad).await.err().expect("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("users/["), "{}", status.message());
}

/// A gRPC-Web `Publish` whose body is not a `PublishRequest` at all.
async fn raw_publish(fanout: &Fanout, authorization: &str, message: &[u8]) -> (String, String) {
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(message);
    let response = reqwest::Client::new()
        .post(format!("{}{}", fanout.url(), graph_relay_proto::PUBLISH_PATH))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("authorization", authorization)
        .body(body)
        .send()
        .await
        .unwrap();
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    (header("grpc-status"), header("grpc-message"))
}

#[tokio::test]
async fn an_unauthenticated_publish_is_refused_before_its_body_is_decoded() {
    let fanout = Fanout::start().await;
    // Not protobuf: decoding it would fail. The token check comes first and
    // answers UNAUTHENTICATED. (Small enough to be sent whole before the
    // answer: a larger body may meet a closed connection, which is the point
    // of refusing early but would make the answer unobservable here.)
    let garbage = vec![0xff; 1024];
    let (status, message) = raw_publish(&fanout, "Bearer wrong-token-0123456789", &garbage).await;
    assert_eq!(status, (Code::Unauthenticated as i32).to_string(), "{message}");
    // With the token, the same bytes reach the decoder, which refuses them.
    let (status, _) = raw_publish(&fanout, &format!("Bearer {INGEST_TOKEN}"), &garbage).await;
    assert_ne!(status, (Code::Unauthenticated as i32).to_string());
    assert_ne!(status, "0");
}
