use graph_relay_proto::v1::{Notification, PublishRequest};
use prost::Message as _;
use serde_json::{json, Value};

use super::*;
use crate::pipeline::tests::{item, keys_with, now_ms, run, token, Fake, APP, STATE};
use crate::validation_tokens::{self, Keys, Policy};

const URL: &str = "https://edge.example/graph/notifications";

fn states() -> ClientStates {
    ClientStates::parse(STATE).unwrap()
}

fn policy() -> Policy {
    Policy { app_ids: vec![APP.into()], allowed_tenants: Vec::new() }
}

fn start(logs_every_request: bool) -> Intake {
    Intake::start("POST", URL, Some("application/json"), None, now_ms(), logs_every_request).expect("the quick route")
}

fn accept(intake: &mut Intake, body: &Value, tokens: Tokens) -> Accepted {
    let id = RequestId::from_bytes([7; 16]);
    intake.accept(body.to_string().as_bytes(), &states(), &id, now_ms(), |_| tokens)
}

/// The full route's answer and log line for `body`, its delivery answering
/// `delivery`.
fn full(body: &Value, delivery: Result<String, String>, logs_every_request: bool) -> (Reply, Option<LogLine>, Fake) {
    let mut fake = Fake::with_body(body.clone());
    (fake.delivery, fake.logs_every_request) = (delivery, logs_every_request);
    let reply = fake.post("");
    let line = fake.logged.borrow().first().map(|(error, text)| LogLine { text: text.clone(), error: *error });
    (reply, line, fake)
}

/// A log line without its timing, which two runs need not share.
fn untimed(line: &Option<LogLine>) -> Option<(bool, Value)> {
    line.as_ref().map(|line| {
        let mut parsed: Value = serde_json::from_str(&line.text).unwrap();
        parsed.as_object_mut().unwrap().remove("ackMs");
        (line.error, parsed)
    })
}

fn decoded(messages: &[Vec<u8>]) -> Vec<Notification> {
    messages.iter().flat_map(|m| PublishRequest::decode(m.as_slice()).unwrap().notifications).collect()
}

/// Without the per-request parts (the request id, the arrival time).
fn content(notifications: &[Notification]) -> Vec<Notification> {
    notifications
        .iter()
        .cloned()
        .map(|n| Notification { delivery_id: String::new(), received_at_unix_ms: 0, ..n })
        .collect()
}

#[test]
fn only_plain_notification_posts_take_the_quick_route() {
    let started =
        |method, url, content_type, length| Intake::start(method, url, content_type, length, 0, true).is_some();
    let json = Some("application/json");
    assert!(started("POST", URL, json, None));
    assert!(started("POST", "https://edge.example/graph/lifecycle", json, Some("100")));
    assert!(
        !started("POST", "https://edge.example/graph/notifications?validationToken=abc", json, None),
        "a handshake"
    );
    assert!(!started("GET", URL, json, None), "a 405");
    assert!(!started("GET", "https://edge.example/healthz", None, None));
    assert!(!started("POST", "https://edge.example/nowhere", json, None), "a 404");
    assert!(!started("POST", URL, Some("text/plain"), None), "a 415");
    assert!(!started("POST", URL, json, Some("999999999")), "a 413 by its length");
}

#[test]
fn basic_items_are_sent_then_answered_as_the_full_route_answers() {
    let body = json!({"value": [item(STATE), item("forged"), item(STATE)]});
    let mut intake = start(true);
    let Accepted::Send { messages, deadline } = accept(&mut intake, &body, Tokens::Unknown) else {
        panic!("items to send")
    };
    assert!(deadline > Duration::ZERO && deadline <= budget::ANSWER_WITHIN);
    let (reply, line) = intake.finish(Ok(true), true, now_ms());

    let (full_reply, full_line, fake) = full(&body, Ok(pipeline::queued_summary(messages.len(), 0, true)), true);
    assert_eq!((&reply, untimed(&line)), (&full_reply, untimed(&full_line)));
    assert_eq!(reply, Reply::accepted());
    assert_eq!(content(&decoded(&messages)), content(&fake.delivered.borrow()), "the same items, in order");
    assert!(line
        .unwrap()
        .text
        .contains(r#""outcome":"queued 1 messages, forwarded 0 oversized items directly; fast path started""#));
}

#[test]
fn a_queue_that_refuses_or_is_late_is_a_503_logged_as_an_error_even_when_only_errors_are_logged() {
    let body = json!({"value": [item(STATE)]});
    for (sent, cause) in [
        (Err("queue is over its limit".to_owned()), "queue send failed: queue is over its limit"),
        (Ok(false), "the queue did not take the batch within"),
    ] {
        let mut intake = start(false);
        assert!(matches!(accept(&mut intake, &body, Tokens::Unknown), Accepted::Send { .. }));
        let (reply, line) = intake.finish(sent, false, now_ms());
        assert_eq!(reply.status, 503);
        let line = line.expect("a 5xx is always logged");
        assert!(line.error && line.text.contains(&format!("not stored, retry asked: {cause}")), "{}", line.text);
    }
    let (full_reply, ..) = full(&body, Err("queue send failed: queue is over its limit".into()), false);
    assert_eq!(full_reply.status, 503, "as the full route");
}

#[test]
fn a_refused_body_is_answered_at_once_as_the_full_route_answers() {
    for body in [json!({"value": []}), json!({"value": "not a list"}), json!({"value": [item("forged")]})] {
        for every in [true, false] {
            let mut intake = start(every);
            let Accepted::Answer(reply, line) = accept(&mut intake, &body, Tokens::Unknown) else {
                panic!("an answer: {body}")
            };
            let (full_reply, full_line, fake) = full(&body, Ok("unused".into()), every);
            assert_eq!((&reply, untimed(&line)), (&full_reply, untimed(&full_line)), "{body}");
            assert!(fake.delivered.borrow().is_empty());
        }
    }
}

#[test]
fn tokens_go_the_full_way_unless_every_one_was_verified_before() {
    let keys = keys_with("k1");
    let body = json!({"value": [item(STATE)], "validationTokens": [token("k1", APP)]});
    let mut intake = start(true);
    assert_eq!(remembered(&keys, now_ms() / 1000, &body), None, "never verified");
    assert_eq!(accept(&mut intake, &body, Tokens::Unknown), Accepted::Full);

    let mut fake = Fake::with_body(body.clone());
    fake.keys = Ok(keys.clone());
    assert_eq!(fake.post(""), Reply::accepted(), "the full route verifies it");
    assert_eq!(keys.verified_tokens(), 1);
    assert_eq!(remembered(&keys, now_ms() / 1000, &body), Some(Ok(1)));
    let mut intake = start(true);
    assert!(matches!(accept(&mut intake, &body, Tokens::Vouched), Accepted::Send { .. }));

    let long_after = now_ms() / 1000 + 10 * 3_600;
    let expired = remembered(&keys, long_after, &body).expect("remembered");
    assert_eq!(expired.unwrap_err().to_string(), "token 0: ExpiredSignature", "the time is checked on every use");
}

#[test]
fn items_too_large_for_a_message_go_the_full_way_to_be_read_afresh() {
    let mut large = item(STATE);
    large["resourceData"] = json!({"id": "x".repeat(chunk::MAX_MESSAGE_BYTES)});
    let mut intake = start(true);
    assert_eq!(accept(&mut intake, &json!({"value": [large]}), Tokens::Unknown), Accepted::Full);
    assert!(intake.handover().is_none(), "nothing parsed to hand over");
}

#[test]
fn items_needing_more_than_one_send_batch_go_the_full_way() {
    // Items of ~100 KB encoded (their data appears twice): one message
    // each, and three are over one sendBatch's byte limit.
    let items: Vec<Value> = (0..3)
        .map(|i| {
            let mut item = item(STATE);
            item["resourceData"] = json!({"id": format!("{i}").repeat(50 * 1024)});
            item
        })
        .collect();
    let mut intake = start(true);
    assert_eq!(accept(&mut intake, &json!({"value": items[..2]}), Tokens::Unknown).sent_messages(), Some(2), "two fit");
    let mut intake = start(true);
    assert_eq!(accept(&mut intake, &json!({"value": items}), Tokens::Unknown), Accepted::Full);
    assert!(intake.handover().is_none(), "the full route reads it afresh");
}

impl Accepted {
    fn sent_messages(&self) -> Option<usize> {
        match self {
            Accepted::Send { messages, .. } => Some(messages.len()),
            _ => None,
        }
    }
}

#[test]
fn a_body_handed_over_for_its_tokens_is_answered_and_logged_as_the_full_route_does() {
    let good = json!({"value": [item(STATE), item("forged")], "validationTokens": [token("k1", APP)]});
    let bad = json!({"value": [item(STATE)], "validationTokens": [token("k1", "another-app")]});
    for body in [good, bad] {
        let mut intake = start(true);
        assert_eq!(accept(&mut intake, &body, Tokens::Unknown), Accepted::Full);
        let Handover { route, batch, budget, started_ms } = intake.handover().expect("the parsed body");
        let handed = Fake::with_body(json!("never read"));
        let reply = run(pipeline::parsed_post(&handed, route, batch, &budget, started_ms));

        let (full_reply, full_line, full) = full(&body, Ok("queued".into()), true);
        let line = handed.logged.borrow().first().map(|(error, text)| LogLine { text: text.clone(), error: *error });
        assert_eq!((&reply, untimed(&line)), (&full_reply, untimed(&full_line)), "{body}");
        assert_eq!(handed.bodies_read.get(), 0, "the body is not read again");
        assert_eq!(content(&handed.delivered.borrow()), content(&full.delivered.borrow()));
        assert_eq!(*handed.quarantined.borrow(), *full.quarantined.borrow());
        let outcomes = (handed.delivered.borrow().len(), handed.quarantined.borrow().len());
        assert!(outcomes == (1, 0) || outcomes == (0, 1), "delivered or quarantined: {outcomes:?}");
    }
}

/// The verdict on `body`'s tokens without a signature check, as the glue
/// reaches it; `None` when a signature must be checked first.
fn remembered(keys: &Keys, now: u64, body: &Value) -> Option<Result<usize, validation_tokens::TokenError>> {
    let batch = parsed(body);
    let (tokens, tenants) = (batch.validation_tokens.as_ref(), &batch.rich_tenants);
    let checks = match validation_tokens::take_apart(tokens, tenants, keys, &policy(), now) {
        Ok(checks) => checks,
        Err(e) => return Some(Err(e)),
    };
    let settled = checks.signatures().next().is_none();
    settled.then(|| checks.conclude(Vec::new(), tenants, keys, &policy(), now))
}

fn parsed(body: &Value) -> Batch {
    crate::collection::parse(body.to_string().as_bytes(), &states(), 0, &RequestId::from_bytes([1; 16])).unwrap()
}

#[test]
fn tokens_seen_first_are_sent_once_their_signatures_pass_and_else_go_the_full_way() {
    let body = json!({"value": [item(STATE), item("forged")], "validationTokens": [token("k1", APP)]});
    let (full_reply, full_line, full) = full(&body, Ok(pipeline::queued_summary(1, 0, false)), true);
    let mut intake = start(true);
    assert_eq!(accept(&mut intake, &body, Tokens::Verifying), Accepted::Verify);
    let Accepted::Send { messages, .. } = intake.verified(|_| true, now_ms()) else {
        panic!("items to send once the tokens passed")
    };
    assert_eq!(content(&decoded(&messages)), content(&full.delivered.borrow()), "what the full route delivers");
    let (reply, line) = intake.finish(Ok(true), false, now_ms());
    assert_eq!((&reply, untimed(&line)), (&full_reply, untimed(&full_line)));

    let mut intake = start(true);
    assert_eq!(accept(&mut intake, &body, Tokens::Verifying), Accepted::Verify);
    assert_eq!(intake.verified(|_| false, now_ms()), Accepted::Full);
    let handover = intake.handover().expect("the parsed body, for the full route to check again");
    assert_eq!(handover.batch.notifications.len(), 1);
}

/// The quick route's token check as the glue makes it, with RustCrypto in
/// place of WebCrypto's promises.
fn checked_apart(keys: &Keys, body: &Value) -> Result<usize, validation_tokens::TokenError> {
    let batch = parsed(body);
    let (tokens, tenants, now) = (batch.validation_tokens.as_ref(), &batch.rich_tenants, now_ms() / 1000);
    let checks = validation_tokens::take_apart(tokens, tenants, keys, &policy(), now)?;
    let rs256 = crate::rs256::Native::default();
    let verdicts = checks
        .signatures()
        .map(|token| {
            run(validation_tokens::Rs256::verify(&rs256, &token.key, token.signed.as_bytes(), &token.signature))
        })
        .collect();
    checks.conclude(verdicts, tenants, keys, &policy(), now)
}

#[test]
fn signatures_checked_apart_pass_and_are_remembered_as_the_full_check_does() {
    let keys = keys_with("k1");
    let body = json!({"value": [item(STATE)], "validationTokens": [token("k1", APP), token("k1", APP)]});
    assert_eq!(checked_apart(&keys, &body), Ok(2));
    assert_eq!(remembered(&keys, now_ms() / 1000, &body), Some(Ok(2)), "both remembered");

    let keys = keys_with("k1");
    let wrong_app = json!({"value": [item(STATE)], "validationTokens": [token("k1", "another-app")]});
    assert_eq!(checked_apart(&keys, &wrong_app).unwrap_err().to_string(), "token 0: InvalidAudience");
    assert_eq!(keys.verified_tokens(), 0, "a refused token is not remembered");
}

#[test]
fn the_first_token_refused_decides_whether_its_signature_or_its_form_fails() {
    let keys = keys_with("k1");
    let mut forged = token("k1", APP);
    forged.replace_range(forged.len() - 4.., "AAAA");
    let body = json!({"value": [item(STATE)], "validationTokens": [forged, "not a jwt"]});
    let batch = parsed(&body);
    let (tokens, tenants, now) = (batch.validation_tokens.as_ref(), &batch.rich_tenants, now_ms() / 1000);
    let checks = validation_tokens::take_apart(tokens, tenants, &keys, &policy(), now).unwrap();
    assert!(checks.refused(), "the second token is refused whatever the first's signature says");
    assert_eq!(checks.signatures().count(), 1);
    assert_eq!(checked_apart(&keys, &body).unwrap_err().to_string(), "token 0: InvalidSignature");
    let unchecked = validation_tokens::take_apart(tokens, tenants, &keys, &policy(), now).unwrap();
    let error = unchecked.conclude(Vec::new(), tenants, &keys, &policy(), now).unwrap_err();
    assert!(error.to_string().contains("cannot verify"), "a signature never checked counts as unusable: {error}");
}
