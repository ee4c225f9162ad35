//! The edge's settings, from `[vars]` and secrets.
//!
//! The request path parses them once per isolate ([`config`], [`policy`],
//! [`flags`]): an isolate runs one version of the Worker, and changing a
//! variable or a secret deploys a new version, in new isolates (`wrangler
//! dev` restarts its worker the same way). A setting that does not parse
//! is not kept: every request reads it again, so it fails loudly until it
//! is mended, and `/healthz` then names every problem ([`problems`]).

use std::cell::OnceCell;
use std::rc::Rc;
use std::thread::LocalKey;

use worker::{Env, Fetcher};

use crate::client_state::ClientStates;
use crate::replicas::Replicas;
use crate::validation_tokens::Policy;

/// Where and how to reach the fan-out's `Publish`.
#[derive(Clone)]
pub(crate) struct FanoutTarget {
    /// Base URLs of the fan-out replicas' gRPC-Web listeners (`FANOUT_URL`,
    /// comma-separated; see `crate::replicas`).
    pub(crate) replicas: Replicas,
    /// Bearer token for `Publish` (secret `FANOUT_TOKEN`).
    pub(crate) token: String,
    /// The `FANOUT_MTLS` mTLS certificate binding, when configured: calls go
    /// through it and present the client certificate (mutual TLS).
    pub(crate) mtls: Option<Fetcher>,
}

impl FanoutTarget {
    pub(crate) fn from_env(env: &Env) -> Result<Self, String> {
        let replicas = Replicas::parse(&setting(env, "FANOUT_URL")?)?;
        Ok(Self { replicas, token: setting(env, "FANOUT_TOKEN")?, mtls: env.service("FANOUT_MTLS").ok() })
    }
}

thread_local! {
    // A Worker isolate is single-threaded: one cell each, for its life.
    static CONFIG: OnceCell<Rc<Config>> = const { OnceCell::new() };
    static POLICY: OnceCell<Rc<Policy>> = const { OnceCell::new() };
    static FLAGS: OnceCell<Rc<Flags>> = const { OnceCell::new() };
}

/// What the notification routes need, parsed once per isolate.
pub(crate) fn config(env: &Env) -> Result<Rc<Config>, String> {
    once(&CONFIG, || Config::from_env(env))
}

/// What validationTokens must satisfy, parsed once per isolate.
pub(crate) fn policy(env: &Env) -> Result<Rc<Policy>, String> {
    once(&POLICY, || TokenPolicy::from_env(env))
}

/// The switches, read once per isolate.
pub(crate) fn flags(env: &Env) -> Rc<Flags> {
    FLAGS.with(|cell| cell.get_or_init(|| Rc::new(Flags::from_env(env))).clone())
}

/// The value in `cell`, or `read`'s, kept when it is `Ok`.
fn once<T>(
    cell: &'static LocalKey<OnceCell<Rc<T>>>,
    read: impl FnOnce() -> Result<T, String>,
) -> Result<Rc<T>, String> {
    if let Some(kept) = cell.with(|cell| cell.get().cloned()) {
        return Ok(kept);
    }
    let value = Rc::new(read()?);
    cell.with(|cell| cell.get_or_init(|| value.clone()).clone());
    Ok(value)
}

/// Switches with a default.
pub(crate) struct Flags {
    /// Whether accepted items also go straight to the fan-out after the 202
    /// (`FAST_PATH`, on unless `off`; see `queue::fast_path`).
    pub(crate) fast_path: bool,
    /// Whether every request gets its log line (`REQUEST_LOGS`, on unless
    /// `errors`: then only lines of 5xx answers). Workers Logs bills by the
    /// line, and at high volume one line per request may not be wanted.
    pub(crate) logs_every_request: bool,
}

impl Flags {
    fn from_env(env: &Env) -> Self {
        let is =
            |name: &str, value: &str| env.var(name).is_ok_and(|v| v.to_string().trim().eq_ignore_ascii_case(value));
        Flags { fast_path: !is("FAST_PATH", "off"), logs_every_request: !is("REQUEST_LOGS", "errors") }
    }
}

/// What the notification routes need.
pub(crate) struct Config {
    /// Accepted clientState values (secret `CLIENT_STATES`, comma-separated),
    /// shared with each request rather than copied into it.
    pub(crate) client_states: Rc<ClientStates>,
    pub(crate) fanout: FanoutTarget,
}

impl Config {
    /// Reads every setting; the error names what is missing, never a value.
    pub(crate) fn from_env(env: &Env) -> Result<Self, String> {
        let client_states = Rc::new(ClientStates::parse(&setting(env, "CLIENT_STATES")?)?);
        Ok(Self { client_states, fanout: FanoutTarget::from_env(env)? })
    }
}

/// What rich notifications' validationTokens must satisfy.
pub(crate) struct TokenPolicy;

impl TokenPolicy {
    /// `GRAPH_APP_IDS` (required, comma-separated) and `ALLOWED_TENANT_IDS`
    /// (optional, comma-separated).
    pub(crate) fn from_env(env: &Env) -> Result<Policy, String> {
        let list = |value: String| -> Vec<String> {
            value.split(',').map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned).collect()
        };
        let app_ids = list(setting(env, "GRAPH_APP_IDS")?);
        let allowed_tenants = env.var("ALLOWED_TENANT_IDS").map(|v| list(v.to_string())).unwrap_or_default();
        Ok(Policy { app_ids, allowed_tenants })
    }
}

/// The queue consumer's retry delays from the settings.
pub(crate) struct RetryPolicy;

impl RetryPolicy {
    /// `RETRY_BASE_DELAY_SECONDS` (default 5) and `RETRY_MAX_DELAY_SECONDS`
    /// (default 300).
    pub(crate) fn from_env(env: &Env) -> crate::consumer::RetryPolicy {
        let number = |name: &str, default: u32| {
            env.var(name).ok().and_then(|v| v.to_string().trim().parse().ok()).unwrap_or(default)
        };
        crate::consumer::RetryPolicy {
            base_seconds: number("RETRY_BASE_DELAY_SECONDS", 5),
            max_seconds: number("RETRY_MAX_DELAY_SECONDS", 300),
        }
    }
}

/// Every problem of the required settings, by name, without values (for
/// `/healthz`): none once they parsed in this isolate, else each one read
/// afresh (the request path stops at the first).
pub(crate) fn problems(env: &Env) -> Vec<String> {
    if config(env).is_ok() {
        return Vec::new();
    }
    let mut problems = Vec::new();
    match setting(env, "CLIENT_STATES") {
        Ok(states) => problems.extend(ClientStates::parse(&states).err()),
        Err(missing) => problems.push(missing),
    }
    match setting(env, "FANOUT_URL") {
        Ok(urls) => problems.extend(Replicas::parse(&urls).err()),
        Err(missing) => problems.push(missing),
    }
    problems.extend(setting(env, "FANOUT_TOKEN").err());
    problems
}

/// A `[vars]` entry or a secret (`Env::var` reads both as text).
fn setting(env: &Env, name: &str) -> Result<String, String> {
    match env.var(name) {
        Ok(value) if !value.to_string().trim().is_empty() => Ok(value.to_string()),
        _ => Err(format!("{name} is not set")),
    }
}
