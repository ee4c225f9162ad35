//! What the reconciler knows about Graph, kept across restarts:
//! `subscriptions.json` in the data directory, replaced atomically (write,
//! fsync, rename) so a crash leaves the old or the new state, never half.
//!
//! A JSON file rather than the log's database because `subscriptions list`
//! must read it while `serve` runs, and redb locks its file exclusively. An
//! advisory lock (`subscriptions.lock`) keeps two reconcilers (a `serve` and a
//! `subscriptions sync`) from renewing the same subscriptions at once.
//!
//! With a shared log (`--log nats`) the state lives in a KV bucket instead
//! ([`SaveState`], kept by the shared log's module), so whichever replica leads
//! next continues from it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One wanted subscription's life on Graph.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub subscription_id: String,
    /// Whose token deletes it once the entry has left the file.
    #[serde(default)]
    pub permission: Option<super::catalog::Permission>,
    pub resource: String,
    pub change_types: String,
    /// Which definition this subscription was made from; a change means recreate.
    pub fingerprint: String,
    pub expiration_ms: u64,
    /// When the next renewal is due (jittered at each renewal).
    pub renew_at_ms: u64,
    pub created_ms: u64,
    pub last_renewal_ms: u64,
    pub last_reauthorize_ms: u64,
    pub last_notification_ms: u64,
    pub renewals: u64,
    pub last_error: Option<String>,
    pub last_error_ms: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// By entry name.
    pub entries: BTreeMap<String, Record>,
    /// The last log sequence whose lifecycle event was handled.
    pub lifecycle_cursor: Option<u64>,
    /// Entries Graph has not accepted yet: name -> (last error, when).
    #[serde(default)]
    pub not_created: BTreeMap<String, (String, u64)>,
    /// Lost subscriptions whose `resyncNeeded` is still owed, by entry name
    /// (see `resync`).
    #[serde(default)]
    pub owed_resyncs: BTreeMap<String, super::resync::Owed>,
    /// The last time the reconciler's lifecycle feed broke and was restarted.
    #[serde(default)]
    pub feed_failure: Option<FeedFailure>,
}

/// A broken lifecycle feed, as `subscriptions list` shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FeedFailure {
    pub reason: String,
    pub at_ms: u64,
    /// Restarts since the server started.
    pub restarts: u32,
}

impl State {
    /// The debts whose entry has a subscription again (not the lost one):
    /// (entry name, debt, the new subscription id).
    pub fn payable_resyncs(&self) -> Vec<(String, super::resync::Owed, String)> {
        self.owed_resyncs
            .iter()
            .filter_map(|(name, owed)| {
                let record = self.entries.get(name)?;
                let recreated = !record.subscription_id.eq_ignore_ascii_case(&owed.previous_subscription_id);
                recreated.then(|| (name.clone(), owed.clone(), record.subscription_id.clone()))
            })
            .collect()
    }

    pub fn by_subscription_id(&self, id: &str) -> Option<(&String, &Record)> {
        self.entries.iter().find(|(_, r)| r.subscription_id.eq_ignore_ascii_case(id))
    }
}

/// The reconciler's state and where it is saved.
pub struct Ledger {
    backing: Backing,
    pub state: State,
}

enum Backing {
    /// The state file, and its lock, held for as long as this reconciler runs.
    File { path: PathBuf, _lock: File },
    /// Somewhere every replica reaches (the shared log's KV).
    Shared(Box<dyn SaveState>),
}

/// Saves the state where another replica can continue from it.
pub trait SaveState: Send + Sync {
    fn save(&self, state: &State) -> Result<(), LedgerError>;
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}: another reconciler (graph-relay serve or subscriptions sync) is running on this data directory")]
    Locked(PathBuf),
    #[error("{path}: {source}")]
    Corrupt { path: PathBuf, source: serde_json::Error },
    #[error("the shared reconciler state: {0}")]
    Shared(String),
}

pub const FILE_NAME: &str = "subscriptions.json";

impl Ledger {
    pub fn open(data_dir: &Path) -> Result<Ledger, LedgerError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LedgerError::Io { path, source }
        };
        std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
        let lock_path = data_dir.join("subscriptions.lock");
        let lock = File::options().create(true).truncate(false).write(true).open(&lock_path).map_err(io(&lock_path))?;
        if lock.try_lock().is_err() {
            return Err(LedgerError::Locked(data_dir.to_path_buf()));
        }
        let path = data_dir.join(FILE_NAME);
        let state = read(&path)?;
        Ok(Ledger { backing: Backing::File { path, _lock: lock }, state })
    }

    /// A state kept by `saver` (read from there by the caller).
    pub fn shared(state: State, saver: Box<dyn SaveState>) -> Ledger {
        Ledger { backing: Backing::Shared(saver), state }
    }

    pub fn save(&self) -> Result<(), LedgerError> {
        match &self.backing {
            Backing::File { path, .. } => save_file(path, &self.state),
            Backing::Shared(saver) => saver.save(&self.state),
        }
    }
}

/// Replaces the state file atomically: write, fsync, rename, fsync the directory.
fn save_file(path: &Path, state: &State) -> Result<(), LedgerError> {
    let io = |source| LedgerError::Io { path: path.to_path_buf(), source };
    let temporary = path.with_extension("json.tmp");
    let mut file = File::create(&temporary).map_err(io)?;
    let text = serde_json::to_string_pretty(state)
        .map_err(|source| LedgerError::Corrupt { path: path.to_path_buf(), source })?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&temporary, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        // The rename itself must survive a power cut.
        File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(())
}

/// The saved state, without taking the lock (for `subscriptions list`).
pub fn read(path: &Path) -> Result<State, LedgerError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|source| LedgerError::Corrupt { path: path.into(), source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(source) => Err(LedgerError::Io { path: path.into(), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_reopening_and_a_second_reconciler_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(dir.path()).unwrap();
        ledger
            .state
            .entries
            .insert("inbox".into(), Record { subscription_id: "S-1".into(), expiration_ms: 42, ..Default::default() });
        ledger.state.lifecycle_cursor = Some(7);
        ledger.save().unwrap();
        assert!(matches!(Ledger::open(dir.path()), Err(LedgerError::Locked(_))));
        // Readers need no lock.
        let read_back = read(&dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(read_back.entries["inbox"].expiration_ms, 42);
        assert_eq!(read_back.by_subscription_id("s-1").map(|(name, _)| name.as_str()), Some("inbox"));
        drop(ledger);
        let reopened = Ledger::open(dir.path()).unwrap();
        assert_eq!(reopened.state.lifecycle_cursor, Some(7));
        assert!(!dir.path().join("subscriptions.json.tmp").exists(), "the temporary file was renamed");
    }

    #[test]
    fn a_corrupt_state_file_is_an_error_not_an_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "{ not json").unwrap();
        // Starting empty would recreate every subscription on Graph (409s, duplicates).
        assert!(matches!(Ledger::open(dir.path()), Err(LedgerError::Corrupt { .. })));
    }
}
