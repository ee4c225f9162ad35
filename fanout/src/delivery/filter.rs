//! Subscription filters: which notifications a subscriber receives.
//!
//! A `graphrelay.v1.Filter` is compiled once per subscriber, then matched
//! against every published notification, so matching must be cheap: globs are
//! compiled into one `GlobSet`, and the other lists are short and lower-cased
//! up front.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use graph_relay_proto::v1::{self as pb, event::Payload};
use thiserror::Error;

use graph_relay_log::route::{Kind, Route};

/// Bounds a subscriber's filter so one client cannot make matching expensive.
pub const MAX_VALUES_PER_FIELD: usize = 256;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FilterError {
    #[error("filter.resources: {pattern:?} is not a valid glob: {reason}")]
    BadGlob { pattern: String, reason: String },
    #[error("filter.{field} has more than {MAX_VALUES_PER_FIELD} values")]
    TooManyValues { field: &'static str },
}

/// A compiled filter. Every non-empty field must match; within a field, any
/// value may.
#[derive(Debug, Default)]
pub struct Filter {
    /// Globs over the resource path (no leading `/`), case-insensitive.
    resources: Option<GlobSet>,
    /// Lower-cased; only constrains change notifications.
    change_types: Vec<String>,
    /// Lower-cased; only constrains lifecycle notifications.
    lifecycle_events: Vec<String>,
    /// Lower-cased GUIDs (Graph is not consistent about their case).
    subscription_ids: Vec<String>,
    tenant_ids: Vec<String>,
    /// The subscriber's access scope, which every event must ALSO match.
    scope: Option<Box<Filter>>,
}

impl Filter {
    /// Compiles the request's filter; `None` matches everything.
    pub fn compile(filter: Option<&pb::Filter>) -> Result<Self, FilterError> {
        let Some(filter) = filter else { return Ok(Self::default()) };
        Ok(Self {
            resources: compile_globs(&filter.resources)?,
            change_types: lowered("change_types", &filter.change_types)?,
            lifecycle_events: lowered("lifecycle_events", &filter.lifecycle_events)?,
            subscription_ids: lowered("subscription_ids", &filter.subscription_ids)?,
            tenant_ids: lowered("tenant_ids", &filter.tenant_ids)?,
            scope: None,
        })
    }

    /// This filter, restricted to what `scope` allows.
    pub fn within(self, scope: Filter) -> Self {
        Self { scope: Some(Box::new(scope)), ..self }
    }

    /// Whether a subscriber with this filter gets the event.
    pub fn matches(&self, payload: &Payload) -> bool {
        self.admits(&Route::of(payload))
    }

    /// Whether a subscriber with this filter gets an event with this route.
    /// A `Gap` always passes: a subscriber must learn about what it cannot be
    /// given.
    pub fn admits(&self, route: &Route<'_>) -> bool {
        let kind_ok = match route.kind {
            Kind::Change(change_type) => any(&self.change_types, change_type),
            Kind::Lifecycle(lifecycle_event) => any(&self.lifecycle_events, lifecycle_event),
            Kind::Gap => return true,
        };
        kind_ok
            && any(&self.subscription_ids, route.subscription_id)
            && any(&self.tenant_ids, route.tenant_id)
            && self.resource_matches(route.resource)
            && self.scope.as_ref().is_none_or(|scope| scope.admits(route))
    }

    /// Whether every event matches (no criterion here nor in the scope): a
    /// replaying subscriber then needs no decoding to decide.
    pub fn is_everything(&self) -> bool {
        self.resources.is_none()
            && self.change_types.is_empty()
            && self.lifecycle_events.is_empty()
            && self.subscription_ids.is_empty()
            && self.tenant_ids.is_empty()
            && self.scope.as_ref().is_none_or(|scope| scope.is_everything())
    }

    /// The tenants this filter is limited to (lowercased), or `None` when it
    /// takes any tenant: lets the hub route an event to the feeds that can
    /// match it instead of trying every feed (as NATS routes by subject).
    pub fn tenants(&self) -> Option<&[String]> {
        (!self.tenant_ids.is_empty()).then_some(self.tenant_ids.as_slice())
    }

    fn resource_matches(&self, resource: &str) -> bool {
        match &self.resources {
            None => true,
            Some(_) if resource.is_empty() => false,
            Some(globs) => {
                let resource = resource.trim_start_matches('/');
                globs.is_match(resource) || (resource.contains('(') && globs.is_match(slash_form(resource).as_str()))
            }
        }
    }
}

/// Graph's OData key segments as path segments: `teams('t1')/channels('c1')`
/// reads as `teams/t1/channels/c1`, so a filter written in the slash form of
/// the subscription paths (`teams/*/channels/*/messages/*`) matches the
/// resources Graph sends for Teams, chats, call records and conversations
/// (docs/subscriptions.md, "Filters and Graph's resource forms").
pub fn slash_form(resource: &str) -> String {
    let mut out = String::with_capacity(resource.len());
    for (index, segment) in resource.split('/').enumerate() {
        if index > 0 {
            out.push('/');
        }
        match segment.split_once('(') {
            Some((name, key)) if segment.ends_with(')') => {
                out.push_str(name);
                out.push('/');
                out.push_str(key.trim_end_matches(')').trim_matches('\''));
            }
            _ => out.push_str(segment),
        }
    }
    out
}

/// An empty list allows anything; otherwise `value` must be in it.
fn any(allowed: &[String], value: &str) -> bool {
    allowed.is_empty() || allowed.iter().any(|a| a.eq_ignore_ascii_case(value))
}

fn lowered(field: &'static str, values: &[String]) -> Result<Vec<String>, FilterError> {
    if values.len() > MAX_VALUES_PER_FIELD {
        return Err(FilterError::TooManyValues { field });
    }
    Ok(values.iter().map(|v| v.trim().to_ascii_lowercase()).filter(|v| !v.is_empty()).collect())
}

fn compile_globs(patterns: &[String]) -> Result<Option<GlobSet>, FilterError> {
    if patterns.len() > MAX_VALUES_PER_FIELD {
        return Err(FilterError::TooManyValues { field: "resources" });
    }
    let patterns: Vec<&str> =
        patterns.iter().map(|p| p.trim().trim_start_matches('/')).filter(|p| !p.is_empty()).collect();
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = GlobBuilder::new(pattern)
            .case_insensitive(true)
            .literal_separator(true)
            .build()
            .map_err(|e| FilterError::BadGlob { pattern: pattern.to_owned(), reason: e.kind().to_string() })?;
        set.add(glob);
    }
    set.build()
        .map(Some)
        .map_err(|e| FilterError::BadGlob { pattern: e.glob().unwrap_or("").to_owned(), reason: e.kind().to_string() })
}

#[cfg(test)]
#[path = "filter_tests.rs"]
mod tests;
