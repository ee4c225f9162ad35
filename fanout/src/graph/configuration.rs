//! A subscriptions file made ready for a reconciler: read, checked like
//! `subscriptions check` does, and what follows from it (each entry's kind,
//! the clientState, the encryption certificates) worked out, so a file that
//! fails is refused before anything changes.

use std::collections::HashMap;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::catalog::Kind;
use super::client::GraphClient;
use super::credentials::Credentials;
use super::plan::Plan;

/// A checked subscriptions file and the Graph client it configures.
pub struct Configuration {
    pub(crate) plan: Plan,
    pub(crate) graph: GraphClient,
    pub(crate) derived: Derived,
}

/// Reads and checks `path` as `serve` does at start.
pub fn load(path: &Path) -> Result<Configuration, String> {
    let plan = Plan::load(path).map_err(|e| e.to_string())?;
    let findings = plan.check();
    if !findings.is_empty() {
        let names: Vec<String> = findings.iter().map(|f| format!("{} [{}]", f.entry, f.violation.rule)).collect();
        return Err(format!(
            "{}: {} problems ({}); `graph-relay subscriptions check {}` explains them",
            path.display(),
            findings.len(),
            names.join(", "),
            path.display()
        ));
    }
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let credentials = Credentials::load(&plan.graph, &plan.base_dir, http.clone()).map_err(|e| e.to_string())?;
    let graph = GraphClient::new(&plan.graph.base_url, http, credentials);
    let derived = Derived::of(&plan)?;
    Ok(Configuration { plan, graph, derived })
}

/// What a plan decides beyond its entries: each entry's kind, the
/// clientState, the encryption certificates.
pub(crate) struct Derived {
    pub(crate) kinds: HashMap<String, &'static Kind>,
    pub(crate) client_state: String,
    /// Entry name -> base64 DER of its encryption certificate.
    pub(crate) certificates: HashMap<String, String>,
}

impl Derived {
    pub(crate) fn of(plan: &Plan) -> Result<Derived, String> {
        let var = &plan.edge.client_state_env;
        let client_state = std::env::var(var)
            .map_err(|_| format!("environment variable {var} (the edge's clientState) is not set"))?;
        let mut certificates = HashMap::new();
        for entry in plan.subscriptions.iter().filter(|e| e.include_resource_data) {
            if let Some(path) = &entry.encryption_certificate {
                let der = super::credentials::certificate_der(&plan.resolve(path))?;
                certificates.insert(entry.name.clone(), STANDARD.encode(der));
            }
        }
        Ok(Derived { kinds: plan.kinds(), client_state, certificates })
    }
}
