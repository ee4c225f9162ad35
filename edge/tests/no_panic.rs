//! The request path must never panic (a panic can poison the Worker isolate):
//! every entry point of the protocol core is fed arbitrary input.

use graph_relay_edge::delivery::RequestId;
use graph_relay_edge::{client_state::ClientStates, grpc_web, handshake, inbound};
use graph_relay_proto::v1::notification::Kind;
use proptest::prelude::*;
use serde_json::{json, Value};

fn states() -> ClientStates {
    ClientStates::parse("state-a,state-b").unwrap()
}

/// JSON values of any shape, a few levels deep, with Graph's field names
/// likely to appear so the item validation paths are exercised.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("clientState".to_owned()),
        Just("subscriptionId".to_owned()),
        Just("changeType".to_owned()),
        Just("lifecycleEvent".to_owned()),
        Just("resource".to_owned()),
        Just("resourceData".to_owned()),
        Just("encryptedContent".to_owned()),
        Just("tenantId".to_owned()),
        "[a-zA-Z]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        prop_oneof![Just("state-a".to_owned()), ".{0,12}"].prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn collection_parsing_never_panics_on_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = inbound::accept_body(&body, &states(), 0, &RequestId::from_bytes([3; 16]));
    }

    #[test]
    fn every_item_is_either_accepted_or_rejected(items in prop::collection::vec(json_value(), 1..6)) {
        let body = json!({ "value": items }).to_string();
        let batch = inbound::accept_body(body.as_bytes(), &states(), 0, &RequestId::from_bytes([3; 16])).expect("a non-empty value array parses");
        prop_assert_eq!(batch.notifications.len() + batch.rejections.len(), items.len());
        for notification in &batch.notifications {
            let raw = match notification.kind.as_ref().expect("accepted items have a kind") {
                Kind::Change(change) => &change.raw_json,
                Kind::Lifecycle(lifecycle) => &lifecycle.raw_json,
            };
            let item: Value = serde_json::from_str(raw).expect("raw_json is JSON");
            prop_assert!(item.get("clientState").is_none(), "clientState leaked: {}", raw);
        }
    }

    #[test]
    fn handshake_and_headers_never_panic(query in ".{0,256}", content_type in ".{0,40}", length in ".{0,20}") {
        let _ = handshake::validation_token(&query);
        let _ = inbound::handshake(&query);
        let _ = inbound::check_headers(Some(&content_type), Some(&length));
        let _ = inbound::route(&content_type, &query);
    }

    #[test]
    fn grpc_web_replies_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..64),
        status in any::<u16>(),
        header in prop::option::of(".{0,4}"),
    ) {
        let _ = grpc_web::unframe_reply(status, header.as_deref(), None, &body);
    }
}

#[test]
fn a_huge_declared_frame_length_is_malformed_not_a_panic() {
    let body = [0u8, 0xff, 0xff, 0xff, 0xff, 1, 2];
    assert!(matches!(grpc_web::unframe_reply(200, None, None, &body), Err(grpc_web::CallError::Malformed(_))));
}
