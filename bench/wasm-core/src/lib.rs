//! The edge's protocol core built to wasm and timed in V8 (`run.mjs`,
//! `make bench-wasm-core`): what each step of a notification POST costs the
//! Worker's own code, without workerd, the queue or HTTP around it.
//!
//! `run(step, iterations)` repeats one step on a 10-item body of basic
//! change notifications, the body `edge_compare` posts; the steps build on
//! each other, so each one's own cost is its time less the step before.
//! Natively, `cargo bench --bench edge_core` times the same parse.

use std::hint::black_box;

use graph_relay_edge::client_state::ClientStates;
use graph_relay_edge::delivery::RequestId;
use graph_relay_edge::{chunk, envelope, inbound, json_object};

/// The clientState the body's items carry (and the edge accepts).
const CLIENT_STATE: &str = "bench-client-state";

/// The steps, in the order `run.mjs` names them.
#[derive(Clone, Copy)]
enum Step {
    Utf8,
    Depth,
    Envelope,
    Accept,
    AcceptAndEncode,
}

const STEPS: [Step; 5] = [Step::Utf8, Step::Depth, Step::Envelope, Step::Accept, Step::AcceptAndEncode];

/// A collection of `items` basic change notifications, as Graph sends them.
pub fn body(items: usize) -> String {
    let items: Vec<String> = (0..items)
        .map(|i| {
            let resource = format!("Users/u/Messages/m-{i}");
            format!(
                r##"{{"changeType":"created","clientState":"{CLIENT_STATE}","id":"id-{resource}","resource":"{resource}","resourceData":{{"@odata.etag":"W/\"CQAAABYAAAD\"","@odata.id":"{resource}","@odata.type":"#Microsoft.Graph.Message","id":"m-{i}"}},"subscriptionExpirationDateTime":"2026-12-01T10:00:00.0000000Z","subscriptionId":"sub-{i}","tenantId":"t"}}"##
            )
        })
        .collect();
    format!(r#"{{"value":[{}]}}"#, items.join(","))
}

/// Runs step `step` (see [`STEPS`]) `iterations` times on a 10-item body;
/// the number of runs that succeeded, so that nothing is optimised away
/// and the caller can tell a failing step.
#[no_mangle]
pub extern "C" fn run(step: u32, iterations: u32) -> u32 {
    let Some(&step) = STEPS.get(step as usize) else { return 0 };
    let body = body(10);
    let states = ClientStates::parse(CLIENT_STATE).unwrap_or_else(|e| panic!("{e}"));
    let request = RequestId::from_bytes([7; 16]);
    (0..iterations).map(|_| once(step, black_box(&body), &states, &request) as u32).sum()
}

fn once(step: Step, body: &str, states: &ClientStates, request: &RequestId) -> bool {
    match step {
        Step::Utf8 => std::str::from_utf8(body.as_bytes()).is_ok(),
        Step::Depth => json_object::check_depth(body),
        Step::Envelope => envelope::read(body).is_ok(),
        Step::Accept => inbound::accept_body(body.as_bytes(), states, 0, request).is_ok(),
        Step::AcceptAndEncode => match inbound::accept_body(body.as_bytes(), states, 0, request) {
            Ok(batch) => chunk::split(batch.notifications, chunk::MAX_MESSAGE_BYTES).messages.len() == 1,
            Err(_) => false,
        },
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
    fn the_body_is_ten_accepted_items() {
        let states = ClientStates::parse(CLIENT_STATE).unwrap();
        let batch = inbound::accept_body(body(10).as_bytes(), &states, 0, &RequestId::from_bytes([0; 16])).unwrap();
        assert_eq!((batch.notifications.len(), batch.rejections.len()), (10, 0));
    }
}
