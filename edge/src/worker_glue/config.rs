//! The edge's settings, read from `[vars]` and secrets on each request (a few
//! hashes; it keeps a redeployed secret effective without isolate tricks).

use worker::Env;

use crate::client_state::ClientStates;

pub(crate) struct Config {
    /// Accepted clientState values (secret `CLIENT_STATES`, comma-separated).
    pub(crate) client_states: ClientStates,
    /// Base URL of the fan-out's gRPC-Web listener (`FANOUT_URL`).
    pub(crate) fanout_url: String,
    /// Bearer token for `Publish` (secret `FANOUT_TOKEN`).
    pub(crate) fanout_token: String,
}

impl Config {
    /// Reads every setting; the error names what is missing, never a value.
    pub(crate) fn from_env(env: &Env) -> Result<Self, String> {
        let client_states = ClientStates::parse(&setting(env, "CLIENT_STATES")?)?;
        let fanout_url = setting(env, "FANOUT_URL")?.trim_end_matches('/').to_owned();
        let fanout_token = setting(env, "FANOUT_TOKEN")?;
        Ok(Self { client_states, fanout_url, fanout_token })
    }
}

/// A `[vars]` entry or a secret (`Env::var` reads both as text).
fn setting(env: &Env, name: &str) -> Result<String, String> {
    match env.var(name) {
        Ok(value) if !value.to_string().trim().is_empty() => Ok(value.to_string()),
        _ => Err(format!("{name} is not set")),
    }
}
