//! The reconciler's state in a JetStream KV bucket (`<stream>-reconciler`),
//! so the replica that leads next continues renewals from it instead of
//! recreating every subscription.
//!
//! Every save is a compare-and-set on the revision this leader last read or
//! wrote: a replica that lost its lease (and whose successor has saved since)
//! cannot overwrite the successor's state; its save fails, and it stops
//! reconciling ([`KvState::superseded`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_nats::jetstream::{kv, stream};
use bytes::Bytes;
use tokio::sync::watch;

use super::{SharedLog, SharedLogError};
use crate::graph::ledger::{LedgerError, SaveState, State};

/// The one key the state is saved under.
const KEY: &str = "state";

/// Opens the state bucket, creating it if it is missing.
pub async fn bucket(shared: &SharedLog) -> Result<kv::Store, SharedLogError> {
    let name = format!("{}-reconciler", shared.options.stream);
    let config = kv::Config {
        bucket: name.clone(),
        description: "Graph Relay: the reconciler's subscription state".into(),
        history: 5,
        num_replicas: shared.options.replicas,
        storage: stream::StorageType::File,
        ..Default::default()
    };
    open_or_create(shared, config).await
}

/// A KV bucket, created with `config` when it does not exist.
///
/// The bucket's stream is created here with the KV conventions (what
/// `create_key_value` would create) because the client's `create_key_value`
/// first asks for the account's JetStream info, whose answer from NATS
/// 2.9 servers (Debian's) it fails to parse; every KV operation after that
/// works with them.
pub(crate) async fn open_or_create(shared: &SharedLog, config: kv::Config) -> Result<kv::Store, SharedLogError> {
    if let Ok(store) = shared.context.get_key_value(config.bucket.clone()).await {
        return Ok(store);
    }
    let bucket = config.bucket.clone();
    let failed = |e: &dyn std::fmt::Display| SharedLogError::Bucket { bucket: bucket.clone(), reason: e.to_string() };
    shared.context.create_stream(kv_stream(&config)).await.map_err(|e| failed(&e))?;
    shared.context.get_key_value(config.bucket.clone()).await.map_err(|e| failed(&e))
}

/// The stream behind a KV bucket: one subject space per bucket, `history`
/// values per key, rollups allowed, deletes through markers only.
fn kv_stream(config: &kv::Config) -> stream::Config {
    stream::Config {
        name: format!("KV_{}", config.bucket),
        description: Some(config.description.clone()),
        subjects: vec![format!("$KV.{}.>", config.bucket)],
        max_messages_per_subject: config.history.max(1),
        max_age: config.max_age,
        storage: config.storage,
        num_replicas: config.num_replicas.max(1),
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    }
}

/// The saved state and its revision (0: nothing saved yet).
pub async fn load(bucket: &kv::Store) -> Result<(State, u64), String> {
    match bucket.entry(KEY).await.map_err(|e| e.to_string())? {
        Some(entry) if entry.operation == kv::Operation::Put => {
            let state =
                serde_json::from_slice(&entry.value).map_err(|e| format!("the saved state does not parse: {e}"))?;
            Ok((state, entry.revision))
        }
        Some(entry) => Ok((State::default(), entry.revision)),
        None => Ok((State::default(), 0)),
    }
}

/// Saves to the bucket for the leader that loaded `revision`.
pub struct KvState {
    bucket: kv::Store,
    revision: AtomicU64,
    runtime: tokio::runtime::Handle,
    /// Set once a save found the state changed by another replica.
    superseded: Arc<watch::Sender<bool>>,
}

impl KvState {
    pub fn new(bucket: kv::Store, revision: u64) -> Self {
        let runtime = tokio::runtime::Handle::current();
        Self { bucket, revision: AtomicU64::new(revision), runtime, superseded: Arc::new(watch::channel(false).0) }
    }

    /// Resolves once another replica has saved the state since this one
    /// loaded it: this replica no longer leads.
    pub fn superseded(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut superseded = self.superseded.subscribe();
        async move {
            let _ = superseded.wait_for(|superseded| *superseded).await;
        }
    }
}

impl SaveState for KvState {
    /// Saves synchronously (the reconciler saves between Graph calls), on a
    /// thread the runtime lets block.
    fn save(&self, state: &State) -> Result<(), LedgerError> {
        let value = Bytes::from(serde_json::to_vec(state).map_err(|e| LedgerError::Shared(e.to_string()))?);
        let revision = self.revision.load(Ordering::Acquire);
        let saved = tokio::task::block_in_place(|| {
            self.runtime.block_on(async {
                if revision == 0 {
                    self.bucket
                        .create(KEY, value)
                        .await
                        .map_err(|e| (e.kind() == kv::CreateErrorKind::AlreadyExists, e.to_string()))
                } else {
                    let update = self.bucket.update(KEY, value, revision).await;
                    update.map_err(|e| (e.kind() == kv::UpdateErrorKind::WrongLastRevision, e.to_string()))
                }
            })
        });
        match saved {
            Ok(revision) => {
                self.revision.store(revision, Ordering::Release);
                Ok(())
            }
            Err((conflict, reason)) => {
                if conflict {
                    self.superseded.send_replace(true);
                    return Err(LedgerError::Shared("another replica saved it since: this one no longer leads".into()));
                }
                Err(LedgerError::Shared(reason))
            }
        }
    }
}
