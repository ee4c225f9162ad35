//! validationTokens against the real worker: a forged-token matrix with a
//! local JWKS server. Refused batches get 202, deliver nothing, and show up
//! in the operator's quarantine with their reason.

use graph_relay_proto::v1::Filter;
use graph_relay_tests::edge::{Edge, EdgeConfig};
use graph_relay_tests::subscriber::{subscribe, subscription_id};
use graph_relay_tests::tokens::{self, hs256_with_public_key, unsigned, valid_claims, JwksServer, SigningKey};
use graph_relay_tests::{fanout::Fanout, graph, CLIENT_STATE};
use serde_json::{json, Value};

const ADMIN: &str = "test-admin-token-0123456789";

fn rich_item(subscription: &str) -> Value {
    let mut item =
        graph::change(subscription, "teams('t')/channels('c')/messages('m')", "created", tokens::TENANT, CLIENT_STATE);
    item["encryptedContent"] = json!({
        "data": "ZGF0YQ==", "dataKey": "a2V5", "dataSignature": "c2ln",
        "encryptionCertificateId": "cert-1", "encryptionCertificateThumbprint": "AB12"
    });
    item
}

fn rich_batch(subscription: &str, tokens: Value) -> Value {
    json!({ "value": [rich_item(subscription)], "validationTokens": tokens })
}

fn with(change: impl FnOnce(&mut Value)) -> String {
    let mut claims = valid_claims();
    change(&mut claims);
    SigningKey::pair().0.sign(&claims)
}

#[tokio::test]
async fn forged_tokens_deliver_nothing_and_are_quarantined() {
    let (key1, key2) = SigningKey::pair();
    let jwks = JwksServer::start(vec![key1.jwk()]).await;
    let fanout = Fanout::start().await;
    let config = EdgeConfig::for_fanout(fanout.url())
        .var("GRAPH_JWKS_URL", &jwks.url)
        .var("GRAPH_APP_IDS", tokens::APP_ID)
        .var("ALLOWED_TENANT_IDS", tokens::TENANT)
        .var("JWKS_MIN_REFRESH_SECONDS", "0")
        .var("ADMIN_TOKEN", ADMIN);
    let edge = Edge::start_with(config).await;
    let mut subscriber = subscribe(&fanout.url(), Filter::default()).await;

    let impostor = SigningKey { kid: key1.kid.clone(), private: key2.private.clone() };
    let other_tenant = with(|c| {
        c["tid"] = json!("99999999-0000-0000-0000-000000000000");
        c["iss"] = json!("https://sts.windows.net/99999999-0000-0000-0000-000000000000/");
    });
    let forged: Vec<(&str, Value, &str)> = vec![
        ("wrong signature", json!([impostor.sign(&valid_claims())]), "InvalidSignature"),
        ("alg none", json!([unsigned(&json!({"alg": "none", "kid": "key-1"}), &valid_claims())]), "token 0"),
        ("HS256 with the public key", json!([hs256_with_public_key(key1, &valid_claims())]), "is not RS256"),
        ("wrong aud", json!([with(|c| c["aud"] = json!("someone-else"))]), "InvalidAudience"),
        ("wrong appid", json!([with(|c| c["appid"] = json!("not-graph"))]), "not Microsoft Graph Change Tracking"),
        (
            "wrong azp",
            json!([with(|c| {
                c.as_object_mut().unwrap().remove("appid");
                c["azp"] = json!("x");
            })]),
            "not Microsoft Graph Change Tracking",
        ),
        ("expired", json!([with(|c| c["exp"] = json!(tokens::now() - 600))]), "ExpiredSignature"),
        ("not yet valid", json!([with(|c| c["nbf"] = json!(tokens::now() + 600))]), "ImmatureSignature"),
        ("wrong issuer", json!([with(|c| c["iss"] = json!("https://evil.example.com/"))]), "issuer"),
        ("disallowed tenant", json!([other_tenant]), "is not in ALLOWED_TENANT_IDS"),
        ("validationTokens null", Value::Null, "validationTokens is null"),
    ];
    for (name, tokens, _) in &forged {
        let answer = graph::deliver(&edge.url, "/graph/notifications", &rich_batch(name, tokens.clone())).await;
        assert_eq!(answer.status, 202, "{name}: Graph is told 202 all the same");
    }
    let no_tokens = json!({ "value": [rich_item("token missing")] });
    assert_eq!(graph::deliver(&edge.url, "/graph/notifications", &no_tokens).await.status, 202);
    // A token vouches for its own tenant only: a rich item of another tenant
    // riding along with a valid token refuses the whole batch.
    let mut stowaway = rich_item("stowaway");
    stowaway["tenantId"] = json!("99999999-0000-0000-0000-000000000000");
    let uncovered = json!({ "value": [rich_item("covered"), stowaway], "validationTokens": [with(|_| {})] });
    assert_eq!(graph::deliver(&edge.url, "/graph/notifications", &uncovered).await.status, 202);

    // A valid batch is delivered, and it is the FIRST thing delivered.
    let valid = rich_batch("valid", json!([with(|_| {})]));
    assert_eq!(graph::deliver(&edge.url, "/graph/notifications", &valid).await.status, 202);
    assert_eq!(subscription_id(&subscriber.next().await), "valid", "no forged batch was delivered");

    // Unknown kid: refused (a refetch still finds no such key)...
    let rotated = rich_batch("rotated", json!([key2.sign(&valid_claims())]));
    assert_eq!(graph::deliver(&edge.url, "/graph/notifications", &rotated).await.status, 202);
    // ...until Microsoft rotates the key in; the refetch on unknown kid finds it.
    jwks.set_keys(vec![key1.jwk(), key2.jwk()]);
    assert_eq!(graph::deliver(&edge.url, "/graph/notifications", &rotated).await.status, 202);
    assert_eq!(subscription_id(&subscriber.next().await), "rotated", "the first unknown-kid batch delivered nothing");

    // The identity platform goes down: an unknown kid's refetch fails, yet
    // the cached keys keep serving valid tokens.
    jwks.set_failing(true);
    let requests_before = *jwks.requests.lock().unwrap();
    let key3 = SigningKey::generate("key-3");
    let unknown = rich_batch("unknown-while-down", json!([key3.sign(&valid_claims())]));
    assert_eq!(graph::deliver(&edge.url, "/graph/notifications", &unknown).await.status, 202);
    assert!(*jwks.requests.lock().unwrap() > requests_before, "the unknown kid triggered a refetch");
    let still_valid = rich_batch("valid-while-down", json!([with(|_| {})]));
    assert_eq!(graph::deliver(&edge.url, "/graph/notifications", &still_valid).await.status, 202);
    assert_eq!(subscription_id(&subscriber.next().await), "valid-while-down");

    let quarantine = reqwest::Client::new()
        .get(format!("{}/admin/quarantine", edge.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // + missing tokens, the uncovered tenant, the first unknown kid, the kid unknown while down
    let expected = forged.len() + 4;
    assert!(quarantine.starts_with(&format!("{expected} quarantined batches")), "{quarantine}");
    for (name, _, reason) in &forged {
        assert!(quarantine.contains(reason), "{name}: {reason:?} not in\n{quarantine}");
    }
    assert!(quarantine.contains("validationTokens is missing but the batch carries encryptedContent"));
    assert!(quarantine.contains("no key with kid \"key-2\""));
    assert!(
        quarantine.contains("a rich item of tenant \"99999999-0000-0000-0000-000000000000\" has no validationToken")
    );
    assert!(!quarantine.contains(CLIENT_STATE), "the quarantine keeps no clientState");
}

#[tokio::test]
async fn an_unusable_jwks_url_asks_for_a_retry_and_names_the_setting() {
    let fanout = Fanout::start().await;
    let config = EdgeConfig::for_fanout(fanout.url())
        .var("GRAPH_JWKS_URL", "not a url")
        .var("GRAPH_APP_IDS", tokens::APP_ID)
        .var("ALLOWED_TENANT_IDS", tokens::TENANT);
    let mut edge = Edge::start_with(config).await;

    let batch = rich_batch("no-keys", json!([with(|_| {})]));
    let answer = graph::deliver(&edge.url, "/graph/notifications", &batch).await;
    assert_eq!((answer.status, answer.body.as_str()), (503, "signing keys unavailable; retry later"));
    let line = edge.process.wait_for_log("GRAPH_JWKS_URL: ").await;
    assert!(line.contains("\"status\":503"), "{line}");
}
