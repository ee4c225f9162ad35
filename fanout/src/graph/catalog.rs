//! The 19 kinds of Graph resource that accept change-notification
//! subscriptions (docs/graph-protocol.md section 7), as data.
//!
//! Both the subscriptions checker and the Graph emulator read this one table,
//! so what `graph-relay subscriptions check` refuses is exactly what the
//! emulator answers 400 to.
//!
//! Where Microsoft's sources disagree, the row says so in its `note` (Teams
//! chat's permission types), and `subscriptions check` repeats it.

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
    /// The API reference's spelling: what subscriptions are made with.
    pub path: &'static str,
    /// This path's own changeTypes, when narrower than the kind's.
    pub change_types: Option<&'static [&'static str]>,
    /// Other spellings Microsoft publishes for the same path (the overview
    /// table's), accepted and sent to Graph as `path`.
    pub aliases: &'static [&'static str],
    /// The `resource` Graph's notifications carry for a change under this
    /// path, in Graph's own form (OData keys, capitals): `{id}` is the changed
    /// item, and the other names are filled with the subscribed path's ids
    /// in order (see the emulator's samples); `{subscribed}` alone: the
    /// subscribed path itself (a drive root, a list).
    pub notified: &'static str,
    /// Graph accepts this path only with a `$filter` query (a collection it
    /// will not notify about as a whole).
    pub requires_filter: bool,
}

/// Which subscriptions share one of Graph's quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaScope {
    /// Per application and tenant.
    App,
    /// Per mailbox (the `/users/{id}` the path names).
    Mailbox,
    /// Per organization (tenant), across every app.
    Organization,
}

impl QuotaScope {
    /// What one quota is counted per, in words.
    pub fn describe(self) -> &'static str {
        match self {
            QuotaScope::App => "app and tenant",
            QuotaScope::Mailbox => "mailbox",
            QuotaScope::Organization => "organization",
        }
    }
}

/// One of Graph's documented subscription quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub scope: QuotaScope,
    pub limit: usize,
    /// Kinds with the same group count against the same quota.
    pub group: &'static str,
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
    /// The lifecycle events Graph sends for this kind.
    pub lifecycle_events: &'static [&'static str],
    /// Graph's quota for this kind, where one is documented.
    pub quota: Option<Quota>,
    /// Where this table deliberately differs from one of Microsoft's
    /// sources, said on every `subscriptions check` of such an entry.
    pub note: Option<&'static str>,
}

impl Kind {
    /// The maximum lifetime for a subscription with or without resource data.
    pub fn max_lifetime_minutes(&self, include_resource_data: bool) -> u32 {
        match (include_resource_data, self.max_lifetime_with_data_minutes) {
            (true, Some(minutes)) => minutes,
            _ => self.max_lifetime_minutes,
        }
    }

    /// Whether Graph ever sends `event` (any case) for this kind.
    pub fn sends_lifecycle_event(&self, event: &str) -> bool {
        self.lifecycle_events.iter().any(|e| e.eq_ignore_ascii_case(event))
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

/// Lifecycle events: every kind may need reauthorization; Outlook's kinds
/// are also removed and miss changes; Teams chat messages are removed.
const REAUTHORIZE: &[&str] = &["reauthorizationRequired"];
const OUTLOOK_EVENTS: &[&str] = &["reauthorizationRequired", "subscriptionRemoved", "missed"];
const REMOVED_TOO: &[&str] = &["reauthorizationRequired", "subscriptionRemoved"];

const DIRECTORY_QUOTA: Quota = Quota { scope: QuotaScope::App, limit: 100, group: "directory" };
const MAILBOX_QUOTA: Quota = Quota { scope: QuotaScope::Mailbox, limit: 1_000, group: "outlook" };
const CALL_QUOTA: Quota = Quota { scope: QuotaScope::Organization, limit: 100, group: "callRecords" };
const TEAMS_QUOTA: Quota = Quota { scope: QuotaScope::Organization, limit: 10_000, group: "teams" };

const fn t(path: &'static str, notified: &'static str) -> Template {
    Template { path, change_types: None, aliases: &[], notified, requires_filter: false }
}
const fn narrowed(path: &'static str, notified: &'static str, change_types: &'static [&'static str]) -> Template {
    Template { change_types: Some(change_types), ..t(path, notified) }
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
        lifecycle_events: REAUTHORIZE,
        quota: None,
        note: None,
    }
}

const fn teams(kind: Kind) -> Kind {
    Kind { teams: true, quota: Some(TEAMS_QUOTA), ..kind }
}
const fn outlook(kind: Kind) -> Kind {
    Kind {
        max_lifetime_with_data_minutes: Some(1440),
        lifecycle_events: OUTLOOK_EVENTS,
        quota: Some(MAILBOX_QUOTA),
        ..kind
    }
}
const fn directory(kind: Kind) -> Kind {
    Kind { quota: Some(DIRECTORY_QUOTA), ..kind }
}

/// Said of every Teams chat entry: the two sources disagree.
pub const CHAT_PERMISSION_NOTE: &str = "Microsoft's change-notification overview lists chat under no permission \
     type; the chat resource's API reference allows delegated (work or school) and application permissions, \
     and this project follows the API reference (docs/subscriptions.md, \"Where the sources disagree\")";

use ResourceData::{No, Yes, YesWithSelect};

/// The table, in docs/graph-protocol.md's order.
pub static KINDS: [Kind; 19] = [
    Kind {
        required_query_options: Some("$filter=isFetchable eq true"),
        ..row(
            "printer",
            "printer",
            &[t("/print/printers/{id}/jobs", "print/printers/{printer}/jobs/{id}")],
            4230,
            No,
            U,
            &[A],
            "Printer.Read.All",
        )
    },
    row(
        "printTaskDefinition",
        "printTaskDefinition",
        &[Template {
            aliases: &["/print/printtaskdefinition/{id}/tasks"],
            ..t("/print/taskDefinitions/{id}/tasks", "print/taskDefinitions/{definition}/tasks/{id}")
        }],
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
            t("/users/{id}/drive/root", "{subscribed}"),
            t("/drives/{id}/root", "{subscribed}"),
            t("/drives/{id}/items/{id}", "{subscribed}"),
            t("/users/{id}/drive/items/{id}", "{subscribed}"),
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
        &[t("/drives/{id}/root", "{subscribed}"), t("/users/{id}/drive/root", "{subscribed}")],
        42300,
        No,
        U,
        &[W, A],
        "Files.Read.All",
    ),
    directory(row(
        "group",
        "group",
        &[
            t("/groups", "Groups/{id}"),
            t("/groups/{id}", "Groups/{group}"),
            t("/groups/{id}/owners", "Groups/{group}"),
            t("/groups/{id}/members", "Groups/{group}"),
        ],
        41760,
        No,
        UD,
        &[W, A],
        "Group.Read.All",
    )),
    row("list", "list", &[t("/sites/{id}/lists/{id}", "{subscribed}")], 42300, No, U, &[W, P, A], "Sites.Read.All"),
    row(
        "group conversation",
        "conversation",
        &[t("/groups/{id}/conversations", "groups('{group}')/conversations('{id}')")],
        4230,
        No,
        CUD,
        &[W],
        "Group.Read.All",
    ),
    outlook(row(
        "Outlook message",
        "message",
        &[
            t("/users/{id}/messages", "Users/{user}/Messages/{id}"),
            t("/users/{id}/mailFolders/{id}/messages", "Users/{user}/Messages/{id}"),
        ],
        10080,
        YesWithSelect,
        CUD,
        &[W, P, A],
        "Mail.ReadBasic",
    )),
    outlook(row(
        "Outlook event",
        "event",
        &[t("/users/{id}/events", "Users/{user}/Events/{id}")],
        10080,
        YesWithSelect,
        CUD,
        &[W, P, A],
        "Calendars.Read",
    )),
    outlook(row(
        "Outlook contact",
        "contact",
        &[t("/users/{id}/contacts", "Users/{user}/Contacts/{id}")],
        10080,
        YesWithSelect,
        CUD,
        &[W, P, A],
        "Contacts.Read",
    )),
    row(
        "security alert",
        "alert",
        &[
            Template { requires_filter: true, ..t("/security/alerts", "security/alerts/{id}") },
            t("/security/alerts/{id}", "security/alerts/{alert}"),
        ],
        43200,
        No,
        CUD,
        &[W, A],
        "SecurityEvents.ReadWrite.All",
    ),
    Kind {
        quota: Some(CALL_QUOTA),
        ..teams(row(
            "Teams callRecord",
            "callRecord",
            &[t("/communications/callRecords", "communications/callRecords('{id}')")],
            4230,
            No,
            CU,
            &[A],
            "CallRecords.Read.All",
        ))
    },
    Kind {
        note: Some(CHAT_PERMISSION_NOTE),
        ..teams(row(
            "Teams chat",
            "chat",
            &[t("/chats", "chats('{id}')"), narrowed("/chats/{id}", "chats('{chat}')", U)],
            4320,
            Yes,
            CU,
            &[W, A],
            "Chat.Read.All",
        ))
    },
    Kind {
        lifecycle_events: REMOVED_TOO,
        ..teams(row(
            "Teams chatMessage",
            "chatMessage",
            &[
                t("/teams/getAllMessages", "teams('{team}')/channels('{channel}')/messages('{id}')"),
                t("/teams/{id}/channels/{id}/messages", "teams('{team}')/channels('{channel}')/messages('{id}')"),
                t("/chats/getAllMessages", "chats('{chat}')/messages('{id}')"),
                t("/chats/{id}/messages", "chats('{chat}')/messages('{id}')"),
                t("/users/{id}/chats/getAllMessages", "chats('{chat}')/messages('{id}')"),
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
        &[
            t("/teams/getAllChannels", "teams('{team}')/channels('{id}')"),
            t("/teams/{id}/channels", "teams('{team}')/channels('{id}')"),
        ],
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
            t("/teams/{id}/members", "teams('{team}')/members('{id}')"),
            t("/teams/{id}/channels/getAllMembers", "teams('{team}')/channels('{channel}')/members('{id}')"),
            t("/chats/{id}/members", "chats('{chat}')/members('{id}')"),
            t("/teams/getAllMembers", "teams('{team}')/members('{id}')"),
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
        &[t("/teams", "teams('{id}')"), narrowed("/teams/{id}", "teams('{team}')", UD)],
        4320,
        Yes,
        CUD,
        &[W, A],
        "Team.ReadBasic.All",
    )),
    row(
        "To Do task",
        "todoTask",
        &[t("/users/{id}/todo/lists/{id}/tasks", "Users/{user}/todo/lists/{list}/tasks/{id}")],
        4230,
        No,
        CUD,
        &[W, P],
        "Tasks.ReadWrite",
    ),
    directory(row(
        "user",
        "user",
        &[t("/users", "Users/{id}"), t("/users/{id}", "Users/{user}")],
        41760,
        No,
        UD,
        &[W, A],
        "User.Read.All",
    )),
];

/// A row by label, for the emulator's trigger command.
pub fn by_label(label: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.label.eq_ignore_ascii_case(label) || k.resource_type.eq_ignore_ascii_case(label))
}
