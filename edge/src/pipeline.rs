//! A notification POST, step by step: the order of the steps and every
//! decision in them (503 or 202, quarantine or retry, when to refetch the
//! signing keys, how long a failed queue message waits), in plain Rust over
//! the small [`Platform`] trait. The Worker implements the trait with its
//! bindings (`worker_glue`); the tests here with a fake, natively.

use std::rc::Rc;
use std::time::Duration;

use graph_relay_proto::v1::Notification;

use crate::budget::Budget;
use crate::client_state::ClientStates;
use crate::collection::Batch;
use crate::delivery::RequestId;
use crate::inbound::{self, Reply, Route};
use crate::request_log::RequestLog;
use crate::validation_tokens::{self, Keys, Policy, Rs256};

/// What the request path needs from the platform, for one request.
// The Worker is single-threaded: its futures are not Send, and need not be.
#[allow(async_fn_in_trait)]
pub trait Platform {
    /// Checks validationToken signatures (WebCrypto in the Worker).
    type Signatures: Rs256;
    fn signatures(&self) -> &Self::Signatures;
    fn now_ms(&self) -> u64;
    /// Whether every request is logged, or only the 5xx ones
    /// (`REQUEST_LOGS=errors`): then no other line is even written.
    fn logs_every_request(&self) -> bool;
    fn log(&self, line: &str);
    fn log_error(&self, line: &str);
    /// The accepted clientState values (`CLIENT_STATES`) and that the
    /// fan-out is configured; the error names what is missing.
    fn client_states(&self) -> Result<Rc<ClientStates>, String>;
    /// What validationTokens must satisfy (`GRAPH_APP_IDS`, ...).
    fn token_policy(&self) -> Result<Rc<Policy>, String>;
    /// The request's body (read only once its headers passed).
    async fn body(&self) -> Result<Vec<u8>, String>;
    /// The signing keys, cached or fetched within the budget.
    async fn keys(&self, budget: &Budget) -> Result<Rc<Keys>, String>;
    /// The keys fetched again for an unknown `kid` (or the cached ones when
    /// they were fetched too recently); `None` when the budget leaves no time.
    async fn refreshed_keys(&self, budget: &Budget) -> Option<Result<Rc<Keys>, String>>;
    /// Records a batch refused for its tokens.
    async fn quarantine(&self, route: Route, batch: &Batch, reason: &str);
    /// Stores the accepted items (queue, or the fan-out); a summary for the log.
    async fn deliver(&self, notifications: Vec<Notification>, budget: &Budget) -> Result<String, String>;
}

/// A POST to a notification route, as far as its headers and query.
pub struct Post<'a> {
    pub route: Route,
    pub query: &'a str,
    pub content_type: Option<&'a str>,
    pub content_length: Option<&'a str>,
}

/// Answers a POST to `/graph/notifications` or `/graph/lifecycle`, and
/// logs one JSON line saying what came and what became of it (see
/// `request_log`); a line for a 5xx answer is logged as an error.
pub async fn notification_post<P: Platform>(platform: &P, post: Post<'_>, budget: &Budget) -> Reply {
    let started = platform.now_ms();
    let mut log = RequestLog::new(post.route);
    let (reply, outcome) = decide(platform, post, budget, &mut log).await;
    write_line(platform, log, &reply, outcome, started);
    reply
}

/// The same for a POST whose body the quick route (`intake`) already
/// parsed into `batch`, from the token check on; `started_ms` is when the
/// request arrived.
pub async fn parsed_post<P: Platform>(
    platform: &P,
    route: Route,
    batch: Batch,
    budget: &Budget,
    started_ms: u64,
) -> Reply {
    let mut log = RequestLog::new(route);
    let (reply, outcome) = decide_batch(platform, route, batch, budget, &mut log).await;
    write_line(platform, log, &reply, outcome, started_ms);
    reply
}

fn write_line<P: Platform>(platform: &P, log: RequestLog, reply: &Reply, outcome: String, started_ms: u64) {
    let elapsed = platform.now_ms().saturating_sub(started_ms);
    match log_line(log, reply, outcome, elapsed, platform.logs_every_request()) {
        Some(LogLine { text, error: true }) => platform.log_error(&text),
        Some(LogLine { text, error: false }) => platform.log(&text),
        None => {}
    }
}

/// A request's log line, once it is answered.
#[derive(Debug, PartialEq, Eq)]
pub struct LogLine {
    pub text: String,
    /// A 5xx answer: logged as an error, whatever `REQUEST_LOGS` says.
    pub error: bool,
}

/// The line for an answered request: always for a 5xx answer, else only
/// when every request is logged (`REQUEST_LOGS=errors` writes no other).
pub fn log_line(log: RequestLog, reply: &Reply, outcome: String, elapsed_ms: u64, every: bool) -> Option<LogLine> {
    let error = reply.status >= 500;
    (error || every).then(|| LogLine { text: log.finish(reply.status, outcome, elapsed_ms), error })
}

/// The answer once delivery is known: 202 when the items are stored, else
/// a 503 so Graph retries; the outcome for the log.
pub fn delivered(delivery: Result<String, String>) -> (Reply, String) {
    match delivery {
        Ok(summary) => (Reply::accepted(), summary),
        Err(e) => (
            Reply::text(503, "notifications could not be stored; retry later"),
            format!("not stored, retry asked: {e}"),
        ),
    }
}

/// A queue send not confirmed within `timeout`, for the log.
pub fn queue_late(timeout: Duration) -> String {
    format!("the queue did not take the batch within {timeout:?}")
}

/// A queue send refused, for the log (the runtime's error names the
/// queue, never a message's content).
pub fn queue_refused(error: &str) -> String {
    format!("queue send failed: {error}")
}

/// What queue mode did with a request's items, for the log.
pub fn queued_summary(messages: usize, oversized: usize, fast_path: bool) -> String {
    let summary = format!("queued {messages} messages, forwarded {oversized} oversized items directly");
    if fast_path {
        return summary + "; fast path started";
    }
    summary
}

/// The answer, and what became of the request in a few words.
async fn decide<P: Platform>(platform: &P, post: Post<'_>, budget: &Budget, log: &mut RequestLog) -> (Reply, String) {
    if let Some(reply) = inbound::handshake(post.query) {
        return (reply, "validation handshake".into());
    }
    if let Err(reply) = inbound::check_headers(post.content_type, post.content_length) {
        let outcome = format!("refused: {}", reply.body);
        return (reply, outcome);
    }
    let client_states = match platform.client_states() {
        Ok(states) => states,
        Err(problem) => return misconfigured(&problem),
    };
    let body = match platform.body().await {
        Ok(body) => body,
        Err(e) => return (Reply::text(400, format!("the body could not be read: {e}")), "body unreadable".into()),
    };
    let request_id = match RequestId::random() {
        Ok(id) => id,
        Err(e) => return (Reply::text(503, "no request id could be made; retry later"), e.to_string()),
    };
    let batch = match inbound::accept_body(&body, &client_states, platform.now_ms() as i64, &request_id) {
        Ok(batch) => batch,
        Err(reply) => {
            let outcome = format!("refused: {}", reply.body);
            return (reply, outcome);
        }
    };
    decide_batch(platform, post.route, batch, budget, log).await
}

/// The answer to a parsed body: its tokens checked, then its items delivered.
async fn decide_batch<P: Platform>(
    platform: &P,
    route: Route,
    batch: Batch,
    budget: &Budget,
    log: &mut RequestLog,
) -> (Reply, String) {
    log.batch(&batch);
    match check_tokens(platform, &batch, budget).await {
        Ok(()) => {}
        Err(Refusal::Retry(reply, why)) => return (reply, format!("retry asked: {why}")),
        Err(Refusal::Quarantine(reason)) => {
            platform.quarantine(route, &batch, &reason).await;
            return (Reply::accepted(), format!("quarantined: {reason}"));
        }
    }
    if batch.notifications.is_empty() {
        return (Reply::accepted(), "nothing to deliver".into());
    }
    delivered(platform.deliver(batch.notifications, budget).await)
}

fn misconfigured(problem: &str) -> (Reply, String) {
    (Reply::text(503, "edge is misconfigured; retry later"), format!("edge misconfigured: {problem}"))
}

/// Why a batch with validationTokens was not let through.
enum Refusal {
    /// We could not check (configuration, keys unavailable): Graph
    /// retries; the reply, and why for the log.
    Retry(Reply, String),
    /// The tokens are bad: 202, nothing delivered, recorded.
    Quarantine(String),
}

/// Checks every validationToken before anything of the batch is delivered;
/// an unknown `kid` gets one refetch of the keys, if the budget allows it
/// (without one, the kid may be new: that is a retry, not a bad token).
async fn check_tokens<P: Platform>(platform: &P, batch: &Batch, budget: &Budget) -> Result<(), Refusal> {
    if !batch.needs_token_check() {
        return Ok(());
    }
    let policy = platform.token_policy().map_err(|problem| {
        let (reply, why) = misconfigured(&problem);
        Refusal::Retry(reply, why)
    })?;
    let unavailable = |e: String| {
        Refusal::Retry(
            Reply::text(503, "signing keys unavailable; retry later"),
            format!("signing keys unavailable: {e}"),
        )
    };
    let keys = platform.keys(budget).await.map_err(unavailable)?;
    let tokens = batch.validation_tokens.as_ref();
    let now_s = platform.now_ms() / 1000;
    let rs256 = platform.signatures();
    let verdict = match validation_tokens::check_batch(tokens, &batch.rich_tenants, &keys, &policy, now_s, rs256).await
    {
        Err(e) if e.is_unknown_key() => {
            let Some(refreshed) = platform.refreshed_keys(budget).await else {
                return Err(unavailable("no time left to refetch them for an unknown kid".to_owned()));
            };
            let keys = refreshed.map_err(unavailable)?;
            validation_tokens::check_batch(tokens, &batch.rich_tenants, &keys, &policy, now_s, rs256).await
        }
        verdict => verdict,
    };
    verdict.map(|_| ()).map_err(|e| Refusal::Quarantine(e.to_string()))
}

/// Whether cached signing keys fetched at `fetched_at_ms` are past `max_age_ms`.
pub fn keys_are_stale(fetched_at_ms: u64, now_ms: u64, max_age_ms: u64) -> bool {
    now_ms.saturating_sub(fetched_at_ms) >= max_age_ms
}

/// Whether an unknown `kid` may refetch the keys: not again within
/// `min_refresh_ms` of the last fetch, so a flood of made-up kids cannot
/// turn into a flood of fetches.
pub fn refetch_allowed(fetched_at_ms: u64, now_ms: u64, min_refresh_ms: u64) -> bool {
    now_ms.saturating_sub(fetched_at_ms) >= min_refresh_ms
}

/// How long a queue message that failed waits before its next try: as long
/// as it has already waited, so delays double from one try to the next,
/// between `base_seconds` and `max_seconds`.
pub fn retry_delay_seconds(age_seconds: u64, base_seconds: u32, max_seconds: u32) -> u32 {
    (age_seconds.min(u64::from(max_seconds)) as u32).clamp(base_seconds.min(max_seconds), max_seconds)
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
pub(crate) mod tests;
