use std::cell::{Cell, RefCell};
use std::future::Future;
use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};

use super::*;

pub(crate) const STATE: &str = "client-state";
pub(crate) const APP: &str = "11111111-2222-3333-4444-555555555555";
const TENANT: &str = "aaaaaaaa-0000-0000-0000-000000000001";
/// The real clock: the JWT library checks `exp` against it too.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Runs a future that never waits (the fake's are all ready at once).
pub(crate) fn run<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("the fake platform never waits"),
    }
}

fn signing_key() -> &'static rsa::RsaPrivateKey {
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap())
}

pub(crate) fn keys_with(kid: &str) -> Rc<Keys> {
    let public = signing_key().to_public_key();
    let jwk = json!({"kty": "RSA", "kid": kid, "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be())});
    Rc::new(Keys::from_jwks(&json!({ "keys": [jwk] }).to_string()).unwrap())
}

pub(crate) fn token(kid: &str, audience: &str) -> String {
    let now = now_ms() / 1000;
    let claims = json!({"aud": audience, "iss": format!("https://sts.windows.net/{TENANT}/"), "tid": TENANT,
        "appid": validation_tokens::GRAPH_CHANGE_TRACKING_APP_ID, "iat": now - 60, "nbf": now - 60, "exp": now + 3600});
    let der = signing_key().to_pkcs1_der().unwrap();
    let header = Header { kid: Some(kid.into()), ..Header::new(Algorithm::RS256) };
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_der(der.as_bytes())).unwrap()
}

pub(crate) fn item(client_state: &str) -> Value {
    json!({"subscriptionId": "s1", "clientState": client_state, "changeType": "updated", "resource": "Users/u1",
        "tenantId": TENANT})
}

/// A platform that records what the request path asked of it.
pub(crate) struct Fake {
    pub(crate) body: Vec<u8>,
    pub(crate) keys: Result<Rc<Keys>, String>,
    pub(crate) refreshed: Option<Result<Rc<Keys>, String>>,
    pub(crate) delivery: Result<String, String>,
    pub(crate) bodies_read: Cell<usize>,
    pub(crate) key_fetches: Cell<usize>,
    pub(crate) refetches: Cell<usize>,
    pub(crate) quarantined: RefCell<Vec<String>>,
    pub(crate) delivered: RefCell<Vec<Notification>>,
    /// (as an error, the line) for each line logged.
    pub(crate) logged: RefCell<Vec<(bool, String)>>,
    /// `REQUEST_LOGS`: every request (true) or errors only.
    pub(crate) logs_every_request: bool,
    pub(crate) rs256: crate::rs256::Native,
}

impl Fake {
    pub(crate) fn with_body(body: Value) -> Self {
        Fake {
            body: body.to_string().into_bytes(),
            keys: Ok(keys_with("k1")),
            refreshed: Some(Ok(keys_with("k1"))),
            delivery: Ok("queued".into()),
            bodies_read: Cell::new(0),
            key_fetches: Cell::new(0),
            refetches: Cell::new(0),
            quarantined: RefCell::default(),
            delivered: RefCell::default(),
            logged: RefCell::default(),
            logs_every_request: true,
            rs256: Default::default(),
        }
    }

    pub(crate) fn post(&self, query: &str) -> Reply {
        let post =
            Post { route: Route::Notifications, query, content_type: Some("application/json"), content_length: None };
        run(notification_post(self, post, &Budget::starting_at(now_ms())))
    }
}

impl Platform for Fake {
    type Signatures = crate::rs256::Native;
    fn signatures(&self) -> &Self::Signatures {
        &self.rs256
    }
    fn now_ms(&self) -> u64 {
        now_ms()
    }
    fn logs_every_request(&self) -> bool {
        self.logs_every_request
    }
    fn log(&self, line: &str) {
        self.logged.borrow_mut().push((false, line.to_owned()));
    }
    fn log_error(&self, line: &str) {
        self.logged.borrow_mut().push((true, line.to_owned()));
    }
    fn client_states(&self) -> Result<Rc<ClientStates>, String> {
        ClientStates::parse(STATE).map(Rc::new)
    }
    fn token_policy(&self) -> Result<Rc<Policy>, String> {
        Ok(Rc::new(Policy { app_ids: vec![APP.into()], allowed_tenants: Vec::new() }))
    }
    async fn body(&self) -> Result<Vec<u8>, String> {
        self.bodies_read.set(self.bodies_read.get() + 1);
        Ok(self.body.clone())
    }
    async fn keys(&self, _: &Budget) -> Result<Rc<Keys>, String> {
        self.key_fetches.set(self.key_fetches.get() + 1);
        self.keys.clone()
    }
    async fn refreshed_keys(&self, _: &Budget) -> Option<Result<Rc<Keys>, String>> {
        self.refetches.set(self.refetches.get() + 1);
        self.refreshed.clone()
    }
    async fn quarantine(&self, _: Route, _: &Batch, reason: &str) {
        self.quarantined.borrow_mut().push(reason.to_string());
    }
    async fn deliver(&self, notifications: Vec<Notification>, _: &Budget) -> Result<String, String> {
        self.delivered.borrow_mut().extend(notifications);
        self.delivery.clone()
    }
}

#[test]
fn a_handshake_is_answered_as_text_without_reading_a_body() {
    let fake = Fake::with_body(json!({}));
    assert_eq!(fake.post("validationToken=a%2Fb"), Reply::text(200, "a/b"));
    assert_eq!(fake.bodies_read.get(), 0);
}

#[test]
fn basic_items_are_delivered_and_acknowledged() {
    let fake = Fake::with_body(json!({"value": [item(STATE), item("forged")]}));
    assert_eq!(fake.post(""), Reply::accepted());
    assert_eq!(fake.delivered.borrow().len(), 1, "the forged item stays behind");
    assert_eq!(fake.key_fetches.get(), 0, "no tokens, no keys");
}

#[test]
fn forged_batches_with_tokens_reach_neither_the_keys_nor_the_quarantine() {
    let fake = Fake::with_body(json!({"value": [item("forged")], "validationTokens": ["a.b.c"]}));
    assert_eq!(fake.post(""), Reply::accepted());
    assert_eq!((fake.key_fetches.get(), fake.quarantined.borrow().len(), fake.delivered.borrow().len()), (0, 0, 0));
}

#[test]
fn good_tokens_let_the_batch_through_and_bad_ones_quarantine_it_with_a_202() {
    let good = Fake::with_body(json!({"value": [item(STATE)], "validationTokens": [token("k1", APP)]}));
    assert_eq!(good.post(""), Reply::accepted());
    assert_eq!(
        (good.delivered.borrow().len(), good.quarantined.borrow().len()),
        (1, 0),
        "{:?}",
        good.quarantined.borrow()
    );

    let bad = Fake::with_body(json!({"value": [item(STATE)], "validationTokens": [token("k1", "another-app")]}));
    assert_eq!(bad.post(""), Reply::accepted(), "Graph is told nothing");
    assert!(bad.delivered.borrow().is_empty());
    assert_eq!(bad.quarantined.borrow().len(), 1, "{:?}", bad.quarantined.borrow());
}

#[test]
fn keys_that_cannot_be_had_are_a_retry_not_a_quarantine() {
    let mut fake = Fake::with_body(json!({"value": [item(STATE)], "validationTokens": [token("k1", APP)]}));
    fake.keys = Err("the JWKS endpoint answered 503".into());
    assert_eq!(fake.post("").status, 503);
    assert!(fake.quarantined.borrow().is_empty() && fake.delivered.borrow().is_empty());
}

#[test]
fn an_unknown_kid_refetches_once_then_passes_or_is_quarantined() {
    let signed = json!({"value": [item(STATE)], "validationTokens": [token("k2", APP)]});
    let mut rotated = Fake::with_body(signed.clone());
    rotated.refreshed = Some(Ok(keys_with("k2")));
    assert_eq!(rotated.post(""), Reply::accepted());
    assert_eq!((rotated.refetches.get(), rotated.delivered.borrow().len()), (1, 1), "a key rotated in");

    let unknown = Fake::with_body(signed.clone());
    assert_eq!(unknown.post(""), Reply::accepted());
    assert_eq!((unknown.refetches.get(), unknown.quarantined.borrow().len()), (1, 1), "still unknown: a bad token");

    let mut no_time = Fake::with_body(signed);
    no_time.refreshed = None;
    assert_eq!(no_time.post("").status, 503, "the kid may be new: Graph retries");
    assert!(no_time.quarantined.borrow().is_empty());
}

#[test]
fn a_failed_delivery_is_a_503_so_graph_retries() {
    let mut fake = Fake::with_body(json!({"value": [item(STATE)]}));
    fake.delivery = Err("queue send failed".into());
    assert_eq!(fake.post("").status, 503);
    let logged = fake.logged.borrow();
    assert_eq!(logged.len(), 1, "one line per request: {logged:?}");
    let (as_error, line) = &logged[0];
    assert!(as_error, "a 503 is logged as an error");
    let line: Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["outcome"], "not stored, retry asked: queue send failed");
    assert_eq!(line["status"], 503);
}

#[test]
fn with_errors_only_logging_an_accepted_request_logs_nothing_and_a_503_still_logs() {
    let mut accepted = Fake::with_body(json!({"value": [item(STATE)]}));
    accepted.logs_every_request = false;
    assert_eq!(accepted.post(""), Reply::accepted());
    assert!(accepted.logged.borrow().is_empty(), "{:?}", accepted.logged.borrow());
    let mut failed = Fake::with_body(json!({"value": [item(STATE)]}));
    (failed.logs_every_request, failed.delivery) = (false, Err("queue send failed".into()));
    assert_eq!(failed.post("").status, 503);
    let logged = failed.logged.borrow();
    assert_eq!(logged.len(), 1);
    assert!(logged[0].0 && logged[0].1.contains("queue send failed"), "{logged:?}");
}

#[test]
fn every_request_is_one_json_line_with_its_counts_and_outcome_and_no_client_state() {
    let fake = Fake::with_body(json!({"value": [item(STATE), item("forged-state"), item("forged-state")]}));
    assert_eq!(fake.post(""), Reply::accepted());
    let handshake = Fake::with_body(json!({}));
    handshake.post("validationToken=abc");
    for fake in [&fake, &handshake] {
        assert_eq!(fake.logged.borrow().len(), 1, "{:?}", fake.logged.borrow());
    }
    let (as_error, line) = &fake.logged.borrow()[0];
    assert!(!as_error);
    assert!(!line.contains(STATE) && !line.contains("forged-state"), "{line}");
    let line: Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["route"], "notifications");
    assert_eq!((line["items"].as_u64(), line["accepted"].as_u64()), (Some(3), Some(1)));
    assert_eq!(line["rejected"]["clientState does not match any accepted value"], 2);
    assert_eq!(line["outcome"], "queued");
    assert!(line["ackMs"].is_u64());
    let handshake: Value = serde_json::from_str(&handshake.logged.borrow()[0].1).unwrap();
    assert_eq!(handshake["outcome"], "validation handshake");
}

#[test]
fn refetches_are_spaced_and_keys_age_out() {
    assert!(!refetch_allowed(1_000, 60_999, 60_000));
    assert!(refetch_allowed(1_000, 61_000, 60_000));
    assert!(!keys_are_stale(0, 3_599_999, 3_600_000));
    assert!(keys_are_stale(0, 3_600_000, 3_600_000));
}

#[test]
fn a_failed_message_waits_as_long_as_it_has_waited_within_the_bounds() {
    assert_eq!(retry_delay_seconds(0, 5, 300), 5, "the base first");
    assert_eq!(retry_delay_seconds(40, 5, 300), 40, "so delays double");
    assert_eq!(retry_delay_seconds(10_000, 5, 300), 300, "capped");
    assert_eq!(retry_delay_seconds(0, 500, 300), 300, "a base above the cap is the cap");
}
