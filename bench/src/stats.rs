//! Summaries of repeated measurements: a median with the rounds' spread,
//! and a confidence interval for a median that assumes nothing about how
//! the rounds are distributed (a machine's drift is not Gaussian).

/// The median of `samples`, and their spread (max - min); `(NaN, 0)` for
/// no samples.
pub fn median_and_spread(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let spread = samples.last().unwrap_or(&0.0) - samples.first().unwrap_or(&0.0);
    (samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN), spread)
}

/// A 95% confidence interval for the median of `samples`, from their order
/// statistics: the k-th smallest and k-th largest, for the largest k that
/// leaves at most 2.5% on each side under the binomial law (no assumption
/// about the samples' distribution). `None` under six samples, where none
/// covers 95%.
pub fn median_interval(mut samples: Vec<f64>) -> Option<(f64, f64)> {
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    // P(at most j of n samples fall below the median) = sum C(n, i) / 2^n.
    let mut below = 0.0;
    let mut choose = 1.0;
    let mut k = 0;
    for j in 0..n {
        below += choose / 2f64.powi(n as i32);
        if below > 0.025 {
            break;
        }
        k = j + 1;
        choose = choose * (n - j) as f64 / (j + 1) as f64;
    }
    (k >= 1).then(|| (samples[k - 1], samples[n - k]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_comes_with_the_spread_of_the_samples() {
        assert_eq!(median_and_spread(vec![3.0, 1.0, 2.0, 10.0, 4.0]), (3.0, 9.0));
        assert!(median_and_spread(Vec::new()).0.is_nan());
    }

    #[test]
    fn the_interval_is_the_order_statistics_the_binomial_law_allows() {
        let samples = |n: usize| (1..=n).rev().map(|i| i as f64).collect::<Vec<f64>>();
        // Under six samples even the extremes cover less than 95%.
        assert_eq!(median_interval(samples(5)), None);
        // Six or seven: the extremes (1 - 2/2^n: 96.9%, 98.4%).
        assert_eq!(median_interval(samples(6)), Some((1.0, 6.0)));
        assert_eq!(median_interval(samples(7)), Some((1.0, 7.0)));
        // 21: the 6th smallest and the 6th largest (97.3%; the 7th would give 92.2%).
        assert_eq!(median_interval(samples(21)), Some((6.0, 16.0)));
        // 30: the 10th and the 21st (95.7%).
        assert_eq!(median_interval(samples(30)), Some((10.0, 21.0)));
    }
}
