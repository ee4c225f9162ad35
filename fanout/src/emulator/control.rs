//! `/emulator/...`: what a developer or test does to the emulated Graph
//! (Graph itself has no such API): send notifications and lifecycle events,
//! complete a device-code sign-in, make the next API calls fail, remove a
//! subscription behind the app's back, and read everything back.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::Subscription;
use super::errors::graph_error;
use super::{delivery, samples, Emulator};
use crate::graph::catalog::Permission;

/// `POST /emulator/trigger`: which subscriptions, and what changed.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
pub struct Trigger {
    /// One subscription; else every subscription of `kind`; else all.
    pub subscription_id: Option<String>,
    /// A row label or resource type, e.g. `Outlook message` or `chatMessage`.
    pub kind: Option<String>,
    /// Default: the subscription's first changeType.
    pub change_type: Option<String>,
    /// Notifications per subscription (batched in one POST per endpoint, like Graph).
    #[serde(default = "one")]
    pub count: usize,
}

fn one() -> usize {
    1
}

fn selected(emulator: &Emulator, trigger: &Trigger) -> Vec<Subscription> {
    let world = emulator.world();
    let mut chosen: Vec<Subscription> = world
        .subscriptions
        .values()
        .filter(|s| trigger.subscription_id.as_ref().is_none_or(|id| *id == s.id))
        .filter(|s| {
            trigger.kind.as_ref().is_none_or(|kind| {
                crate::graph::catalog::by_label(kind)
                    .is_some_and(|k| k.label == s.kind || k.resource_type.eq_ignore_ascii_case(kind))
            })
        })
        .cloned()
        .collect();
    chosen.sort_by(|a, b| a.id.cmp(&b.id));
    chosen
}

/// `POST /emulator/trigger`
pub async fn trigger(State(emulator): State<Emulator>, Json(trigger): Json<Trigger>) -> Response {
    let chosen = selected(&emulator, &trigger);
    if chosen.is_empty() {
        return graph_error(StatusCode::NOT_FOUND, "NoSubscription", "no active subscription matches the trigger");
    }
    let mut by_url: BTreeMap<&str, Vec<&Subscription>> = BTreeMap::new();
    for subscription in &chosen {
        by_url.entry(&subscription.notification_url).or_default().push(subscription);
    }
    let mut deliveries = Vec::new();
    for (url, subscriptions) in by_url {
        let mut items = Vec::new();
        for subscription in &subscriptions {
            let change_type = trigger
                .change_type
                .clone()
                .unwrap_or_else(|| subscription.change_type.split(',').next().unwrap_or("updated").trim().to_string());
            items.extend((0..trigger.count.max(1)).map(|_| samples::change_item(subscription, &change_type)));
        }
        let count = items.len();
        let body = samples::batch(&emulator.keys, &subscriptions, items);
        let resources: Vec<String> = body["value"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["resource"].as_str())
            .map(String::from)
            .collect();
        let attempt = delivery::deliver(&emulator, url, body).await;
        deliveries.push(json!({"url": url, "notifications": count, "resources": resources, "attempt": attempt}));
    }
    Json(json!({ "deliveries": deliveries })).into_response()
}

#[derive(Deserialize)]
pub struct Lifecycle {
    pub subscription_id: String,
    /// missed, subscriptionRemoved or reauthorizationRequired.
    pub event: String,
    /// Send it even where Graph never would (tests of the receiving side).
    #[serde(default)]
    pub force: bool,
}

/// `POST /emulator/lifecycle`: sent to the subscription's lifecycleNotificationUrl.
pub async fn lifecycle(State(emulator): State<Emulator>, Json(request): Json<Lifecycle>) -> Response {
    if !["missed", "subscriptionRemoved", "reauthorizationRequired"].contains(&request.event.as_str()) {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "event is missed, subscriptionRemoved or reauthorizationRequired",
        );
    }
    let subscription = emulator.world().subscriptions.get(&request.subscription_id).cloned();
    let Some(subscription) = subscription else {
        return graph_error(StatusCode::NOT_FOUND, "ResourceNotFound", "no such subscription");
    };
    let kind = crate::graph::catalog::by_label(subscription.kind);
    if let Some(kind) = kind.filter(|k| !request.force && !k.sends_lifecycle_event(&request.event)) {
        let message = format!(
            "Graph never sends {} for {} subscriptions (it sends: {}); pass \"force\": true to send it anyway",
            request.event,
            kind.label,
            kind.lifecycle_events.join(", ")
        );
        return graph_error(StatusCode::BAD_REQUEST, "InvalidRequest", &message);
    }
    let Some(url) = subscription.lifecycle_notification_url.clone() else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "the subscription has no lifecycleNotificationUrl",
        );
    };
    if request.event == "subscriptionRemoved" {
        emulator.world().subscriptions.remove(&subscription.id);
    }
    let body = json!({ "value": [samples::lifecycle_item(&subscription, &request.event)] });
    let attempt = delivery::deliver(&emulator, &url, body).await;
    Json(json!({ "url": url, "attempt": attempt })).into_response()
}

#[derive(Deserialize)]
pub struct Approval {
    pub user_code: String,
    /// The account type that signs in (default: work or school).
    #[serde(default = "work")]
    pub account: Permission,
}

fn work() -> Permission {
    Permission::DelegatedWork
}

/// `POST /emulator/device/approve`: the user signed in on the verification page.
pub async fn approve_device(State(emulator): State<Emulator>, Json(approval): Json<Approval>) -> Response {
    if approval.account == Permission::Application {
        return graph_error(StatusCode::BAD_REQUEST, "InvalidRequest", "a person signs in with a delegated account");
    }
    if emulator.world().identity.approve(&approval.user_code, approval.account) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        graph_error(StatusCode::NOT_FOUND, "InvalidRequest", "no sign-in waits for that user_code")
    }
}

#[derive(Deserialize)]
pub struct Faults {
    /// HTTP status the next calls get (429, 503, ...).
    pub status: u16,
    pub count: usize,
    #[serde(default)]
    pub retry_after_seconds: u64,
}

/// `POST /emulator/faults`: the next `count` Graph API calls fail.
pub async fn faults(State(emulator): State<Emulator>, Json(faults): Json<Faults>) -> Response {
    let mut world = emulator.world();
    world.faults.extend(std::iter::repeat_n((faults.status, faults.retry_after_seconds), faults.count));
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /emulator/subscriptions/{id}/remove`: gone on Graph's side, without notice.
pub async fn remove(State(emulator): State<Emulator>, Path(id): Path<String>) -> Response {
    match emulator.world().subscriptions.remove(&id) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => graph_error(StatusCode::NOT_FOUND, "ResourceNotFound", "no such subscription"),
    }
}

/// `GET /emulator/state`
pub async fn state(State(emulator): State<Emulator>) -> Json<Value> {
    let world = emulator.world();
    let subscriptions: Vec<Value> = world
        .subscriptions
        .values()
        .map(|s| {
            let mut v = s.to_json();
            v["kind"] = json!(s.kind);
            v["renewals"] = json!(s.renewals);
            v
        })
        .collect();
    let endpoints: BTreeMap<&String, Value> = world
        .deliveries
        .endpoints
        .iter()
        .map(|(url, e)| {
            let (p50, p99, max) = e.latency_ms();
            let mut v = serde_json::to_value(e).unwrap_or_default();
            v["health"] = json!(e.health());
            v["latency_ms"] = json!({"p50": p50, "p99": p99, "max": max});
            (url, v)
        })
        .collect();
    Json(json!({ "subscriptions": subscriptions, "counters": world.counters, "endpoints": endpoints }))
}
