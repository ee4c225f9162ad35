//! `graph-relay subscriptions kinds`: the 19 kinds, from the same catalog
//! `check` and the emulator read, so writing a subscriptions file needs no
//! Microsoft page open.

use serde_json::{json, Value};

use super::catalog::{Kind, ResourceData, Template, KINDS};

/// The table as text (one block per kind) or as JSON.
pub fn render(as_json: bool) -> String {
    if as_json {
        return serde_json::to_string_pretty(&Value::Array(KINDS.iter().map(kind_json).collect())).unwrap_or_default();
    }
    KINDS.iter().map(kind_text).collect::<Vec<_>>().join("\n")
}

fn kind_text(kind: &Kind) -> String {
    let mut text = format!("{} ({})\n", kind.label, kind.resource_type);
    for template in kind.templates {
        text += &format!("  path: {}{}\n", template.path, path_details(kind, template));
    }
    text += &format!("  change types: {}\n", kind.change_types.join(", "));
    text += &format!("  maximum lifetime: {}\n", lifetime(kind));
    text += &format!("  resource data: {}\n", resource_data(kind));
    let permissions: Vec<String> = kind.permissions.iter().map(ToString::to_string).collect();
    text += &format!("  permission types: {} (least privilege: {})\n", permissions.join(", "), kind.least_permission);
    text += &format!("  lifecycle events: {}\n", kind.lifecycle_events.join(", "));
    for rule in special_rules(kind) {
        text += &format!("  rule: {rule}\n");
    }
    text
}

fn path_details(kind: &Kind, template: &Template) -> String {
    let mut details = Vec::new();
    if let Some(narrow) = template.change_types.filter(|types| *types != kind.change_types) {
        details.push(format!("change types {}", narrow.join(", ")));
    }
    if !template.aliases.is_empty() {
        details.push(format!("also spelled {}", template.aliases.join(", ")));
    }
    if template.requires_filter {
        details.push("needs a $filter".to_string());
    }
    details.push(format!("notifications name {}", template.notified));
    format!(" ({})", details.join("; "))
}

fn lifetime(kind: &Kind) -> String {
    match kind.max_lifetime_with_data_minutes {
        Some(rich) => format!("{} minutes ({rich} with resource data)", kind.max_lifetime_minutes),
        None => format!("{} minutes", kind.max_lifetime_minutes),
    }
}

fn resource_data(kind: &Kind) -> &'static str {
    match kind.resource_data {
        ResourceData::No => "no",
        ResourceData::Yes => "yes",
        ResourceData::YesWithSelect => "yes, with $select",
    }
}

fn special_rules(kind: &Kind) -> Vec<String> {
    let mut rules = Vec::new();
    if kind.teams {
        rules.push("a lifecycle URL is required beyond 1 hour".to_string());
    }
    if let Some(options) = kind.required_query_options {
        rules.push(format!("notificationQueryOptions {options:?} is required"));
    }
    if let Some(quota) = kind.quota {
        rules.push(format!("quota: {} subscriptions per {}", quota.limit, quota.scope.describe()));
    }
    if kind.templates.iter().any(|t| t.path.starts_with("/users/{id}")) {
        rules.push("/me in place of /users/{id}: delegated permissions only".to_string());
    }
    rules.extend(kind.note.map(|note| format!("note: {note}")));
    rules
}

fn kind_json(kind: &Kind) -> Value {
    let paths: Vec<Value> = kind
        .templates
        .iter()
        .map(|t| {
            json!({
                "path": t.path, "aliases": t.aliases, "changeTypes": t.change_types.unwrap_or(kind.change_types),
                "requiresFilter": t.requires_filter, "notifiedResource": t.notified,
            })
        })
        .collect();
    json!({
        "kind": kind.label, "resourceType": kind.resource_type, "paths": paths, "changeTypes": kind.change_types,
        "maxLifetimeMinutes": kind.max_lifetime_minutes, "maxLifetimeWithDataMinutes": kind.max_lifetime_with_data_minutes,
        "resourceData": resource_data(kind), "permissionTypes": kind.permissions, "leastPermission": kind.least_permission,
        "lifecycleEvents": kind.lifecycle_events, "specialRules": special_rules(kind),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_lists_every_kind_with_what_the_checker_reads() {
        let kinds: Vec<Value> = serde_json::from_str(&render(true)).unwrap();
        let labels: Vec<&str> = kinds.iter().map(|k| k["kind"].as_str().unwrap()).collect();
        let catalog: Vec<&str> = KINDS.iter().map(|k| k.label).collect();
        assert_eq!(labels, catalog);
        let print = &kinds.iter().find(|k| k["kind"] == "printTaskDefinition").unwrap()["paths"][0];
        assert_eq!(print["aliases"][0], "/print/printtaskdefinition/{id}/tasks");
        let outlook = kinds.iter().find(|k| k["kind"] == "Outlook message").unwrap();
        assert_eq!(outlook["maxLifetimeWithDataMinutes"], 1440);
        assert_eq!(outlook["permissionTypes"], json!(["delegated-work", "delegated-personal", "application"]));
    }

    #[test]
    fn the_text_shows_each_kind_s_rules() {
        let text = render(false);
        assert_eq!(text.matches("  maximum lifetime: ").count(), 19);
        assert!(text.contains("security alert (alert)\n  path: /security/alerts (needs a $filter"), "{text}");
        assert!(text.contains("rule: a lifecycle URL is required beyond 1 hour"));
        assert!(text.contains("rule: quota: 1000 subscriptions per mailbox"));
        assert!(text.contains("note: Microsoft's change-notification overview lists chat"));
    }
}
