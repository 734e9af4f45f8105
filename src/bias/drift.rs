//! Bias drift (FORMATS.md §7.3, §4.2, §5.5): a window's bias metrics against a baseline
//! `analysis.json`, Clarify's `constraint_violations.json`, and `bias_metric_*` datums.
//!
//! Two rules, chosen by the analysis config's `driftd_bias_drift_rule` ([`DriftRule`]):
//!
//! **`"clarify"` (the default): Clarify's own rule.** Every metric of either stage that has a
//! number in both files is flagged when |value| > |baseline value|: "worse" means farther from
//! zero, for every metric alike, DI included. ±∞ compare as numbers (∞ beats any finite
//! baseline; nothing beats an infinite one), NaN is never flagged, and a metric missing or
//! without a value (an error) in either file is not compared. Every real Clarify bias-drift
//! file satisfies this, and no metric it left out breaks it (tests/it/sagemaker_real_bias.rs). On
//! windows drawn like the baseline it raises an alarm in most windows (README, "Bias").
//!
//! **`"bootstrap"`: driftd's family-wise rule.** A metric is flagged when two things hold:
//! 1. its value is farther from the metric's ideal (0; 1 for DI) than the baseline's value —
//!    the allowed range is ideal ± |baseline − ideal|;
//! 2. the normal bootstrap confidence interval of the value lies wholly outside that range, so a
//!    small window whose value moved by chance alone does not raise an alert.
//!
//! The interval: [`RESAMPLES`] multinomial resamples of the window's rows (their cells of facet ×
//! label × prediction × group), value ± z·(standard deviation of the resampled values).
//! Resampling uses a fixed seed, so a window always gives the same answer. A window compares
//! up to 21 metrics per facet value, and at 95 % each would raise a false alarm one window in
//! forty; so the level is Bonferroni-corrected over the window's comparisons, keeping the
//! chance of any false alarm in a window whose metrics did not move at [`FAMILY_ERROR`]. FT runs
//! a k-NN over a row sample and cannot be resampled cheaply; its interval uses the largest
//! standard error a difference of two flip shares can have, 1/√(rows of d in the sample).

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Binomial, Distribution};
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

use super::config::DriftRule;
use super::metrics::{self, Confusion, FacetCounts, FlipCounts, Metric, Stage};
use super::report::{Analysis, StageReport};
use super::state::Evaluation;
use crate::analyze::metrics::{Dimension, MetricDatum, MetricScope};
use crate::format::python_float;

pub const RESAMPLES: usize = 1000;
/// The chance of at least one false alarm in a window, split evenly over its comparisons.
pub const FAMILY_ERROR: f64 = 0.05;
const SEED: u64 = 0x5eed_b1a5;
/// CloudWatch takes no infinities; Clarify publishes ±∞ as this value.
pub const CLOUDWATCH_INFINITY: f64 = 2.348543e108;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BiasViolations {
    pub version: String,
    pub violations: Vec<BiasViolation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BiasViolation {
    pub facet: String,
    pub facet_value: String,
    pub metric_name: String,
    pub constraint_check_type: String,
    pub description: String,
}

/// Checks every metric of `current` (the window's `analysis.json`, made from `evaluation`)
/// against the same metric, facet and facet value in `baseline`, under `rule`.
pub fn check(
    baseline: &Analysis,
    current: &Analysis,
    evaluation: &Evaluation,
    rule: DriftRule,
) -> BiasViolations {
    struct Comparison<'a> {
        facet: &'a str,
        facet_value: &'a str,
        metric: Metric,
        value: f64,
        reference: f64,
        counts: Option<&'a FacetCounts>,
    }
    let mut comparisons = Vec::new();
    for (stage, report) in stages(current) {
        let Some(baseline_report) = stage_of(baseline, stage) else {
            continue;
        };
        for (facet, values) in &report.facets {
            for facet_report in values {
                let counts = evaluation
                    .facets
                    .iter()
                    .find(|f| &f.name == facet)
                    .and_then(|f| f.selections.as_ref().ok())
                    .and_then(|s| {
                        s.iter()
                            .find(|s| s.value_or_threshold == facet_report.value_or_threshold)
                    })
                    .map(|s| &s.counts);
                for entry in &facet_report.metrics {
                    let (Some(metric), Some(value)) = (Metric::from_name(&entry.name), entry.value)
                    else {
                        continue;
                    };
                    if let Some(reference) = baseline_value(
                        baseline_report,
                        facet,
                        &facet_report.value_or_threshold,
                        &entry.name,
                    ) {
                        comparisons.push(Comparison {
                            facet,
                            facet_value: &facet_report.value_or_threshold,
                            metric,
                            value,
                            reference,
                            counts,
                        });
                    }
                }
            }
        }
    }
    let z = bonferroni_z(comparisons.len());
    let sample_share = if evaluation.sample.of == 0 {
        1.0
    } else {
        evaluation.sample.rows as f64 / evaluation.sample.of as f64
    };
    let violations = comparisons
        .iter()
        .filter(|c| match rule {
            DriftRule::Clarify => c.value.abs() > c.reference.abs(),
            DriftRule::Bootstrap => {
                drifted(c.metric, c.value, c.reference, c.counts, z, sample_share)
            }
        })
        .map(|c| BiasViolation {
            facet: c.facet.to_string(),
            facet_value: c.facet_value.to_string(),
            metric_name: c.metric.name().to_string(),
            constraint_check_type: "bias_drift_check".into(),
            description: format!(
                "Metric value {} doesn't meet the baseline constraint requirement {}",
                clarify_number(c.value),
                clarify_number(c.reference)
            ),
        })
        .collect();
    BiasViolations {
        version: "1.0".into(),
        violations,
    }
}

/// The two-sided normal quantile for [`FAMILY_ERROR`] shared by `comparisons` tests.
fn bonferroni_z(comparisons: usize) -> f64 {
    let alpha = FAMILY_ERROR / comparisons.max(1) as f64;
    Normal::standard().inverse_cdf(1.0 - alpha / 2.0)
}

fn drifted(
    metric: Metric,
    value: f64,
    reference: f64,
    counts: Option<&FacetCounts>,
    z: f64,
    sample_share: f64,
) -> bool {
    let ideal = metric.ideal();
    let allowed = (reference - ideal).abs();
    let distance = (value - ideal).abs();
    // An undefined value (NaN) never raises a violation.
    if distance.is_nan() || distance <= allowed {
        return false;
    }
    if !value.is_finite() {
        return true;
    }
    let Some(counts) = counts else {
        return true;
    };
    let (low, high) = if metric == Metric::FT {
        let d_rows: u64 = counts.all[1].iter().flatten().sum();
        let sampled = (d_rows as f64 * sample_share).max(1.0);
        let error = 1.0 / sampled.sqrt();
        (value - z * error, value + z * error)
    } else {
        bootstrap_interval(metric, value, counts, z)
    };
    high < ideal - allowed || low > ideal + allowed
}

/// The normal bootstrap interval of `metric` over `counts` (the compliance report shows it too).
/// A resample whose value is not finite makes the interval unbounded: no evidence either way,
/// so no violation.
pub fn bootstrap_interval(metric: Metric, value: f64, counts: &FacetCounts, z: f64) -> (f64, f64) {
    let mut rng = StdRng::seed_from_u64(SEED);
    let cells = Cells::of(counts);
    let draws: Option<Vec<f64>> = (0..RESAMPLES)
        .map(|_| {
            metrics::compute(metric, &cells.resample(&mut rng))
                .ok()
                .filter(|x| x.is_finite())
        })
        .collect();
    match draws {
        Some(draws) => normal_interval(value, &draws, z),
        None => (f64::NEG_INFINITY, f64::INFINITY),
    }
}

/// value ± z·(the sample standard deviation of the resampled values).
fn normal_interval(value: f64, draws: &[f64], z: f64) -> (f64, f64) {
    let n = draws.len() as f64;
    let mean = draws.iter().sum::<f64>() / n;
    let mean_square = draws.iter().map(|x| x * x).sum::<f64>() / n;
    let deviation = ((mean_square - mean * mean).max(0.0) * n / (n - 1.0)).sqrt();
    (value - z * deviation, value + z * deviation)
}

/// A window's rows as multinomial cells: per group value its confusion counts, plus the rows
/// without a group value (counted in `all` only).
struct Cells {
    groups: Vec<(metrics::GroupKey, Confusion)>,
    ungrouped: Confusion,
    has_groups: bool,
}

impl Cells {
    fn of(counts: &FacetCounts) -> Self {
        let mut ungrouped = counts.all;
        let groups: Vec<(metrics::GroupKey, Confusion)> = counts
            .groups
            .iter()
            .flatten()
            .map(|(key, confusion)| {
                for_each_cell(confusion, |f, l, p, n| ungrouped[f][l][p] -= n);
                (key.clone(), *confusion)
            })
            .collect();
        Self {
            groups,
            ungrouped,
            has_groups: counts.groups.is_some(),
        }
    }

    /// Draws as many rows as the window has, with replacement, by sequential binomials.
    fn resample(&self, rng: &mut StdRng) -> FacetCounts {
        let mut cells: Vec<u64> = Vec::with_capacity(8 * (self.groups.len() + 1));
        for (_, confusion) in &self.groups {
            for_each_cell(confusion, |_, _, _, n| cells.push(n));
        }
        for_each_cell(&self.ungrouped, |_, _, _, n| cells.push(n));
        multinomial(&mut cells, rng);
        let mut drawn = cells.into_iter();
        let mut next_confusion = || {
            let mut confusion = Confusion::default();
            for_each_cell(&Confusion::default(), |f, l, p, _| {
                confusion[f][l][p] = drawn.next().expect("one draw per cell")
            });
            confusion
        };
        let groups: Vec<(metrics::GroupKey, Confusion)> = self
            .groups
            .iter()
            .map(|(key, _)| (key.clone(), next_confusion()))
            .collect();
        let mut all = next_confusion();
        for (_, confusion) in &groups {
            for_each_cell(confusion, |f, l, p, n| all[f][l][p] += n);
        }
        FacetCounts {
            all,
            groups: self.has_groups.then(|| groups.into_iter().collect()),
        }
    }
}

/// Replaces counts by a multinomial draw of as many rows, each cell's share its probability,
/// by sequential binomials.
fn multinomial(cells: &mut [u64], rng: &mut StdRng) {
    let total: u64 = cells.iter().sum();
    let mut remaining = total;
    let mut remaining_share = 1.0;
    for cell in cells.iter_mut() {
        let share = *cell as f64 / total as f64;
        let drawn = if remaining == 0 || share == 0.0 {
            0
        } else if share >= remaining_share {
            remaining
        } else {
            Binomial::new(remaining, share / remaining_share)
                .expect("a probability in [0, 1]")
                .sample(rng)
        };
        *cell = drawn;
        remaining -= drawn;
        remaining_share -= share;
    }
}

/// FT's normal bootstrap interval, for the compliance report: facet d's sampled rows (flipped
/// to accepted, flipped to rejected, not flipped) resampled [`RESAMPLES`] times with the same
/// seed as the other metrics, the k-NN classifier held fixed (refitting it per resample would
/// cost a k-NN each). `None` without d rows.
pub fn flip_test_interval(flips: &FlipCounts, z: f64) -> Option<(f64, f64)> {
    if flips.d_rows == 0 {
        return None;
    }
    let mut rng = StdRng::seed_from_u64(SEED);
    let not_flipped = flips.d_rows - flips.positive_flips - flips.negative_flips;
    let draws: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            let mut cells = [flips.positive_flips, flips.negative_flips, not_flipped];
            multinomial(&mut cells, &mut rng);
            (cells[0] as f64 - cells[1] as f64) / flips.d_rows as f64
        })
        .collect();
    Some(normal_interval(flips.value(), &draws, z))
}

fn for_each_cell(confusion: &Confusion, mut visit: impl FnMut(usize, usize, usize, u64)) {
    for (f, by_label) in confusion.iter().enumerate() {
        for (l, by_prediction) in by_label.iter().enumerate() {
            for (p, &n) in by_prediction.iter().enumerate() {
                visit(f, l, p, n);
            }
        }
    }
}

fn stages(analysis: &Analysis) -> impl Iterator<Item = (Stage, &StageReport)> {
    [
        (
            Stage::PreTraining,
            analysis.pre_training_bias_metrics.as_ref(),
        ),
        (
            Stage::PostTraining,
            analysis.post_training_bias_metrics.as_ref(),
        ),
    ]
    .into_iter()
    .filter_map(|(stage, report)| report.map(|r| (stage, r)))
}

fn stage_of(analysis: &Analysis, stage: Stage) -> Option<&StageReport> {
    match stage {
        Stage::PreTraining => analysis.pre_training_bias_metrics.as_ref(),
        Stage::PostTraining => analysis.post_training_bias_metrics.as_ref(),
    }
}

fn baseline_value(
    report: &StageReport,
    facet: &str,
    facet_value: &str,
    metric: &str,
) -> Option<f64> {
    report
        .facets
        .get(facet)?
        .iter()
        .find(|f| f.value_or_threshold == facet_value)?
        .metrics
        .iter()
        .find(|m| m.name == metric)?
        .value
}

/// Numbers in descriptions as Clarify (Python) writes them, ±∞ as `Infinity`.
fn clarify_number(x: f64) -> String {
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    python_float(x)
}

/// `bias_metric_<NAME>` for every metric with a value, with Clarify's dimensions; ±∞ published
/// as ±2.348543e108, errors not published.
pub fn bias_metrics(analysis: &Analysis, scope: &MetricScope) -> Vec<MetricDatum> {
    let mut datums = Vec::new();
    for (stage, report) in stages(analysis) {
        let stage_name = match stage {
            Stage::PreTraining => "Pre-training",
            Stage::PostTraining => "Post-Training",
        };
        for (facet, values) in &report.facets {
            for facet_report in values {
                for entry in &facet_report.metrics {
                    let Some(value) = entry.value.filter(|v| !v.is_nan()) else {
                        continue;
                    };
                    let mut dimensions = scope.dimensions();
                    for (name, value) in [
                        ("BiasStage", stage_name),
                        ("Label", report.label.as_str()),
                        ("LabelValue", report.label_value_or_threshold.as_str()),
                        ("Facet", facet.as_str()),
                        ("FacetValue", facet_report.value_or_threshold.as_str()),
                    ] {
                        dimensions.push(Dimension {
                            name: name.into(),
                            value: value.into(),
                        });
                    }
                    datums.push(MetricDatum {
                        metric_name: format!("bias_metric_{}", entry.name),
                        timestamp: scope.timestamp,
                        dimensions,
                        value: Some(value.clamp(-CLOUDWATCH_INFINITY, CLOUDWATCH_INFINITY)),
                        statistic_values: None,
                        unit: "None".into(),
                    });
                }
            }
        }
    }
    datums
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One comparison at 95 %.
    const Z95: f64 = 1.959_963_984_540_054;

    #[test]
    fn the_level_is_shared_over_the_windows_comparisons() {
        assert!((bonferroni_z(1) - Z95).abs() < 1e-9);
        // 0.05 / 20 two-sided: the 0.99875 quantile.
        assert!((bonferroni_z(20) - 3.023_341_439_739_86).abs() < 1e-6);
    }

    #[test]
    fn the_flip_test_interval_is_the_widest_a_share_difference_can_have() {
        // 100 rows of d, all sampled: error 0.1, so FT 0.15 against a baseline of 0.01 is
        // inside reach (0.15 - 1.96·0.1 < 0.01) and 0.4 is not.
        let c = counts(5);
        assert!(!drifted(Metric::FT, 0.15, 0.01, Some(&c), Z95, 1.0));
        assert!(drifted(Metric::FT, 0.4, 0.01, Some(&c), Z95, 1.0));
        // Half of d's rows sampled: error 1/√50 ≈ 0.141; 0.4 - 1.96·0.141 ≈ 0.12 is still beyond.
        assert!(drifted(Metric::FT, 0.4, 0.01, Some(&c), Z95, 0.5));
    }

    /// Facet a: 100 rows, 50 predicted positive; facet d: 100 rows, `d_positive` predicted
    /// positive. Labels equal predictions.
    fn counts(d_positive: u64) -> FacetCounts {
        let mut all = Confusion::default();
        all[0][1][1] = 50;
        all[0][0][0] = 50;
        all[1][1][1] = d_positive;
        all[1][0][0] = 100 - d_positive;
        FacetCounts { all, groups: None }
    }

    #[test]
    fn a_value_farther_from_the_ideal_with_a_tight_interval_is_flagged() {
        // DPPL = 0.5 - 0.05 = 0.45 against a baseline of 0.1: far outside ±0.1 even allowing
        // for 200 rows of sampling noise (se ≈ 0.058).
        let c = counts(5);
        let value = metrics::compute(Metric::DPPL, &c).unwrap();
        assert!((value - 0.45).abs() < 1e-12);
        assert!(drifted(Metric::DPPL, value, 0.1, Some(&c), Z95, 1.0));
        // Closer to the ideal than the baseline: never a violation, whatever the sign.
        assert!(!drifted(Metric::DPPL, value, -0.5, Some(&c), Z95, 1.0));
    }

    #[test]
    fn a_value_farther_only_by_chance_is_not_flagged() {
        // DPPL = 0.5 - 0.4 = 0.1 against a baseline of 0.05: farther, but with 200 rows the
        // interval (≈ 0.1 ± 0.14) reaches back into the allowed range [-0.05, 0.05].
        let c = counts(40);
        let value = metrics::compute(Metric::DPPL, &c).unwrap();
        assert!((value - 0.1).abs() < 1e-12);
        assert!(!drifted(Metric::DPPL, value, 0.05, Some(&c), Z95, 1.0));
    }

    #[test]
    fn the_bootstrap_rule_judges_di_around_one() {
        // DI = 0.05 / 0.5 = 0.1 against a baseline of 0.9: |0.1 - 1| > |0.9 - 1|.
        let c = counts(5);
        let value = metrics::compute(Metric::DI, &c).unwrap();
        assert!(drifted(Metric::DI, value, 0.9, Some(&c), Z95, 1.0));
        assert!(!drifted(Metric::DI, value, 0.05, Some(&c), Z95, 1.0));
    }

    #[test]
    fn resampling_keeps_the_row_count_and_the_groups() {
        let mut c = counts(30);
        let mut groups = std::collections::BTreeMap::new();
        let mut g = Confusion::default();
        g[0][1][1] = 20;
        g[1][0][0] = 10;
        groups.insert(metrics::GroupKey::Int(1), g);
        c.groups = Some(groups);
        let cells = Cells::of(&c);
        let mut rng = StdRng::seed_from_u64(1);
        let total = |x: &Confusion| -> u64 {
            let mut n = 0;
            for_each_cell(x, |_, _, _, k| n += k);
            n
        };
        for _ in 0..100 {
            let r = cells.resample(&mut rng);
            assert_eq!(total(&r.all), 200);
            let groups = r.groups.as_ref().unwrap();
            assert!(total(&groups[&metrics::GroupKey::Int(1)]) <= total(&r.all));
        }
    }

    /// An analysis with post-training values for facet sex = 0 (`None`: an error, no value).
    fn post_training(values: &[(&str, Option<f64>)]) -> Analysis {
        let metrics: Vec<serde_json::Value> = values
            .iter()
            .map(|(name, value)| {
                let value = match value {
                    Some(x) if x.is_infinite() => serde_json::json!(clarify_number(*x)),
                    Some(x) => serde_json::json!(x),
                    None => serde_json::Value::Null,
                };
                serde_json::json!({"name": name, "description": name, "value": value})
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "version": "1.0",
            "post_training_bias_metrics": {"label": "y", "label_value_or_threshold": "1",
                "facets": {"sex": [{"value_or_threshold": "0", "metrics": metrics}]}}
        }))
        .unwrap()
    }

    #[test]
    fn clarifys_rule_flags_values_farther_from_zero_than_the_baseline() {
        let baseline = post_training(&[
            ("DI", Some(0.178)),
            ("DPPL", Some(0.2)),
            ("RD", Some(-0.1)),
            ("TE", Some(2.9)),
            ("AD", Some(f64::INFINITY)),
            ("SD", None),
        ]);
        let evaluation = Evaluation {
            label: "y".into(),
            label_value_or_threshold: "1".into(),
            label_error: None,
            prediction_error: None,
            facets: Vec::new(),
            pairs: None,
            sample: crate::bias::state::FlipSample { rows: 0, of: 0 },
        };
        let flagged = |values: &[(&str, Option<f64>)]| -> Vec<String> {
            check(
                &baseline,
                &post_training(values),
                &evaluation,
                DriftRule::Clarify,
            )
            .violations
            .into_iter()
            .map(|v| v.metric_name)
            .collect()
        };
        // DI is judged like the others, by its distance from zero: 0.083 (farther from the
        // ideal 1) is not flagged, 0.5 (nearer to it) is.
        assert!(flagged(&[("DI", Some(0.083))]).is_empty());
        assert_eq!(flagged(&[("DI", Some(0.5))]), ["DI"]);
        // The sign does not matter; an equal value is not worse.
        assert_eq!(
            flagged(&[("DPPL", Some(-0.3)), ("RD", Some(0.05))]),
            ["DPPL"]
        );
        assert!(flagged(&[("DPPL", Some(0.2))]).is_empty());
        // ∞ is worse than any finite baseline; nothing is worse than an infinite one; a metric
        // without a value on either side is never flagged.
        assert_eq!(flagged(&[("TE", Some(f64::INFINITY))]), ["TE"]);
        assert!(flagged(&[("AD", Some(f64::NEG_INFINITY))]).is_empty());
        assert!(flagged(&[("SD", Some(0.9)), ("RD", None)]).is_empty());
    }

    #[test]
    fn infinities_are_published_as_clarify_does() {
        assert_eq!(clarify_number(f64::INFINITY), "Infinity");
        assert_eq!(
            f64::INFINITY.clamp(-CLOUDWATCH_INFINITY, CLOUDWATCH_INFINITY),
            2.348543e108
        );
    }
}
