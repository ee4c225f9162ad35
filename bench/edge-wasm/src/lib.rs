//! The edge's request path as wasm, for timing under Node.
//!
//! The native criterion figures (`bench/benches/edge_core.rs`) do not say what
//! a request costs in a Worker, where the code runs as wasm in V8 and the
//! free plan allows 10 ms of CPU per request. Node runs the same engine, so
//! `scripts/edge-wasm-bench.mjs` loads this module (built with the worker's
//! `edge` profile) and times each call. The JavaScript side signs the tokens
//! with Node's own crypto, so nothing here needs a signing key.
//!
//! Each method repeats its work `iterations` times inside one call, so the
//! crossing between JavaScript and wasm is not what gets measured.

use graph_relay_edge::chunk;
use graph_relay_edge::client_state::ClientStates;
use graph_relay_edge::delivery::RequestId;
use graph_relay_edge::inbound;
use graph_relay_edge::validation_tokens::{check_batch, Keys, Policy};
use serde_json::Value;
use wasm_bindgen::prelude::*;

/// What a deployed edge holds between requests: its settings and cached keys.
#[wasm_bindgen]
pub struct Edge {
    /// `CLIENT_STATES`, digested once as the Worker does.
    states: ClientStates,
    /// The identity platform's signing keys, as cached by the Worker.
    keys: Keys,
    /// `GRAPH_APP_IDS`; any tenant allowed.
    policy: Policy,
}

#[wasm_bindgen]
impl Edge {
    #[wasm_bindgen(constructor)]
    pub fn new(client_states: &str, jwks: &str, app_id: &str) -> Result<Edge, JsError> {
        let states = ClientStates::parse(client_states).map_err(|e| JsError::new(&e))?;
        let keys = Keys::from_jwks(jwks).map_err(|e| JsError::new(&e))?;
        let policy = Policy { app_ids: vec![app_id.to_owned()], allowed_tenants: Vec::new() };
        Ok(Edge { states, keys, policy })
    }

    /// The CPU work of one notifications request, `iterations` times: parse
    /// and validate the body, check its validationTokens, pack the accepted
    /// items into queue messages. `first_sight`: the keys have not verified
    /// the tokens before (else they remember them, as after Graph's first
    /// batch). Returns the queue messages of the last.
    pub fn request(&self, body: &[u8], iterations: u32, first_sight: bool, now: f64) -> Result<u32, JsError> {
        let mut messages = 0;
        for _ in 0..iterations {
            let fresh = first_sight.then(|| self.keys.clone());
            let keys = fresh.as_ref().unwrap_or(&self.keys);
            let batch = inbound::accept_body(body, &self.states, 0, &RequestId::from_bytes([0; 16]))
                .map_err(|reply| JsError::new(&reply.body))?;
            if batch.validation_tokens.is_some() || batch.has_encrypted_content() {
                check_batch(batch.validation_tokens.as_ref(), &batch.rich_tenants, keys, &self.policy, now as u64)
                    .map_err(|e| JsError::new(&e.to_string()))?;
            }
            let chunks = chunk::split(batch.notifications, chunk::MAX_MESSAGE_BYTES);
            messages = chunks.messages.len() as u32;
        }
        Ok(messages)
    }

    /// Only the validationTokens check, `iterations` times (`tokens`: the
    /// JSON array as Graph sends it; `tenant`: the rich items' tenant).
    pub fn tokens(
        &self,
        tokens: &str,
        tenant: &str,
        iterations: u32,
        first_sight: bool,
        now: f64,
    ) -> Result<u32, JsError> {
        let tokens: Value = serde_json::from_str(tokens).map_err(|e| JsError::new(&e.to_string()))?;
        let tenants = [tenant.to_owned()];
        let mut checked = 0;
        for _ in 0..iterations {
            let fresh = first_sight.then(|| self.keys.clone());
            let keys = fresh.as_ref().unwrap_or(&self.keys);
            checked = check_batch(Some(&tokens), &tenants, keys, &self.policy, now as u64)
                .map_err(|e| JsError::new(&e.to_string()))?;
        }
        Ok(checked as u32)
    }
}
