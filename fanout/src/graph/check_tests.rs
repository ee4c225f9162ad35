//! Every row of the resource table: one subscription Graph accepts and at
//! least one it refuses, with the rule that refuses it.

use super::catalog::{Permission, KINDS};
use super::check::{check, Request};

use Permission::{Application as A, DelegatedPersonal as P, DelegatedWork as W};

fn request<'a>(resource: &'a str, change_types: &str, permission: Permission) -> Request<'a> {
    Request {
        resource,
        change_types: change_types.split(',').filter(|s| !s.is_empty()).map(String::from).collect(),
        permission,
        include_resource_data: false,
        has_encryption_certificate: false,
        lifetime_minutes: None,
        has_lifecycle_url: true,
        notification_query_options: None,
    }
}

fn rich(mut r: Request<'_>) -> Request<'_> {
    r.include_resource_data = true;
    r.has_encryption_certificate = true;
    r
}

fn accepted(label: &str, r: Request<'_>) {
    match check(&r) {
        Ok(kind) => assert_eq!(kind.label, label, "{} resolved to the wrong row", r.resource),
        Err(v) => panic!("{label}: {} refused: {v:?}", r.resource),
    }
}

fn refused(rule: &str, r: Request<'_>) {
    let violations = check(&r).expect_err(&format!("{} should be refused by {rule}", r.resource));
    assert!(violations.iter().any(|v| v.rule == rule), "{}: wanted {rule}, got {violations:?}", r.resource);
    assert!(violations.iter().all(|v| !v.fix.is_empty() && !v.message.is_empty()));
}

#[test]
fn the_table_s_rows_have_distinct_labels_and_no_path_in_two_rows_of_one_permission() {
    let mut labels: Vec<_> = KINDS.iter().map(|k| k.label).collect();
    labels.sort();
    labels.dedup();
    assert_eq!(labels.len(), KINDS.len(), "a label names one row");
    // Two rows may share a path only when no permission type can reach both
    // (OneDrive personal and business): else `check` could not pick one.
    for (i, a) in KINDS.iter().enumerate() {
        for b in &KINDS[i + 1..] {
            let shared = a.templates.iter().any(|t| b.templates.iter().any(|u| t.path.eq_ignore_ascii_case(u.path)));
            let overlap = a.permissions.iter().any(|p| b.permissions.contains(p));
            assert!(!(shared && overlap), "{} and {} share a path for one permission type", a.label, b.label);
        }
    }
}

#[test]
fn printer() {
    let mut ok = request("/print/printers/p1/jobs", "updated", A);
    ok.notification_query_options = Some("$filter=isFetchable eq true");
    accepted("printer", ok.clone());
    refused("query-options-required", request("/print/printers/p1/jobs", "updated", A));
    refused("change-type-unsupported", Request { change_types: vec!["created".into()], ..ok.clone() });
    refused("permission-unsupported", Request { permission: W, ..ok });
}

#[test]
fn print_task_definition() {
    accepted("printTaskDefinition", request("/print/taskDefinitions/d1/tasks", "created", A));
    // The overview table's spelling, any case, as Graph matches paths.
    accepted("printTaskDefinition", request("/print/printtaskdefinition/d1/tasks", "created", A));
    accepted("printTaskDefinition", request("/Print/PrintTaskDefinition/d1/tasks", "created", A));
    refused("change-type-unsupported", request("/print/taskDefinitions/d1/tasks", "updated", A));
    refused("permission-unsupported", request("/print/taskDefinitions/d1/tasks", "created", P));
}

#[test]
fn drive_item_personal() {
    accepted("driveItem (personal)", request("/me/drive/root", "updated", P));
    accepted("driveItem (personal)", request("/drives/d1/items/folder1", "updated", P));
    refused("change-type-unsupported", request("/me/drive/root", "created", P));
    refused("resource-data-unsupported", rich(request("/me/drive/root", "updated", P)));
}

#[test]
fn drive_item_business() {
    accepted("driveItem (business)", request("/drives/d1/root", "updated", A));
    accepted("driveItem (business)", request("/users/u1/drive/root", "updated", W));
    refused("onedrive-business-root-only", request("/drives/d1/items/folder1", "updated", A));
    refused("onedrive-path", request("/drives/d1/root/children", "updated", W));
    refused("change-type-unsupported", request("/drives/d1/root", "deleted", A));
}

#[test]
fn group() {
    accepted("group", request("/groups", "updated,deleted", A));
    accepted("group", request("/groups/g1/members", "updated", W));
    refused("permission-unsupported", request("/groups", "updated", P));
    refused("change-type-unsupported", request("/groups", "created", A));
}

#[test]
fn list() {
    accepted("list", request("/sites/s1/lists/l1", "updated", A));
    refused("change-type-unsupported", request("/sites/s1/lists/l1", "deleted", A));
    refused("resource-data-unsupported", rich(request("/sites/s1/lists/l1", "updated", W)));
}

#[test]
fn group_conversation() {
    accepted("group conversation", request("/groups/g1/conversations", "created,updated,deleted", W));
    refused("permission-unsupported", request("/groups/g1/conversations", "created", A));
}

#[test]
fn outlook_message() {
    accepted("Outlook message", request("/users/u1/messages", "created,updated,deleted", A));
    accepted("Outlook message", rich(request("/users/u1/mailFolders('inbox')/messages?$select=subject", "created", A)));
    accepted("Outlook message", request("/me/messages", "created", P));
    refused("select-required", rich(request("/users/u1/messages", "created", A)));
    refused("me-requires-delegated", request("/me/messages", "created", A));
    let mut long = rich(request("/users/u1/messages?$select=subject", "created", A));
    long.lifetime_minutes = Some(10080);
    refused("lifetime-too-long", long);
}

#[test]
fn outlook_event() {
    accepted("Outlook event", rich(request("/users/u1/events?$select=subject,start", "created,updated", W)));
    refused("select-required", rich(request("/users/u1/events", "updated", W)));
    refused("change-type-unknown", request("/users/u1/events", "moved", W));
}

#[test]
fn outlook_contact() {
    accepted("Outlook contact", request("/users/u1/contacts", "created", P));
    let mut no_cert = request("/users/u1/contacts?$select=displayName", "created", P);
    no_cert.include_resource_data = true;
    refused("encryption-certificate-required", no_cert);
}

#[test]
fn security_alert() {
    accepted("security alert", request("/security/alerts?$filter=severity eq 'high'", "updated", A));
    accepted("security alert", request("/security/alerts/a1", "updated", W));
    refused("permission-unsupported", request("/security/alerts?$filter=severity eq 'high'", "updated", P));
    refused("filter-required", request("/security/alerts", "updated", A));
    refused("filter-required", request("/security/alerts?$filter=", "updated", A));
    let violations = check(&request("/security/alerts", "updated", A)).unwrap_err();
    assert!(violations[0].fix.contains("/security/alerts/{id}") && violations[0].fix.contains("$filter="));
}

#[test]
fn teams_call_record() {
    accepted("Teams callRecord", request("/communications/callRecords", "created", A));
    refused("change-type-unsupported", request("/communications/callRecords", "deleted", A));
    refused("permission-unsupported", request("/communications/callRecords", "created", W));
}

#[test]
fn teams_chat() {
    accepted("Teams chat", rich(request("/chats", "created,updated", A)));
    accepted("Teams chat", request("/chats/19:abc@thread.v2", "updated", W));
    refused("change-type-unsupported", request("/chats/19:abc@thread.v2", "created", W));
    let mut no_lifecycle = request("/chats", "created", A);
    no_lifecycle.has_lifecycle_url = false;
    refused("lifecycle-url-required", no_lifecycle);
}

#[test]
fn teams_chat_message() {
    accepted("Teams chatMessage", rich(request("/teams/getAllMessages", "created,updated,deleted", A)));
    accepted("Teams chatMessage", request("/teams/t1/channels/c1/messages", "created", A));
    accepted("Teams chatMessage", request("/users/u1/chats/getAllMessages", "created", A));
    let mut short = request("/chats/getAllMessages", "created", A);
    short.has_lifecycle_url = false;
    short.lifetime_minutes = Some(60);
    accepted("Teams chatMessage", short.clone());
    refused("lifecycle-url-required", Request { lifetime_minutes: Some(61), ..short });
    refused("permission-unsupported", request("/chats/c1/messages", "created", W));
}

#[test]
fn teams_channel() {
    accepted("Teams channel", request("/teams/getAllChannels", "created,deleted", A));
    accepted("Teams channel", request("/teams/t1/channels", "updated", W));
    refused("permission-unsupported", request("/teams/t1/channels", "updated", P));
}

#[test]
fn teams_conversation_member() {
    accepted("Teams conversationMember", request("/teams/t1/members", "created", A));
    accepted("Teams conversationMember", request("/teams/t1/channels/getAllMembers", "deleted", W));
    accepted("Teams conversationMember", request("/chats/c1/members", "updated", A));
    let mut long = request("/teams/getAllMembers", "created", A);
    long.lifetime_minutes = Some(4321);
    refused("lifetime-too-long", long);
}

#[test]
fn teams_team() {
    accepted("Teams team", request("/teams", "created,updated,deleted", A));
    accepted("Teams team", request("/teams/t1", "updated,deleted", W));
    refused("change-type-unsupported", request("/teams/t1", "created", W));
}

#[test]
fn todo_task() {
    accepted("To Do task", request("/me/todo/lists/l1/tasks", "created,updated", P));
    refused("permission-unsupported", request("/users/u1/todo/lists/l1/tasks", "created", A));
}

#[test]
fn user() {
    accepted("user", request("/users", "updated,deleted", A));
    accepted("user", request("/users/u1", "updated", W));
    accepted("user", request("/me", "updated", W));
    refused("change-type-unsupported", request("/users", "created", A));
    refused("permission-unsupported", request("/users", "updated", P));
}

#[test]
fn paths_outside_the_table_name_their_neighbours() {
    let violations = check(&request("/teams/t1/tags", "created", A)).unwrap_err();
    assert_eq!(violations[0].rule, "unknown-resource");
    assert!(violations[0].fix.contains("/teams/{id}/channels"), "{}", violations[0].fix);
    let violations = check(&request("/nothing/here", "created", A)).unwrap_err();
    assert!(violations[0].fix.contains("docs/graph-protocol.md"));
}

#[test]
fn query_options_are_only_for_print() {
    let mut r = request("/users", "updated", A);
    r.notification_query_options = Some("$filter=x");
    refused("query-options-unsupported", r);
}

#[test]
fn every_row_has_a_template_that_resolves_to_it() {
    for kind in &KINDS {
        let template = &kind.templates[0];
        let query = if template.requires_filter { "?$filter=x eq 1" } else { "" };
        let path = format!("{}{query}", template.path.replace("{id}", "x1"));
        let permission = kind.permissions[0];
        let found = check(&Request {
            change_types: vec![kind.change_types[0].into()],
            notification_query_options: kind.required_query_options,
            ..request(&path, "", permission)
        });
        assert_eq!(found.map(|k| k.label).map_err(|v| format!("{v:?}")), Ok(kind.label), "{path}");
    }
}

#[test]
fn the_overview_table_s_spelling_is_sent_to_graph_in_the_api_reference_s_and_check_says_so() {
    use super::check::{graph_resource, notes};
    let written = "/print/printtaskdefinition/D1/tasks";
    assert_eq!(graph_resource(written, A), "/print/taskDefinitions/D1/tasks", "ids keep their case");
    assert_eq!(graph_resource("/print/taskDefinitions/d1/tasks", A), "/print/taskDefinitions/d1/tasks");
    assert_eq!(graph_resource("/users/u1/messages?$select=id", A), "/users/u1/messages?$select=id");
    let said = notes(&request(written, "created", A));
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].contains("/print/taskDefinitions/D1/tasks") && said[0].contains("sent to Graph"), "{said:?}");
    assert!(notes(&request("/print/taskDefinitions/d1/tasks", "created", A)).is_empty());
}

#[test]
fn published_spellings_a_user_may_paste_are_accepted_or_refused_with_a_fix() {
    // Accepted as written: OData keys, no leading slash, /me, any case.
    for (label, resource, change_type, permission) in [
        ("Outlook message", "/users/u1/mailFolders('inbox')/messages", "created", A),
        ("Outlook message", "users/u1/mailFolders/inbox/messages", "created", A),
        ("Outlook message", "/me/messages", "created", W),
        ("Outlook message", "/Users/u1/Messages", "created", A),
        ("group conversation", "groups/g1/conversations", "created", W),
        ("Teams chatMessage", "/teams('t1')/channels('c1')/messages", "created", A),
        ("Teams chatMessage", "/chats('c1')/messages", "created", A),
        ("Teams channel", "teams/t1/channels", "created", A),
        ("To Do task", "/me/todo/lists/l1/tasks", "created", W),
        ("driveItem (business)", "/me/drive/root", "updated", W),
        ("security alert", "security/alerts?$filter=severity eq 'high'", "updated", A),
    ] {
        accepted(label, request(resource, change_type, permission));
    }
    // Refused, each with its fix.
    refused("unknown-resource", request("/users/u1/mailFolders/inbox", "created", A));
    refused("onedrive-business-root-only", request("/drives/d1/items/i1", "updated", A));
    refused("filter-required", request("security/alerts", "updated", A));
}

#[test]
fn teams_chat_entries_carry_the_note_about_the_sources_disagreeing() {
    let said = super::check::notes(&request("/chats", "created", A));
    assert_eq!(said, [super::catalog::CHAT_PERMISSION_NOTE]);
    assert!(super::check::notes(&request("/chats/getAllMessages", "created", A)).is_empty(), "chatMessage: no note");
}

#[test]
fn lifecycle_events_are_the_ones_graph_sends_for_each_kind() {
    let by = |label: &str| KINDS.iter().find(|k| k.label == label).unwrap();
    for outlook in ["Outlook message", "Outlook event", "Outlook contact"] {
        assert!(["missed", "subscriptionRemoved", "reauthorizationRequired"]
            .iter()
            .all(|e| by(outlook).sends_lifecycle_event(e)));
    }
    assert!(by("Teams chatMessage").sends_lifecycle_event("subscriptionremoved"));
    assert!(!by("Teams chatMessage").sends_lifecycle_event("missed"));
    assert!(!by("user").sends_lifecycle_event("subscriptionRemoved"));
    assert!(KINDS.iter().all(|k| k.sends_lifecycle_event("reauthorizationRequired")));
}
