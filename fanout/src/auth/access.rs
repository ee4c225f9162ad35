//! Who may subscribe, and to what.
//!
//! Subscribers present `authorization: Bearer <token>`. Tokens are configured
//! only as SHA-256 digests (`graph-relay hash-token`) and compared in constant
//! time against every configured digest. Each token carries a scope: tenants,
//! resource globs, and whether it may receive decrypted resource data.
//!
//! A filter that reaches outside the scope is `PERMISSION_DENIED`; an empty
//! filter field is narrowed to the scope. The scope is ALSO applied to every
//! event at delivery, so no filter, however clever, sees beyond it.

use std::path::Path;

use globset::{GlobBuilder, GlobSetBuilder};
use graph_relay_proto::v1 as pb;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use tonic::metadata::MetadataMap;
use tonic::Status;

use crate::delivery::filter::Filter;

/// What one subscriber token allows.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Names the subscriber in logs (never the token).
    pub name: String,
    /// Tenant ids it may see; empty means every tenant.
    #[serde(default)]
    pub tenants: Vec<String>,
    /// Resource globs it may see (same syntax as filters); empty means all.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Whether it receives decrypted resource data of rich notifications.
    #[serde(default)]
    pub decrypted_data: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(flatten)]
    scope: Scope,
    /// Hex SHA-256 of the token.
    token_sha256: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default, rename = "subscriber")]
    subscribers: Vec<Entry>,
}

/// The configured subscriber tokens.
#[derive(Default)]
pub struct Access {
    entries: Vec<([u8; 32], Scope)>,
}

/// Names only: digests stay out of logs too.
impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.entries.iter().map(|(_, scope)| &scope.name)).finish()
    }
}

impl Access {
    /// Reads a subscribers file (TOML, `[[subscriber]]` tables).
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file: File = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut access = Access::default();
        for entry in file.subscribers {
            let digest = hex_digest(&entry.token_sha256)
                .ok_or_else(|| format!("subscriber {:?}: token_sha256 must be 64 hex digits", entry.scope.name))?;
            entry.scope.check().map_err(|e| format!("{}: subscriber {:?}: {e}", path.display(), entry.scope.name))?;
            Filter::compile(Some(&scope_filter(&entry.scope)))
                .map_err(|e| format!("subscriber {:?}: {e}", entry.scope.name))?;
            access.entries.push((digest, entry.scope));
        }
        Ok(access)
    }

    /// Adds a token with every right (the single-team and `make dev` case).
    pub fn add_full_access(&mut self, name: &str, token: &str) {
        self.add_full_access_digest(name, Sha256::digest(token.trim().as_bytes()).into());
    }

    /// [`Access::add_full_access`] for a token known only by its digest.
    pub fn add_full_access_digest(&mut self, name: &str, digest: [u8; 32]) {
        let scope = Scope { name: name.into(), decrypted_data: true, ..Scope::default() };
        self.entries.push((digest, scope));
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many tokens are configured.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The scope of the presented bearer token, or `UNAUTHENTICATED`.
    pub fn authenticate(&self, metadata: &MetadataMap) -> Result<&Scope, Status> {
        self.identify(metadata).map(|(_, scope)| scope)
    }

    /// The presented token's digest (what a reload checks again) and scope.
    pub fn identify(&self, metadata: &MetadataMap) -> Result<([u8; 32], &Scope), Status> {
        let token = crate::auth::bearer(metadata)?;
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let scope = self.scope_of(&presented).ok_or_else(|| Status::unauthenticated("unknown subscriber token"))?;
        Ok((presented, scope))
    }

    /// The scope of the token with this digest; every digest is compared,
    /// in constant time.
    pub fn scope_of(&self, presented: &[u8; 32]) -> Option<&Scope> {
        let mut found = None;
        for (index, (digest, _)) in self.entries.iter().enumerate() {
            let equal: Choice = digest.ct_eq(presented);
            if bool::from(equal) && found.is_none() {
                found = Some(index);
            }
        }
        found.map(|i| &self.entries[i].1)
    }
}

impl Scope {
    /// Refuses scope values that name nothing: an empty tenant or a resource
    /// pattern of nothing but `/` would be read as "no restriction" further
    /// on, so a typo would open the scope instead of closing it.
    fn check(&self) -> Result<(), String> {
        if let Some(index) = self.tenants.iter().position(|t| t.trim().is_empty()) {
            return Err(format!(
                "tenants[{index}] is empty: name a tenant id, or leave out `tenants` for every tenant"
            ));
        }
        if let Some(index) = self.resources.iter().position(|r| r.trim().trim_matches('/').is_empty()) {
            return Err(format!(
                "resources[{index}] {:?} names no resource: write a path glob such as \"users/*/messages/*\", \
                 or leave out `resources` for every resource",
                self.resources[index]
            ));
        }
        Ok(())
    }

    /// Narrows empty filter fields to the scope; refuses what reaches out.
    pub fn authorize(&self, filter: &mut pb::Filter) -> Result<(), Status> {
        let deny = |what: String| Status::permission_denied(format!("subscriber {:?} may not see {what}", self.name));
        if !self.tenants.is_empty() {
            if filter.tenant_ids.is_empty() {
                filter.tenant_ids = self.tenants.clone();
            } else if let Some(tenant) =
                filter.tenant_ids.iter().find(|t| !self.tenants.iter().any(|s| s.eq_ignore_ascii_case(t)))
            {
                return Err(deny(format!("tenant {tenant}")));
            }
        }
        if !self.resources.is_empty() {
            if filter.resources.is_empty() {
                filter.resources = self.resources.clone();
            } else if let Some(pattern) = filter.resources.iter().find(|p| !self.contains_pattern(p)) {
                return Err(deny(format!("resources {pattern:?}")));
            }
        }
        Ok(())
    }

    /// The scope as a filter, applied to every event at delivery.
    pub fn filter(&self) -> Filter {
        Filter::compile(Some(&scope_filter(self))).unwrap_or_default()
    }

    /// A requested glob is inside the scope when a scope glob matches its
    /// text: `users/abc/messages/*` is inside `users/*/messages/*`, `users/**`
    /// is not. (Delivery-time checks make this a courtesy, not the guard.)
    fn contains_pattern(&self, requested: &str) -> bool {
        let mut set = GlobSetBuilder::new();
        for pattern in &self.resources {
            if let Ok(glob) =
                GlobBuilder::new(pattern.trim_start_matches('/')).case_insensitive(true).literal_separator(true).build()
            {
                set.add(glob);
            }
        }
        set.build().is_ok_and(|set| set.is_match(requested.trim().trim_start_matches('/')))
    }
}

fn scope_filter(scope: &Scope) -> pb::Filter {
    pb::Filter { tenant_ids: scope.tenants.clone(), resources: scope.resources.clone(), ..Default::default() }
}

fn hex_digest(hex: &str) -> Option<[u8; 32]> {
    let mut digest = [0u8; 32];
    let decoded = base16ct::mixed::decode(hex.trim(), &mut digest).ok()?.len();
    (decoded == digest.len()).then_some(digest)
}

/// Hex SHA-256 of a token, as the subscribers file wants it.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.trim().as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;
