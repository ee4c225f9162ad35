//! The edge's protocol core built to wasm and timed in V8 (`run.mjs`,
//! `make bench-wasm-core`): what each step of a notification POST costs the
//! Worker's own code, without workerd, the queue or HTTP around it.
//!
//! `run(step, iterations)` repeats one step on a 10-item body of basic
//! change notifications, the body `edge_compare` posts; the steps build on
//! each other, so each one's own cost is its time less the step before.
//! The last two take the 10 rich items `edge_compare` posts instead, with
//! one validationToken shaped as the one it signs: accepted and encoded,
//! then also with the token checked as the quick route checks a token
//! verified before.
//! Natively, `cargo bench --bench edge_core` times the same parse.

use std::hint::black_box;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use graph_relay_edge::client_state::ClientStates;
use graph_relay_edge::collection::Batch;
use graph_relay_edge::delivery::RequestId;
use graph_relay_edge::validation_tokens::{self, Keys, Policy, GRAPH_CHANGE_TRACKING_APP_ID};
use graph_relay_edge::{chunk, envelope, inbound, json_object};

/// The clientState the body's items carry (and the edge accepts).
const CLIENT_STATE: &str = "bench-client-state";

/// The tenant of the rich items, and the app their token is for.
const TENANT: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const APP_ID: &str = "11111111-2222-3333-4444-555555555555";
/// The JWKS key that signed the token.
const KID: &str = "bench-key";
/// "Now" for the token's checks, in Unix seconds, inside its window.
const NOW: u64 = 1_800_000_000;

/// The steps, in the order `run.mjs` names them.
#[derive(Clone, Copy)]
enum Step {
    Utf8,
    Depth,
    Envelope,
    Accept,
    AcceptAndEncode,
    RichAcceptAndEncode,
    RichKnownToken,
}

const STEPS: [Step; 7] = [
    Step::Utf8,
    Step::Depth,
    Step::Envelope,
    Step::Accept,
    Step::AcceptAndEncode,
    Step::RichAcceptAndEncode,
    Step::RichKnownToken,
];

/// A collection of `items` basic change notifications, as Graph sends them.
pub fn body(items: usize) -> String {
    collection(items, "", "")
}

/// A collection of `items` rich change notifications (each with the small
/// `encryptedContent` `edge_compare` posts) and `token` as its one
/// validationToken.
pub fn rich_body(items: usize, token: &str) -> String {
    let encrypted = r#","encryptedContent":{"data":"ZGF0YQ==","dataKey":"a2V5","dataSignature":"c2ln","encryptionCertificateId":"c1","encryptionCertificateThumbprint":"t"}"#;
    collection(items, encrypted, &format!(r#","validationTokens":["{token}"]"#))
}

fn collection(items: usize, encrypted: &str, tokens: &str) -> String {
    let tenant = if encrypted.is_empty() { "t" } else { TENANT };
    let items: Vec<String> = (0..items)
        .map(|i| {
            let resource = format!("Users/u/Messages/m-{i}");
            format!(
                r##"{{"changeType":"created","clientState":"{CLIENT_STATE}"{encrypted},"id":"id-{resource}","resource":"{resource}","resourceData":{{"@odata.etag":"W/\"CQAAABYAAAD\"","@odata.id":"{resource}","@odata.type":"#Microsoft.Graph.Message","id":"m-{i}"}},"subscriptionExpirationDateTime":"2026-12-01T10:00:00.0000000Z","subscriptionId":"sub-{i}","tenantId":"{tenant}"}}"##
            )
        })
        .collect();
    format!(r#"{{"value":[{}]{tokens}}}"#, items.join(","))
}

/// A validationToken shaped as Graph's: an RS256 JWT with the claims the
/// edge requires and a 2048-bit signature's worth of bytes (never checked:
/// [`Fixture::new`] records it as verified, as a first sight would).
pub fn token() -> String {
    let part = |json: String| URL_SAFE_NO_PAD.encode(json);
    let header = part(format!(r#"{{"typ":"JWT","alg":"RS256","kid":"{KID}"}}"#));
    let claims = part(format!(
        r#"{{"aud":"{APP_ID}","iss":"https://sts.windows.net/{TENANT}/","iat":{iat},"nbf":{iat},"exp":{exp},"tid":"{TENANT}","appid":"{GRAPH_CHANGE_TRACKING_APP_ID}"}}"#,
        iat = NOW - 60,
        exp = NOW + 3600,
    ));
    format!("{header}.{claims}.{}", URL_SAFE_NO_PAD.encode([7u8; 256]))
}

/// What every step works with, built once per `run`.
struct Fixture {
    basic: String,
    rich: String,
    states: ClientStates,
    request: RequestId,
    /// The JWKS's keys, which remember the token as verified.
    keys: Keys,
    policy: Policy,
}

impl Fixture {
    fn new() -> Self {
        let jwks = format!(r#"{{"keys":[{{"kty":"RSA","kid":"{KID}","n":"{}","e":"AQAB"}}]}}"#, "n".repeat(342));
        let keys = Keys::from_jwks(&jwks).unwrap_or_else(|e| panic!("{e}"));
        let policy = Policy { app_ids: vec![APP_ID.into()], allowed_tenants: vec![] };
        let rich = rich_body(10, &token());
        let states = ClientStates::parse(CLIENT_STATE).unwrap_or_else(|e| panic!("{e}"));
        let request = RequestId::from_bytes([7; 16]);
        let batch = inbound::accept_body(rich.as_bytes(), &states, 0, &request).unwrap_or_else(|e| panic!("{e:?}"));
        let (tokens, tenants) = (batch.validation_tokens.as_ref(), &batch.rich_tenants);
        let checks =
            validation_tokens::take_apart(tokens, tenants, &keys, &policy, NOW).unwrap_or_else(|e| panic!("{e}"));
        checks.conclude(vec![Ok(true)], tenants, &keys, &policy, NOW).unwrap_or_else(|e| panic!("{e}"));
        Self { basic: body(10), rich, states, request, keys, policy }
    }

    /// Whether the batch's token passes as the quick route finds a token
    /// verified before: no signature left to check.
    fn vouched(&self, batch: &Batch) -> bool {
        let (tokens, tenants) = (batch.validation_tokens.as_ref(), &batch.rich_tenants);
        match validation_tokens::take_apart(tokens, tenants, &self.keys, &self.policy, NOW) {
            Ok(checks) if checks.signatures().next().is_none() => {
                checks.conclude(Vec::new(), tenants, &self.keys, &self.policy, NOW).is_ok()
            }
            _ => false,
        }
    }
}

/// Runs step `step` (see [`STEPS`]) `iterations` times on a 10-item body;
/// the number of runs that succeeded, so that nothing is optimised away
/// and the caller can tell a failing step.
#[no_mangle]
pub extern "C" fn run(step: u32, iterations: u32) -> u32 {
    let Some(&step) = STEPS.get(step as usize) else { return 0 };
    let fixture = Fixture::new();
    (0..iterations).map(|_| once(step, black_box(&fixture)) as u32).sum()
}

fn once(step: Step, fixture: &Fixture) -> bool {
    let (basic, rich) = (fixture.basic.as_str(), fixture.rich.as_bytes());
    let accept = |body: &[u8]| inbound::accept_body(body, &fixture.states, 0, &fixture.request).ok();
    let encode = |batch: Batch| chunk::split(batch.notifications, chunk::MAX_MESSAGE_BYTES).messages.len() == 1;
    match step {
        Step::Utf8 => std::str::from_utf8(basic.as_bytes()).is_ok(),
        Step::Depth => json_object::check_depth(basic),
        Step::Envelope => envelope::read(basic).is_ok(),
        Step::Accept => accept(basic.as_bytes()).is_some(),
        Step::AcceptAndEncode => accept(basic.as_bytes()).is_some_and(encode),
        Step::RichAcceptAndEncode => accept(rich).is_some_and(encode),
        Step::RichKnownToken => accept(rich).is_some_and(|batch| fixture.vouched(&batch) && encode(batch)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_succeeds_on_the_body() {
        for step in 0..STEPS.len() as u32 {
            assert_eq!(run(step, 2), 2, "step {step}");
        }
        assert_eq!(run(STEPS.len() as u32, 2), 0, "no such step");
    }

    #[test]
    fn the_bodies_are_ten_accepted_items() {
        let states = ClientStates::parse(CLIENT_STATE).unwrap();
        for body in [body(10), rich_body(10, &token())] {
            let batch = inbound::accept_body(body.as_bytes(), &states, 0, &RequestId::from_bytes([0; 16])).unwrap();
            assert_eq!((batch.notifications.len(), batch.rejections.len()), (10, 0));
        }
    }

    #[test]
    fn the_rich_items_need_their_token_and_it_is_known() {
        let fixture = Fixture::new();
        let batch = inbound::accept_body(fixture.rich.as_bytes(), &fixture.states, 0, &fixture.request).unwrap();
        assert!(batch.needs_token_check());
        assert_eq!(batch.rich_tenants, vec![TENANT.to_owned(); 10]);
        assert!(fixture.vouched(&batch));
        let token = token();
        let resigned = format!("{}.{}", &token[..token.rfind('.').unwrap()], URL_SAFE_NO_PAD.encode([8u8; 256]));
        let body = rich_body(10, &resigned);
        let other = inbound::accept_body(body.as_bytes(), &fixture.states, 0, &fixture.request).unwrap();
        assert!(!fixture.vouched(&other), "the same claims signed otherwise are not remembered");
    }
}
