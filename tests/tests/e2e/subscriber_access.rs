//! Who may subscribe and what they see, against the real fan-out binary:
//! authentication, scopes, and decrypted resource data only for those
//! allowed to see it.

use graph_relay_proto::v1::{
    event::Payload, fanout_client::FanoutClient, notification::Kind, ChangeNotification, EncryptedContent, Event,
    Filter, Notification, SubscribeRequest,
};
use graph_relay_tests::encryption::{encrypt, write_pem};
use graph_relay_tests::fanout::Fanout;
use graph_relay_tests::publisher::Publisher;
use graph_relay_tests::subscriber::{subscribe_as, subscription_id, Subscriber};
use graph_relay_tests::tokens::SigningKey;
use graph_relay_tests::{NO_DECRYPT_TOKEN, SCOPED_TOKEN, SUBSCRIBER_TOKEN};
use prost::Message;
use tonic::Code;

fn note(subscription: &str, tenant: &str, resource: &str) -> Notification {
    let change = ChangeNotification {
        subscription_id: subscription.into(),
        tenant_id: tenant.into(),
        resource: resource.into(),
        change_type: "created".into(),
        raw_json: format!(r#"{{"subscriptionId":"{subscription}"}}"#),
        ..Default::default()
    };
    Notification { kind: Some(Kind::Change(change)), received_at_unix_ms: 1, ..Default::default() }
}

fn request(filter: Filter, after: Option<u64>) -> SubscribeRequest {
    SubscribeRequest { filter: Some(filter), after_sequence: after }
}

async fn refused(url: &str, token: &str, filter: Filter) -> tonic::Status {
    subscribe_as(url, token, request(filter, None)).await.err().expect("refused")
}

#[tokio::test]
async fn missing_or_unknown_tokens_are_unauthenticated() {
    let fanout = Fanout::start().await;
    let mut client = FanoutClient::connect(fanout.url()).await.unwrap();
    let status = client.subscribe(request(Filter::default(), None)).await.expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(refused(&fanout.url(), "not-a-known-token-0000", Filter::default()).await.code(), Code::Unauthenticated);
    let ingest = refused(&fanout.url(), graph_relay_tests::INGEST_TOKEN, Filter::default()).await;
    assert_eq!(ingest.code(), Code::Unauthenticated, "the edge's token is not a subscriber token");
}

async fn from_start(url: &str, token: &str) -> Subscriber {
    subscribe_as(url, token, request(Filter::default(), Some(0))).await.unwrap()
}

fn set_content(notification: &mut Notification, content: serde_json::Value) {
    let field = |name: &str| content[name].as_str().unwrap_or("").to_owned();
    if let Some(Kind::Change(change)) = notification.kind.as_mut() {
        change.encrypted_content = Some(EncryptedContent {
            data: field("data"),
            data_key: field("dataKey"),
            data_signature: field("dataSignature"),
            encryption_certificate_id: field("encryptionCertificateId"),
            encryption_certificate_thumbprint: field("encryptionCertificateThumbprint"),
        });
    }
}

fn change(event: &Event) -> ChangeNotification {
    match &event.payload {
        Some(Payload::Change(change)) => change.clone(),
        other => panic!("change expected, got {other:?}"),
    }
}

graph_relay_tests::on_both_logs! {
    async fn a_scoped_client_sees_only_its_tenant_and_resources_by_any_filter() {
        let fanout = Fanout::start().await;
        let url = fanout.url();
        for wider in [
            Filter { tenant_ids: vec!["tenant-b".into()], ..Default::default() },
            Filter { tenant_ids: vec!["tenant-a".into(), "tenant-b".into()], ..Default::default() },
            Filter { resources: vec!["users/**".into()], ..Default::default() },
            Filter { resources: vec!["groups/*".into()], ..Default::default() },
        ] {
            assert_eq!(refused(&url, SCOPED_TOKEN, wider.clone()).await.code(), Code::PermissionDenied, "{wider:?}");
        }
        // Filters it may use, each narrowed to its scope.
        let mut narrowed = subscribe_as(&url, SCOPED_TOKEN, request(Filter::default(), None)).await.unwrap();
        let by_subscription =
            Filter { subscription_ids: vec!["b-mail".into(), "a-mail".into(), "marker".into()], ..Default::default() };
        let mut by_id = subscribe_as(&url, SCOPED_TOKEN, request(by_subscription, None)).await.unwrap();
        let mut everything = subscribe_as(&url, SUBSCRIBER_TOKEN, request(Filter::default(), None)).await.unwrap();

        let mut publisher = Publisher::connect(&url).await;
        publisher
            .publish(vec![
                note("b-mail", "tenant-b", "users/u/messages/1"),
                note("a-events", "tenant-a", "users/u/events/1"),
                note("a-mail", "tenant-a", "users/u/messages/2"),
                note("marker", "tenant-a", "users/m/messages/end"),
            ])
            .await
            .unwrap();
        let share = |events: Vec<Event>| events.iter().map(|e| subscription_id(e).to_owned()).collect::<Vec<_>>();
        assert_eq!(share(narrowed.until_marker("marker").await), ["a-mail"]);
        assert_eq!(share(by_id.until_marker("marker").await), ["a-mail"], "another tenant's id shows nothing");
        assert_eq!(share(everything.until_marker("marker").await), ["b-mail", "a-events", "a-mail"]);

        // Replay obeys the scope as well.
        let mut replayed = subscribe_as(&url, SCOPED_TOKEN, request(Filter::default(), Some(0))).await.unwrap();
        assert_eq!(share(replayed.until_marker("marker").await), ["a-mail"]);
    }

    async fn only_clients_allowed_to_see_resource_data_receive_the_plaintext() {
        let (key, _) = SigningKey::pair();
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("cert-1.pem");
        write_pem(&key.private, &pem);
        let fanout = Fanout::start_with(&["--decryption-key", &format!("cert-1={}", pem.display())]).await;
        let url = fanout.url();
        let secret = r#"{"body":"the quarterly numbers: top secret"}"#;
        let mut full = subscribe_as(&url, SUBSCRIBER_TOKEN, request(Filter::default(), None)).await.unwrap();
        let mut plain = subscribe_as(&url, NO_DECRYPT_TOKEN, request(Filter::default(), None)).await.unwrap();

        let mut rich = note("rich", "t", "teams('t')/channels('c')/messages('m')");
        let mut unknown = note("unknown-cert", "t", "teams('t')/channels('c')/messages('n')");
        set_content(&mut rich, encrypt(&key.private, "cert-1", secret));
        set_content(&mut unknown, encrypt(&key.private, "cert-2", secret));
        Publisher::connect(&url).await.publish(vec![rich, unknown]).await.unwrap();

        let got = change(&full.next().await);
        assert_eq!((got.decrypted_resource_data_json.as_str(), got.decryption_error.as_str()), (secret, ""));
        let failed = change(&full.next().await);
        assert_eq!(failed.decryption_error, "no private key for encryptionCertificateId \"cert-2\"");
        assert!(failed.encrypted_content.is_some(), "still delivered, in its encrypted form");

        for (path, subscriber) in [("live", &mut plain), ("replay", &mut from_start(&url, NO_DECRYPT_TOKEN).await)] {
            for _ in 0..2 {
                let event = subscriber.next().await;
                assert!(!event.encode_to_vec().windows(10).any(|w| w == b"quarterly "), "{path}: plaintext leaked");
                assert_eq!(change(&event).decrypted_resource_data_json, "", "{path}");
                assert!(change(&event).encrypted_content.is_some(), "{path}");
            }
        }
    }
}
