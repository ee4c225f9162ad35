//! How long an entry waits after Graph refused or failed a call.
//!
//! Graph's own Retry-After wins when it gives one (capped); rules and quota
//! errors wait an hour, since retrying the same request cannot help; the
//! rest backs off exponentially with jitter, so a fleet of entries failing
//! together does not retry in lockstep.

use rand::Rng;

use super::client::GraphError;

pub(crate) const HOUR_MS: u64 = 3_600_000;
/// Ceiling of the exponential backoff.
const MAX_BACKOFF_MS: u64 = 5 * 60_000;
/// Graph's Retry-After is honoured up to this: renewals start at 55% of a
/// lifetime (≥ 18 min before a 60-minute presence subscription expires), so
/// an absurd value from a proxy must not outwait the subscriptions.
const MAX_RETRY_AFTER_MS: u64 = 10 * 60_000;

/// The least any wait of the reconciler lasts: `Retry-After: 0`, a date
/// already past or a subscription that claims to expire now must not turn
/// into back-to-back calls.
pub(crate) const MIN_WAIT_MS: u64 = 1_000;

/// The wait after the `attempts`-th failure in a row, `error` the last one.
pub(crate) fn wait_ms(error: &GraphError, attempts: u32) -> u64 {
    match error {
        GraphError::Throttled { retry_after: Some(after), .. } => {
            at_least_a_second((after.as_millis() as u64).min(MAX_RETRY_AFTER_MS))
        }
        GraphError::Quota(_) | GraphError::Refused { .. } => HOUR_MS,
        _ => exponential_ms(attempts),
    }
}

/// 2 s doubling per attempt up to 5 minutes, ± 20%.
pub(crate) fn exponential_ms(attempts: u32) -> u64 {
    let exponential = (1000u64 << attempts.min(12)).min(MAX_BACKOFF_MS);
    (exponential as f64 * rand::thread_rng().gen_range(0.8..1.2)) as u64
}

/// `wait_ms`, or one to one and a half seconds (jittered) if that is more.
pub(crate) fn at_least_a_second(wait_ms: u64) -> u64 {
    wait_ms.max(MIN_WAIT_MS + rand::thread_rng().gen_range(0..MIN_WAIT_MS / 2))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn throttled(retry_after: Option<Duration>) -> GraphError {
        GraphError::Throttled { status: 429, retry_after, message: "slow down".into() }
    }

    #[test]
    fn retry_after_is_honoured_up_to_its_ceiling() {
        assert_eq!(wait_ms(&throttled(Some(Duration::from_secs(30))), 1), 30_000);
        assert_eq!(wait_ms(&throttled(Some(Duration::from_secs(86_400))), 1), MAX_RETRY_AFTER_MS);
    }

    #[test]
    fn a_retry_after_of_zero_or_in_the_past_still_waits_a_jittered_second() {
        for _ in 0..50 {
            let wait = wait_ms(&throttled(Some(Duration::ZERO)), 1);
            assert!((MIN_WAIT_MS..MIN_WAIT_MS * 3 / 2).contains(&wait), "{wait}");
        }
        let waits: std::collections::HashSet<u64> =
            (0..50).map(|_| wait_ms(&throttled(Some(Duration::ZERO)), 1)).collect();
        assert!(waits.len() > 1, "jittered, so a fleet does not retry in lockstep");
    }

    #[test]
    fn rule_errors_wait_an_hour_and_the_rest_back_off_with_jitter() {
        assert_eq!(wait_ms(&GraphError::Quota("full".into()), 1), HOUR_MS);
        assert_eq!(wait_ms(&GraphError::Refused { status: 403, message: "no".into() }, 1), HOUR_MS);
        let first = wait_ms(&throttled(None), 1);
        assert!((1600..=2400).contains(&first), "2 s ± 20%: {first}");
        let late = wait_ms(&GraphError::NotFound, 30);
        assert!((240_000..=360_000).contains(&late), "capped at 5 min ± 20%: {late}");
    }
}
