//! What an open Subscribe stream was granted, checked again whenever the
//! subscribers file is reloaded (SIGHUP): a revoked token ends its streams
//! with `UNAUTHENTICATED`, a narrowed scope applies to streams already open,
//! a new token works at once.
//!
//! The subscribers in force are a `watch` value replaced whole on reload, so
//! a stream sees either the old file or the new one, never half of each.

use std::sync::Arc;

use graph_relay_proto::v1 as pb;
use tokio::sync::watch;
use tonic::metadata::MetadataMap;
use tonic::Status;

use super::access::{Access, Scope};
use crate::delivery::filter::Filter;

/// The subscribers in force; the server replaces the value on reload.
pub type Subscribers = watch::Receiver<Arc<Access>>;

/// What a stream may receive: its filter within the token's scope, and
/// whether resource data comes decrypted.
pub struct Allowed {
    pub filter: Filter,
    pub decrypted: bool,
}

/// One stream's token and request, to be checked against each new file.
pub struct Grant {
    /// The subscriber's name in the file when the stream opened (for logs and
    /// metrics, never the token).
    pub subscriber: String,
    /// The SHA-256 of the token presented: the token itself is not kept.
    token: [u8; 32],
    /// The filter as the client asked for it, before narrowing to the scope.
    requested: pb::Filter,
    subscribers: Subscribers,
}

impl Grant {
    /// Authenticates the stream's token and authorizes its filter against
    /// the subscribers in force.
    pub fn open(
        subscribers: &Subscribers,
        metadata: &MetadataMap,
        requested: pb::Filter,
    ) -> Result<(Grant, Allowed), Status> {
        let mut subscribers = subscribers.clone();
        let access = subscribers.borrow_and_update().clone();
        let (token, scope) = access.identify(metadata)?;
        let allowed = allow(scope, &requested)?;
        let grant = Grant { subscriber: scope.name.clone(), token, requested, subscribers };
        Ok((grant, allowed))
    }

    /// A reader inside the server (the reconciler's feed): no token, no
    /// reload, not counted among the subscribers.
    pub fn internal(filter: Filter) -> (Grant, Allowed) {
        // The sender is dropped: the value never changes.
        let (_, subscribers) = watch::channel(Arc::new(Access::default()));
        let grant = Grant { subscriber: String::new(), token: [0; 32], requested: pb::Filter::default(), subscribers };
        (grant, Allowed { filter, decrypted: false })
    }

    /// Whether this is a subscriber's stream rather than the server's own.
    pub fn is_subscriber(&self) -> bool {
        !self.subscriber.is_empty()
    }

    /// After a reload: what the stream may now receive, or why it must end;
    /// `None` while the subscribers are the ones it last checked.
    pub fn renewed(&mut self) -> Option<Result<Allowed, Status>> {
        if !self.subscribers.has_changed().unwrap_or(false) {
            return None;
        }
        let access = self.subscribers.borrow_and_update().clone();
        let Some(scope) = access.scope_of(&self.token) else {
            tracing::info!(subscriber = %self.subscriber, "token revoked by a reload: ending the stream");
            return Some(Err(Status::unauthenticated("subscriber token revoked")));
        };
        Some(allow(scope, &self.requested))
    }

    /// Resolves when the subscribers file was reloaded (never, once the
    /// server no longer reloads).
    pub async fn reloaded(&mut self) {
        if self.subscribers.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        // `renewed` marks it seen.
        self.subscribers.mark_changed();
    }
}

fn allow(scope: &Scope, requested: &pb::Filter) -> Result<Allowed, Status> {
    let mut filter = requested.clone();
    scope.authorize(&mut filter)?;
    let compiled = Filter::compile(Some(&filter)).map_err(|e| Status::invalid_argument(e.to_string()))?;
    Ok(Allowed { filter: compiled.within(scope.filter()), decrypted: scope.decrypted_data })
}
