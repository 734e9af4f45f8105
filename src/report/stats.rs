//! The statistics of the impact tables, as pure functions of counts: Wilson's interval on a
//! rate, the Katz log interval on a ratio of two rates, and Fisher's exact test (two-sided).

use statrs::distribution::{ContinuousCDF, Normal};
use statrs::function::factorial::ln_binomial;

/// The standard normal quantile for a two-sided interval of level `confidence`.
pub fn z_score(confidence: f64) -> f64 {
    Normal::standard().inverse_cdf(0.5 + confidence / 2.0)
}

/// Wilson's score interval on `k` of `n` (no continuity correction); `None` for `n = 0`.
pub fn wilson(k: u64, n: u64, z: f64) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let (none, all) = (k == 0, k == n);
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let t = 1.0 + z * z / n;
    let center = (p + z * z / (2.0 * n)) / t;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / t;
    // At k = 0 (or n) the bound is exactly 0 (or 1); rounding would leave 1e-17 instead.
    let low = if none { 0.0 } else { center - half };
    let high = if all { 1.0 } else { center + half };
    Some((low, high))
}

/// Katz's log interval on the ratio (x1/n1)/(x2/n2); `None` when either count is 0 (the log
/// of the ratio is then unbounded).
pub fn ratio_interval(x1: u64, n1: u64, x2: u64, n2: u64, z: f64) -> Option<(f64, f64)> {
    if x1 == 0 || x2 == 0 {
        return None;
    }
    let (x1, n1, x2, n2) = (x1 as f64, n1 as f64, x2 as f64, n2 as f64);
    let ratio = (x1 / n1) / (x2 / n2);
    let se = (1.0 / x1 - 1.0 / n1 + 1.0 / x2 - 1.0 / n2).sqrt();
    Some((ratio * (-z * se).exp(), ratio * (z * se).exp()))
}

/// Fisher's exact test, two-sided, of the table [[x1, n1 − x1], [x2, n2 − x2]]: the
/// probability, under the hypergeometric law with the margins fixed, of every table no more
/// likely than the observed one (ties within a relative 1e-7, as R and scipy allow).
pub fn fisher_exact(x1: u64, n1: u64, x2: u64, n2: u64) -> f64 {
    let total = n1 + n2;
    let selected = x1 + x2;
    let ln_all = ln_binomial(total, selected);
    let ln_pmf = |x: u64| ln_binomial(n1, x) + ln_binomial(n2, selected - x) - ln_all;
    let low = selected.saturating_sub(n2);
    let high = selected.min(n1);
    let observed = ln_pmf(x1);
    let bound = observed + (1e-7f64).ln_1p();
    let p: f64 = (low..=high)
        .map(ln_pmf)
        .filter(|&l| l <= bound)
        .map(f64::exp)
        .sum();
    p.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Values worked by hand: Wilson on 0 of 10 at z = 1.96 is [0, 3.8416/13.8416].
    #[test]
    fn wilson_of_zero_successes_starts_at_zero() {
        let (low, high) = wilson(0, 10, 1.96).unwrap();
        assert_eq!(low, 0.0);
        assert_eq!(wilson(10, 10, 1.96).unwrap().1, 1.0);
        assert!((high - 3.8416 / 13.8416).abs() < 1e-12);
    }

    // Fisher's tea-tasting table [[3, 1], [1, 3]]: the tables at least as extreme are those with
    // 0, 1, 3 or 4 in the corner, (1 + 16 + 16 + 1) / C(8, 4) = 34/70.
    #[test]
    fn fisher_of_the_tea_tasting_table() {
        assert!((fisher_exact(3, 4, 1, 4) - 34.0 / 70.0).abs() < 1e-12);
    }

    // A symmetric table is as likely as its mirror image: p = 1 for equal rates.
    #[test]
    fn fisher_of_equal_rates_is_one() {
        assert!((fisher_exact(5, 10, 5, 10) - 1.0).abs() < 1e-12);
    }
}
