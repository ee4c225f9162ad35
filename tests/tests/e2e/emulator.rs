//! The Graph emulator behaves like Graph: identity flows, subscription rules,
//! the handshake during creation, Graph's retries and its slow/drop judgement.

use std::time::Duration;

use graph_relay_fanout::graph::format_time;
use graph_relay_fanout::graph::now_ms;
use graph_relay_tests::emulator::{Emulator, CLIENT_ID, TENANT_ID};
use graph_relay_tests::endpoint::{Answer, Endpoint, Validation};
use serde_json::{json, Value};

const MINUTE_MS: u64 = 60_000;

async fn graph(
    emulator: &Emulator,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, format!("{}/v1.0{path}", emulator.url)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("emulator reachable");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn subscription(resource: &str, change_type: &str, minutes: u64, endpoint: &Endpoint) -> Value {
    json!({
        "changeType": change_type, "resource": resource, "notificationUrl": endpoint.url,
        "lifecycleNotificationUrl": endpoint.url, "clientState": "secret-client-state",
        "expirationDateTime": format_time(now_ms() + minutes * MINUTE_MS),
    })
}

async fn create(emulator: &Emulator, token: &str, body: Value) -> (u16, Value) {
    graph(emulator, reqwest::Method::POST, "/subscriptions", token, Some(body)).await
}

#[tokio::test]
async fn creation_runs_the_handshake_on_both_urls_and_fails_when_it_fails() {
    let emulator = Emulator::start(&[]).await;
    let endpoint = Endpoint::start().await;
    let token = emulator.app_token().await;

    endpoint.validate_with(Validation::Encoded);
    let (status, body) = create(&emulator, &token, subscription("/users", "updated", 60, &endpoint)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("ValidationError")), "{body}");
    endpoint.validate_with(Validation::Html);
    let (status, body) = create(&emulator, &token, subscription("/users", "updated", 60, &endpoint)).await;
    assert!(status == 400 && body["error"]["message"].as_str().unwrap().contains("text/plain"), "{body}");

    endpoint.validate_with(Validation::Echo);
    let before = endpoint.tokens().len();
    let (status, body) = create(&emulator, &token, subscription("/users", "updated", 60, &endpoint)).await;
    assert_eq!(status, 201, "{body}");
    // notificationUrl and lifecycleNotificationUrl: validated separately, tokens that need decoding.
    let tokens = endpoint.tokens();
    assert_eq!(tokens.len() - before, 2);
    assert!(tokens.iter().all(|t| t.contains(' ') && t.contains(':')), "{tokens:?}");
}

#[tokio::test]
async fn subscription_rules_are_graphs() {
    let emulator = Emulator::start(&["--quota", "3"]).await;
    let endpoint = Endpoint::start().await;
    let token = emulator.app_token().await;

    let (status, body) = create(&emulator, &token, subscription("/users", "updated", 41761, &endpoint)).await;
    assert_eq!(status, 400, "beyond user's 41760 minutes: {body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("lifetime-too-long"), "{body}");
    let (status, body) = create(&emulator, &token, subscription("/drives/d1/root", "created", 60, &endpoint)).await;
    assert!(status == 400 && body["error"]["message"].as_str().unwrap().contains("change-type-unsupported"), "{body}");
    let (status, body) = create(&emulator, &token, subscription("/me/messages", "created", 60, &endpoint)).await;
    assert_eq!(status, 403, "application permissions have no /me: {body}");
    let mut teams = subscription("/teams/getAllMessages", "created", 120, &endpoint);
    teams.as_object_mut().unwrap().remove("lifecycleNotificationUrl");
    let (status, body) = create(&emulator, &token, teams).await;
    assert!(status == 400 && body["error"]["message"].as_str().unwrap().contains("lifecycle-url-required"), "{body}");

    // Under 45 minutes is raised to 45.
    let (status, body) = create(&emulator, &token, subscription("/users", "updated", 10, &endpoint)).await;
    assert_eq!(status, 201, "{body}");
    let granted = graph_relay_fanout::graph::parse_time(body["expirationDateTime"].as_str().unwrap()).unwrap();
    assert!(granted >= now_ms() + 44 * MINUTE_MS, "expiry not raised to 45 minutes: {body}");
    let id = body["id"].as_str().unwrap().to_string();

    let (status, _) = create(&emulator, &token, subscription("/users", "updated", 60, &endpoint)).await;
    assert_eq!(status, 409);
    create(&emulator, &token, subscription("/groups", "updated", 60, &endpoint)).await;
    let (status, body) = create(&emulator, &token, subscription("/security/alerts", "updated", 60, &endpoint)).await;
    assert!(status == 400 && body["error"]["message"].as_str().unwrap().contains("filter-required"), "{body}");
    create(&emulator, &token, subscription("/security/alerts?$filter=severity eq 'high'", "updated", 60, &endpoint))
        .await;
    let (status, body) =
        create(&emulator, &token, subscription("/communications/callRecords", "created", 60, &endpoint)).await;
    assert!(status == 403 && body["error"]["message"].as_str().unwrap().contains("quota"), "{body}");

    let patch = json!({"expirationDateTime": format_time(now_ms() + 120 * MINUTE_MS)});
    let (status, body) =
        graph(&emulator, reqwest::Method::PATCH, &format!("/subscriptions/{id}"), &token, Some(patch.clone())).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = graph(&emulator, reqwest::Method::DELETE, &format!("/subscriptions/{id}"), &token, None).await;
    assert_eq!(status, 204);
    let (status, _) =
        graph(&emulator, reqwest::Method::PATCH, &format!("/subscriptions/{id}"), &token, Some(patch)).await;
    assert_eq!(status, 404, "gone: the reconciler must recreate");
    let (status, _) = graph(&emulator, reqwest::Method::GET, "/subscriptions", "not-a-token", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn failed_deliveries_are_retried_and_slow_endpoints_are_judged_like_graph() {
    let emulator = Emulator::start(&[]).await;
    let endpoint = Endpoint::start().await;
    let token = emulator.app_token().await;
    let (_, created) = create(&emulator, &token, subscription("/users", "updated", 60, &endpoint)).await;
    let id = created["id"].as_str().unwrap().to_string();

    endpoint.answer(&[Answer::Status(500), Answer::Status(503)]);
    let reply = emulator.control("trigger", json!({"subscription_id": id, "count": 3})).await;
    assert_eq!(reply["deliveries"][0]["attempt"]["status"], 500);
    assert_eq!(reply["deliveries"][0]["notifications"], 3, "one POST carries the batch");
    let state = emulator
        .wait_until("delivered after retries", Duration::from_secs(30), |s| {
            s["endpoints"][&endpoint.url]["delivered"] == 1
        })
        .await;
    assert_eq!(state["endpoints"][&endpoint.url]["retries"], 2);
    let bodies = endpoint.bodies();
    assert_eq!(bodies.len(), 3, "the same batch three times");
    assert!(bodies.iter().all(|b| b == &bodies[0]));
    let item = &bodies[0]["value"][0];
    assert_eq!(
        (item["subscriptionId"].as_str(), item["clientState"].as_str()),
        (Some(id.as_str()), Some("secret-client-state"))
    );
    assert_eq!(item["tenantId"], TENANT_ID);

    // Answers slower than 3 s: over 15% of the window, so Graph drops notifications.
    endpoint.answer(&[Answer::Slow(Duration::from_millis(3300))]);
    let reply = emulator.control("trigger", json!({"subscription_id": id})).await;
    assert!(reply["deliveries"][0]["attempt"]["latency_ms"].as_f64().unwrap() >= 3300.0, "{reply}");
    assert_eq!(reply["deliveries"][0]["attempt"]["health"], "drop");
    let reply = emulator.control("trigger", json!({"subscription_id": id})).await;
    assert_eq!(reply["deliveries"][0]["attempt"]["dropped"], true, "{reply}");
    let state = emulator.state().await;
    assert_eq!(state["endpoints"][&endpoint.url]["dropped"], 1);
    assert!(state["endpoints"][&endpoint.url]["latency_ms"]["max"].as_f64().unwrap() >= 3300.0);
}

#[tokio::test]
async fn identity_flows_client_secret_certificate_and_device_code() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = graph_relay_tests::encryption::certificate_files(dir.path(), "graph-relay-app");
    let emulator = Emulator::start(&["--client-certificate", &cert]).await;
    let token_url = format!("{}/{TENANT_ID}/oauth2/v2.0/token", emulator.url);
    let http = reqwest::Client::new();

    let wrong = [("grant_type", "client_credentials"), ("client_id", CLIENT_ID), ("client_secret", "wrong")];
    let response = http.post(&token_url).form(&wrong).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "invalid_client");

    // A certificate credential: an assertion signed with the app's key.
    let assertion = graph_relay_tests::tokens::client_assertion(&key, &token_url, CLIENT_ID);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT_ID),
        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
        ("client_assertion", assertion.as_str()),
    ];
    let reply: Value = http.post(&token_url).form(&form).send().await.unwrap().json().await.unwrap();
    assert!(reply["access_token"].is_string(), "{reply}");
    let forged = graph_relay_tests::tokens::client_assertion(&key, "https://elsewhere/token", CLIENT_ID);
    let form = [form[0], form[1], form[2], ("client_assertion", forged.as_str())];
    assert_eq!(http.post(&token_url).form(&form).send().await.unwrap().status(), 401, "assertion for another audience");

    // Device code: pending until the user signs in, then a refresh token that rotates.
    let start: Value = http
        .post(format!("{}/{TENANT_ID}/oauth2/v2.0/devicecode", emulator.url))
        .form(&[("client_id", CLIENT_ID), ("scope", "offline_access")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let poll = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("client_id", CLIENT_ID),
        ("device_code", start["device_code"].as_str().unwrap()),
    ];
    let pending: Value = http.post(&token_url).form(&poll).send().await.unwrap().json().await.unwrap();
    assert_eq!(pending["error"], "authorization_pending");
    emulator.control("device/approve", json!({"user_code": start["user_code"], "account": "delegated-personal"})).await;
    let tokens: Value = http.post(&token_url).form(&poll).send().await.unwrap().json().await.unwrap();
    let refresh = tokens["refresh_token"].as_str().expect("refresh token").to_string();
    let again = [("grant_type", "refresh_token"), ("client_id", CLIENT_ID), ("refresh_token", refresh.as_str())];
    assert!(http.post(&token_url).form(&again).send().await.unwrap().status().is_success());
    assert_eq!(http.post(&token_url).form(&again).send().await.unwrap().status(), 400, "a spent refresh token");
}

#[tokio::test]
async fn quotas_lifecycle_events_and_renewals_follow_graph_per_kind() {
    let emulator = Emulator::start(&[]).await;
    let endpoint = Endpoint::start().await;
    let token = emulator.app_token().await;

    // Users and groups share 100 per app and tenant; Outlook counts per mailbox, apart.
    for n in 0..100 {
        let (status, body) =
            create(&emulator, &token, subscription(&format!("/users/u{n}"), "updated", 60, &endpoint)).await;
        assert_eq!(status, 201, "{n}: {body}");
    }
    let (status, body) = create(&emulator, &token, subscription("/groups", "updated", 60, &endpoint)).await;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(status == 403 && message.contains("quota exceeded for this app and tenant"), "{body}");
    let (status, body) = create(&emulator, &token, subscription("/users/u1/messages", "created", 60, &endpoint)).await;
    assert_eq!(status, 201, "a mailbox's quota is its own: {body}");
    let outlook = body["id"].as_str().unwrap().to_string();
    let users = emulator.subscriptions().await.iter().find(|s| s["resource"] == "/users/u0").unwrap()["id"].clone();

    // Lifecycle events only where Graph sends them, unless forced.
    let refused = reqwest::Client::new()
        .post(format!("{}/emulator/lifecycle", emulator.url))
        .json(&json!({"subscription_id": users, "event": "missed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let reason: Value = refused.json().await.unwrap();
    assert!(reason["error"]["message"].as_str().unwrap().contains("never sends missed for user"), "{reason}");
    let forced =
        emulator.control("lifecycle", json!({"subscription_id": users, "event": "missed", "force": true})).await;
    assert_eq!(forced["attempt"]["status"], 202, "{forced}");
    let sent = emulator.control("lifecycle", json!({"subscription_id": outlook, "event": "missed"})).await;
    assert_eq!(sent["attempt"]["status"], 202, "{sent}");

    // A renewal obeys the creation rules: Teams beyond an hour needs a lifecycle URL.
    let mut teams = subscription("/teams/getAllChannels", "created", 50, &endpoint);
    teams.as_object_mut().unwrap().remove("lifecycleNotificationUrl");
    let (status, body) = create(&emulator, &token, teams).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap();
    let patch = json!({"expirationDateTime": format_time(now_ms() + 120 * MINUTE_MS)});
    let (status, body) =
        graph(&emulator, reqwest::Method::PATCH, &format!("/subscriptions/{id}"), &token, Some(patch)).await;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(status == 400 && message.contains("lifecycle-url-required"), "{body}");
}
