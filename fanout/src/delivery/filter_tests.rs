use super::*;
use graph_relay_proto::v1::{ChangeNotification, Gap, LifecycleNotification};

fn change(resource: &str, change_type: &str, tenant: &str, subscription: &str) -> Payload {
    Payload::Change(ChangeNotification {
        resource: resource.into(),
        change_type: change_type.into(),
        tenant_id: tenant.into(),
        subscription_id: subscription.into(),
        ..Default::default()
    })
}

fn lifecycle(event: &str, subscription: &str) -> Payload {
    Payload::Lifecycle(LifecycleNotification {
        lifecycle_event: event.into(),
        subscription_id: subscription.into(),
        tenant_id: "t1".into(),
        ..Default::default()
    })
}

fn filter(f: pb::Filter) -> Filter {
    Filter::compile(Some(&f)).unwrap()
}

#[test]
fn empty_filter_matches_everything() {
    let all = Filter::compile(None).unwrap();
    assert!(all.matches(&change("users/u/messages/m", "created", "t", "s")));
    assert!(all.matches(&lifecycle("missed", "s")));
    assert!(filter(pb::Filter::default()).matches(&lifecycle("missed", "s")));
}

#[test]
fn resource_globs_are_case_insensitive_segment_aware_and_slash_tolerant() {
    let f = filter(pb::Filter { resources: vec!["/users/*/messages/*".into()], ..Default::default() });
    assert!(f.matches(&change("Users/u-1/Messages/m-1", "created", "t", "s")));
    assert!(f.matches(&change("/users/u-1/messages/m-1", "created", "t", "s")));
    assert!(!f.matches(&change("users/u-1/events/e-1", "created", "t", "s")));
    assert!(
        !f.matches(&change("users/u-1/mailFolders/inbox/messages/m", "created", "t", "s")),
        "* stays in one segment"
    );
    let deep = filter(pb::Filter { resources: vec!["users/**/messages/*".into()], ..Default::default() });
    assert!(deep.matches(&change("users/u-1/mailFolders/inbox/messages/m", "created", "t", "s")));
    let odata = filter(pb::Filter { resources: vec!["teams*/channels*".into()], ..Default::default() });
    assert!(odata.matches(&change("teams('x')/channels('19:a@thread.tacv2')", "created", "t", "s")));
}

#[test]
fn fields_are_anded_and_values_ored() {
    let f = filter(pb::Filter {
        change_types: vec!["Created".into(), "deleted".into()],
        tenant_ids: vec!["T1".into()],
        ..Default::default()
    });
    assert!(f.matches(&change("r", "created", "t1", "s")));
    assert!(f.matches(&change("r", "deleted", "t1", "s")));
    assert!(!f.matches(&change("r", "updated", "t1", "s")));
    assert!(!f.matches(&change("r", "created", "t2", "s")));
}

#[test]
fn kind_specific_fields_only_constrain_their_kind() {
    let only_created = filter(pb::Filter { change_types: vec!["created".into()], ..Default::default() });
    assert!(only_created.matches(&lifecycle("missed", "s")), "change_types does not hide lifecycle events");
    let only_missed = filter(pb::Filter { lifecycle_events: vec!["Missed".into()], ..Default::default() });
    assert!(only_missed.matches(&lifecycle("missed", "s")));
    assert!(!only_missed.matches(&lifecycle("reauthorizationRequired", "s")));
    assert!(only_missed.matches(&change("r", "created", "t", "s")));
}

#[test]
fn a_resource_filter_excludes_items_without_a_resource() {
    let f =
        filter(pb::Filter { resources: vec!["**".into()], subscription_ids: vec!["s".into()], ..Default::default() });
    assert!(!f.matches(&lifecycle("missed", "s")));
    assert!(f.matches(&change("anything/at/all", "created", "t", "s")));
}

#[test]
fn bad_filters_are_refused_with_the_culprit_named() {
    let err =
        Filter::compile(Some(&pb::Filter { resources: vec!["users/[".into()], ..Default::default() })).unwrap_err();
    assert!(matches!(&err, FilterError::BadGlob { pattern, .. } if pattern == "users/["), "{err}");
    let many = pb::Filter { tenant_ids: vec!["t".into(); MAX_VALUES_PER_FIELD + 1], ..Default::default() };
    assert_eq!(Filter::compile(Some(&many)).unwrap_err(), FilterError::TooManyValues { field: "tenant_ids" });
}

#[test]
fn gaps_pass_every_filter() {
    let f = filter(pb::Filter { tenant_ids: vec!["nobody".into()], resources: vec!["x".into()], ..Default::default() });
    assert!(f.matches(&Payload::Gap(Gap::default())));
}

#[test]
fn only_a_filter_without_any_criterion_in_it_or_its_scope_is_everything() {
    assert!(Filter::compile(None).unwrap().is_everything());
    let open = Filter::compile(Some(&pb::Filter::default())).unwrap();
    assert!(open.within(Filter::default()).is_everything());
    let tenant = || pb::Filter { tenant_ids: vec!["t".into()], ..Default::default() };
    assert!(!Filter::compile(Some(&tenant())).unwrap().is_everything());
    let scoped = Filter::compile(None).unwrap().within(Filter::compile(Some(&tenant())).unwrap());
    assert!(!scoped.is_everything(), "the scope limits it");
}

#[test]
fn slash_form_filters_match_the_odata_forms_graph_sends() {
    let matches = |glob: &str, resource: &str| {
        filter(pb::Filter { resources: vec![glob.into()], ..Default::default() })
            .matches(&change(resource, "created", "t1", "s1"))
    };
    for (glob, sent) in [
        ("users/*/messages/*", "Users/u1/Messages/m1"),
        ("users/u1/events/*", "Users/u1/Events/e1"),
        ("users/*/contacts/*", "Users/u1/Contacts/c1"),
        ("teams/*/channels/*/messages/*", "teams('t1')/channels('19:abc@thread.tacv2')/messages('1')"),
        ("chats/*/messages/*", "chats('19:x@thread.v2')/messages('1')"),
        ("communications/callRecords/*", "communications/callRecords('r1')"),
        ("groups/g1/conversations/*", "groups('g1')/conversations('c1')"),
        ("teams/*/members/*", "teams('t1')/members('m1')"),
        ("teams/*", "teams('t1')"),
        ("chats/*", "chats('c1')"),
        ("groups/*", "Groups/g1"),
        ("users/*", "Users/u1"),
        ("print/taskDefinitions/*/tasks/*", "print/taskDefinitions/d1/tasks/t1"),
        ("security/alerts/*", "security/alerts/a1"),
        ("teams('t1')/channels('c1')/messages('*')", "teams('t1')/channels('c1')/messages('1')"),
    ] {
        assert!(matches(glob, sent), "{glob} should match {sent}");
    }
    assert!(!matches("teams/*/channels/*/messages/*", "teams('t1')/channels('c1')"), "a channel is not a message");
    assert!(!matches("users/*/messages/*", "Users/u1/Events/e1"));
    assert!(!matches("teams/t2/*", "teams('t1')/channels('c1')"));
    assert_eq!(slash_form("teams('t1')/channels('c1')/messages('m1')"), "teams/t1/channels/c1/messages/m1");
    assert_eq!(slash_form("users/u1/mailFolders('inbox')/messages"), "users/u1/mailFolders/inbox/messages");
}

/// A change event with every field set (the route must skip the fields it
/// does not read), and a lifecycle event: as stored, and as decoded.
fn stored_pair() -> [graph_relay_proto::v1::Event; 2] {
    use graph_relay_proto::v1::{EncryptedContent, Event};
    let change = ChangeNotification {
        id: "id-1".into(),
        subscription_id: "sub-1".into(),
        subscription_expiration_date_time: "2026-11-30T18:23:45Z".into(),
        change_type: "updated".into(),
        resource: "/Users/u-1/Messages/m-1".into(),
        tenant_id: "tenant-1".into(),
        organization_id: "tenant-1".into(),
        resource_data_json: r#"{"id":"m-1"}"#.into(),
        encrypted_content: Some(EncryptedContent { data: "ZGF0YQ==".into(), ..Default::default() }),
        raw_json: "x".repeat(1000),
        decrypted_resource_data_json: String::new(),
        decryption_error: String::new(),
    };
    let lifecycle = LifecycleNotification {
        subscription_id: "sub-2".into(),
        lifecycle_event: "reauthorizationRequired".into(),
        resource: "teams/t/channels/c".into(),
        tenant_id: "tenant-2".into(),
        raw_json: "{}".into(),
        reason: "token expires".into(),
        previous_subscription_id: "sub-0".into(),
        ..Default::default()
    };
    [
        Event { sequence: 42, payload: Some(Payload::Change(change)), received_at_unix_ms: 1_795_000_000_000 },
        Event { sequence: 7, payload: Some(Payload::Lifecycle(lifecycle)), received_at_unix_ms: 1 },
    ]
}

#[test]
fn a_filter_decides_the_same_on_the_stored_route_as_on_the_decoded_event() {
    use graph_relay_log::route::StoredRoute;
    use prost::Message;
    let f = |filter: pb::Filter| Filter::compile(Some(&filter)).unwrap();
    // What each filter takes of [the change, the lifecycle event].
    let cases = [
        (f(pb::Filter::default()), [true, true]),
        (f(pb::Filter { tenant_ids: vec!["TENANT-1".into()], ..Default::default() }), [true, false]),
        (f(pb::Filter { tenant_ids: vec!["tenant-2".into()], ..Default::default() }), [false, true]),
        (f(pb::Filter { change_types: vec!["created".into()], ..Default::default() }), [false, true]),
        (
            f(pb::Filter { lifecycle_events: vec!["reauthorizationrequired".into()], ..Default::default() }),
            [true, true],
        ),
        (f(pb::Filter { subscription_ids: vec!["sub-1".into()], ..Default::default() }), [true, false]),
        (f(pb::Filter { resources: vec!["users/*/messages/*".into()], ..Default::default() }), [true, false]),
        (f(pb::Filter { resources: vec!["teams/**".into()], ..Default::default() }), [false, true]),
    ];
    for (filter, expected) in cases {
        for (event, expected) in stored_pair().iter().zip(expected) {
            let read = StoredRoute::read(bytes::Bytes::from(event.encode_to_vec())).unwrap();
            let on_route = filter.admits(&read.route().unwrap().unwrap());
            assert_eq!(on_route, expected, "{filter:?} {event:?}");
            assert_eq!(filter.matches(event.payload.as_ref().unwrap()), expected, "{filter:?} {event:?}");
        }
    }
}
