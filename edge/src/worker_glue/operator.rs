//! Operator-only routes over the `DEAD_LETTERS` KV namespace: dead letters
//! (list, replay) and quarantined batches (list). Bearer `ADMIN_TOKEN` in
//! constant time; disabled (404) when no `ADMIN_TOKEN` is set.

use worker::{Env, Request, Result};

use super::storage::KV_BINDING;
use super::{dead_letters, quarantine};
use crate::inbound::{Reply, Route};
use crate::secret;

pub(crate) async fn handle(route: Route, req: &Request, env: &Env) -> Result<Reply> {
    let admin_token = match env.var("ADMIN_TOKEN") {
        Ok(token) if !token.to_string().is_empty() => token.to_string(),
        _ => return Ok(Reply::text(404, "operator routes are disabled: set the ADMIN_TOKEN secret")),
    };
    if !secret::bearer_matches(req.headers().get("authorization")?.as_deref(), &admin_token) {
        return Ok(Reply::text(401, "operator routes need authorization: Bearer <ADMIN_TOKEN>"));
    }
    let Ok(kv) = env.kv(KV_BINDING) else {
        return Ok(Reply::text(503, "no DEAD_LETTERS KV binding configured"));
    };
    match route {
        Route::DeadLetters => dead_letters::list(&kv).await,
        Route::ReplayDeadLetters => dead_letters::replay(&kv, env).await,
        Route::Quarantine => quarantine::list(&kv).await,
        _ => Ok(Reply::text(404, "not an operator route")),
    }
}
