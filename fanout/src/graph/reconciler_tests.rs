use super::*;
use crate::graph::credentials::Credentials;
use crate::graph::ledger;

/// A reconciler for one `/users` entry whose Graph is never called.
fn reconciler(dir: &std::path::Path) -> Reconciler {
    std::env::set_var("GRAPH_RELAY_RECONCILER_TEST_STATE", "state");
    let text = "[graph]\ntenant_id = \"t\"\nclient_id = \"c\"\nbase_url = \"http://127.0.0.1:9/v1.0\"\n\
        [edge]\nnotification_url = \"https://relay.example.com/n\"\n\
        lifecycle_notification_url = \"https://relay.example.com/l\"\n\
        client_state_env = \"GRAPH_RELAY_RECONCILER_TEST_STATE\"\n\
        [[subscription]]\nname = \"users\"\nresource = \"/users\"\nchange_types = [\"updated\"]\npermission = \"application\"\n";
    let plan: Plan = toml::from_str(text).unwrap();
    let http = reqwest::Client::new();
    let credentials = Credentials::load(&plan.graph, dir, http.clone()).unwrap();
    let graph = GraphClient::new(&plan.graph.base_url, http, credentials);
    Reconciler::new(plan, graph, Ledger::open(dir).unwrap()).unwrap()
}

fn remote(expiration: &str) -> Remote {
    Remote {
        id: "sub-1".into(),
        resource: "/users".into(),
        change_type: "updated".into(),
        expiration_date_time: expiration.into(),
        notification_url: None,
        lifecycle_notification_url: None,
        include_resource_data: None,
    }
}

#[test]
fn an_expiration_that_is_unparseable_or_past_schedules_a_backed_off_renewal_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut reconciler = reconciler(dir.path());
    reconciler.next_verify_ms = u64::MAX; // only the renewal is due
    let entry = reconciler.plan.subscriptions[0].clone();
    for expiration in ["not a time", "2001-01-01T00:00:00Z"] {
        let before = now_ms();
        reconciler.record(&entry, &remote(expiration), true);
        let record = &reconciler.ledger.state.entries["users"];
        assert!(record.renew_at_ms >= before + backoff::MIN_WAIT_MS, "{expiration}: due at once");
        assert!(record.last_error.as_deref().is_some_and(|e| e.contains(expiration)), "{:?}", record.last_error);
        assert!(
            reconciler.next_due_ms() >= before + backoff::MIN_WAIT_MS,
            "{expiration}: the next pass is not at once"
        );
    }
}

#[test]
fn a_good_expiration_clears_the_error_and_renews_within_the_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let mut reconciler = reconciler(dir.path());
    let entry = reconciler.plan.subscriptions[0].clone();
    reconciler.record(&entry, &remote("garbage"), true);
    let in_an_hour = crate::graph::format_time(now_ms() + 3_600_000);
    reconciler.record(&entry, &remote(&in_an_hour), false);
    let record = &reconciler.ledger.state.entries["users"];
    assert_eq!(record.last_error, None);
    let after = record.renew_at_ms.saturating_sub(now_ms());
    assert!((1_800_000..=2_600_000).contains(&after), "55-70% of the hour: {after} ms");
}

#[tokio::test]
async fn a_broken_lifecycle_feed_is_restarted_from_the_cursor_and_the_failure_is_saved() {
    let dir = tempfile::tempdir().unwrap();
    let mut reconciler = reconciler(dir.path());
    let publisher = std::sync::Arc::new(Discarding);
    let mut opened = Vec::new();
    let mut open_feed = |cursor: Option<u64>| {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        if opened.is_empty() {
            tx.try_send(super::super::lifecycle::FeedItem::Other { sequence: 7 }).unwrap();
            tx.try_send(super::super::lifecycle::FeedItem::Broken("a log read failed".into())).unwrap();
        } // the second feed ends at once: the server is stopping
        opened.push(cursor);
        rx
    };
    let supervised = super::super::lifecycle::supervise(&mut reconciler, &mut open_feed, publisher);
    tokio::time::timeout(std::time::Duration::from_secs(10), supervised).await.expect("restarted within the backoff");
    assert_eq!(opened, [None, Some(7)], "the new feed starts where the broken one stopped");
    let state = crate::graph::ledger::read(&dir.path().join(crate::graph::ledger::FILE_NAME)).unwrap();
    let failure = state.feed_failure.expect("the failure is saved for subscriptions list");
    assert_eq!((failure.reason.as_str(), failure.restarts), ("a log read failed", 1));
}

#[tokio::test]
async fn a_changed_definition_keeps_the_old_subscription_on_record_until_its_delete_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let mut reconciler = reconciler(dir.path());
    reconciler.next_verify_ms = u64::MAX;
    let old = ledger::Record {
        subscription_id: "old".into(),
        fingerprint: "an earlier definition".into(),
        renew_at_ms: u64::MAX,
        ..Default::default()
    };
    reconciler.ledger.state.entries.insert("users".into(), old);
    // This Graph cannot be reached: the DELETE fails.
    let report = reconciler.sync_once().await;
    assert_eq!(reconciler.ledger.state.entries["users"].subscription_id, "old", "not forgotten, not replaced");
    assert!(report.created.is_empty() && report.adopted.is_empty(), "{report:?}");
    assert_eq!(report.failed.len(), 1, "{report:?}");
}

#[test]
fn only_a_subscription_with_the_entry_s_definition_may_be_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let reconciler = reconciler(dir.path());
    let (entry, edge) = (&reconciler.plan.subscriptions[0], &reconciler.plan.edge);
    let listed = |url: &str, rich: bool| Remote {
        notification_url: Some(url.into()),
        lifecycle_notification_url: Some("https://relay.example.com/l".into()),
        include_resource_data: Some(rich),
        ..remote("2030-01-01T00:00:00Z")
    };
    assert!(listed("https://relay.example.com/n", false).has_definition(entry, edge));
    assert!(!listed("https://old.example.com/n", false).has_definition(entry, edge), "another notification URL");
    assert!(!listed("https://relay.example.com/n", true).has_definition(entry, edge), "rich where basic is wanted");
    assert!(remote("2030-01-01T00:00:00Z").has_definition(entry, edge), "what Graph does not say cannot differ");
}

/// A publisher for a reconciler with nothing to publish.
struct Discarding;

impl crate::graph::Publish for Discarding {
    fn publish(&self, _: graph_relay_proto::v1::Notification) -> crate::graph::Publishing<'_> {
        Box::pin(std::future::ready(Ok(None)))
    }
}
