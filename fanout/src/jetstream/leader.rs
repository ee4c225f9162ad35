//! One reconciler for all replicas: a lease in a KV bucket
//! (`<stream>-leader`) whose entries expire after `--nats-lease`.
//!
//! A replica takes the lease by creating the key (which fails while another
//! holds it), renews it every third of the lease with a compare-and-set on
//! its revision, and reconciles while it holds it. It stops reconciling
//! when a renewal fails or takes longer than a third of the lease, so it has
//! stopped before the key can expire and another replica take over. The
//! successor loads the state the last leader saved (`state`) and goes on
//! from there: renewals stay on schedule and nothing is created twice.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use tokio::sync::mpsc;

use super::state::{self, KvState};
use super::SharedLog;
use crate::graph::ledger::Ledger;
use crate::graph::lifecycle::{self, FeedItem};
use crate::graph::reconciler::Reconciler;
use crate::graph::Publish;

/// The one key of the lease bucket.
const KEY: &str = "reconciler";

/// Runs `reconciler` whenever this replica holds the lease, until the server stops.
pub async fn run(
    shared: SharedLog,
    mut reconciler: Reconciler,
    mut open_feed: impl FnMut(Option<u64>) -> mpsc::Receiver<FeedItem>,
    publisher: Arc<dyn Publish>,
) {
    let lease = shared.options.lease;
    let id = Bytes::from(format!("{}-{}", hostname(), std::process::id()));
    loop {
        let (leases, states) = match buckets(&shared).await {
            Ok(buckets) => buckets,
            Err(e) => {
                tracing::warn!("the reconciler's buckets: {e}; again in {:?}", lease / 3);
                tokio::time::sleep(lease / 3).await;
                continue;
            }
        };
        let revision = take(&leases, &id, lease).await;
        let (state, state_revision) = match state::load(&states).await {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::error!("reading the reconciler's state: {e}; giving the lease up");
                let _ = leases.delete_expect_revision(KEY, Some(revision)).await;
                tokio::time::sleep(lease).await;
                continue;
            }
        };
        tracing::info!(revision = state_revision, "this replica leads the reconciler");
        crate::metrics::get().reconciler_leader.set(1);
        let saver = KvState::new(states, state_revision);
        let superseded = saver.superseded();
        reconciler.ledger = Ledger::shared(state, Box::new(saver));
        reconciler.publish_directory();
        tokio::select! {
            _ = lifecycle::supervise(&mut reconciler, &mut open_feed, publisher.clone()) => return,
            reason = keep(&leases, &id, revision, lease) => tracing::warn!("stopped reconciling: {reason}"),
            _ = superseded => tracing::warn!("stopped reconciling: another replica saved the state"),
        }
        crate::metrics::get().reconciler_leader.set(0);
    }
}

/// The lease and state buckets.
async fn buckets(shared: &SharedLog) -> Result<(kv::Store, kv::Store), super::SharedLogError> {
    let config = kv::Config {
        bucket: format!("{}-leader", shared.options.stream),
        description: "Graph Relay: which replica runs the reconciler".into(),
        history: 1,
        max_age: shared.options.lease,
        num_replicas: shared.options.replicas,
        ..Default::default()
    };
    Ok((state::open_or_create(shared, config).await?, state::bucket(shared).await?))
}

/// Waits until this replica holds the lease; its revision.
async fn take(leases: &kv::Store, id: &Bytes, lease: Duration) -> u64 {
    loop {
        match leases.create(KEY, id.clone()).await {
            Ok(revision) => return revision,
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => tracing::warn!("taking the reconciler's lease: {e}"),
        }
        tokio::time::sleep(lease / 3).await;
    }
}

/// Renews the lease every third of it; returns why it could not.
async fn keep(leases: &kv::Store, id: &Bytes, mut revision: u64, lease: Duration) -> String {
    let every = lease / 3;
    loop {
        tokio::time::sleep(every).await;
        match tokio::time::timeout(every, leases.update(KEY, id.clone(), revision)).await {
            Ok(Ok(renewed)) => revision = renewed,
            Ok(Err(e)) => return format!("renewing the lease: {e}"),
            Err(_) => return format!("renewing the lease took over {every:?}"),
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "replica".into())
}
