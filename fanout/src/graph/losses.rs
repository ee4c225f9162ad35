//! Subscriptions Graph lost: noticing them (a renewal's 404, a lifecycle
//! event, Graph's list) and paying the `resyncNeeded` each one is owed
//! (see `resync` for why the debt is saved first).

use super::catalog::Permission;
use super::now_ms;
use super::plan::Entry;
use super::reconciler::{Reconciler, Report};
use super::{backoff, resync};

impl Reconciler {
    /// Forgets subscriptions Graph no longer lists, so this pass recreates them.
    pub(crate) async fn verify(&mut self, wanted: &[Entry], report: &mut Report) {
        let interval = self.plan.graph.verify_interval.unwrap_or(std::time::Duration::from_secs(3600));
        // `subscriptions check` refuses less than a second; an unchecked file still gets the floor.
        self.next_verify_ms = now_ms() + backoff::at_least_a_second(interval.as_millis() as u64);
        let mut permissions: Vec<Permission> = wanted.iter().map(|e| e.permission).collect();
        permissions.dedup();
        for permission in permissions {
            let listed = match self.graph.list(permission).await {
                Ok(listing) => listing.ids,
                Err(e) => {
                    tracing::warn!(%permission, "listing subscriptions failed: {e}");
                    continue;
                }
            };
            for entry in wanted.iter().filter(|e| e.permission == permission) {
                let gone = self
                    .ledger
                    .state
                    .entries
                    .get(&entry.name)
                    .is_some_and(|r| !listed.contains(&r.subscription_id.to_ascii_lowercase()));
                if gone {
                    self.lost(&entry.name, resync::NOT_LISTED, "", "");
                    report.recreated.push(entry.name.clone());
                }
            }
        }
    }

    /// Graph lost `name`'s subscription: owe its consumers a `resyncNeeded`
    /// (saved before anything else happens; see `resync`) and forget it, so
    /// it is recreated.
    pub(crate) fn lost(&mut self, name: &str, reason: &str, tenant_id: &str, organization_id: &str) {
        let Some(record) = self.ledger.state.entries.remove(name) else { return };
        // A debt not paid yet already covers this entry's gap: one resync is
        // a full delta query, whatever was lost since.
        self.ledger.state.owed_resyncs.entry(name.to_string()).or_insert_with(|| resync::Owed {
            previous_subscription_id: record.subscription_id.clone(),
            reason: reason.to_string(),
            tenant_id: tenant_id.to_string(),
            organization_id: organization_id.to_string(),
            noticed_ms: now_ms(),
        });
        tracing::warn!(entry = name, id = record.subscription_id, reason, "subscription lost on Graph: recreating");
        self.persist();
    }

    /// Publishes the `resyncNeeded` of every lost subscription that has been
    /// recreated; a debt is cleared only once its event is stored.
    pub(crate) async fn pay_resyncs(&mut self) {
        let Some(publisher) = self.publisher.clone() else { return };
        let mut paid = false;
        for (name, owed, subscription_id) in self.ledger.state.payable_resyncs() {
            let Some(entry) = self.plan.subscriptions.iter().find(|e| e.name == name) else {
                self.ledger.state.owed_resyncs.remove(&name);
                continue;
            };
            let event = resync::for_loss(&owed, &subscription_id, &entry.resource);
            match publisher.publish(event).await {
                Ok(sequence) => {
                    let sequence = sequence.unwrap_or_default();
                    let reason = owed.reason;
                    tracing::info!(
                        entry = name,
                        sequence,
                        subscription_id,
                        reason,
                        "resyncNeeded published (0: already in the log)"
                    );
                    self.ledger.state.owed_resyncs.remove(&name);
                    paid = true;
                }
                Err(e) => {
                    tracing::error!(entry = name, subscription_id, "publishing resyncNeeded failed, retrying: {e}")
                }
            }
        }
        if paid {
            self.persist();
        }
    }
}
