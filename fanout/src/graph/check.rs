//! Whether Graph would accept a subscription, decided before calling it.
//!
//! Each [`Violation`] names the rule and the fix, because the person reading
//! it is editing a subscriptions file, not reading Graph's documentation.
//! The emulator answers 400 with the same messages.

use std::fmt;

use super::catalog::{self, Kind, Permission, ResourceData, MIN_LIFETIME_MINUTES};
use super::paths::{self, Match, ResourcePath};

/// What a subscription asks of Graph, in the terms the rules need.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// Graph's `resource`, with or without the leading `/`.
    pub resource: &'a str,
    /// Lower- or mixed-case changeTypes (Graph's comma list, split).
    pub change_types: Vec<String>,
    pub permission: Permission,
    pub include_resource_data: bool,
    /// Both `encryptionCertificate` and `encryptionCertificateId` are given.
    pub has_encryption_certificate: bool,
    /// Requested lifetime; `None` means "the kind's maximum".
    pub lifetime_minutes: Option<u32>,
    pub has_lifecycle_url: bool,
    pub notification_query_options: Option<&'a str>,
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Stable identifier, e.g. `change-type-unsupported`.
    pub rule: &'static str,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}; fix: {}", self.rule, self.message, self.fix)
    }
}

pub(crate) fn violation(rule: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Violation {
    Violation { rule, message: message.into(), fix: fix.into() }
}

/// The row the request resolves to, or every rule it breaks.
pub fn check(request: &Request<'_>) -> Result<&'static Kind, Vec<Violation>> {
    let path = ResourcePath::parse(request.resource);
    let Some(found) = pick(&path, request.permission) else {
        return Err(vec![unknown_resource(request.resource, &path)]);
    };
    let kind = found.kind;
    let mut violations = Vec::new();
    filter_rules(request, &path, found, &mut violations);
    permission_rules(request, &path, found, &mut violations);
    change_type_rules(request, found, &mut violations);
    resource_data_rules(request, &path, kind, &mut violations);
    lifetime_rules(request, kind, &mut violations);
    query_option_rules(request, kind, &mut violations);
    if violations.is_empty() {
        Ok(kind)
    } else {
        Err(violations)
    }
}

/// What `subscriptions check` says of an entry beside its verdict: the
/// spelling sent to Graph when the file uses another published one, and the
/// row's note where Microsoft's sources disagree.
pub fn notes(request: &Request<'_>) -> Vec<String> {
    let path = ResourcePath::parse(request.resource);
    let Some(found) = pick(&path, request.permission) else { return Vec::new() };
    let mut notes = Vec::new();
    if let Some(canonical) = found.canonical(&path) {
        notes.push(format!(
            "{:?} is the overview table's spelling; Graph's API reference spells it {canonical:?}, \
             which is what is sent to Graph",
            request.resource
        ));
    }
    notes.extend(found.kind.note.map(str::to_string));
    notes
}

/// `resource` as it is sent to Graph: in the API reference's spelling when
/// it is written in another published one, else as written.
pub fn graph_resource(resource: &str, permission: Permission) -> String {
    let path = ResourcePath::parse(resource);
    pick(&path, permission).and_then(|found| found.canonical(&path)).unwrap_or_else(|| resource.to_string())
}

/// A collection Graph notifies about only when filtered (security alerts).
fn filter_rules(request: &Request<'_>, path: &ResourcePath, found: Match, out: &mut Vec<Violation>) {
    if found.template.requires_filter && path.query_param("$filter").is_none_or(|f| f.trim().is_empty()) {
        out.push(violation(
            "filter-required",
            format!("{} subscriptions on {} need a $filter", found.kind.label, found.template.path),
            format!(
                "subscribe to one item ({}/{{id}}) or a filtered collection, e.g. {}?$filter=severity eq 'high'",
                found.template.path, request.resource
            ),
        ));
    }
}

/// OneDrive personal and business share paths: the permission decides.
fn pick(path: &ResourcePath, permission: Permission) -> Option<Match> {
    let matches = paths::resolve(path);
    matches.iter().find(|m| m.kind.permissions.contains(&permission)).or_else(|| matches.first()).copied()
}

fn unknown_resource(resource: &str, path: &ResourcePath) -> Violation {
    let is_drive = path.segments.iter().any(|s| s.eq_ignore_ascii_case("drive") || s.eq_ignore_ascii_case("drives"));
    if is_drive {
        return violation(
            "onedrive-path",
            format!("{resource:?} is not a subscribable OneDrive path"),
            "subscribe to the drive's root (/drives/{id}/root or /users/{id}/drive/root); \
             only personal OneDrive accepts folders below the root",
        );
    }
    let first = path.segments.first().map(String::as_str).unwrap_or("");
    let related: Vec<&str> = catalog::KINDS
        .iter()
        .flat_map(|k| k.templates.iter().map(|t| t.path))
        .filter(|p| p.trim_start_matches('/').split('/').next().is_some_and(|s| s.eq_ignore_ascii_case(first)))
        .collect();
    let fix = if related.is_empty() {
        "use a resource path from the table in docs/graph-protocol.md section 7".to_string()
    } else {
        format!("use one of: {}", related.join(", "))
    };
    violation("unknown-resource", format!("{resource:?} is not a resource Graph can notify about"), fix)
}

fn permission_rules(request: &Request<'_>, path: &ResourcePath, found: Match, out: &mut Vec<Violation>) {
    let kind = found.kind;
    if path.uses_me && request.permission == Permission::Application {
        out.push(violation(
            "me-requires-delegated",
            "/me is the signed-in user, and application permissions have no signed-in user",
            "use /users/{id} with application permissions, or a delegated permission type",
        ));
    }
    if kind.permissions.contains(&request.permission) {
        return;
    }
    if kind.resource_type == "driveItem" && found.template.path.contains("/items/") {
        out.push(violation(
            "onedrive-business-root-only",
            "OneDrive for Business only accepts subscriptions on the drive's root folder",
            "subscribe to /drives/{id}/root (or /users/{id}/drive/root) and filter folders on the receiving side",
        ));
        return;
    }
    let allowed: Vec<String> = kind.permissions.iter().map(ToString::to_string).collect();
    out.push(violation(
        "permission-unsupported",
        format!("{} cannot be subscribed to with {} permissions", kind.label, request.permission),
        format!("use permission = {:?} (least privilege: {})", allowed.join(" or "), kind.least_permission),
    ));
}

fn change_type_rules(request: &Request<'_>, found: Match, out: &mut Vec<Violation>) {
    let allowed = found.change_types();
    if request.change_types.is_empty() {
        out.push(violation(
            "change-type-missing",
            "no changeType given",
            format!("give one or more of: {}", allowed.join(", ")),
        ));
    }
    for change_type in &request.change_types {
        let lower = change_type.trim().to_ascii_lowercase();
        if !["created", "updated", "deleted"].contains(&lower.as_str()) {
            out.push(violation(
                "change-type-unknown",
                format!("{change_type:?} is not a changeType"),
                "use created, updated or deleted",
            ));
        } else if !allowed.contains(&lower.as_str()) {
            out.push(violation(
                "change-type-unsupported",
                format!("{} ({}) does not support changeType {lower:?}", found.kind.label, found.template.path),
                format!("use only: {}", allowed.join(", ")),
            ));
        }
    }
}

fn resource_data_rules(request: &Request<'_>, path: &ResourcePath, kind: &Kind, out: &mut Vec<Violation>) {
    if !request.include_resource_data {
        return;
    }
    if kind.resource_data == ResourceData::No {
        out.push(violation(
            "resource-data-unsupported",
            format!("{} notifications cannot include resource data", kind.label),
            "set include_resource_data = false and read the resource with a GET when notified",
        ));
        return;
    }
    if !request.has_encryption_certificate {
        out.push(violation(
            "encryption-certificate-required",
            "includeResourceData needs an encryption certificate and its id",
            "set encryption_certificate (PEM file) and encryption_certificate_id",
        ));
    }
    if kind.resource_data == ResourceData::YesWithSelect && path.query_param("$select").is_none_or(str::is_empty) {
        out.push(violation(
            "select-required",
            format!("{} rich notifications need the properties listed with $select", kind.label),
            format!("append ?$select=... to the resource, e.g. {}?$select=id,subject", request.resource),
        ));
    }
}

fn lifetime_rules(request: &Request<'_>, kind: &Kind, out: &mut Vec<Violation>) {
    let max = kind.max_lifetime_minutes(request.include_resource_data);
    let lifetime = request.lifetime_minutes.unwrap_or(max);
    if lifetime > max {
        out.push(violation(
            "lifetime-too-long",
            format!("{} subscriptions live at most {max} minutes, {lifetime} requested", kind.label),
            format!("set lifetime to {max}m or less (the relay renews before expiry anyway)"),
        ));
    }
    if kind.teams && !request.has_lifecycle_url && lifetime > catalog::TEAMS_WITHOUT_LIFECYCLE_MAX_MINUTES {
        out.push(violation(
            "lifecycle-url-required",
            format!("{} subscriptions beyond 1 hour need a lifecycleNotificationUrl", kind.label),
            "set [edge] lifecycle_notification_url, or lifetime = \"1h\"",
        ));
    }
}

fn query_option_rules(request: &Request<'_>, kind: &Kind, out: &mut Vec<Violation>) {
    let given = request.notification_query_options.map(str::trim).filter(|s| !s.is_empty());
    match (kind.required_query_options, given) {
        (Some(required), None) => out.push(violation(
            "query-options-required",
            format!("{} subscriptions need notificationQueryOptions", kind.label),
            format!("set notification_query_options = {required:?}"),
        )),
        (Some(required), Some(given)) if !given.eq_ignore_ascii_case(required) => out.push(violation(
            "query-options-unsupported",
            format!("{} accepts only notificationQueryOptions {required:?}, not {given:?}", kind.label),
            format!("set notification_query_options = {required:?}"),
        )),
        (None, Some(given)) => out.push(violation(
            "query-options-unsupported",
            format!("{} does not accept notificationQueryOptions ({given:?})", kind.label),
            "remove notification_query_options (only Universal Print uses it)",
        )),
        _ => {}
    }
}

/// A lifetime Graph would silently raise: worth refusing in a file.
pub fn lifetime_below_minimum(lifetime_minutes: u32) -> Option<Violation> {
    (lifetime_minutes < MIN_LIFETIME_MINUTES).then(|| {
        violation(
            "lifetime-too-short",
            format!("{lifetime_minutes} minutes is below Graph's {MIN_LIFETIME_MINUTES}-minute minimum"),
            format!("set lifetime to {MIN_LIFETIME_MINUTES}m or more, or leave it out for the maximum"),
        )
    })
}
