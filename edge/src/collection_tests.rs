use super::*;
use serde_json::json;

const SECRET: &str = "s3cret-state";

fn states() -> ClientStates {
    ClientStates::parse(&format!("{SECRET},rotated")).unwrap()
}

fn request() -> RequestId {
    RequestId::from_bytes([7; 16])
}

fn parse_json(body: Value) -> Batch {
    parse(body.to_string().as_bytes(), &states(), 42, &request()).expect("body parses")
}

fn message_item() -> Value {
    json!({
        "id": "lsgTZMr9KwAAA",
        "subscriptionId": "sub-1",
        "subscriptionExpirationDateTime": "2026-11-28T10:00:00.0000000Z",
        "clientState": SECRET,
        "changeType": "Created",
        "resource": "Users/u-1/Messages/m-1",
        "tenantId": "t-1",
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Message",
            "@odata.id": "Users/u-1/Messages/m-1",
            "@odata.etag": "W/\"CQAAABYAAAD\"",
            "id": "m-1",
            "nested": {"big": 12345678901234567890u64}
        },
        "futureField": {"kept": true}
    })
}

fn only_change(batch: &Batch) -> &ChangeNotification {
    assert_eq!(batch.notifications.len(), 1, "rejections: {:?}", batch.rejections);
    match batch.notifications[0].kind.as_ref().unwrap() {
        Kind::Change(change) => change,
        other => panic!("expected a change notification, got {other:?}"),
    }
}

#[test]
fn change_notification_keeps_every_field_but_the_client_state() {
    let batch = parse_json(json!({"value": [message_item()]}));
    assert!(!batch.has_encrypted_content());
    assert_eq!(batch.validation_tokens, None);
    let change = only_change(&batch);
    assert_eq!(change.id, "lsgTZMr9KwAAA");
    assert_eq!(change.subscription_id, "sub-1");
    assert_eq!(change.subscription_expiration_date_time, "2026-11-28T10:00:00.0000000Z");
    assert_eq!(change.change_type, "created", "change types are lower-cased");
    assert_eq!(change.resource, "Users/u-1/Messages/m-1");
    assert_eq!(change.tenant_id, "t-1");
    let data: Value = serde_json::from_str(&change.resource_data_json).unwrap();
    assert_eq!(data, message_item()["resourceData"]);
    let raw: Value = serde_json::from_str(&change.raw_json).unwrap();
    let mut expected = message_item();
    expected.as_object_mut().unwrap().remove("clientState");
    assert_eq!(raw, expected, "raw_json is the item minus clientState, unknown fields included");
    assert!(!change.raw_json.contains(SECRET));
    assert_eq!(batch.notifications[0].received_at_unix_ms, 42);
}

#[test]
fn lifecycle_notification_is_accepted_without_resource() {
    let batch = parse_json(json!({"value": [{
        "subscriptionId": "sub-2", "tenantId": "t-1", "clientState": "rotated",
        "lifecycleEvent": "reauthorizationRequired",
        "subscriptionExpirationDateTime": "2026-11-28T10:00:00Z"
    }]}));
    assert!(batch.rejections.is_empty());
    let Some(Kind::Lifecycle(lifecycle)) = &batch.notifications[0].kind else { panic!("not lifecycle") };
    assert_eq!(lifecycle.lifecycle_event, "reauthorizationRequired");
    assert_eq!(lifecycle.subscription_id, "sub-2");
    assert_eq!(lifecycle.resource, "");
    assert!(!lifecycle.raw_json.contains("rotated"));
}

#[test]
fn encrypted_content_is_carried_over() {
    let mut item = message_item();
    item["encryptedContent"] = json!({
        "data": "ZGF0YQ==", "dataKey": "a2V5", "dataSignature": "c2ln",
        "encryptionCertificateId": "cert-1", "encryptionCertificateThumbprint": "AB12"
    });
    let batch = parse_json(json!({"value": [item], "validationTokens": ["x.y.z"]}));
    assert_eq!(batch.rich_tenants, ["t-1"], "the tokens must cover this tenant");
    assert_eq!(batch.validation_tokens, Some(json!(["x.y.z"])));
    let content = only_change(&batch).encrypted_content.clone().unwrap();
    assert_eq!(content.data, "ZGF0YQ==");
    assert_eq!(content.data_key, "a2V5");
    assert_eq!(content.data_signature, "c2ln");
    assert_eq!(content.encryption_certificate_id, "cert-1");
    assert_eq!(content.encryption_certificate_thumbprint, "AB12");
}

#[test]
fn bad_items_are_rejected_one_by_one_and_good_ones_kept() {
    let mut wrong_state = message_item();
    wrong_state["clientState"] = json!("forged");
    let mut no_state = message_item();
    no_state.as_object_mut().unwrap().remove("clientState");
    let mut both = message_item();
    both["lifecycleEvent"] = json!("missed");
    let mut neither = message_item();
    neither.as_object_mut().unwrap().remove("changeType");
    let mut no_resource = message_item();
    no_resource.as_object_mut().unwrap().remove("resource");
    let mut numeric_tenant = message_item();
    numeric_tenant["tenantId"] = json!(7);
    let mut list_data = message_item();
    list_data["resourceData"] = json!([1]);
    let mut no_subscription = message_item();
    no_subscription["subscriptionId"] = json!("");
    let batch = parse_json(json!({"value": [
        wrong_state, no_state, both, neither, message_item(), no_resource,
        numeric_tenant, list_data, "text", no_subscription
    ]}));
    let reasons: Vec<_> = batch.rejections.iter().map(|r| (r.index, r.reason.clone())).collect();
    assert_eq!(
        reasons,
        vec![
            (0, ItemError::ClientStateMismatch),
            (1, ItemError::ClientStateMissing),
            (2, ItemError::BothKinds),
            (3, ItemError::NeitherKind),
            (5, ItemError::Missing("resource")),
            (6, ItemError::NotAString("tenantId")),
            (7, ItemError::NotAnObjectField("resourceData")),
            (8, ItemError::NotAnObject),
            (9, ItemError::Missing("subscriptionId")),
        ]
    );
    assert_eq!(batch.notifications.len(), 1);
    assert_eq!(batch.rejections[0].subscription_id.as_deref(), Some("sub-1"));
    let shown = batch.rejections[0].to_string();
    assert_eq!(shown, "value[0] subscription=sub-1: clientState does not match any accepted value");
    assert!(!shown.contains("forged"), "a rejection never echoes the offered secret");
}

#[test]
fn unusable_bodies_get_specific_errors() {
    let s = states();
    assert_eq!(
        parse(b"not json", &s, 0, &request()).unwrap_err().to_string().split(':').next(),
        Some("body is not valid JSON")
    );
    assert_eq!(parse(&[0xff, 0xfe], &s, 0, &request()).unwrap_err(), BodyError::NotUtf8);
    assert_eq!(parse(b"[]", &s, 0, &request()).unwrap_err(), BodyError::NoValueArray);
    assert_eq!(parse(b"{}", &s, 0, &request()).unwrap_err(), BodyError::NoValueArray);
    assert_eq!(parse(br#"{"value":{}}"#, &s, 0, &request()).unwrap_err(), BodyError::NoValueArray);
    assert_eq!(parse(br#"{"value":[]}"#, &s, 0, &request()).unwrap_err(), BodyError::EmptyValue);
    let deep = format!("{{\"value\":{}{}}}", "[".repeat(200), "]".repeat(200));
    assert_eq!(parse(deep.as_bytes(), &s, 0, &request()).unwrap_err(), BodyError::TooDeep);
    let big = vec![b' '; MAX_BODY_BYTES + 1];
    assert_eq!(parse(&big, &s, 0, &request()).unwrap_err(), BodyError::TooLarge);
}

#[test]
fn a_batch_of_several_resource_kinds_parses() {
    let kinds = [
        ("Users/u/Events/e", "#Microsoft.Graph.Event"),
        ("teams('t')/channels('c')/messages('m')", "#Microsoft.Graph.ChatMessage"),
        ("drives/d/root", "#Microsoft.Graph.DriveItem"),
        ("Groups/g", "#Microsoft.Graph.Group"),
    ];
    let items: Vec<Value> = kinds
        .iter()
        .map(|(resource, odata)| {
            let mut item = message_item();
            item["resource"] = json!(resource);
            item["resourceData"] = json!({"@odata.type": odata});
            item["changeType"] = json!("updated");
            item
        })
        .collect();
    let batch = parse_json(json!({"value": items}));
    assert!(batch.rejections.is_empty());
    let resources: Vec<_> = batch
        .notifications
        .iter()
        .map(|n| match n.kind.as_ref().unwrap() {
            Kind::Change(c) => c.resource.as_str(),
            Kind::Lifecycle(_) => "",
        })
        .collect();
    assert_eq!(resources, kinds.map(|(r, _)| r));
}

#[test]
fn each_accepted_item_is_named_by_its_request_and_position() {
    let body = json!({"value": [message_item(), json!({"clientState": "forged"}), message_item()]});
    let batch = parse_json(body.clone());
    let ids: Vec<&str> = batch.notifications.iter().map(|n| n.delivery_id.as_str()).collect();
    assert_eq!(ids, [request().item(0), request().item(2)], "positions in value, rejected items skipped");
}

#[test]
fn the_same_body_acknowledged_twice_is_two_deliveries() {
    let body = json!({"value": [message_item()]}).to_string();
    let first = parse(body.as_bytes(), &states(), 42, &RequestId::from_bytes([1; 16])).unwrap();
    let second = parse(body.as_bytes(), &states(), 42, &RequestId::from_bytes([2; 16])).unwrap();
    assert_eq!(first.notifications[0].kind, second.notifications[0].kind, "byte-identical items");
    assert_ne!(first.notifications[0].delivery_id, second.notifications[0].delivery_id);
}

#[test]
fn only_a_batch_with_an_item_that_passed_client_state_needs_its_tokens_checked() {
    let forged = json!({"clientState": "forged", "subscriptionId": "s", "changeType": "created", "resource": "r"});
    let forged_with_tokens = json!({"value": [forged.clone()], "validationTokens": ["a.b.c"]});
    assert!(!parse_json(forged_with_tokens).needs_token_check(), "forgers reach neither RSA nor the quarantine");
    let mut forged_rich = forged;
    forged_rich["encryptedContent"] = json!({"data": "d", "dataKey": "k"});
    assert!(!parse_json(json!({"value": [forged_rich.clone()]})).needs_token_check());
    let genuine_beside = json!({"value": [forged_rich, message_item()], "validationTokens": ["a.b.c"]});
    assert!(parse_json(genuine_beside).needs_token_check(), "a genuine item: every token is checked");
    assert!(!parse_json(json!({"value": [message_item()]})).needs_token_check(), "basic, no tokens");
}

#[test]
fn a_repeated_client_state_counts_as_its_last_value_and_none_is_forwarded() {
    let item = |first: &str, last: &str| {
        format!(
            r#"{{"clientState":"{first}","subscriptionId":"s","changeType":"created","resource":"r","clientState":"{last}"}}"#
        )
    };
    let body = format!(r#"{{"value":[{},{}]}}"#, item("forged", SECRET), item(SECRET, "forged"));
    let batch = parse(body.as_bytes(), &states(), 0, &request()).unwrap();
    assert_eq!(batch.notifications.len(), 1, "the first item's last clientState is the secret");
    assert_eq!(batch.rejections[0].reason, ItemError::ClientStateMismatch);
    let raw = &only_change(&batch).raw_json;
    assert!(!raw.contains("clientState") && !raw.contains("forged") && !raw.contains(SECRET), "{raw}");
}

#[test]
fn each_item_of_a_batch_is_checked_against_its_own_client_state() {
    let with_state = |state: Value| {
        let mut item = message_item();
        item["clientState"] = state;
        item
    };
    let body = json!({"value": [
        with_state(json!(SECRET)), with_state(json!(SECRET)), with_state(json!("forged")),
        with_state(json!("forged")), with_state(json!("rotated")), with_state(json!(SECRET)),
        with_state(json!(7)), with_state(json!("ESCAPED")), with_state(json!(null)),
    ]});
    let body = body.to_string().replace(r#""ESCAPED""#, r#""s3cret-stat\u0065""#);
    let batch = parse(body.as_bytes(), &states(), 0, &request()).unwrap();
    let accepted: Vec<usize> =
        batch.notifications.iter().map(|n| n.delivery_id.rsplit('/').next().unwrap().parse().unwrap()).collect();
    assert_eq!(accepted, [0, 1, 4, 5, 7], "the same value written with an escape is the same value");
    let reasons: Vec<_> = batch.rejections.iter().map(|r| (r.index, r.reason.clone())).collect();
    assert_eq!(
        reasons,
        [
            (2, ItemError::ClientStateMismatch),
            (3, ItemError::ClientStateMismatch),
            (6, ItemError::ClientStateMismatch),
            (8, ItemError::ClientStateMissing)
        ]
    );
}

#[test]
fn what_is_forwarded_is_the_senders_own_text() {
    let body = format!(
        r#"{{"value":[{{"clientState":"{SECRET}","subscriptionId":"s","changeType":"updated","resource":"r",
        "resourceData": {{"id": "x", "size": 123456789012345678901234567890, "ratio": 1.50}}}}]}}"#
    );
    let batch = parse(body.as_bytes(), &states(), 0, &request()).unwrap();
    let change = only_change(&batch);
    assert_eq!(change.resource_data_json, r#"{"id": "x", "size": 123456789012345678901234567890, "ratio": 1.50}"#);
    assert!(change.raw_json.contains(r#""resourceData":{"id": "x", "size": 123456789012345678901234567890"#));
    let raw: Value = serde_json::from_str(&change.raw_json).unwrap();
    assert_eq!(raw["changeType"], "updated");
}
