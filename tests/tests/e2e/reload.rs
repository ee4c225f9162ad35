//! SIGHUP reloads the subscribers file and the subscriptions file without a
//! restart: new tokens work at once, revoked ones end their streams, a
//! narrowed scope applies to open streams, and a file that fails validation
//! is refused while the old one stays in force.

use std::time::Duration;

use graph_relay_proto::v1::{notification::Kind, Notification, SubscribeRequest};
use graph_relay_tests::emulator::Stack;
use graph_relay_tests::fanout::Fanout;
use graph_relay_tests::publisher::{change, Publisher};
use graph_relay_tests::subscriber::{subscribe_as, subscription_id};
use graph_relay_tests::{NO_DECRYPT_TOKEN, SUBSCRIBER_TOKEN};
use serde_json::Value;

const NEWCOMER_TOKEN: &str = "test-newcomer-token-0123456789";

fn hash(token: &str) -> String {
    graph_relay_tests::fanout::token_sha256(token)
}

fn in_tenant(subscription: &str, id: u64, tenant: &str) -> Notification {
    let mut notification = change(subscription, id);
    if let Some(Kind::Change(change)) = notification.kind.as_mut() {
        change.tenant_id = tenant.into();
    }
    notification
}

const SECRET: &str = "client_secret_env = \"GRAPH_CLIENT_SECRET\"";
const USERS: &str =
    "[[subscription]]\nname = \"users\"\nresource = \"/users\"\nchange_types = [\"updated\"]\npermission = \"application\"\n\n";
const INBOX: &str = "[[subscription]]\nname = \"inbox\"\nresource = \"/users/u1/messages\"\nchange_types = [\"created\"]\npermission = \"application\"\n\n";

fn resources(state: &Value) -> Vec<String> {
    let mut found: Vec<String> = state["subscriptions"]
        .as_array()
        .map(|all| all.iter().filter_map(|s| s["resource"].as_str().map(String::from)).collect())
        .unwrap_or_default();
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reconciles_a_changed_subscriptions_file_and_keeps_the_old_one_when_it_is_broken() {
    let mut stack = Stack::start(&[], &[]).await;
    let file = stack.subscriptions_file(SECRET, USERS);
    stack.fanout.restart_with(&["--subscriptions-file", file.to_str().unwrap()]).await;
    let wait = Duration::from_secs(60);
    stack.emulator.wait_until("users subscribed", wait, |s| resources(s) == ["/users"]).await;

    // Swap users for the inbox.
    stack.subscriptions_file(SECRET, INBOX);
    stack.fanout.hang_up();
    let state =
        stack.emulator.wait_until("inbox instead of users", wait, |s| resources(s) == ["/users/u1/messages"]).await;
    assert_eq!(state["counters"]["created"], 2);

    // A file Graph would refuse (no changeTypes) is not taken.
    stack.subscriptions_file(SECRET, &INBOX.replace("change_types = [\"created\"]\n", "change_types = []\n"));
    stack.fanout.hang_up();
    stack.fanout.wait_for_log("subscriptions file refused").await;
    let state = stack.emulator.state().await;
    assert_eq!(resources(&state), ["/users/u1/messages"], "the old file stays in force");
    assert_eq!(state["counters"]["deleted"], 1, "only users was deleted");
}

graph_relay_tests::on_both_logs! {
    async fn sighup_adds_revokes_and_narrows_subscribers_and_refuses_a_broken_file() {
        let mut fanout = Fanout::start().await;
        let url = fanout.url();
        let live = SubscribeRequest::default();
        let mut everything = subscribe_as(&url, SUBSCRIBER_TOKEN, live.clone()).await.unwrap();
        let mut revoked = subscribe_as(&url, NO_DECRYPT_TOKEN, live.clone()).await.unwrap();
        let refused = subscribe_as(&url, NEWCOMER_TOKEN, live.clone()).await.err().expect("not in the file yet");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);

        // "everything" narrowed to tenant-b, "no-decrypt" gone, a newcomer added.
        let file = format!(
            "[[subscriber]]\nname = \"everything\"\ntoken_sha256 = \"{}\"\ntenants = [\"tenant-b\"]\n\n\
             [[subscriber]]\nname = \"newcomer\"\ntoken_sha256 = \"{}\"\n",
            hash(SUBSCRIBER_TOKEN),
            hash(NEWCOMER_TOKEN)
        );
        std::fs::write(fanout.subscribers_path(), file).unwrap();
        fanout.hang_up();
        fanout.wait_for_log("subscribers file reloaded").await;

        let mut newcomer = subscribe_as(&url, NEWCOMER_TOKEN, live.clone()).await.expect("the new token works at once");
        assert_eq!(revoked.ended().await.code(), tonic::Code::Unauthenticated, "a revoked token's stream ends");
        let mut publisher = Publisher::connect(&url).await;
        let sent = vec![in_tenant("a", 1, "tenant-a"), in_tenant("b", 2, "tenant-b"), in_tenant("end", 3, "tenant-b")];
        publisher.publish(sent).await.unwrap();
        let seen: Vec<String> =
            everything.until_marker("end").await.iter().map(|e| subscription_id(e).to_owned()).collect();
        assert_eq!(seen, ["b"], "the open stream was narrowed to tenant-b");
        assert_eq!(newcomer.until_marker("end").await.len(), 2, "the newcomer sees every tenant");

        // A broken file is refused and the one in force stays.
        std::fs::write(fanout.subscribers_path(), "[[subscriber]]\nname = \"x\"\ntoken_sha256 = \"not hex\"\n").unwrap();
        fanout.hang_up();
        let log = fanout.wait_for_log("subscribers file refused").await;
        assert!(log.contains("token_sha256 must be 64 hex digits"), "the refusal says why: {log}");
        subscribe_as(&url, NEWCOMER_TOKEN, live).await.expect("the old file is still in force");
    }
}
