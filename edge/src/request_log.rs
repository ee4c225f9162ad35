//! One structured JSON line per notification request, for Workers Logs
//! (`[observability]`) and `wrangler tail`: the route, how many items came,
//! how many were accepted and why the others were refused, what became of
//! them (queued, forwarded, quarantined, a retry asked of Graph) and how
//! long the acknowledgement took.
//!
//! Built from what the pipeline decided, never from secrets: no clientState,
//! no token, no resource data. The items' claimed subscription ids are
//! attacker-controlled text, so at most a few are named, each cut short.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::collection::Batch;
use crate::inbound::Route;

/// Refused items named per line, and how much of a claimed id is shown.
const NAMED: usize = 5;
const ID_CHARS: usize = 64;

#[derive(Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RequestLog {
    pub route: &'static str,
    /// The answer Graph got.
    pub status: u16,
    /// Items in the body.
    pub items: usize,
    pub accepted: usize,
    /// Refused items by reason.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub rejected: BTreeMap<String, usize>,
    /// The first few refused items, as `value[i] subscription=…`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rejected_items: Vec<String>,
    /// What became of the accepted items, or why nothing was done.
    pub outcome: String,
    /// From the request's arrival to the answer.
    pub ack_ms: u64,
}

impl RequestLog {
    pub fn new(route: Route) -> Self {
        Self { route: route.name(), ..Self::default() }
    }

    /// Counts the items of a parsed body.
    pub fn batch(&mut self, batch: &Batch) {
        self.items = batch.notifications.len() + batch.rejections.len();
        self.accepted = batch.notifications.len();
        for rejection in &batch.rejections {
            *self.rejected.entry(rejection.reason.to_string()).or_default() += 1;
        }
        self.rejected_items =
            batch.rejections.iter().take(NAMED).map(|r| r.locator().chars().take(ID_CHARS + 24).collect()).collect();
    }

    /// The finished line, once the answer is known.
    pub fn finish(mut self, status: u16, outcome: impl Into<String>, ack_ms: u64) -> String {
        (self.status, self.outcome, self.ack_ms) = (status, outcome.into(), ack_ms);
        serde_json::to_string(&self).unwrap_or_else(|e| format!("{{\"logError\":\"{e}\"}}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_state::ClientStates;
    use crate::collection;
    use crate::delivery::RequestId;
    use serde_json::{json, Value};

    #[test]
    fn a_line_counts_items_by_outcome_and_names_no_secret() {
        let state = "a-client-state-of-some-length";
        let states = ClientStates::parse(state).unwrap();
        let good = json!({"subscriptionId": "s1", "clientState": state, "changeType": "created",
            "resource": "users/u/messages/m", "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z",
            "tenantId": "t"});
        let forged = json!({"subscriptionId": "x".repeat(500), "clientState": "wrong-state-wrong-state",
            "changeType": "created", "resource": "r", "tenantId": "t",
            "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z"});
        let mut items = vec![good];
        items.extend(std::iter::repeat_n(forged, 8));
        let body = json!({ "value": items }).to_string();
        let batch = collection::parse(body.as_bytes(), &states, 0, &RequestId::random().unwrap()).unwrap();
        let mut log = RequestLog::new(Route::Notifications);
        log.batch(&batch);
        let line = log.finish(202, "queued 1 messages", 7);
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["route"], "notifications");
        assert_eq!((parsed["items"].as_u64(), parsed["accepted"].as_u64()), (Some(9), Some(1)));
        assert_eq!(parsed["rejected"], json!({"clientState does not match any accepted value": 8}));
        assert_eq!(parsed["rejectedItems"].as_array().map(Vec::len), Some(NAMED), "a flood names a few");
        assert_eq!((parsed["status"].as_u64(), parsed["ackMs"].as_u64()), (Some(202), Some(7)));
        assert!(parsed["rejectedItems"][0].as_str().unwrap().len() <= ID_CHARS + 24, "claimed ids are cut short");
        assert!(!line.contains(state) && !line.contains("wrong-state"), "no clientState in the log: {line}");
    }
}
