//! `graph-relay emulate`: a local stand-in for Microsoft Graph's
//! subscription API and the Microsoft identity platform, faithful to the
//! documented behaviour (docs/graph-protocol.md), so the whole relay can be run and
//! tested without a tenant.
//!
//! # Layout
//! - [`identity`]: token endpoint (client secret, certificate assertion,
//!   device code, refresh), the JWKS its validationTokens are signed with.
//! - [`api`]: `/v1.0/subscriptions`: the same rules as Graph, the validation
//!   handshake during creation, expiry.
//! - [`delivery`]: POSTs to the edge, retries like Graph, acknowledgement
//!   latency and the slow/drop state Graph would assign.
//! - [`samples`]: realistic notifications per resource kind, encrypted and
//!   signed for rich subscriptions.
//! - [`control`]: `/emulator/...`: trigger notifications and lifecycle events,
//!   approve device codes, inject faults, inspect state.
//! - [`remote`]: the same from the command line.

// Handlers return a ready HTTP answer as their error; boxing it buys nothing here.
#![allow(clippy::result_large_err)]

pub(crate) mod api;
pub(crate) mod control;
pub(crate) mod delivery;
pub(crate) mod errors;
pub(crate) mod identity;
pub(crate) mod samples;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;

/// How the emulator is set up (`graph-relay emulate` flags).
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub listen: SocketAddr,
    pub tenant_id: String,
    /// The one app registration it knows.
    pub client_id: String,
    pub client_secret: Option<String>,
    /// The app's certificate (PEM), for certificate client assertions.
    pub client_certificate: Option<PathBuf>,
    /// Every subscription expires this long after creation or renewal, as if
    /// each kind's maximum were this short (tests of renewal); `None`: Graph's.
    pub lifetime_override: Option<Duration>,
    /// At most this many subscriptions for the app before 403, on top of
    /// each kind's own quota (`catalog::Quota`); `None`: only those.
    pub quota: Option<usize>,
    /// The first retry's delay after a failed delivery (Graph: ~10 s); doubles.
    pub retry_base_delay: Duration,
}

/// Everything the emulator remembers; small, so one lock.
#[derive(Default)]
pub struct World {
    pub subscriptions: HashMap<String, api::Subscription>,
    pub identity: identity::Grants,
    pub deliveries: delivery::Stats,
    /// Graph API calls that will fail next: (status, Retry-After seconds).
    pub faults: Vec<(u16, u64)>,
    /// Things a test may want to count: renewals that came too late, etc.
    pub counters: HashMap<String, u64>,
}

impl World {
    pub fn count(&mut self, what: &str) {
        *self.counters.entry(what.to_string()).or_default() += 1;
    }
}

/// Shared by every handler.
#[derive(Clone)]
pub struct Emulator {
    pub config: Arc<EmulatorConfig>,
    pub world: Arc<Mutex<World>>,
    pub keys: Arc<identity::SigningKeys>,
    /// Calls the edge (handshakes and notifications).
    pub http: reqwest::Client,
    /// The emulator's own base URL, once bound.
    pub base_url: Arc<str>,
    /// The public key of `config.client_certificate`, read once at start.
    pub client_key: Option<Arc<rsa::RsaPublicKey>>,
}

impl Emulator {
    pub fn world(&self) -> MutexGuard<'_, World> {
        // A poisoned lock means a handler panicked mid-update; the state is
        // still the best we have, and the emulator is a test tool.
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs the emulator until `shutdown` resolves.
pub async fn run(
    config: EmulatorConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let address = listener.local_addr()?;
    let keys = identity::SigningKeys::generate()?;
    let http = reqwest::Client::builder().timeout(delivery::ATTEMPT_TIMEOUT).build()?;
    let client_key = match &config.client_certificate {
        Some(path) => Some(Arc::new(api::rsa_public_key(&crate::graph::credentials::certificate_der(path)?)?)),
        None => None,
    };
    let emulator = Emulator {
        client_key,
        config: Arc::new(config),
        world: Arc::default(),
        keys: Arc::new(keys),
        http,
        base_url: format!("http://{address}").into(),
    };
    tokio::spawn(api::expire_loop(emulator.clone()));
    // Tools and tests wait for this exact line.
    eprintln!("graph-relay emulate listening on {address}");
    axum::serve(listener, router(emulator)).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

fn router(emulator: Emulator) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(identity::token))
        .route("/{tenant}/oauth2/v2.0/devicecode", post(identity::device_code))
        .route("/common/discovery/v2.0/keys", get(identity::jwks))
        .route("/v1.0/subscriptions", post(api::create).get(api::list))
        .route("/v1.0/subscriptions/{id}", get(api::get).patch(api::renew).delete(api::delete))
        .route("/v1.0/subscriptions/{id}/reauthorize", post(api::reauthorize))
        .route("/emulator/trigger", post(control::trigger))
        .route("/emulator/lifecycle", post(control::lifecycle))
        .route("/emulator/device/approve", post(control::approve_device))
        .route("/emulator/faults", post(control::faults))
        .route("/emulator/subscriptions/{id}/remove", post(control::remove))
        .route("/emulator/state", get(control::state))
        .with_state(emulator)
}
