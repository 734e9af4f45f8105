//! Distances between two distributions, each given as a weighted sample (what a KLL sketch
//! holds) or as category counts. Pure functions; `drift.rs` decides which to apply where.

use statrs::distribution::{ChiSquared, ContinuousCDF};

/// Sorted distinct values with their summed weights: a step CDF.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightedSample {
    values: Vec<f64>,
    weights: Vec<f64>,
    total: f64,
}

impl WeightedSample {
    /// From `(value, weight)` pairs in any order; equal values are combined.
    pub fn new(mut items: Vec<(f64, f64)>) -> Self {
        items.retain(|(v, w)| !v.is_nan() && *w > 0.0);
        items.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut values: Vec<f64> = Vec::with_capacity(items.len());
        let mut weights: Vec<f64> = Vec::with_capacity(items.len());
        for (value, weight) in items {
            if values.last() == Some(&value) {
                *weights
                    .last_mut()
                    .expect("values and weights grow together") += weight;
            } else {
                values.push(value);
                weights.push(weight);
            }
        }
        let total = weights.iter().sum();
        Self {
            values,
            weights,
            total,
        }
    }

    pub fn total(&self) -> f64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Walks the union of both samples' values in order, calling `visit(x, F_a(x), F_b(x))`
    /// with both CDFs evaluated at `x` (the cumulative share of items ≤ x).
    fn walk_cdfs(&self, other: &Self, mut visit: impl FnMut(f64, f64, f64)) {
        let (mut i, mut j) = (0, 0);
        let (mut cum_a, mut cum_b) = (0.0, 0.0);
        while i < self.values.len() || j < other.values.len() {
            let x = match (self.values.get(i), other.values.get(j)) {
                (Some(&a), Some(&b)) => a.min(b),
                (Some(&a), None) => a,
                (None, Some(&b)) => b,
                (None, None) => unreachable!("loop condition"),
            };
            if self.values.get(i) == Some(&x) {
                cum_a += self.weights[i];
                i += 1;
            }
            if other.values.get(j) == Some(&x) {
                cum_b += other.weights[j];
                j += 1;
            }
            visit(x, cum_a / self.total, cum_b / other.total);
        }
    }

    /// Shares of the sample in `buckets` equal-width buckets between `min` and `max`, with the
    /// rule of Deequ's KLL buckets: a value on an inner edge belongs to the upper bucket, the
    /// maximum to the last. Values below `min` go to the first bucket, above `max` to the last.
    pub fn bucket_shares(&self, min: f64, max: f64, buckets: usize) -> Vec<f64> {
        let inner_edges: Vec<f64> = (1..buckets)
            .map(|i| min + (max - min) * i as f64 / buckets as f64)
            .collect();
        let mut shares = vec![0.0; buckets];
        for (value, weight) in self.values.iter().zip(&self.weights) {
            let bucket = inner_edges.partition_point(|edge| edge <= value);
            shares[bucket] += weight / self.total;
        }
        shares
    }
}

/// Deequ's `linf_simple`: the largest absolute difference of the two CDFs, which on exact
/// samples is the two-sample Kolmogorov–Smirnov statistic D.
pub fn linf_simple(a: &WeightedSample, b: &WeightedSample) -> f64 {
    let mut largest: f64 = 0.0;
    a.walk_cdfs(b, |_, fa, fb| largest = largest.max((fa - fb).abs()));
    largest
}

/// Deequ's `linf_robust`: `linf_simple` less the KS critical value at α = 0.003 (c(α) = 1.8),
/// so that small samples do not look drifted through sampling noise alone.
pub fn linf_robust(linf_simple: f64, n: f64, m: f64) -> f64 {
    if n <= 0.0 || m <= 0.0 {
        return linf_simple;
    }
    (linf_simple - 1.8 * ((n + m) / (n * m)).sqrt()).max(0.0)
}

/// First Wasserstein distance ∫|F_a − F_b| dx between the two step CDFs.
pub fn wasserstein(a: &WeightedSample, b: &WeightedSample) -> f64 {
    let mut area = 0.0;
    let mut previous: Option<(f64, f64)> = None;
    a.walk_cdfs(b, |x, fa, fb| {
        if let Some((previous_x, gap)) = previous {
            area += gap * (x - previous_x);
        }
        previous = Some((x, (fa - fb).abs()));
    });
    area
}

/// Below this share a bucket counts as this share in PSI, whose log term is undefined at 0.
pub const PSI_FLOOR: f64 = 1e-4;

/// Population Stability Index Σ (q − p)·ln(q / p) of current shares `q` against baseline `p`.
pub fn psi(baseline: &[f64], current: &[f64]) -> f64 {
    baseline
        .iter()
        .zip(current)
        .map(|(&p, &q)| {
            let (p, q) = (p.max(PSI_FLOOR), q.max(PSI_FLOOR));
            (q - p) * (q / p).ln()
        })
        .sum()
}

/// Jensen–Shannon *distance* with log base 2 (the square root of the divergence; 0…1), as
/// `scipy.spatial.distance.jensenshannon(p, q, base=2)`.
pub fn js_distance(p: &[f64], q: &[f64]) -> f64 {
    let kl_to_mixture = |x: &[f64], y: &[f64]| -> f64 {
        x.iter()
            .zip(y)
            .filter(|&(&xi, _)| xi > 0.0)
            .map(|(&xi, &yi)| xi * (xi / ((xi + yi) / 2.0)).log2())
            .sum()
    };
    let divergence = (kl_to_mixture(p, q) + kl_to_mixture(q, p)) / 2.0;
    divergence.max(0.0).sqrt()
}

/// Shares of each category of the union of both count lists, aligned, baseline first.
pub fn aligned_shares(
    baseline: &[(String, u64)],
    current: &[(String, u64)],
) -> (Vec<f64>, Vec<f64>) {
    let mut categories: Vec<&str> = baseline.iter().map(|(c, _)| c.as_str()).collect();
    for (category, _) in current {
        if !baseline.iter().any(|(b, _)| b == category) {
            categories.push(category);
        }
    }
    let shares = |counts: &[(String, u64)]| -> Vec<f64> {
        let total: u64 = counts.iter().map(|(_, n)| n).sum();
        categories
            .iter()
            .map(|category| {
                let count = counts
                    .iter()
                    .find(|(c, _)| c == category)
                    .map_or(0, |(_, n)| *n);
                if total == 0 {
                    0.0
                } else {
                    count as f64 / total as f64
                }
            })
            .collect()
    };
    (shares(baseline), shares(current))
}

/// Deequ's categorical `linf_simple`: the largest difference of category shares.
pub fn categorical_linf(baseline: &[f64], current: &[f64]) -> f64 {
    baseline
        .iter()
        .zip(current)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f64::max)
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChiSquareTest {
    pub statistic: f64,
    pub p_value: f64,
    pub degrees_of_freedom: usize,
}

/// Pearson's goodness-of-fit test of current counts against the baseline's category shares,
/// with Deequ's rules (FORMATS.md §3.5): only categories the baseline knows; expected counts
/// are the baseline shares scaled to the current total; small categories are merged (smallest
/// into second smallest) until, with two categories, each expects ≥ 10 or, with more, at most
/// 20 % expect < 5. `None` when fewer than two categories remain.
pub fn chi_square(baseline: &[(String, u64)], current: &[(String, u64)]) -> Option<ChiSquareTest> {
    let baseline_total: u64 = baseline.iter().map(|(_, n)| n).sum();
    let observed: Vec<f64> = baseline
        .iter()
        .map(|(category, _)| {
            current
                .iter()
                .find(|(c, _)| c == category)
                .map_or(0.0, |(_, n)| *n as f64)
        })
        .collect();
    let observed_total: f64 = observed.iter().sum();
    if baseline_total == 0 || observed_total == 0.0 {
        return None;
    }
    let mut cells: Vec<(f64, f64)> = baseline
        .iter()
        .zip(observed)
        .map(|((_, n), o)| (*n as f64 / baseline_total as f64 * observed_total, o))
        .collect();
    loop {
        if cells.len() < 2 {
            return None;
        }
        let small = cells.iter().filter(|(e, _)| *e < 5.0).count();
        let adequate = if cells.len() == 2 {
            cells.iter().all(|(e, _)| *e >= 10.0)
        } else {
            small as f64 <= 0.2 * cells.len() as f64
        };
        if adequate {
            break;
        }
        cells.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (expected, observed) = cells.remove(0);
        cells[0].0 += expected;
        cells[0].1 += observed;
    }
    let statistic: f64 = cells.iter().map(|(e, o)| (o - e).powi(2) / e).sum();
    let degrees_of_freedom = cells.len() - 1;
    let p_value = ChiSquared::new(degrees_of_freedom as f64)
        .map(|d| d.sf(statistic))
        .unwrap_or(f64::NAN);
    Some(ChiSquareTest {
        statistic,
        p_value,
        degrees_of_freedom,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(values: &[f64]) -> WeightedSample {
        WeightedSample::new(values.iter().map(|&v| (v, 1.0)).collect())
    }

    #[test]
    fn linf_is_the_largest_cdf_gap() {
        // CDFs at 1,2,3,4: a = .5,1,1,1; b = 0,.5,.5,1 → largest gap .5 at x = 1 (and 2..3).
        let a = sample(&[1.0, 2.0]);
        let b = sample(&[2.0, 4.0]);
        assert_eq!(linf_simple(&a, &b), 0.5);
        assert_eq!(linf_simple(&a, &a), 0.0);
    }

    #[test]
    fn linf_robust_subtracts_the_ks_critical_value() {
        // 1.8 * sqrt((100 + 400) / (100 * 400)) = 1.8 * 0.111803… = 0.201246…
        let robust = linf_robust(0.3, 100.0, 400.0);
        assert!((robust - (0.3 - 0.201_246_117_974_981_1)).abs() < 1e-12);
        assert_eq!(linf_robust(0.1, 100.0, 400.0), 0.0);
    }

    #[test]
    fn wasserstein_of_a_shift_is_the_shift() {
        let a = sample(&[0.0, 1.0, 2.0]);
        let b = sample(&[0.5, 1.5, 2.5]);
        assert!((wasserstein(&a, &b) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn buckets_follow_deequs_edge_rule() {
        // Edges 0,1,2,3,4 for min 0, max 4, 4 buckets: 1.0 goes up, 4.0 to the last bucket,
        // -1 below the minimum to the first, 9 above the maximum to the last.
        let s = sample(&[-1.0, 0.0, 1.0, 1.5, 4.0, 9.0]);
        let shares = s.bucket_shares(0.0, 4.0, 4);
        let sixth = 1.0 / 6.0;
        assert_eq!(shares, vec![2.0 * sixth, 2.0 * sixth, 0.0, 2.0 * sixth]);
    }

    #[test]
    fn psi_floors_empty_buckets() {
        // (0.5-0.25)ln(2) + (0.5-0.25)ln(2) + (1e-4-0.5)ln(1e-4/0.5)
        let expected = 0.25 * 2f64.ln() * 2.0 + (1e-4 - 0.5) * (1e-4f64 / 0.5).ln();
        assert!((psi(&[0.25, 0.25, 0.5], &[0.5, 0.5, 0.0]) - expected).abs() < 1e-12);
    }

    #[test]
    fn js_distance_of_disjoint_distributions_is_one() {
        assert!((js_distance(&[1.0, 0.0], &[0.0, 1.0]) - 1.0).abs() < 1e-12);
        assert_eq!(js_distance(&[0.3, 0.7], &[0.3, 0.7]), 0.0);
    }

    #[test]
    fn chi_square_merges_small_categories() {
        let counts = |pairs: &[(&str, u64)]| -> Vec<(String, u64)> {
            pairs.iter().map(|(c, n)| (c.to_string(), *n)).collect()
        };
        // Baseline shares .5/.3/.2 of 100 current → expected 50/30/20, no merge;
        // χ² = (60-50)²/50 + (25-30)²/30 + (15-20)²/20 = 2 + 0.8333… + 1.25.
        let t = chi_square(
            &counts(&[("a", 50), ("b", 30), ("c", 20)]),
            &counts(&[("a", 60), ("b", 25), ("c", 15)]),
        )
        .unwrap();
        assert!((t.statistic - 4.083_333_333_333_333).abs() < 1e-12);
        assert_eq!(t.degrees_of_freedom, 2);
        // exp(-4.0833/2) is the χ²(2) survival function.
        assert!((t.p_value - (-4.083_333_333_333_333f64 / 2.0).exp()).abs() < 1e-12);
        // Two categories expecting 95 and 5 (< 10) merge into one: no test.
        assert!(
            chi_square(
                &counts(&[("a", 95), ("b", 5)]),
                &counts(&[("a", 90), ("b", 10)])
            )
            .is_none()
        );
    }
}
