//! Graph's 3 seconds, spent once per request.
//!
//! Graph counts an answer slower than 3 s as a failure, and an endpoint that
//! keeps failing is throttled and then dropped (docs/graph-protocol.md
//! section 2). A request may take several slow steps in a row:
//! fetching signing keys, refetching them for an unknown `kid`, forwarding
//! to the fan-out, sending to the queue. Each step's timeout is what is left
//! of one budget, so the answer (a 202, or a 503 Graph retries) always
//! leaves by [`ANSWER_WITHIN`], whatever hangs.

use std::time::Duration;

/// When the edge answers at the latest, measured from the request's start:
/// half a second short of Graph's 3 s for the network both ways.
pub const ANSWER_WITHIN: Duration = Duration::from_millis(2_500);
/// A step is not started with less than this left; answering 503 at once
/// beats a call that cannot finish in time.
pub const LEAST_USEFUL: Duration = Duration::from_millis(50);

/// One request's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    deadline_ms: u64,
}

impl Budget {
    /// The budget of a request that started at `now_ms`.
    pub fn starting_at(now_ms: u64) -> Self {
        Self { deadline_ms: now_ms + ANSWER_WITHIN.as_millis() as u64 }
    }

    /// What is left at `now_ms`.
    pub fn remaining(&self, now_ms: u64) -> Duration {
        Duration::from_millis(self.deadline_ms.saturating_sub(now_ms))
    }

    /// The timeout of a step that would take at most `cap` on its own:
    /// `cap` or what is left, whichever is less; `None` when too little is
    /// left to start it.
    pub fn step(&self, now_ms: u64, cap: Duration) -> Option<Duration> {
        let left = self.remaining(now_ms);
        (left >= LEAST_USEFUL).then_some(left.min(cap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_share_one_deadline() {
        let budget = Budget::starting_at(10_000);
        let cap = Duration::from_millis(1_500);
        assert_eq!(budget.step(10_000, cap), Some(cap), "a fresh request gets the step's own cap");
        assert_eq!(budget.step(11_500, cap), Some(Duration::from_millis(1_000)), "the second slow step gets the rest");
        assert_eq!(budget.step(12_460, cap), None, "too little left to start anything");
        assert_eq!(budget.remaining(13_000), Duration::ZERO);
    }

    #[test]
    fn three_slow_steps_still_answer_by_the_deadline() {
        let budget = Budget::starting_at(0);
        let mut now = 0;
        for cap in [1_500, 1_500, 2_000].map(Duration::from_millis) {
            if let Some(timeout) = budget.step(now, cap) {
                now += timeout.as_millis() as u64; // the step hangs to its timeout
            }
        }
        assert!(now <= ANSWER_WITHIN.as_millis() as u64, "answered after {now} ms");
    }
}
