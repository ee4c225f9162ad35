//! Notifications flow edge -> fan-out -> subscribers, filtered and intact.

use graph_relay_proto::v1::{event::Payload, Filter};
use graph_relay_tests::edge::{Edge, EdgeConfig, Mode};
use graph_relay_tests::subscriber::{item, subscribe, subscription_id};
use graph_relay_tests::tokens::{self, JwksServer, SigningKey};
use graph_relay_tests::{fanout::Fanout, graph, CLIENT_STATE, ROTATED_CLIENT_STATE};
use serde_json::json;

/// One resource kind of each family in docs/graph-protocol.md's table.
fn mixed_batch() -> Vec<serde_json::Value> {
    let mut teams = graph::change(
        "sub-teams",
        "teams('t1')/channels('19:abc@thread.tacv2')/messages('1')",
        "Created",
        "tenant-a",
        CLIENT_STATE,
    );
    teams["resourceData"] = json!({"@odata.type": "#Microsoft.Graph.ChatMessage", "id": "1"});
    teams["encryptedContent"] = json!({"data": "ZGF0YQ==", "dataKey": "a2V5", "dataSignature": "c2ln", "encryptionCertificateId": "c1", "encryptionCertificateThumbprint": "AB"});
    teams["futureGraphField"] = json!({"nested": [1, 2, {"deep": true}]});
    vec![
        graph::change("sub-mail", "Users/u1/Messages/m1", "created", "tenant-a", CLIENT_STATE),
        graph::change("sub-events", "Users/u1/Events/e1", "updated", "tenant-a", ROTATED_CLIENT_STATE),
        teams,
        graph::change("sub-drive", "drives/d1/root", "updated", "tenant-b", CLIENT_STATE),
        graph::change("sub-users", "Users/u2", "deleted", "tenant-b", CLIENT_STATE),
        graph::change("sub-groups", "Groups/g1", "updated", "tenant-b", CLIENT_STATE),
    ]
}

/// Graph's envelope for `items`, with the validationToken the rich item
/// needs: one for its tenant ("tenant-a"), as Graph signs one per tenant.
fn signed(items: Vec<serde_json::Value>) -> serde_json::Value {
    let mut claims = tokens::valid_claims();
    claims["tid"] = json!("tenant-a");
    claims["iss"] = json!("https://sts.windows.net/tenant-a/");
    let mut collection = graph::collection(items);
    collection["validationTokens"] = json!([SigningKey::pair().0.sign(&claims)]);
    collection
}

async fn mixed_batch_arrives_intact(mode: Mode) {
    let fanout = Fanout::start().await;
    let jwks = JwksServer::start(vec![SigningKey::pair().0.jwk()]).await;
    let config = EdgeConfig { mode, ..EdgeConfig::for_fanout(fanout.url()) }.with_jwks(&jwks.url);
    let mut edge = Edge::start_with(config).await;
    let mut everything = subscribe(&fanout.url(), Filter::default()).await;
    let batch = mixed_batch();
    let answer = graph::deliver(&edge.url, "/graph/notifications", &signed(batch.clone())).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let how = match mode {
        Mode::Queue => r#""outcome":"queued 1 messages"#,
        Mode::Sync => r#""outcome":"forwarded: 6 stored"#,
    };
    edge.process.wait_for_log(how).await;

    let mut last_sequence = 0;
    for sent in &batch {
        let event = everything.next().await;
        assert!(event.sequence > last_sequence, "sequences strictly increase");
        last_sequence = event.sequence;
        assert_eq!(item(&event), graph::without_client_state(sent), "every field but clientState survives");
        let Some(Payload::Change(change)) = &event.payload else { panic!("change expected") };
        assert_eq!(change.subscription_id, sent["subscriptionId"].as_str().unwrap());
        assert_eq!(change.resource, sent["resource"].as_str().unwrap());
        assert_eq!(change.change_type, sent["changeType"].as_str().unwrap().to_lowercase());
        assert_eq!(change.tenant_id, sent["tenantId"].as_str().unwrap());
        let data: serde_json::Value = serde_json::from_str(&change.resource_data_json).unwrap();
        assert_eq!(data, sent["resourceData"]);
        assert!(!change.raw_json.contains("client-state"), "clientState never leaves the edge");
        if let Some(content) = sent.get("encryptedContent") {
            let carried = change.encrypted_content.as_ref().expect("encryptedContent carried");
            assert_eq!(carried.data_key, content["dataKey"].as_str().unwrap());
        }
    }
}

#[tokio::test]
async fn a_bad_client_state_is_dropped_logged_and_still_acknowledged() {
    let fanout = Fanout::start().await;
    let mut edge = Edge::start(fanout.url()).await;
    let mut everything = subscribe(&fanout.url(), Filter::default()).await;
    let forged = graph::change("sub-forged", "Users/u1/Messages/x", "created", "tenant-a", "forged-secret-value");
    let good = graph::change("sub-good", "Users/u1/Messages/y", "created", "tenant-a", CLIENT_STATE);
    let answer =
        graph::deliver(&edge.url, "/graph/notifications", &graph::collection(vec![forged.clone(), good])).await;
    assert_eq!(answer.status, 202, "a forger learns nothing from the status");
    assert_eq!(subscription_id(&everything.next().await), "sub-good", "only the valid item is delivered");

    let forged_only = graph::collection(vec![forged]);
    assert_eq!(graph::deliver(&edge.url, "/graph/notifications", &forged_only).await.status, 202);
    let log = edge
        .process
        .wait_for_log(r#""rejected":{"clientState does not match any accepted value":1},"rejectedItems":["value[0] subscription=sub-forged"]"#)
        .await;
    assert!(!log.contains("forged-secret-value"), "the offered secret is never logged");
    assert!(!log.contains(CLIENT_STATE), "the accepted secret is never logged");
    let marker = graph::collection(vec![graph::change("marker", "r", "created", "t", CLIENT_STATE)]);
    graph::deliver(&edge.url, "/graph/notifications", &marker).await;
    assert!(everything.until_marker("marker").await.is_empty(), "the forged-only batch delivered nothing");
}

graph_relay_tests::on_both_logs! {
    async fn a_mixed_batch_reaches_a_subscriber_intact_and_in_order() {
        mixed_batch_arrives_intact(Mode::Queue).await;
    }

    async fn a_mixed_batch_reaches_a_subscriber_intact_in_synchronous_mode() {
        mixed_batch_arrives_intact(Mode::Sync).await;
    }

    async fn two_filtered_subscribers_each_get_exactly_their_share() {
        let fanout = Fanout::start().await;
        let jwks = JwksServer::start(vec![SigningKey::pair().0.jwk()]).await;
        let edge = Edge::start_with(EdgeConfig::for_fanout(fanout.url()).with_jwks(&jwks.url)).await;
        let mail_filter = Filter {
            resources: vec!["users/*/messages/*".into()],
            change_types: vec!["created".into()],
            ..Default::default()
        };
        let tenant_filter = Filter { tenant_ids: vec!["tenant-b".into()], ..Default::default() };
        let mut mail = subscribe(&fanout.url(), mail_filter).await;
        let mut tenant_b = subscribe(&fanout.url(), tenant_filter).await;

        // Markers that each filter matches, at the end of the same POST (items
        // of one request keep their order; the fast paths of two requests
        // may land in either order): whatever arrives before them is the share.
        let mut batch = mixed_batch();
        batch.push(graph::change("marker", "users/m/messages/end", "created", "tenant-c", CLIENT_STATE));
        batch.push(graph::change("marker", "end", "updated", "tenant-b", CLIENT_STATE));
        let answer = graph::deliver(&edge.url, "/graph/notifications", &signed(batch)).await;
        assert_eq!(answer.status, 202);

        let mail_share: Vec<_> = mail.until_marker("marker").await.iter().map(|e| subscription_id(e).to_owned()).collect();
        assert_eq!(mail_share, ["sub-mail"]);
        let b_share: Vec<_> = tenant_b.until_marker("marker").await.iter().map(|e| subscription_id(e).to_owned()).collect();
        assert_eq!(b_share, ["sub-drive", "sub-users", "sub-groups"]);
    }

    async fn lifecycle_notifications_reach_subscribers() {
        let fanout = Fanout::start().await;
        let edge = Edge::start(fanout.url()).await;
        let filter = Filter {
            lifecycle_events: vec!["reauthorizationRequired".into(), "missed".into()],
            subscription_ids: vec!["sub-mail".into()],
            ..Default::default()
        };
        let mut lifecycle = subscribe(&fanout.url(), filter).await;
        let items = vec![
            graph::lifecycle("sub-mail", "reauthorizationRequired", "tenant-a", CLIENT_STATE),
            graph::lifecycle("sub-other", "missed", "tenant-a", CLIENT_STATE),
            graph::lifecycle("sub-mail", "subscriptionRemoved", "tenant-a", CLIENT_STATE),
            graph::lifecycle("sub-mail", "missed", "tenant-a", CLIENT_STATE),
        ];
        let answer = graph::deliver(&edge.url, "/graph/lifecycle", &graph::collection(items.clone())).await;
        assert_eq!(answer.status, 202);
        for expected in [&items[0], &items[3]] {
            let event = lifecycle.next().await;
            let Some(Payload::Lifecycle(got)) = &event.payload else { panic!("lifecycle expected") };
            assert_eq!(got.lifecycle_event, expected["lifecycleEvent"].as_str().unwrap());
            assert_eq!(item(&event), graph::without_client_state(expected));
        }
    }
}
