//! Which publisher depth saturates a system: the rule the bench's
//! saturation search applies to each deeper run it tries.
//!
//! A publisher that waits for each answer delivers at most depth ÷ answer
//! time (Little's law), so a durable system (the relay answers after an
//! fsync) can look saturated at a depth that only fills the publisher's
//! window. The search tries deeper publishers while they keep paying.

use crate::measure::Outcome;

/// A deeper publisher must deliver this much more to count as not saturated.
const DEEPER_GAINS: f64 = 1.05;

/// Of a saturation run and the next deeper one: the run that delivered
/// more, and whether the deeper one gained enough to try deeper still. A
/// deeper run whose subscribers had not received everything published by
/// the run's deadline does not count: the system took more than it could
/// deliver, and its rate is that of a backlog being drained, cut short.
pub fn keep_deeper(previous: Outcome, deeper: Outcome) -> (Outcome, bool) {
    if deeper.delivered < deeper.expected {
        return (previous, false);
    }
    let gained = deeper.delivered_per_second() >= previous.delivered_per_second() * DEEPER_GAINS;
    let kept = if deeper.delivered_per_second() > previous.delivered_per_second() { deeper } else { previous };
    (kept, gained)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn saturated(in_flight: usize, delivered: u64) -> Outcome {
        Outcome {
            system: "relay",
            round: 1,
            subscribers: 100,
            selectivity: "10%",
            load: "saturation",
            in_flight,
            published: delivered / 10,
            delivered,
            expected: delivered,
            elapsed: Duration::from_secs(1),
            p50_us: 1,
            p99_us: 1,
            p999_us: 1,
            answer_p50_us: 1,
            answer_p99_us: 1,
            server_cpu: 1.0,
            server_waited: None,
            bench_waited: None,
            server_peak_rss_mb: 1.0,
        }
    }

    #[test]
    fn a_deeper_publisher_that_delivers_clearly_more_is_kept_and_deeper_is_tried() {
        let (kept, go_deeper) = keep_deeper(saturated(32, 400_000), saturated(64, 450_000));
        assert_eq!((kept.in_flight, go_deeper), (64, true));
    }

    #[test]
    fn a_small_gain_is_kept_but_ends_the_search() {
        let (kept, go_deeper) = keep_deeper(saturated(32, 400_000), saturated(64, 410_000));
        assert_eq!((kept.in_flight, go_deeper), (64, false));
    }

    #[test]
    fn a_deeper_run_cut_short_by_its_deadline_does_not_count() {
        let mut cut_short = saturated(64, 770_000);
        cut_short.expected = 4 * cut_short.delivered;
        let (kept, go_deeper) = keep_deeper(saturated(32, 620_000), cut_short);
        assert_eq!((kept.in_flight, go_deeper), (32, false));
    }

    #[test]
    fn a_deeper_publisher_that_delivers_less_leaves_the_shallower_run() {
        let (kept, go_deeper) = keep_deeper(saturated(64, 450_000), saturated(128, 430_000));
        assert_eq!((kept.in_flight, go_deeper), (64, false));
    }
}
