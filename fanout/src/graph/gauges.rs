//! The reconciler's state as metrics: wanted subscriptions by health and
//! when the next renewal is due, set whenever the state is saved.

use super::reconciler::Reconciler;
use crate::metrics::{self, HealthLabel, SubscriptionHealth};

impl Reconciler {
    pub(crate) fn observe(&self) {
        let metrics = metrics::get();
        let (mut ok, mut failing, mut not_created) = (0, 0, 0);
        for entry in &self.plan.subscriptions {
            match self.ledger.state.entries.get(&entry.name) {
                Some(record) if record.last_error.is_some() => failing += 1,
                Some(_) => ok += 1,
                None => not_created += 1,
            }
        }
        for (health, count) in [
            (SubscriptionHealth::ok, ok),
            (SubscriptionHealth::failing, failing),
            (SubscriptionHealth::not_created, not_created),
        ] {
            metrics.graph_subscriptions.get_or_create(&HealthLabel { health }).set(count);
        }
        let next = self.ledger.state.entries.values().map(|r| r.renew_at_ms).min().unwrap_or(0);
        metrics.graph_next_renewal.set((next / 1000) as i64);
    }
}
