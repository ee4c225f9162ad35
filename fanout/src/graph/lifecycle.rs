//! Lifecycle events drive the reconciler (docs/graph-protocol.md section 6).
//!
//! The reconciler reads the fan-out's own log through a feed the server
//! hands it (`FeedItem`s over a channel, from a cursor kept in its state
//! file), so a lifecycle event stored just before a crash is still handled
//! after the restart:
//! - `reauthorizationRequired`: POST /reauthorize, or a renewing PATCH when
//!   the subscription is past half its lifetime (that does both); nothing if
//!   either happened in the last 10 minutes (never both within 10 minutes).
//! - `subscriptionRemoved`: recreate, then publish `resyncNeeded` (owed
//!   durably until published: see `resync`).
//! - `missed`: publish `resyncNeeded` for the subscription, one per event.
//!
//! `resyncNeeded` events go through the normal log, stream and filters.

use std::sync::Arc;
use std::time::Duration;

use graph_relay_proto::v1::{LifecycleNotification, Notification};
use tokio::sync::mpsc;

use super::reconciler::{Reconciler, Report};
use super::resync;
use super::REAUTHORIZE_WINDOW_MS;
use super::{now_ms, Publish};

pub use super::resync::RESYNC_NEEDED;
/// Unsaved cursor movement is flushed this often.
const FLUSH_EVERY: Duration = Duration::from_secs(5);

/// Longest wait between two restarts of a broken lifecycle feed.
const MAX_RESTART_WAIT: Duration = Duration::from_secs(60);

/// What the reconciler needs from one logged event.
#[derive(Debug)]
pub enum FeedItem {
    Change {
        sequence: u64,
        subscription_id: String,
    },
    Lifecycle {
        sequence: u64,
        notification: LifecycleNotification,
    },
    Other {
        sequence: u64,
    },
    /// The feed cannot go on (a log read failed); the reconciler restarts it.
    Broken(String),
}

/// Runs the reconciler for as long as the server runs: whenever its
/// lifecycle feed breaks, the failure is logged and saved for `subscriptions
/// list`, and a new feed (from `open_feed`, given the saved cursor) takes
/// over after a growing wait. Renewals never stop unnoticed.
pub async fn supervise(
    reconciler: &mut Reconciler,
    open_feed: &mut impl FnMut(Option<u64>) -> mpsc::Receiver<FeedItem>,
    publisher: Arc<dyn Publish>,
) {
    let mut restarts = 0u32;
    loop {
        let feed = open_feed(reconciler.lifecycle_cursor());
        let Err(reason) = reconciler.run(feed, publisher.clone()).await else { return };
        restarts += 1;
        let wait = Duration::from_millis(super::backoff::exponential_ms(restarts)).min(MAX_RESTART_WAIT);
        tracing::error!(
            restarts,
            retry_in_ms = wait.as_millis() as u64,
            "reconciler's lifecycle feed failed: {reason}"
        );
        reconciler.ledger.state.feed_failure = Some(super::ledger::FeedFailure { reason, at_ms: now_ms(), restarts });
        reconciler.persist();
        tokio::time::sleep(wait).await;
    }
}

impl Reconciler {
    /// Runs until the log's feed ends (`Ok`: the server stops) or breaks
    /// (`Err`, see [`supervise`]), or the task is aborted (state is saved
    /// after every change): passes when something is due, lifecycle
    /// reactions as events arrive.
    pub async fn run(&mut self, mut feed: mpsc::Receiver<FeedItem>, publisher: Arc<dyn Publish>) -> Result<(), String> {
        self.publisher = Some(publisher.clone());
        let mut configurations = self.configurations.take();
        let ended = self.run_with(&mut feed, publisher, &mut configurations).await;
        self.configurations = configurations;
        ended
    }

    async fn run_with(
        &mut self,
        feed: &mut mpsc::Receiver<FeedItem>,
        publisher: Arc<dyn Publish>,
        configurations: &mut Option<mpsc::Receiver<super::configuration::Configuration>>,
    ) -> Result<(), String> {
        let mut dirty = false;
        loop {
            if now_ms() >= self.next_due_ms() {
                self.sync_once().await;
                dirty = false;
            }
            let wait = Duration::from_millis(self.next_due_ms().saturating_sub(now_ms())).min(FLUSH_EVERY);
            tokio::select! {
                item = feed.recv() => match item {
                    Some(FeedItem::Broken(reason)) => {
                        self.persist();
                        return Err(reason);
                    }
                    Some(item) => dirty |= self.on_feed(item, publisher.as_ref()).await,
                    None => break,
                },
                configuration = Self::next_configuration(configurations) => {
                    self.reconfigure(configuration);
                    self.persist();
                    dirty = false;
                },
                _ = tokio::time::sleep(wait) => if dirty {
                    self.persist();
                    dirty = false;
                },
            }
        }
        self.persist();
        Ok(())
    }

    /// Handles one logged event; true if only the cursor/health moved (flush later).
    async fn on_feed(&mut self, item: FeedItem, publisher: &dyn Publish) -> bool {
        let sequence = match item {
            FeedItem::Change { sequence, subscription_id } => {
                let name = self
                    .directory
                    .read()
                    .ok()
                    .and_then(|d| d.get(&subscription_id.to_ascii_lowercase()).map(|(n, _)| n.clone()));
                if let Some(record) = name.and_then(|name| self.ledger.state.entries.get_mut(&name)) {
                    record.last_notification_ms = now_ms();
                }
                sequence
            }
            FeedItem::Other { sequence } => sequence,
            FeedItem::Broken(_) => return false,
            FeedItem::Lifecycle { sequence, notification } => {
                self.on_lifecycle(sequence, &notification, publisher).await;
                self.ledger.state.lifecycle_cursor = Some(sequence);
                self.persist();
                return false;
            }
        };
        self.ledger.state.lifecycle_cursor = Some(sequence);
        true
    }

    async fn on_lifecycle(&mut self, sequence: u64, event: &LifecycleNotification, publisher: &dyn Publish) {
        if event.lifecycle_event == RESYNC_NEEDED {
            return;
        }
        let Some((entry, kind)) = self.entry_for(&event.subscription_id) else {
            tracing::info!(
                sequence,
                subscription_id = event.subscription_id,
                event = event.lifecycle_event,
                "lifecycle event for a subscription not in the file"
            );
            return;
        };
        let mut report = Report::default();
        match event.lifecycle_event.to_ascii_lowercase().as_str() {
            "reauthorizationrequired" => self.reauthorize(&entry, kind, &mut report).await,
            "subscriptionremoved" => {
                self.lost(&entry.name, resync::REMOVED, &event.tenant_id, &event.organization_id);
                self.create(&entry, kind, &mut report).await;
                self.pay_resyncs().await;
            }
            "missed" => publish(publisher, resync::for_missed(sequence, event, &entry.resource)).await,
            other => tracing::warn!(
                sequence,
                subscription_id = event.subscription_id,
                event = other,
                "unknown lifecycle event ignored"
            ),
        }
        tracing::info!(
            sequence,
            subscription_id = event.subscription_id,
            entry = entry.name,
            event = event.lifecycle_event,
            ?report,
            "lifecycle event handled"
        );
    }

    async fn reauthorize(
        &mut self,
        entry: &super::plan::Entry,
        kind: &'static super::catalog::Kind,
        report: &mut Report,
    ) {
        let Some(record) = self.ledger.state.entries.get(&entry.name).cloned() else { return };
        let now = now_ms();
        if now.saturating_sub(record.last_renewal_ms.max(record.last_reauthorize_ms)) < REAUTHORIZE_WINDOW_MS {
            tracing::info!(
                entry = entry.name,
                "reauthorized by a renewal or reauthorize within 10 minutes: nothing to do"
            );
            return;
        }
        let lifetime = u64::from(kind.max_lifetime_minutes(entry.include_resource_data)) * 60_000;
        if record.expiration_ms.saturating_sub(now) < lifetime / 2 {
            return self.renew(entry, kind, report).await;
        }
        match self.graph.reauthorize(entry.permission, &record.subscription_id).await {
            Ok(()) => {
                if let Some(record) = self.ledger.state.entries.get_mut(&entry.name) {
                    record.last_reauthorize_ms = now;
                    // A renewal falling inside the window waits for its end.
                    let window_end = now + REAUTHORIZE_WINDOW_MS;
                    if record.renew_at_ms < window_end && record.expiration_ms > window_end + 60_000 {
                        record.renew_at_ms = window_end;
                    }
                }
            }
            Err(super::client::GraphError::NotFound) => {
                self.lost(&entry.name, resync::NOT_FOUND, "", "");
                self.create(entry, kind, report).await;
                self.pay_resyncs().await;
            }
            Err(e) => self.failed(&entry.name, e, report),
        }
    }
}

async fn publish(publisher: &dyn Publish, notification: Notification) {
    let subscription_id = match &notification.kind {
        Some(graph_relay_proto::v1::notification::Kind::Lifecycle(l)) => l.subscription_id.clone(),
        _ => String::new(),
    };
    match publisher.publish(notification).await {
        Ok(Some(sequence)) => tracing::info!(sequence, subscription_id, "resyncNeeded published"),
        Ok(None) => tracing::info!(subscription_id, "resyncNeeded already in the log"),
        Err(e) => tracing::error!(subscription_id, "publishing resyncNeeded failed: {e}"),
    }
}
