//! `resyncNeeded` owed to consumers after Graph lost a subscription.
//!
//! Graph loses a subscription in three ways the reconciler sees: a
//! `subscriptionRemoved` lifecycle event, a 404 on renew or reauthorize, and
//! the subscription missing from Graph's list. Whichever it is, the changes
//! made while it was gone reach nobody, so consumers must run a delta query:
//! exactly one `resyncNeeded` per lost subscription.
//!
//! The debt is written to the ledger (and saved) BEFORE the subscription is
//! recreated, and paid only after the recreation: the event is published
//! with a delivery id derived from the lost subscription's id, then the debt
//! is cleared and saved. A crash anywhere in between replays the same step
//! with the same delivery id, which the log stores once.

use graph_relay_proto::v1::{notification::Kind, LifecycleNotification, Notification};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::now_ms;

/// The event consumers get when they must run a delta query.
pub const RESYNC_NEEDED: &str = "resyncNeeded";

/// Why a subscription was lost, as `resyncNeeded.reason` says it.
pub const REMOVED: &str = "subscriptionRemoved";
/// A renew or reauthorize call answered 404.
pub const NOT_FOUND: &str = "subscriptionNotFound";
/// Graph's list no longer holds it.
pub const NOT_LISTED: &str = "subscriptionNotListed";

/// One lost subscription whose `resyncNeeded` is not published yet.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Owed {
    /// The lost subscription's id: the `previous_subscription_id`.
    pub previous_subscription_id: String,
    /// One of [`REMOVED`], [`NOT_FOUND`], [`NOT_LISTED`].
    pub reason: String,
    pub tenant_id: String,
    pub organization_id: String,
    /// When the loss was noticed (Unix ms).
    pub noticed_ms: u64,
}

impl Owed {
    /// The delivery id of the one `resyncNeeded` for this loss.
    pub fn delivery_id(&self) -> String {
        format!("resync/lost/{}", self.previous_subscription_id.to_ascii_lowercase())
    }
}

/// The delivery id of the `resyncNeeded` for a `missed` event stored as
/// `cause_sequence`: each missed event is its own gap in the changes.
pub fn missed_delivery_id(cause_sequence: u64) -> String {
    format!("resync/missed/{cause_sequence}")
}

/// The `resyncNeeded` for a `missed` event stored as `cause_sequence`:
/// handled twice (after a crash) it has the same delivery id, stored once.
pub(crate) fn for_missed(cause_sequence: u64, cause: &LifecycleNotification, resource: &str) -> Notification {
    let raw = json!({
        "lifecycleEvent": RESYNC_NEEDED, "reason": cause.lifecycle_event, "subscriptionId": cause.subscription_id,
        "resource": resource, "tenantId": cause.tenant_id, "causeSequence": cause_sequence,
    });
    let resync = LifecycleNotification {
        subscription_id: cause.subscription_id.clone(),
        lifecycle_event: RESYNC_NEEDED.into(),
        resource: super::resource_path(resource).to_string(),
        tenant_id: cause.tenant_id.clone(),
        organization_id: cause.organization_id.clone(),
        raw_json: raw.to_string(),
        reason: cause.lifecycle_event.clone(),
        previous_subscription_id: String::new(),
        subscription_expiration_date_time: String::new(),
    };
    notification(resync, missed_delivery_id(cause_sequence))
}

/// The one `resyncNeeded` for a lost subscription, now recreated as
/// `subscription_id`.
pub(crate) fn for_loss(owed: &Owed, subscription_id: &str, resource: &str) -> Notification {
    let raw = json!({
        "lifecycleEvent": RESYNC_NEEDED, "reason": owed.reason, "subscriptionId": subscription_id,
        "previousSubscriptionId": owed.previous_subscription_id, "resource": resource, "tenantId": owed.tenant_id,
    });
    let resync = LifecycleNotification {
        subscription_id: subscription_id.to_string(),
        lifecycle_event: RESYNC_NEEDED.into(),
        resource: super::resource_path(resource).to_string(),
        tenant_id: owed.tenant_id.clone(),
        organization_id: owed.organization_id.clone(),
        raw_json: raw.to_string(),
        reason: owed.reason.clone(),
        previous_subscription_id: owed.previous_subscription_id.clone(),
        subscription_expiration_date_time: String::new(),
    };
    notification(resync, owed.delivery_id())
}

fn notification(resync: LifecycleNotification, delivery_id: String) -> Notification {
    Notification { kind: Some(Kind::Lifecycle(resync)), received_at_unix_ms: now_ms() as i64, delivery_id }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::ledger::{Ledger, Record};

    fn owed(id: &str) -> Owed {
        Owed { previous_subscription_id: id.into(), reason: NOT_FOUND.into(), ..Default::default() }
    }

    #[test]
    fn a_debt_survives_a_crash_and_keeps_its_delivery_id() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(dir.path()).unwrap();
        ledger.state.owed_resyncs.insert("inbox".into(), owed("OLD-1"));
        ledger.save().unwrap();
        drop(ledger); // the crash: nothing after the save happened
        let reopened = Ledger::open(dir.path()).unwrap();
        let debt = &reopened.state.owed_resyncs["inbox"];
        assert_eq!(debt.delivery_id(), owed("old-1").delivery_id(), "the same event whenever it is published");
    }

    #[test]
    fn a_debt_is_payable_only_once_the_entry_has_a_new_subscription() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(dir.path()).unwrap();
        ledger.state.owed_resyncs.insert("inbox".into(), owed("old"));
        assert!(ledger.state.payable_resyncs().is_empty(), "not recreated yet");
        let old = Record { subscription_id: "old".into(), ..Default::default() };
        ledger.state.entries.insert("inbox".into(), old);
        assert!(ledger.state.payable_resyncs().is_empty(), "still the lost one");
        ledger.state.entries.get_mut("inbox").unwrap().subscription_id = "new".into();
        let payable = ledger.state.payable_resyncs();
        assert_eq!(payable.len(), 1);
        assert_eq!((payable[0].0.as_str(), payable[0].2.as_str()), ("inbox", "new"));
    }

    #[test]
    fn each_missed_event_has_its_own_resync() {
        assert_ne!(missed_delivery_id(7), missed_delivery_id(8));
        assert_ne!(missed_delivery_id(7), owed("7").delivery_id());
    }
}
