//! The 19 kinds of Graph resource that accept change-notification
//! subscriptions (docs/graph-protocol.md section 7), as data.
//!
//! Both the subscriptions checker and the Graph emulator read this one table,
//! so what `graph-relay subscriptions check` refuses is exactly what the
//! emulator answers 400 to.
//!
//! Deviation from the seed table: it lists `chat` under no permission type,
//! which would make the Teams chat row unusable; Microsoft's documentation
//! supports chat with delegated (work or school) and application permissions,
//! so this table does too.

use std::fmt;

/// How the app is authorised to read the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Permission {
    /// Application permissions (client credentials).
    Application,
    /// Delegated, work or school account.
    DelegatedWork,
    /// Delegated, personal Microsoft account.
    DelegatedPersonal,
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Permission::Application => "application",
            Permission::DelegatedWork => "delegated-work",
            Permission::DelegatedPersonal => "delegated-personal",
        })
    }
}

/// Whether notifications may carry the resource's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceData {
    No,
    Yes,
    /// Outlook: only with a `$select` query on the resource.
    YesWithSelect,
}

/// One path shape a kind accepts; `{id}` is any one segment.
#[derive(Debug)]
pub struct Template {
    pub path: &'static str,
    /// This path's own changeTypes, when narrower than the kind's.
    pub change_types: Option<&'static [&'static str]>,
}

/// One row of the table.
#[derive(Debug)]
pub struct Kind {
    /// The table's name for the row (unique).
    pub label: &'static str,
    /// Graph's resource type, as permission lists name it.
    pub resource_type: &'static str,
    pub templates: &'static [Template],
    pub max_lifetime_minutes: u32,
    /// Outlook's shorter maximum when resource data is included.
    pub max_lifetime_with_data_minutes: Option<u32>,
    pub resource_data: ResourceData,
    pub change_types: &'static [&'static str],
    pub permissions: &'static [Permission],
    pub least_permission: &'static str,
    /// Teams resources need a lifecycle URL beyond one hour.
    pub teams: bool,
    /// `notificationQueryOptions` this kind requires (Universal Print).
    pub required_query_options: Option<&'static str>,
    /// Whether Graph sends `subscriptionRemoved` and `missed` for it.
    pub removal_and_missed_events: bool,
}

impl Kind {
    /// The maximum lifetime for a subscription with or without resource data.
    pub fn max_lifetime_minutes(&self, include_resource_data: bool) -> u32 {
        match (include_resource_data, self.max_lifetime_with_data_minutes) {
            (true, Some(minutes)) => minutes,
            _ => self.max_lifetime_minutes,
        }
    }
}

/// Graph raises shorter expirations to this.
pub const MIN_LIFETIME_MINUTES: u32 = 45;
/// Teams subscriptions beyond this need a lifecycleNotificationUrl.
pub const TEAMS_WITHOUT_LIFECYCLE_MAX_MINUTES: u32 = 60;

const CUD: &[&str] = &["created", "updated", "deleted"];
const UD: &[&str] = &["updated", "deleted"];
const U: &[&str] = &["updated"];
const CU: &[&str] = &["created", "updated"];
const C: &[&str] = &["created"];

const fn t(path: &'static str) -> Template {
    Template { path, change_types: None }
}
const fn narrowed(path: &'static str, change_types: &'static [&'static str]) -> Template {
    Template { path, change_types: Some(change_types) }
}

use Permission::{Application as A, DelegatedPersonal as P, DelegatedWork as W};

#[allow(clippy::too_many_arguments)]
const fn row(
    label: &'static str,
    resource_type: &'static str,
    templates: &'static [Template],
    max_lifetime_minutes: u32,
    resource_data: ResourceData,
    change_types: &'static [&'static str],
    permissions: &'static [Permission],
    least_permission: &'static str,
) -> Kind {
    Kind {
        label,
        resource_type,
        templates,
        max_lifetime_minutes,
        max_lifetime_with_data_minutes: None,
        resource_data,
        change_types,
        permissions,
        least_permission,
        teams: false,
        required_query_options: None,
        removal_and_missed_events: false,
    }
}

const fn teams(kind: Kind) -> Kind {
    Kind { teams: true, ..kind }
}
const fn outlook(kind: Kind) -> Kind {
    Kind { max_lifetime_with_data_minutes: Some(1440), removal_and_missed_events: true, ..kind }
}

use ResourceData::{No, Yes, YesWithSelect};

/// The table, in docs/graph-protocol.md's order.
pub static KINDS: [Kind; 19] = [
    Kind {
        required_query_options: Some("$filter=isFetchable eq true"),
        ..row("printer", "printer", &[t("/print/printers/{id}/jobs")], 4230, No, U, &[A], "Printer.Read.All")
    },
    row(
        "printTaskDefinition",
        "printTaskDefinition",
        &[t("/print/taskDefinitions/{id}/tasks")],
        4230,
        No,
        C,
        &[A],
        "PrintTaskDefinition.ReadWrite.All",
    ),
    row(
        "driveItem (personal)",
        "driveItem",
        &[
            t("/users/{id}/drive/root"),
            t("/drives/{id}/root"),
            t("/drives/{id}/items/{id}"),
            t("/users/{id}/drive/items/{id}"),
        ],
        42300,
        No,
        U,
        &[P],
        "Files.Read",
    ),
    row(
        "driveItem (business)",
        "driveItem",
        &[t("/drives/{id}/root"), t("/users/{id}/drive/root")],
        42300,
        No,
        U,
        &[W, A],
        "Files.Read.All",
    ),
    row(
        "group",
        "group",
        &[t("/groups"), t("/groups/{id}"), t("/groups/{id}/owners"), t("/groups/{id}/members")],
        41760,
        No,
        UD,
        &[W, A],
        "Group.Read.All",
    ),
    row("list", "list", &[t("/sites/{id}/lists/{id}")], 42300, No, U, &[W, P, A], "Sites.Read.All"),
    row(
        "group conversation",
        "conversation",
        &[t("/groups/{id}/conversations")],
        4230,
        No,
        CUD,
        &[W],
        "Group.Read.All",
    ),
    outlook(row(
        "Outlook message",
        "message",
        &[t("/users/{id}/messages"), t("/users/{id}/mailFolders/{id}/messages")],
        10080,
        YesWithSelect,
        CUD,
        &[W, P, A],
        "Mail.ReadBasic",
    )),
    outlook(row(
        "Outlook event",
        "event",
        &[t("/users/{id}/events")],
        10080,
        YesWithSelect,
        CUD,
        &[W, P, A],
        "Calendars.Read",
    )),
    outlook(row(
        "Outlook contact",
        "contact",
        &[t("/users/{id}/contacts")],
        10080,
        YesWithSelect,
        CUD,
        &[W, P, A],
        "Contacts.Read",
    )),
    row(
        "security alert",
        "alert",
        &[t("/security/alerts"), t("/security/alerts/{id}")],
        43200,
        No,
        CUD,
        &[W, A],
        "SecurityEvents.ReadWrite.All",
    ),
    teams(row(
        "Teams callRecord",
        "callRecord",
        &[t("/communications/callRecords")],
        4230,
        No,
        CU,
        &[A],
        "CallRecords.Read.All",
    )),
    teams(row(
        "Teams chat",
        "chat",
        &[t("/chats"), narrowed("/chats/{id}", U)],
        4320,
        Yes,
        CU,
        &[W, A],
        "Chat.Read.All",
    )),
    Kind {
        removal_and_missed_events: true,
        ..teams(row(
            "Teams chatMessage",
            "chatMessage",
            &[
                t("/teams/getAllMessages"),
                t("/teams/{id}/channels/{id}/messages"),
                t("/chats/getAllMessages"),
                t("/chats/{id}/messages"),
                t("/users/{id}/chats/getAllMessages"),
            ],
            4320,
            Yes,
            CUD,
            &[A],
            "ChannelMessage.Read.All",
        ))
    },
    teams(row(
        "Teams channel",
        "channel",
        &[t("/teams/getAllChannels"), t("/teams/{id}/channels")],
        4320,
        Yes,
        CUD,
        &[W, A],
        "Channel.ReadBasic.All",
    )),
    teams(row(
        "Teams conversationMember",
        "conversationMember",
        &[
            t("/teams/{id}/members"),
            t("/teams/{id}/channels/getAllMembers"),
            t("/chats/{id}/members"),
            t("/teams/getAllMembers"),
        ],
        4320,
        Yes,
        CUD,
        &[W, A],
        "TeamMember.Read.All",
    )),
    teams(row(
        "Teams team",
        "team",
        &[t("/teams"), narrowed("/teams/{id}", UD)],
        4320,
        Yes,
        CUD,
        &[W, A],
        "Team.ReadBasic.All",
    )),
    row("To Do task", "todoTask", &[t("/users/{id}/todo/lists/{id}/tasks")], 4230, No, CUD, &[W, P], "Tasks.ReadWrite"),
    row("user", "user", &[t("/users"), t("/users/{id}")], 41760, No, UD, &[W, A], "User.Read.All"),
];

/// A resource path split into what matching needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    /// Segments with `name('key')` split into `name`, `key`, and `me` as `users`, `me`.
    pub segments: Vec<String>,
    /// The query string after `?`, if any (e.g. `$select=subject`).
    pub query: Option<String>,
    /// Whether the path starts with `/me` (the signed-in user: delegated only).
    pub uses_me: bool,
}

impl ResourcePath {
    pub fn parse(resource: &str) -> ResourcePath {
        let (path, query) = match resource.split_once('?') {
            Some((path, query)) => (path, Some(query.to_string())),
            None => (resource, None),
        };
        let mut segments = Vec::new();
        for raw in path.split('/').filter(|s| !s.is_empty()) {
            match raw.split_once('(') {
                Some((name, key)) => {
                    segments.push(name.to_string());
                    segments.push(key.trim_end_matches(')').trim_matches('\'').to_string());
                }
                None => segments.push(raw.to_string()),
            }
        }
        let uses_me = segments.first().is_some_and(|s| s.eq_ignore_ascii_case("me"));
        if uses_me {
            segments[0] = "me".into();
            segments.insert(0, "users".into());
        }
        ResourcePath { segments, query, uses_me }
    }

    /// How many literal segments of `template` match, or `None` if it does not.
    pub fn specificity(&self, template: &str) -> Option<usize> {
        let parts: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut literal = 0;
        for (part, segment) in parts.iter().zip(&self.segments) {
            if *part == "{id}" {
                continue;
            }
            if !part.eq_ignore_ascii_case(segment) {
                return None;
            }
            literal += 1;
        }
        Some(literal)
    }

    /// A query parameter's value (`$select`, `$filter`), names compared case-insensitively.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.as_deref()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            key.eq_ignore_ascii_case(name).then_some(value)
        })
    }
}

/// The row and template a path resolves to.
#[derive(Debug, Clone, Copy)]
pub struct Match {
    pub kind: &'static Kind,
    pub template: &'static Template,
}

impl Match {
    /// The changeTypes this exact path supports.
    pub fn change_types(&self) -> &'static [&'static str] {
        self.template.change_types.unwrap_or(self.kind.change_types)
    }
}

/// The most specific rows whose templates match `path` (several when rows
/// share a path, as OneDrive personal and business do).
pub fn resolve(path: &ResourcePath) -> Vec<Match> {
    let mut best: Vec<(usize, Match)> = Vec::new();
    for kind in &KINDS {
        for template in kind.templates {
            let Some(score) = path.specificity(template.path) else { continue };
            best.retain(|(s, _)| *s >= score);
            if best.first().is_none_or(|(s, _)| *s <= score) {
                best.push((score, Match { kind, template }));
            }
        }
    }
    best.into_iter().map(|(_, m)| m).collect()
}

/// A row by label, for the emulator's trigger command.
pub fn by_label(label: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.label.eq_ignore_ascii_case(label) || k.resource_type.eq_ignore_ascii_case(label))
}
