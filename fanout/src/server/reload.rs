//! SIGHUP: the subscribers file and the subscriptions file read again
//! without a restart.
//!
//! Each file is checked as at start and put in force only if it passes; a
//! file that fails keeps the old one in force and says why in the log.
//! Subscribers: new tokens work at once, and every open stream checks its
//! token against the new file (see `auth::grant`). Subscriptions: the
//! running reconciler takes the new file between two Graph calls.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::auth::access::Access;
use crate::auth::BearerToken;
use crate::graph::configuration::{self, Configuration};

/// Where the subscribers come from, read at start and on each reload.
#[derive(Default)]
pub struct Sources {
    /// `--subscribers`.
    pub subscribers_file: Option<PathBuf>,
    /// `--subscriber-token`: full access, kept across reloads.
    pub subscriber_token: Option<BearerToken>,
    /// `--subscriptions-file`, if the server reconciles.
    pub subscriptions_file: Option<PathBuf>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources")
            .field("subscribers_file", &self.subscribers_file)
            .field("subscriptions_file", &self.subscriptions_file)
            .finish_non_exhaustive()
    }
}

impl Sources {
    /// The subscribers these sources name; an error names the problem.
    pub fn access(&self) -> Result<Access, String> {
        let mut access = match &self.subscribers_file {
            Some(path) => Access::load(path)?,
            None => Access::default(),
        };
        if let Some(token) = &self.subscriber_token {
            access.add_full_access_digest("subscriber-token", token.digest());
        }
        if access.is_empty() {
            return Err("no subscriber may connect: give --subscribers FILE and/or --subscriber-token".into());
        }
        Ok(access)
    }
}

/// Reloads on every SIGHUP until the server stops (the task is aborted).
pub fn on_hangup(
    sources: Sources,
    subscribers: watch::Sender<Arc<Access>>,
    configurations: Option<mpsc::Sender<Configuration>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut hangups = match signal(SignalKind::hangup()) {
                Ok(hangups) => hangups,
                Err(e) => return tracing::warn!("cannot watch SIGHUP ({e}): files reload only with a restart"),
            };
            while hangups.recv().await.is_some() {
                reload_all(&sources, &subscribers, configurations.as_ref()).await;
            }
        }
        #[cfg(not(unix))]
        let _ = (sources, subscribers, configurations);
    })
}

async fn reload_all(
    sources: &Sources,
    subscribers: &watch::Sender<Arc<Access>>,
    configurations: Option<&mpsc::Sender<Configuration>>,
) {
    match sources.access() {
        Ok(access) => {
            tracing::info!(subscribers = access.len(), "subscribers file reloaded");
            subscribers.send_replace(Arc::new(access));
        }
        Err(e) => tracing::error!("subscribers file refused, the old one stays in force: {e}"),
    }
    let (Some(path), Some(configurations)) = (&sources.subscriptions_file, configurations) else { return };
    match configuration::load(path) {
        Ok(configuration) => {
            if configurations.send(configuration).await.is_err() {
                tracing::warn!("subscriptions file read, but the reconciler has stopped");
            }
        }
        Err(e) => tracing::error!("subscriptions file refused, the old one stays in force: {e}"),
    }
}
