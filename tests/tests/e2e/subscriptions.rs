//! Declarative subscriptions end to end: the Graph emulator, the edge under
//! wrangler dev and the fan-out's reconciler, all real processes.

use std::time::Duration;

use graph_relay_proto::v1::{event::Payload, Filter, SubscribeRequest};
use graph_relay_tests::emulator::Stack;
use graph_relay_tests::subscriber::{subscribe, subscribe_as, Subscriber};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);
const SECRET: &str = "client_secret_env = \"GRAPH_CLIENT_SECRET\"";

/// (name, resource, changeTypes, permission, glob every notification's resource matches)
const ALL_KINDS: [(&str, &str, &str, &str, &str); 19] = [
    ("printer", "/print/printers/p1/jobs", "updated", "application", "print/printers/p1/jobs/*"),
    ("print-tasks", "/print/taskDefinitions/d1/tasks", "created", "application", "print/taskDefinitions/d1/tasks/*"),
    ("my-drive", "/me/drive/root", "updated", "delegated-personal", "me/drive/root"),
    ("team-drive", "/drives/d1/root", "updated", "application", "drives/d1/root"),
    ("groups", "/groups", "updated,deleted", "application", "groups/*"),
    ("list", "/sites/s1/lists/l1", "updated", "application", "sites/s1/lists/l1"),
    ("conversations", "/groups/g1/conversations", "created", "delegated-work", "groups/g1/conversations/*"),
    ("inbox", "/users/u1/messages?$select=subject", "created,updated", "application", "users/u1/messages/*"),
    ("calendar", "/users/u1/events", "created", "application", "users/u1/events/*"),
    ("contacts", "/users/u1/contacts", "created", "application", "users/u1/contacts/*"),
    ("alerts", "/security/alerts?$filter=severity eq 'high'", "updated", "application", "security/alerts/*"),
    ("calls", "/communications/callRecords", "created", "application", "communications/callRecords/*"),
    ("chats", "/chats", "created,updated", "application", "chats/*"),
    ("channel-messages", "/teams/getAllMessages", "created", "application", "teams/t1/channels/c1/messages/*"),
    ("channels", "/teams/getAllChannels", "created", "application", "teams/*/channels/*"),
    ("members", "/teams/t1/members", "created", "application", "teams/t1/members/*"),
    ("teams", "/teams", "created", "application", "teams/*"),
    ("todo", "/me/todo/lists/l1/tasks", "created", "delegated-work", "users/me/todo/lists/l1/tasks/*"),
    ("users", "/users", "updated", "application", "users/*"),
];

fn entry(name: &str, resource: &str, change_types: &str, permission: &str) -> String {
    let types: Vec<String> = change_types.split(',').map(|t| format!("{t:?}")).collect();
    let mut text = format!(
        "[[subscription]]\nname = {name:?}\nresource = {resource:?}\nchange_types = [{}]\npermission = {permission:?}\n",
        types.join(", ")
    );
    if resource.starts_with("/print/printers") {
        text += "notification_query_options = \"$filter=isFetchable eq true\"\n";
    }
    text + "\n"
}

fn id_of(subscriptions: &[Value], resource: &str) -> Option<String> {
    subscriptions.iter().find(|s| s["resource"] == resource).and_then(|s| s["id"].as_str()).map(String::from)
}

/// The event's lifecycle notification; any other event fails the test.
fn lifecycle(event: graph_relay_proto::v1::Event) -> graph_relay_proto::v1::LifecycleNotification {
    match event.payload {
        Some(Payload::Lifecycle(l)) => l,
        other => panic!("expected a lifecycle event, got {other:?}"),
    }
}

fn resource_filter(glob: &str) -> Filter {
    Filter { resources: vec![glob.into()], ..Default::default() }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_resource_kind_is_subscribed_through_the_handshake_and_delivered_filtered() {
    let mut stack = Stack::start(&[], &[]).await;
    let (key, cert) = graph_relay_tests::encryption::certificate_files(stack.dir.path(), "relay");
    let mut entries: String = ALL_KINDS.iter().map(|(n, r, c, p, _)| entry(n, r, c, p)).collect();
    entries = entries.replace(
        "name = \"inbox\"\n",
        &format!("name = \"inbox\"\ninclude_resource_data = true\nencryption_certificate = {cert:?}\nencryption_certificate_id = \"relay-test\"\n"),
    );
    let file = stack.subscriptions_file(SECRET, &entries);
    let (ok, report) = stack.run(&["subscriptions", "check", file.to_str().unwrap()]);
    assert!(ok && report.contains("19 entries, 0 problems"), "{report}");

    // Delegated entries need both account types signed in (device code).
    stack.login(&file, "delegated-work").await;
    stack.login(&file, "delegated-personal").await;
    let mode = std::fs::metadata(stack.dir.path().join("logins.json")).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777, 0o600);

    let key_arg = format!("relay-test={key}");
    stack.fanout.restart_with(&["--subscriptions-file", file.to_str().unwrap(), "--decryption-key", &key_arg]).await;
    let state = stack
        .emulator
        .wait_until("19 subscriptions", WAIT, |s| s["subscriptions"].as_array().is_some_and(|a| a.len() == 19))
        .await;
    // Every creation ran the handshake against both edge URLs.
    assert_eq!(state["counters"]["handshakes_failed"], Value::Null);
    assert_eq!(state["counters"]["created"], 19);

    let mut subscribers: Vec<(usize, Subscriber)> = Vec::new();
    for (i, (_, _, _, _, glob)) in ALL_KINDS.iter().enumerate() {
        subscribers.push((i, subscribe(&stack.fanout.url(), resource_filter(glob)).await));
    }
    let subscriptions = stack.emulator.subscriptions().await;
    for (i, mut subscriber) in subscribers {
        let (name, resource, _, _, glob) = ALL_KINDS[i];
        let id = id_of(&subscriptions, resource).unwrap_or_else(|| panic!("{name} not on Graph"));
        stack.emulator.control("trigger", json!({"subscription_id": id})).await;
        let event = subscriber.next().await;
        let Some(Payload::Change(change)) = event.payload else { panic!("{name}: {event:?}") };
        assert_eq!(change.subscription_id, id, "{name} got another subscription's notification");
        // Graph's own form (OData keys for Teams and friends), read in the filters' slash form.
        let prefix = glob.split('*').next().unwrap_or_default().to_lowercase();
        let sent = graph_relay_fanout::delivery::filter::slash_form(&change.resource).to_lowercase();
        assert!(sent.starts_with(&prefix), "{name}: {}", change.resource);
        if resource.starts_with("/teams") || resource.starts_with("/chats") {
            assert!(
                change.resource.contains("('"),
                "{name}: Graph names Teams resources with OData keys: {}",
                change.resource
            );
        }
        if name == "inbox" {
            let data: Value = serde_json::from_str(&change.decrypted_resource_data_json).expect("decrypted JSON");
            assert_eq!(data["subject"], "created message", "{change:?}");
        }
    }

    // Health is saved within seconds (not per notification); wait for it.
    let data_dir = stack.fanout.data_dir();
    let deadline = std::time::Instant::now() + WAIT;
    let listing = loop {
        let (ok, listing) = stack.run(&["subscriptions", "list", "--data-dir", data_dir.to_str().unwrap()]);
        assert!(ok, "{listing}");
        if !listing.contains("last notification: never") {
            break listing;
        }
        assert!(std::time::Instant::now() < deadline, "a subscription never showed its notification:\n{listing}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(listing.matches("health: ok").count(), 19, "{listing}");
}

#[tokio::test(flavor = "multi_thread")]
async fn renewals_come_before_expiry_and_survive_a_restart_and_a_deletion_on_graph() {
    let mut stack = Stack::start(&["--lifetime-override", "6s"], &[]).await;
    let entries = entry("users", "/users", "updated", "application")
        + &entry("inbox", "/users/u1/messages", "created", "application");
    let file = stack.subscriptions_file(SECRET, &entries);
    stack.fanout.restart_with(&["--subscriptions-file", file.to_str().unwrap()]).await;
    let renewed = |n: u64| {
        move |s: &Value| {
            s["subscriptions"]
                .as_array()
                .is_some_and(|a| a.len() == 2 && a.iter().all(|x| x["renewals"].as_u64() >= Some(n)))
        }
    };
    stack.emulator.wait_until("three renewals each", WAIT, renewed(3)).await;
    assert_eq!(stack.emulator.counter("expired").await, 0, "a subscription lapsed before its renewal");

    // Renewed seconds ago, so already reauthorized: a reauthorizationRequired needs no call.
    let users = id_of(&stack.emulator.subscriptions().await, "/users").unwrap();
    stack.emulator.control("lifecycle", json!({"subscription_id": users, "event": "reauthorizationRequired"})).await;
    stack.fanout.wait_for_log("lifecycle event handled").await;
    let state = stack.emulator.state().await;
    assert_eq!(state["counters"]["reauthorized"], Value::Null, "reauthorized right after a renewal");
    assert_eq!(state["counters"]["reauthorized_twice_within_10_minutes"], Value::Null);

    // A crash and restart: the state file, not Graph, says what exists.
    let before = stack.emulator.subscriptions().await;
    stack.fanout.restart().await;
    let after = stack.emulator.wait_until("renewed after the restart", WAIT, renewed(5)).await;
    assert_eq!(after["counters"]["created"], 2, "the restart created duplicates");
    assert_eq!(id_of(&before, "/users"), id_of(after["subscriptions"].as_array().unwrap(), "/users"));

    // Deleted on Graph's side: the next renewal gets 404 and recreates it.
    let old = id_of(&before, "/users/u1/messages").unwrap();
    stack.emulator.control(&format!("subscriptions/{old}/remove"), json!({})).await;
    let state = stack
        .emulator
        .wait_until("recreated", WAIT, |s| {
            s["subscriptions"].as_array().is_some_and(|a| id_of(a, "/users/u1/messages").is_some_and(|id| id != old))
        })
        .await;
    assert_eq!(state["counters"]["created"], 3);
    assert_eq!(state["counters"]["expired"], Value::Null);

    // The 404 on renewal lost a subscription: its consumers get exactly one resyncNeeded.
    let mut events = subscribe_as(
        &stack.fanout.url(),
        graph_relay_tests::SUBSCRIBER_TOKEN,
        SubscribeRequest { filter: None, after_sequence: Some(0) },
    )
    .await
    .unwrap();
    assert_eq!(lifecycle(events.next().await).lifecycle_event, "reauthorizationRequired");
    let resync = lifecycle(events.next().await);
    assert_eq!((resync.lifecycle_event.as_str(), resync.reason.as_str()), ("resyncNeeded", "subscriptionNotFound"));
    assert_eq!(resync.previous_subscription_id, old);
    let new = id_of(&stack.emulator.subscriptions().await, "/users/u1/messages").unwrap();
    assert_eq!(resync.subscription_id, new);
    stack.emulator.control("lifecycle", json!({"subscription_id": new, "event": "missed"})).await;
    assert_eq!(lifecycle(events.next().await).lifecycle_event, "missed", "no second resyncNeeded for one loss");
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_events_produce_the_documented_reactions() {
    let mut stack = Stack::start(&[], &[]).await;
    // With a query, as rich Outlook subscriptions have: lifecycle events still name the bare path.
    let entries = entry("inbox", "/users/u1/messages?$select=subject", "created", "application");
    let file = stack.subscriptions_file(&format!("{SECRET}\nverify_interval = \"2s\""), &entries);
    stack.fanout.restart_with(&["--subscriptions-file", file.to_str().unwrap()]).await;
    let state = stack
        .emulator
        .wait_until("created", WAIT, |s| s["subscriptions"].as_array().is_some_and(|a| a.len() == 1))
        .await;
    let id = state["subscriptions"][0]["id"].as_str().unwrap().to_string();
    // A subscriber that sees only this resource: lifecycle events reach it because the fan-out fills in their resource.
    let filter = Filter { resources: vec!["users/u1/messages".into()], ..Default::default() };
    let mut events = subscribe_as(
        &stack.fanout.url(),
        graph_relay_tests::SUBSCRIBER_TOKEN,
        SubscribeRequest { filter: Some(filter), after_sequence: None },
    )
    .await
    .unwrap();

    stack.emulator.control("lifecycle", json!({"subscription_id": id, "event": "reauthorizationRequired"})).await;
    let event = lifecycle(events.next().await);
    assert_eq!(
        (event.lifecycle_event.as_str(), event.resource.as_str()),
        ("reauthorizationRequired", "users/u1/messages")
    );
    stack.emulator.wait_until("reauthorized", WAIT, |s| s["counters"]["reauthorized"] == 1).await;
    stack.emulator.control("lifecycle", json!({"subscription_id": id, "event": "missed"})).await;
    assert_eq!(lifecycle(events.next().await).lifecycle_event, "missed");
    let resync = lifecycle(events.next().await);
    assert_eq!((resync.lifecycle_event.as_str(), resync.reason.as_str()), ("resyncNeeded", "missed"));
    assert_eq!(resync.resource, "users/u1/messages");
    assert_eq!(resync.subscription_id, id);

    stack.emulator.control("lifecycle", json!({"subscription_id": id, "event": "subscriptionRemoved"})).await;
    assert_eq!(lifecycle(events.next().await).lifecycle_event, "subscriptionRemoved");
    let resync = lifecycle(events.next().await);
    assert_eq!((resync.lifecycle_event.as_str(), resync.reason.as_str()), ("resyncNeeded", "subscriptionRemoved"));
    assert_eq!(resync.previous_subscription_id, id);
    let subscriptions = stack.emulator.subscriptions().await;
    assert_eq!(
        id_of(&subscriptions, "/users/u1/messages?$select=subject"),
        Some(resync.subscription_id.clone()),
        "recreated on Graph"
    );
    assert_eq!(stack.emulator.counter("reauthorized_twice_within_10_minutes").await, 0);

    // Deleted on Graph without any notice: the periodic comparison with Graph's list finds it.
    let current = resync.subscription_id;
    stack.emulator.control(&format!("subscriptions/{current}/remove"), json!({})).await;
    let recreated = |s: &Value| {
        s["subscriptions"]
            .as_array()
            .and_then(|a| id_of(a, "/users/u1/messages?$select=subject"))
            .is_some_and(|id| id != current)
    };
    stack.emulator.wait_until("recreated after the list showed it gone", WAIT, recreated).await;
    let resync = lifecycle(events.next().await);
    assert_eq!((resync.lifecycle_event.as_str(), resync.reason.as_str()), ("resyncNeeded", "subscriptionNotListed"));
    assert_eq!(resync.previous_subscription_id, current);
    let recreated_id = id_of(&stack.emulator.subscriptions().await, "/users/u1/messages?$select=subject").unwrap();
    assert_eq!(resync.subscription_id, recreated_id);

    // Exactly one per loss: the next event on the stream is the next thing Graph sends.
    stack.emulator.control("lifecycle", json!({"subscription_id": recreated_id, "event": "missed"})).await;
    assert_eq!(lifecycle(events.next().await).lifecycle_event, "missed", "no second resyncNeeded for one loss");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_shot_sync_backs_off_adopts_on_409_and_reports_quota() {
    // This app proves itself with a certificate, not a secret.
    let keys = tempfile::tempdir().unwrap();
    let (key, cert) = graph_relay_tests::encryption::certificate_files(keys.path(), "app");
    let stack = Stack::start(&["--quota", "2", "--client-certificate", &cert], &[]).await;
    let credentials = format!("certificate = {cert:?}\ncertificate_key = {key:?}");
    let data_dir = stack.dir.path().join("state");
    let data = data_dir.to_str().unwrap();
    let entries = entry("users", "/users", "updated", "application")
        + &entry("groups", "/groups", "updated", "application")
        + &entry("alerts", "/security/alerts?$filter=severity eq 'high'", "updated", "application");
    let file = stack.subscriptions_file(&credentials, &entries);
    let file = file.to_str().unwrap();

    // Someone created /groups by hand: Graph answers 409 and the reconciler adopts it.
    let token = stack.emulator.app_token().await;
    let expiry = graph_relay_fanout::graph::format_time(graph_relay_fanout::graph::now_ms() + 3_600_000);
    let body = json!({"changeType": "updated", "resource": "/groups", "expirationDateTime": expiry,
        "notificationUrl": format!("{}/graph/notifications", stack.edge.url), "clientState": graph_relay_tests::CLIENT_STATE});
    let made: Value = reqwest::Client::new()
        .post(format!("{}/v1.0/subscriptions", stack.emulator.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // Throttled: the pass stops calling Graph and says when it will retry.
    stack.emulator.control("faults", json!({"status": 429, "count": 1, "retry_after_seconds": 30})).await;
    let (ok, out) = stack.run(&["subscriptions", "sync", file, "--data-dir", data]);
    assert!(!ok && out.contains("429") && out.contains("retry after Some(30s)"), "{out}");
    let state = stack.emulator.state().await;
    assert_eq!(state["counters"]["faults_served"], 1);
    assert_eq!(state["counters"]["created"], 1, "only the hand-made one: the 429 paused every other call");

    let (ok, out) = stack.run(&["subscriptions", "sync", file, "--data-dir", data]);
    assert!(!ok, "the quota leaves one entry out:\n{out}");
    assert!(out.contains("adopted: groups"), "{out}");
    assert!(out.contains("failed: ") && out.contains("403 quota"), "{out}");
    let state = stack.emulator.state().await;
    assert_eq!(state["subscriptions"].as_array().unwrap().len(), 2);
    assert!(id_of(state["subscriptions"].as_array().unwrap(), "/groups") == made["id"].as_str().map(String::from));

    // The state survives: a third pass creates nothing and lists the quota error.
    let (_, out) = stack.run(&["subscriptions", "sync", file, "--data-dir", data]);
    assert!(!out.contains("created:"), "{out}");
    let (_, listing) = stack.run(&["subscriptions", "list", "--data-dir", data]);
    assert_eq!(listing.matches("health: ok").count(), 2, "{listing}");
    assert!(listing.contains("403 quota"), "{listing}");

    // Removed from the file: deleted on Graph (and from the state).
    let entries = entry("groups", "/groups", "updated", "application");
    let file = stack.subscriptions_file(&credentials, &entries);
    let (ok, out) = stack.run(&["subscriptions", "sync", file.to_str().unwrap(), "--data-dir", data]);
    assert!(ok && out.contains("deleted: users"), "{out}");
    let state = stack.emulator.state().await;
    assert_eq!(state["subscriptions"].as_array().unwrap().len(), 1);
    assert_eq!(state["counters"]["deleted"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn check_names_the_entry_the_rule_and_the_fix() {
    let stack_dir = tempfile::tempdir().unwrap();
    let text = "[graph]\ntenant_id = \"t\"\nclient_id = \"c\"\n[edge]\nnotification_url = \"http://relay.example.com/n\"\nclient_state_env = \"X\"\n\n"
        .to_string()
        + &entry("drive", "/drives/d1/root", "created", "application")
        + &entry("todo", "/users/u1/todo/lists/l1/tasks", "created", "application")
        + &entry("team-chat", "/chats", "created", "application");
    let file = stack_dir.path().join("subscriptions.toml");
    std::fs::write(&file, text).unwrap();
    let output = graph_relay_tests::emulator::command(stack_dir.path())
        .args(["subscriptions", "check"])
        .arg(&file)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success());
    for expected in [
        "[edge]: [https-required]",
        "[graph]: [credentials-required]",
        "drive: [change-type-unsupported]",
        "todo: [permission-unsupported]",
        "team-chat: [lifecycle-url-required]",
        "fix: use only: updated",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}
