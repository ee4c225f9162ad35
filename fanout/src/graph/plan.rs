//! The subscriptions file: what the company wants Graph to notify it about.
//!
//! ```toml
//! [graph]
//! tenant_id = "..."; client_id = "..."; client_secret_env = "GRAPH_CLIENT_SECRET"
//! [edge]
//! notification_url = "https://relay.example.com/graph/notifications"
//! lifecycle_notification_url = "https://relay.example.com/graph/lifecycle"
//! client_state_env = "GRAPH_RELAY_CLIENT_STATE"
//! [[subscription]]
//! name = "inbox"; resource = "/users/{id}/messages"; change_types = ["created"]
//! ```
//! Secrets are named by environment variable, never written in the file.
//! Relative paths are relative to the file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::catalog::{Kind, Permission};
use super::check::{self, Request, Violation};

pub const DEFAULT_GRAPH_URL: &str = "https://graph.microsoft.com/v1.0";
pub const DEFAULT_LOGIN_URL: &str = "https://login.microsoftonline.com";

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
}

/// Where and as whom to call Graph.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphSettings {
    pub tenant_id: String,
    pub client_id: String,
    /// Graph's base URL (the emulator's, in development).
    #[serde(default = "default_graph_url")]
    pub base_url: String,
    /// The identity platform's base URL.
    #[serde(default = "default_login_url")]
    pub login_url: String,
    /// Environment variable holding the client secret (application permissions).
    pub client_secret_env: Option<String>,
    /// Certificate (PEM) and private key (PEM) for certificate credentials.
    pub certificate: Option<PathBuf>,
    pub certificate_key: Option<PathBuf>,
    /// Where `graph-relay login` keeps delegated refresh tokens (mode 0600).
    pub token_file: Option<PathBuf>,
    /// How often Graph's list of subscriptions is compared with the state, to
    /// recreate subscriptions deleted on Graph's side without notice.
    #[serde(default = "default_verify_interval", with = "humantime_serde_opt")]
    pub verify_interval: Option<Duration>,
}

fn default_verify_interval() -> Option<Duration> {
    Some(Duration::from_secs(3600))
}

fn default_graph_url() -> String {
    DEFAULT_GRAPH_URL.into()
}
fn default_login_url() -> String {
    DEFAULT_LOGIN_URL.into()
}

/// The edge, as Graph must call it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeSettings {
    pub notification_url: String,
    pub lifecycle_notification_url: Option<String>,
    /// Environment variable holding one of the edge's accepted clientState values.
    pub client_state_env: String,
}

/// One wanted subscription.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Stable name: the reconciler's key, so resources can be edited in place.
    pub name: String,
    pub resource: String,
    pub change_types: Vec<String>,
    pub permission: Permission,
    #[serde(default)]
    pub include_resource_data: bool,
    pub encryption_certificate: Option<PathBuf>,
    pub encryption_certificate_id: Option<String>,
    /// Shorter than the kind's maximum, e.g. "2d" (default: the maximum).
    #[serde(default, with = "humantime_serde_opt")]
    pub lifetime: Option<Duration>,
    pub notification_query_options: Option<String>,
}

mod humantime_serde_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else { return Ok(None) };
        humantime::parse_duration(&text).map(Some).map_err(serde::de::Error::custom)
    }
}

impl Entry {
    /// The requested lifetime in whole minutes (rounded down).
    pub fn lifetime_minutes(&self) -> Option<u32> {
        self.lifetime.map(|d| u32::try_from(d.as_secs() / 60).unwrap_or(u32::MAX))
    }

    pub fn check_request(&self, edge: &EdgeSettings) -> Request<'_> {
        Request {
            resource: &self.resource,
            change_types: self.change_types.clone(),
            permission: self.permission,
            include_resource_data: self.include_resource_data,
            has_encryption_certificate: self.encryption_certificate.is_some()
                && self.encryption_certificate_id.is_some(),
            lifetime_minutes: self.lifetime_minutes(),
            has_lifecycle_url: edge.lifecycle_notification_url.is_some(),
            notification_query_options: self.notification_query_options.as_deref(),
        }
    }

    /// Graph's 409 identity: the same resource and changeTypes.
    pub fn graph_identity(&self) -> (String, Vec<String>) {
        super::subscription_identity(&self.graph_resource(), &self.change_types.join(","))
    }

    /// The resource as sent to Graph (the API reference's spelling of it).
    pub fn graph_resource(&self) -> String {
        super::check::graph_resource(&self.resource, self.permission)
    }
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub graph: GraphSettings,
    pub edge: EdgeSettings,
    #[serde(default, rename = "subscription")]
    pub subscriptions: Vec<Entry>,
    /// The file's directory, for relative paths.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// What `subscriptions check` found wrong with one entry (or the file).
#[derive(Debug)]
pub struct Finding {
    /// The entry's name, or `[graph]`/`[edge]` for file-level settings.
    pub entry: String,
    pub violation: Violation,
}

impl Plan {
    pub fn load(path: &Path) -> Result<Plan, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read { path: path.into(), source })?;
        let mut plan: Plan = toml::from_str(&text).map_err(|source| PlanError::Parse { path: path.into(), source })?;
        plan.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(plan)
    }

    /// A path from the file, resolved against the file's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.base_dir.join(path)
    }

    /// Every rule every entry breaks; empty means Graph should accept them all.
    pub fn check(&self) -> Vec<Finding> {
        let mut findings = self.settings_findings();
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut identities = HashMap::new();
        for entry in &self.subscriptions {
            let mut push = |violation| findings.push(Finding { entry: entry.name.clone(), violation });
            *names.entry(&entry.name).or_default() += 1;
            if names[entry.name.as_str()] == 2 {
                push(check::violation(
                    "duplicate-name",
                    format!("name {:?} is used twice", entry.name),
                    "give every entry its own name",
                ));
            }
            if let Some(first) = identities.insert(entry.graph_identity(), entry.name.clone()) {
                push(check::violation(
                    "duplicate-subscription",
                    format!("same resource and changeTypes as {first:?}: Graph would answer 409"),
                    "merge the two entries",
                ));
            }
            if let Err(violations) = check::check(&entry.check_request(&self.edge)) {
                violations.into_iter().for_each(&mut push);
            }
            if let Some(v) = entry.lifetime_minutes().and_then(check::lifetime_below_minimum) {
                push(v);
            }
            if entry.include_resource_data {
                if let Some(cert) = &entry.encryption_certificate {
                    if let Err(e) = std::fs::read(self.resolve(cert)) {
                        push(check::violation(
                            "encryption-certificate-unreadable",
                            format!("{}: {e}", self.resolve(cert).display()),
                            "point encryption_certificate at the PEM certificate whose key the fan-out holds",
                        ));
                    }
                }
            }
        }
        findings
    }

    fn settings_findings(&self) -> Vec<Finding> {
        let mut findings = Vec::new();
        let urls = std::iter::once(("notification_url", Some(&self.edge.notification_url)))
            .chain(std::iter::once(("lifecycle_notification_url", self.edge.lifecycle_notification_url.as_ref())));
        for (name, url) in urls {
            let Some(url) = url else { continue };
            if !(url.starts_with("https://") || is_loopback_http(url)) {
                findings.push(Finding {
                    entry: "[edge]".into(),
                    violation: check::violation(
                        "https-required",
                        format!("{name} {url:?} is not https"),
                        "Graph only calls https URLs: use the worker's https address",
                    ),
                });
            }
        }
        if self.graph.verify_interval.is_some_and(|interval| interval < std::time::Duration::from_secs(1)) {
            findings.push(Finding {
                entry: "[graph]".into(),
                violation: check::violation(
                    "verify-interval-too-short",
                    format!(
                        "verify_interval {:?} would list Graph's subscriptions back to back",
                        self.graph.verify_interval.unwrap_or_default()
                    ),
                    "use at least \"1s\" (the default is \"1h\")",
                ),
            });
        }
        let application = self.subscriptions.iter().any(|e| e.permission == Permission::Application);
        let has_app_credential = self.graph.client_secret_env.is_some() || self.graph.certificate.is_some();
        if application && !has_app_credential {
            findings.push(Finding {
                entry: "[graph]".into(),
                violation: check::violation(
                    "credentials-required",
                    "application permissions need a client secret or certificate",
                    "set client_secret_env, or certificate and certificate_key",
                ),
            });
        }
        findings
    }

    /// The row each entry resolves to (entries that fail `check` are left out).
    pub fn kinds(&self) -> HashMap<String, &'static Kind> {
        self.subscriptions
            .iter()
            .filter_map(|e| check::check(&e.check_request(&self.edge)).ok().map(|k| (e.name.clone(), k)))
            .collect()
    }
}

/// The emulator and `make dev` run on plain http on loopback.
fn is_loopback_http(url: &str) -> bool {
    ["http://127.0.0.1", "http://localhost", "http://[::1]"].iter().any(|p| url.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "[graph]\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret_env = \"S\"\n\
        [edge]\nnotification_url = \"https://relay.example.com/n\"\nlifecycle_notification_url = \"https://relay.example.com/l\"\n\
        client_state_env = \"X\"\n";

    fn plan(entries: &str) -> Plan {
        toml::from_str(&format!("{HEAD}{entries}")).unwrap()
    }

    #[test]
    fn defaults_point_at_microsoft() {
        let plan = plan("");
        assert_eq!(plan.graph.base_url, DEFAULT_GRAPH_URL);
        assert_eq!(plan.graph.login_url, DEFAULT_LOGIN_URL);
        assert_eq!(plan.graph.verify_interval, Some(Duration::from_secs(3600)));
    }

    #[test]
    fn a_verify_interval_under_a_second_is_refused_with_its_fix() {
        let mut p = plan("");
        p.graph.verify_interval = Some(Duration::ZERO);
        let rules: Vec<&str> = p.check().iter().map(|f| f.violation.rule).collect();
        assert_eq!(rules, ["verify-interval-too-short"]);
        p.graph.verify_interval = Some(Duration::from_secs(1));
        assert!(p.check().is_empty());
    }

    #[test]
    fn lifetimes_are_human_and_checked_against_the_minimum() {
        let p = plan("[[subscription]]\nname = \"u\"\nresource = \"/users\"\nchange_types = [\"updated\"]\npermission = \"application\"\nlifetime = \"30m\"\n");
        assert_eq!(p.subscriptions[0].lifetime_minutes(), Some(30));
        let rules: Vec<&str> = p.check().iter().map(|f| f.violation.rule).collect();
        assert_eq!(rules, ["lifetime-too-short"]);
    }

    #[test]
    fn unknown_keys_and_bad_permissions_are_refused_when_parsing() {
        let typo = format!("{HEAD}[[subscription]]\nname = \"u\"\nresource = \"/users\"\nchange_type = [\"updated\"]\npermission = \"application\"\n");
        assert!(toml::from_str::<Plan>(&typo).unwrap_err().to_string().contains("change_type"));
        let bad = format!("{HEAD}[[subscription]]\nname = \"u\"\nresource = \"/users\"\nchange_types = [\"updated\"]\npermission = \"admin\"\n");
        assert!(toml::from_str::<Plan>(&bad).is_err());
    }

    #[test]
    fn duplicates_are_found_before_graph_answers_409() {
        let entry = "[[subscription]]\nname = \"a\"\nresource = \"/users\"\nchange_types = [\"updated\"]\npermission = \"application\"\n";
        let p = plan(&format!("{entry}{}", entry.replace("\"a\"", "\"b\"").replace("\"/users\"", "\"users\"")));
        let findings = p.check();
        let rules: Vec<(&str, &str)> = findings.iter().map(|f| (f.entry.as_str(), f.violation.rule)).collect();
        assert_eq!(rules, [("b", "duplicate-subscription")]);
        let same_name = plan(&format!("{entry}{}", entry.replace("\"/users\"", "\"/groups\"")));
        assert_eq!(same_name.check()[0].violation.rule, "duplicate-name");
    }
}
