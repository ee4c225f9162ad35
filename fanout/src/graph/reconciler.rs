//! Makes Graph match the subscriptions file, and keeps it matching.
//!
//! One task does every Graph call, one entry at a time, so two renewals of a
//! subscription can never race, and a lifecycle event is handled between two
//! renewals, not during one. Renewals are due at 55-70% of the granted
//! lifetime (jittered so a fleet of subscriptions does not renew in lockstep).
//! Failures back off per entry: Retry-After when Graph gives one (429 also
//! pauses every call), else exponential; quota and rule errors wait an hour
//! and are reported, never retried in a hot loop.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rand::Rng;

use super::backoff::{self, HOUR_MS};
use super::catalog::{Kind, Permission};
use super::client::{GraphClient, GraphError, NewSubscription, Remote};
use super::configuration::{Configuration, Derived};
use super::format_time;
use super::ledger::{Ledger, Record};
use super::now_ms;
use super::plan::{Entry, Plan};
use super::resync;
use crate::metrics;

/// Subscription id (lower-case) -> (entry name, resource as notifications
/// name it: no leading `/`). Filled in lifecycle items by the service, and
/// how the reconciler finds an entry for each logged event.
pub type Directory = Arc<RwLock<HashMap<String, (String, String)>>>;

/// How soon a `resyncNeeded` whose publish failed is tried again.
const OWED_RETRY_MS: u64 = 5_000;

/// What one pass did, for the one-shot command's output and for tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub created: Vec<String>,
    pub adopted: Vec<String>,
    pub renewed: Vec<String>,
    pub recreated: Vec<String>,
    pub deleted: Vec<String>,
    /// (entry, error) for entries left as they were this pass.
    pub failed: Vec<(String, String)>,
}

pub struct Reconciler {
    pub(crate) plan: Plan,
    pub(crate) kinds: HashMap<String, &'static Kind>,
    pub(crate) graph: GraphClient,
    pub(crate) ledger: Ledger,
    client_state: String,
    /// Entry name -> base64 DER of its encryption certificate.
    certificates: HashMap<String, String>,
    /// Reloaded subscriptions files, taken between two Graph calls (see
    /// `reload`); `None` when nobody reloads.
    pub(crate) configurations: Option<tokio::sync::mpsc::Receiver<Configuration>>,
    /// Entry name -> not before this time (ms), after a failure.
    pub(crate) retry_at: HashMap<String, u64>,
    failures: HashMap<String, u32>,
    /// After a 429, Graph wants every call of this app to wait.
    paused_until_ms: u64,
    pub(crate) directory: Directory,
    /// When Graph's list is next compared with the state.
    pub(crate) next_verify_ms: u64,
    /// Where `resyncNeeded` events go; `None` in the one-shot `subscriptions
    /// sync`, which leaves its debts in the ledger for `serve` to pay.
    pub(crate) publisher: Option<Arc<dyn super::Publish>>,
}

impl Reconciler {
    pub fn new(plan: Plan, graph: GraphClient, ledger: Ledger) -> Result<Reconciler, String> {
        let derived = Derived::of(&plan)?;
        Ok(Self::configured(Configuration { plan, graph, derived }, ledger))
    }

    /// The reconciler of a checked file (see `configuration::load`).
    pub fn configured(configuration: Configuration, ledger: Ledger) -> Reconciler {
        let Configuration { plan, graph, derived: Derived { kinds, client_state, certificates } } = configuration;
        let reconciler = Reconciler {
            plan,
            kinds,
            graph,
            ledger,
            client_state,
            certificates,
            configurations: None,
            retry_at: HashMap::new(),
            failures: HashMap::new(),
            paused_until_ms: 0,
            next_verify_ms: 0,
            directory: Directory::default(),
            publisher: None,
        };
        reconciler.publish_directory();
        reconciler
    }

    /// Takes what [`Derived::of`] read from a new plan.
    pub(crate) fn apply(&mut self, derived: Derived) {
        self.kinds = derived.kinds;
        self.client_state = derived.client_state;
        self.certificates = derived.certificates;
    }

    pub fn lifecycle_cursor(&self) -> Option<u64> {
        self.ledger.state.lifecycle_cursor
    }

    pub fn directory(&self) -> Directory {
        self.directory.clone()
    }

    pub(crate) fn publish_directory(&self) {
        let map = self.ledger.state.entries.iter().map(|(name, r)| {
            (r.subscription_id.to_ascii_lowercase(), (name.clone(), super::resource_path(&r.resource).to_string()))
        });
        if let Ok(mut directory) = self.directory.write() {
            *directory = map.collect();
        }
    }

    /// One pass: delete what left the file, create what is missing, renew what is due.
    pub async fn sync_once(&mut self) -> Report {
        let mut report = Report::default();
        let wanted: Vec<Entry> = self.plan.subscriptions.clone();
        let stale: Vec<String> =
            self.ledger.state.entries.keys().filter(|name| !wanted.iter().any(|e| &e.name == *name)).cloned().collect();
        for name in stale {
            self.remove_unwanted(&name, &mut report).await;
        }
        self.ledger.state.not_created.retain(|name, _| wanted.iter().any(|e| &e.name == name));
        let has_records = !self.ledger.state.entries.is_empty();
        if has_records && now_ms() >= self.next_verify_ms && now_ms() >= self.paused_until_ms {
            self.verify(&wanted, &mut report).await;
        }
        for entry in &wanted {
            if self.blocked(&entry.name) {
                continue;
            }
            let Some(kind) = self.kinds.get(&entry.name).copied() else {
                self.note_error(&entry.name, "refused by `subscriptions check`; fix the file", HOUR_MS, &mut report);
                continue;
            };
            match self.ledger.state.entries.get(&entry.name).cloned() {
                Some(record) if record.fingerprint != fingerprint(entry, &self.plan) => {
                    // Only once the old subscription is gone: creating beside it
                    // gets a 409, and the old one must never pass for the new.
                    match self.graph.delete(entry.permission, &record.subscription_id).await {
                        Ok(()) | Err(GraphError::NotFound) => {
                            self.ledger.state.entries.remove(&entry.name);
                            self.create(entry, kind, &mut report).await;
                        }
                        Err(e) => self.failed(&entry.name, e, &mut report),
                    }
                }
                Some(record) if now_ms() >= record.renew_at_ms => self.renew(entry, kind, &mut report).await,
                Some(_) => {}
                None => {
                    self.create(entry, kind, &mut report).await;
                }
            }
        }
        self.pay_resyncs().await;
        self.persist();
        report
    }

    pub(crate) fn persist(&self) {
        self.publish_directory();
        self.observe();
        if let Err(e) = self.ledger.save() {
            tracing::error!("saving subscription state: {e}");
        }
    }

    fn blocked(&self, name: &str) -> bool {
        let now = now_ms();
        now < self.paused_until_ms || self.retry_at.get(name).is_some_and(|at| now < *at)
    }

    /// When the next pass has something to do.
    pub fn next_due_ms(&self) -> u64 {
        let renewals = self.ledger.state.entries.values().map(|r| r.renew_at_ms);
        let retries = self.retry_at.values().copied();
        // Wanted but not on Graph, and not waiting out a failure: due now.
        let missing = self
            .plan
            .subscriptions
            .iter()
            .filter(|e| !self.ledger.state.entries.contains_key(&e.name) && !self.retry_at.contains_key(&e.name))
            .map(|_| 0);
        let stale = self
            .ledger
            .state
            .entries
            .keys()
            .filter(|name| !self.plan.subscriptions.iter().any(|e| &e.name == *name))
            .map(|_| 0);
        let verify = std::iter::once(self.next_verify_ms);
        // A resyncNeeded whose publish failed is tried again soon.
        let owed = (!self.ledger.state.payable_resyncs().is_empty()).then(|| now_ms() + OWED_RETRY_MS);
        let due =
            renewals.chain(retries).chain(missing).chain(stale).chain(verify).chain(owed).min().unwrap_or(u64::MAX);
        due.max(self.paused_until_ms)
    }

    async fn remove_unwanted(&mut self, name: &str, report: &mut Report) {
        let Some(record) = self.ledger.state.entries.get(name).cloned() else { return };
        // Recorded with the subscription; state written before that field existed: try each.
        let all = [Permission::Application, Permission::DelegatedWork, Permission::DelegatedPersonal];
        let permissions = record.permission.map_or(all.to_vec(), |p| vec![p]);
        for permission in permissions {
            match self.graph.delete(permission, &record.subscription_id).await {
                Ok(()) | Err(GraphError::NotFound) => {
                    self.ledger.state.entries.remove(name);
                    report.deleted.push(name.to_string());
                    return;
                }
                Err(GraphError::Credentials(_)) => continue,
                Err(e) => return self.failed(name, e, report),
            }
        }
    }

    fn desired_expiration(entry: &Entry, kind: &Kind) -> String {
        let max = kind.max_lifetime_minutes(entry.include_resource_data);
        // A minute of slack so clock skew never makes Graph see more than the maximum.
        let minutes = entry.lifetime_minutes().unwrap_or(max).min(max).saturating_sub(1).max(45);
        format_time(now_ms() + u64::from(minutes) * 60_000)
    }

    pub(crate) async fn create(&mut self, entry: &Entry, kind: &Kind, report: &mut Report) -> Option<Remote> {
        let body = NewSubscription {
            change_type: entry.change_types.join(","),
            notification_url: self.plan.edge.notification_url.clone(),
            lifecycle_notification_url: self.plan.edge.lifecycle_notification_url.clone(),
            resource: entry.graph_resource(),
            expiration_date_time: Self::desired_expiration(entry, kind),
            client_state: self.client_state.clone(),
            include_resource_data: entry.include_resource_data,
            encryption_certificate: self.certificates.get(&entry.name).cloned(),
            encryption_certificate_id: entry.encryption_certificate_id.clone(),
            notification_query_options: entry.notification_query_options.clone(),
            latest_supported_tls_version: "v1_2",
        };
        match self.graph.create(entry.permission, &body).await {
            Ok(remote) => {
                report.created.push(entry.name.clone());
                self.record(entry, &remote, true);
                Some(remote)
            }
            Err(GraphError::Conflict(message)) => self.adopt(entry, &message, report).await,
            Err(e) => {
                self.failed(&entry.name, e, report);
                None
            }
        }
    }

    /// 409: the subscription exists already (made by hand, or by us before a
    /// crash lost the answer): take it over.
    async fn adopt(&mut self, entry: &Entry, conflict: &str, report: &mut Report) -> Option<Remote> {
        let wanted = entry.graph_identity();
        let edge = &self.plan.edge;
        let same = |r: &Remote| {
            super::subscription_identity(&r.resource, &r.change_type) == wanted && r.has_definition(entry, edge)
        };
        match self.graph.list(entry.permission).await {
            Ok(listing) => match listing.remotes.into_iter().find(same) {
                Some(remote) => {
                    report.adopted.push(entry.name.clone());
                    self.record(entry, &remote, true);
                    Some(remote)
                }
                None => {
                    let message = format!(
                        "409 ({conflict}) but no subscription with this entry's definition (URLs, resource data) \
                         is listed: delete the other one on Graph"
                    );
                    self.note_error(&entry.name, &message, HOUR_MS, report);
                    None
                }
            },
            Err(e) => {
                self.failed(&entry.name, e, report);
                None
            }
        }
    }

    pub(crate) async fn renew(&mut self, entry: &Entry, kind: &Kind, report: &mut Report) {
        let Some(record) = self.ledger.state.entries.get(&entry.name).cloned() else { return };
        let window_end = record.last_reauthorize_ms + super::REAUTHORIZE_WINDOW_MS;
        if now_ms() < window_end && record.expiration_ms > window_end + 60_000 {
            // Reauthorized minutes ago: renewing now would do it twice within 10 minutes.
            if let Some(record) = self.ledger.state.entries.get_mut(&entry.name) {
                record.renew_at_ms = window_end;
            }
            return;
        }
        let expiration = Self::desired_expiration(entry, kind);
        match self.graph.renew(entry.permission, &record.subscription_id, &expiration).await {
            Ok(remote) => {
                report.renewed.push(entry.name.clone());
                self.record(entry, &remote, false);
            }
            Err(GraphError::NotFound) => {
                self.lost(&entry.name, resync::NOT_FOUND, "", "");
                if self.create(entry, kind, report).await.is_some() {
                    report.created.retain(|n| n != &entry.name);
                    report.recreated.push(entry.name.clone());
                }
            }
            Err(e) => self.failed(&entry.name, e, report),
        }
    }

    /// Stores what Graph answered and schedules the next renewal.
    fn record(&mut self, entry: &Entry, remote: &Remote, fresh: bool) {
        let now = now_ms();
        let expiration_ms = remote.expiration_ms();
        let lifetime = expiration_ms.saturating_sub(now);
        let previous = self.ledger.state.entries.get(&entry.name).cloned().unwrap_or_default();
        let (renew_at_ms, bad_expiration) = if lifetime == 0 {
            // Unparseable, or already past: renewing at once would loop. Try
            // again with the failure backoff and say why.
            let attempts = self.failures.entry(entry.name.clone()).or_default();
            *attempts += 1;
            let message =
                format!("Graph answered expirationDateTime {:?}: not a future time", remote.expiration_date_time);
            tracing::warn!(entry = entry.name, "{message}");
            (now + backoff::exponential_ms(*attempts), Some(message))
        } else {
            let share = (lifetime as f64 * rand::thread_rng().gen_range(0.55..0.70)) as u64;
            (now + backoff::at_least_a_second(share), None)
        };
        let record = Record {
            subscription_id: remote.id.clone(),
            permission: Some(entry.permission),
            resource: entry.graph_resource(),
            change_types: entry.change_types.join(","),
            fingerprint: fingerprint(entry, &self.plan),
            expiration_ms,
            renew_at_ms,
            created_ms: if fresh { now } else { previous.created_ms },
            last_renewal_ms: if fresh { previous.last_renewal_ms } else { now },
            renewals: previous.renewals + u64::from(!fresh),
            last_error_ms: if bad_expiration.is_some() { now } else { previous.last_error_ms },
            last_error: bad_expiration.clone(),
            ..previous
        };
        self.ledger.state.entries.insert(entry.name.clone(), record);
        self.ledger.state.not_created.remove(&entry.name);
        let counter = if fresh { &metrics::get().graph_created } else { &metrics::get().graph_renewals };
        counter.inc();
        // Lifecycle items for the new id may already be on their way.
        self.publish_directory();
        self.retry_at.remove(&entry.name);
        if bad_expiration.is_none() {
            self.failures.remove(&entry.name);
        }
        tracing::info!(
            entry = entry.name,
            id = remote.id,
            expires = remote.expiration_date_time,
            "subscription up to date"
        );
    }

    pub(crate) fn failed(&mut self, name: &str, error: GraphError, report: &mut Report) {
        let attempts = self.failures.entry(name.to_string()).or_default();
        *attempts += 1;
        let wait = backoff::wait_ms(&error, *attempts);
        if let GraphError::Throttled { status: 429, .. } = error {
            self.paused_until_ms = now_ms() + wait;
        }
        self.note_error(name, &error.to_string(), wait, report);
    }

    fn note_error(&mut self, name: &str, message: &str, wait_ms: u64, report: &mut Report) {
        tracing::warn!(entry = name, retry_in_ms = wait_ms, "subscription not reconciled: {message}");
        metrics::get().graph_failures.inc();
        report.failed.push((name.to_string(), message.to_string()));
        self.retry_at.insert(name.to_string(), now_ms() + wait_ms);
        match self.ledger.state.entries.get_mut(name) {
            Some(record) => {
                record.last_error = Some(message.to_string());
                record.last_error_ms = now_ms();
            }
            None => {
                self.ledger.state.not_created.insert(name.to_string(), (message.to_string(), now_ms()));
            }
        }
    }

    /// The entry (and its row) a subscription id belongs to.
    pub(crate) fn entry_for(&self, subscription_id: &str) -> Option<(Entry, &'static Kind)> {
        let (name, _) = self.ledger.state.by_subscription_id(subscription_id)?;
        let entry = self.plan.subscriptions.iter().find(|e| &e.name == name)?.clone();
        let kind = self.kinds.get(name).copied()?;
        Some((entry, kind))
    }
}

/// Everything about an entry that Graph cannot change in place.
fn fingerprint(entry: &Entry, plan: &Plan) -> String {
    format!(
        "{}|{}|{}|{:?}|{}|{:?}|{}|{:?}",
        entry.graph_resource(),
        entry.graph_identity().1.join(","),
        entry.include_resource_data,
        entry.encryption_certificate_id,
        entry.permission,
        entry.notification_query_options,
        plan.edge.notification_url,
        plan.edge.lifecycle_notification_url,
    )
}

#[cfg(test)]
#[path = "reconciler_tests.rs"]
mod tests;
