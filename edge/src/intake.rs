//! The quick route of a notification POST: the common request (items to
//! queue, validationTokens verified before or checkable with keys at hand)
//! decided in synchronous steps that the Worker's JavaScript entry drives
//! (`worker_glue/quick_route.mjs`), so such a request costs no async Rust
//! future, no promise callbacks into wasm and no body read through Rust. A
//! token seen for the first time costs one WebCrypto promise the entry
//! awaits.
//!
//! Everything else takes the full route ([`crate::pipeline`]), which answers
//! exactly as it always has: handshakes, refusals by header, synchronous
//! mode, a misconfigured edge, tokens refused or needing keys not yet at
//! hand, items too large for a queue message, bodies needing more than one
//! `sendBatch`. For the requests it does take, the quick route gives the
//! answer and writes the log line the full route would (its tests run both
//! on the same requests).
//!
//! The steps: [`Intake::start`] on the request line and headers (`None`: the
//! full route), [`Intake::accept`] on the body (and [`Intake::verified`] once
//! the signatures of tokens seen for the first time are checked), then, when
//! the items are to be sent, [`Intake::finish`] with what the queue said.

use std::time::Duration;

use crate::budget::{self, Budget};
use crate::chunk;
use crate::client_state::ClientStates;
use crate::collection::Batch;
use crate::delivery::RequestId;
use crate::inbound::{self, Reply, Route};
use crate::pipeline::{self, LogLine};
use crate::request_log::RequestLog;

/// One notification POST on the quick route.
#[derive(Debug)]
pub struct Intake {
    route: Route,
    /// When the request arrived: the answer's budget and the log's `ackMs`
    /// count from here.
    started_ms: u64,
    budget: Budget,
    log: RequestLog,
    /// `REQUEST_LOGS`: every request gets its line, or only 5xx ones.
    logs_every_request: bool,
    /// Queue messages handed to the send, and how long it may take: the
    /// log's outcome names both.
    sending: (usize, Duration),
    /// A body parsed here whose tokens the full route checks.
    parsed: Option<Batch>,
}

/// What the full route needs to go on where the quick route stopped.
#[derive(Debug)]
pub struct Handover {
    pub route: Route,
    pub batch: Batch,
    pub budget: Budget,
    pub started_ms: u64,
}

/// What to do once the body is read.
#[derive(Debug, PartialEq, Eq)]
pub enum Accepted {
    /// Answer now (a refused body, nothing to deliver), logging the line.
    Answer(Reply, Option<LogLine>),
    /// Send these encoded `PublishRequest`s to the queue within `deadline`,
    /// then [`Intake::finish`].
    Send { messages: Vec<Vec<u8>>, deadline: Duration },
    /// The full route, with the body already read ([`Intake::handover`]).
    Full,
    /// The batch's validationTokens have signatures being checked: then
    /// [`Intake::verified`].
    Verify,
}

/// What the Worker makes of a batch's validationTokens, where the quick
/// route can tell without I/O.
#[derive(Debug, PartialEq, Eq)]
pub enum Tokens {
    /// Every token passes: verified before, with keys still fresh.
    Vouched,
    /// Their signatures are being checked (the platform's promises): the
    /// rest of each token's check follows in [`Intake::verified`].
    Verifying,
    /// Only the full route can tell (a token refused, keys to fetch or to
    /// import): it checks them again, and quarantines or asks a retry.
    Unknown,
}

impl Intake {
    /// A notification POST the quick route may take, by its request line and
    /// headers; `None` sends it the full way (the full route also answers
    /// handshakes and refusals by header, and logs them).
    pub fn start(
        method: &str,
        url: &str,
        content_type: Option<&str>,
        content_length: Option<&str>,
        now_ms: u64,
        logs_every_request: bool,
    ) -> Option<Self> {
        let (path, query) = inbound::path_and_query(url);
        let route = inbound::route(method, path).ok()?;
        if !matches!(route, Route::Notifications | Route::Lifecycle) || inbound::handshake(query).is_some() {
            return None;
        }
        inbound::check_headers(content_type, content_length).ok()?;
        Some(Self {
            route,
            started_ms: now_ms,
            budget: Budget::starting_at(now_ms),
            log: RequestLog::new(route),
            logs_every_request,
            sending: (0, Duration::ZERO),
            parsed: None,
        })
    }

    /// Parses and checks the body. `tokens` says what becomes of a batch
    /// that needs its validationTokens checked (see [`Tokens`]).
    pub fn accept(
        &mut self,
        body: &[u8],
        client_states: &ClientStates,
        request_id: &RequestId,
        now_ms: u64,
        tokens: impl FnOnce(&Batch) -> Tokens,
    ) -> Accepted {
        let batch = match inbound::accept_body(body, client_states, now_ms as i64, request_id) {
            Ok(batch) => batch,
            Err(reply) => {
                let outcome = format!("refused: {}", reply.body);
                return self.answer(reply, outcome, now_ms);
            }
        };
        if batch.needs_token_check() {
            let next = match tokens(&batch) {
                Tokens::Vouched => return self.queue(batch, now_ms),
                Tokens::Verifying => Accepted::Verify,
                Tokens::Unknown => Accepted::Full,
            };
            self.parsed = Some(batch);
            return next;
        }
        self.queue(batch, now_ms)
    }

    /// After [`Accepted::Verify`], once the signatures are checked:
    /// `passed` concludes each token's check on the batch. A batch whose
    /// tokens fail takes the full route, which checks them again and
    /// quarantines it or asks a retry, as for any batch.
    pub fn verified(&mut self, passed: impl FnOnce(&Batch) -> bool, now_ms: u64) -> Accepted {
        match self.parsed.take() {
            Some(batch) if passed(&batch) => self.queue(batch, now_ms),
            parsed => {
                self.parsed = parsed;
                Accepted::Full
            }
        }
    }

    /// Items whose tokens passed (or which needed none) to the queue, or
    /// the answer when there is nothing to deliver.
    fn queue(&mut self, batch: Batch, now_ms: u64) -> Accepted {
        self.log.batch(&batch);
        if batch.notifications.is_empty() {
            return self.answer(Reply::accepted(), "nothing to deliver".into(), now_ms);
        }
        let chunks = chunk::split(batch.notifications, chunk::MAX_MESSAGE_BYTES);
        let Some(deadline) = self.budget.step(now_ms, budget::ANSWER_WITHIN) else { return Accepted::Full };
        if !chunks.oversized.is_empty() {
            return Accepted::Full;
        }
        // One `sendBatch` here; more than its limits allow (a large body)
        // take the full route, which sends them one batch after another.
        let mut batches = chunk::send_batches(chunks.messages);
        let (Some(messages), true) = (batches.pop(), batches.is_empty()) else { return Accepted::Full };
        self.sending = (messages.len(), deadline);
        Accepted::Send { messages, deadline }
    }

    /// The answer once the queue has spoken: `Ok(true)` it holds every
    /// message, `Ok(false)` it did not confirm within the deadline, `Err` it
    /// refused them. `fast_path`: the messages also go straight to the
    /// fan-out after the answer.
    pub fn finish(self, sent: Result<bool, String>, fast_path: bool, now_ms: u64) -> (Reply, Option<LogLine>) {
        let (messages, deadline) = self.sending;
        let delivery = match sent {
            Ok(true) => Ok(pipeline::queued_summary(messages, 0, fast_path)),
            Ok(false) => Err(pipeline::queue_late(deadline)),
            Err(e) => Err(pipeline::queue_refused(&e)),
        };
        let (reply, outcome) = pipeline::delivered(delivery);
        let line = self.line(&reply, outcome, now_ms);
        (reply, line)
    }

    /// After [`Accepted::Full`] for tokens to check: the parsed body, for
    /// `pipeline::parsed_post`; `None` when the full route must read the
    /// body afresh (items too large for a message).
    pub fn handover(self) -> Option<Handover> {
        let batch = self.parsed?;
        Some(Handover { route: self.route, batch, budget: self.budget, started_ms: self.started_ms })
    }

    fn answer(&mut self, reply: Reply, outcome: String, now_ms: u64) -> Accepted {
        let log = std::mem::take(&mut self.log);
        let line =
            pipeline::log_line(log, &reply, outcome, now_ms.saturating_sub(self.started_ms), self.logs_every_request);
        Accepted::Answer(reply, line)
    }

    fn line(self, reply: &Reply, outcome: String, now_ms: u64) -> Option<LogLine> {
        let elapsed = now_ms.saturating_sub(self.started_ms);
        pipeline::log_line(self.log, reply, outcome, elapsed, self.logs_every_request)
    }
}

#[cfg(test)]
#[path = "intake_tests.rs"]
mod tests;
