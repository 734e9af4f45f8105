//! Baseline drift per feature (`drift.json`): Deequ's distances, which Model Monitor's
//! `baseline_drift_check` uses, and beside them the effect sizes teams know from other tools.
//!
//! Whether a feature has drifted is decided by the Model Monitor distance the baseline's
//! `comparison_method` names (`linf_robust` by default) against `comparison_threshold`: a
//! distance between distributions, never a p-value, which at production volume is ~0 for any
//! difference at all.

use serde::Serialize;

use super::distance::{self, WeightedSample};
use crate::baseline::Baseline;
use crate::baseline::constraints::{CategoricalDriftMethod, ComparisonMethod, Switch};
use crate::baseline::statistics::{FeatureStatistics, KLL_BUCKETS};
use crate::profile::{ColumnProfile, Profile};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    Numerical,
    Categorical,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureDrift {
    pub name: String,
    pub kind: FeatureKind,
    pub n_baseline: f64,
    pub n_current: f64,
    pub linf_simple: f64,
    pub linf_robust: f64,
    /// Two-sample Kolmogorov–Smirnov D between the sketches (exact while they hold every value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ks: Option<f64>,
    pub psi: f64,
    pub js: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wasserstein_normed: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chi2_statistic: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chi2_p_value: Option<f64>,
    /// Which value decided `drifted`, its value and the threshold it was held against.
    pub method: &'static str,
    pub distance: f64,
    pub threshold: f64,
    pub drifted: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftReport {
    pub features: Vec<FeatureDrift>,
    pub features_compared: usize,
    pub features_drifted: usize,
    pub drifted_share: f64,
}

impl DriftReport {
    pub fn feature(&self, name: &str) -> Option<&FeatureDrift> {
        self.features.iter().find(|f| f.name == name)
    }
}

/// Compares every baseline feature that the current data has with the same inferred type (a
/// type change is the data type check's business).
pub fn compare(baseline: &Baseline, current: &Profile) -> DriftReport {
    let features: Vec<FeatureDrift> = baseline
        .statistics
        .features
        .iter()
        .filter_map(|feature| {
            let column = current.columns.get(&feature.name)?;
            compare_feature(baseline, feature, column)
        })
        .collect();
    let features_drifted = features.iter().filter(|f| f.drifted).count();
    DriftReport {
        features_compared: features.len(),
        features_drifted,
        drifted_share: if features.is_empty() {
            0.0
        } else {
            features_drifted as f64 / features.len() as f64
        },
        features,
    }
}

fn compare_feature(
    baseline: &Baseline,
    feature: &FeatureStatistics,
    column: &ColumnProfile,
) -> Option<FeatureDrift> {
    let config = &baseline
        .constraints
        .monitoring_config
        .distribution_constraints;
    let overrides = baseline
        .constraints
        .feature(&feature.name)
        .map(|f| f.overrides())
        .unwrap_or_default();
    // Model Monitor compares distributions only when the window's inferred type is the
    // baseline's: on real executions a 0/1 label slot filled with probabilities, or a String
    // feature filled with numbers, gets a data_type_check and no baseline_drift_check.
    if column.reported_type() != feature.inferred_type {
        return None;
    }
    if feature.is_numeric() {
        let numbers = feature.numerical_statistics.as_ref()?;
        let base = WeightedSample::new(
            feature
                .sketch()?
                .weighted_items()
                .into_iter()
                .map(|(v, w)| (v, w as f64))
                .collect(),
        );
        let now = WeightedSample::new(
            column
                .kll
                .weighted_items()
                .into_iter()
                .map(|(v, w)| (v, w as f64))
                .collect(),
        );
        if base.is_empty() || now.is_empty() {
            return None;
        }
        let (n, m) = (base.total(), now.total());
        let linf_simple = distance::linf_simple(&base, &now);
        let linf_robust = distance::linf_robust(linf_simple, n, m);
        let base_shares = base.bucket_shares(numbers.min, numbers.max, KLL_BUCKETS);
        let now_shares = now.bucket_shares(numbers.min, numbers.max, KLL_BUCKETS);
        let method = overrides
            .comparison_method
            .unwrap_or(config.comparison_method);
        let threshold = overrides
            .comparison_threshold
            .unwrap_or(config.comparison_threshold);
        let (method_name, decisive) = match method {
            ComparisonMethod::Simple => ("linf_simple", linf_simple),
            ComparisonMethod::Robust => ("linf_robust", linf_robust),
        };
        Some(FeatureDrift {
            name: feature.name.clone(),
            kind: FeatureKind::Numerical,
            n_baseline: n,
            n_current: m,
            linf_simple,
            linf_robust,
            ks: Some(linf_simple),
            psi: distance::psi(&base_shares, &now_shares),
            js: distance::js_distance(&base_shares, &now_shares),
            wasserstein_normed: Some(
                distance::wasserstein(&base, &now) / numbers.std_dev.max(1e-3),
            ),
            chi2_statistic: None,
            chi2_p_value: None,
            method: method_name,
            distance: decisive,
            threshold,
            drifted: decisive > threshold,
        })
    } else {
        let base_counts = feature.categories()?;
        let now_counts = column.frequencies.most_frequent_first()?;
        let n: u64 = base_counts.iter().map(|(_, c)| c).sum();
        let m: u64 = now_counts.iter().map(|(_, c)| c).sum();
        if n == 0 || m == 0 {
            return None;
        }
        let (base_shares, now_shares) = distance::aligned_shares(&base_counts, &now_counts);
        let linf_simple = distance::categorical_linf(&base_shares, &now_shares);
        let linf_robust = distance::linf_robust(linf_simple, n as f64, m as f64);
        let chi2 = distance::chi_square(&base_counts, &now_counts);
        let threshold = overrides
            .comparison_threshold
            .unwrap_or(config.categorical_threshold());
        let method = overrides
            .comparison_method
            .unwrap_or(config.comparison_method);
        // ChiSquared is a p-value test (drifted when p < threshold); Model Monitor offers it,
        // so driftd does when a baseline asks for it, but LInfinity stays the default.
        let (method_name, decisive, drifted) = match (config.categorical_method(), method) {
            (CategoricalDriftMethod::ChiSquared, _) => {
                let p = chi2.map_or(f64::NAN, |t| t.p_value);
                ("chi2_p_value", p, p < threshold)
            }
            (CategoricalDriftMethod::LInfinity, ComparisonMethod::Simple) => {
                ("linf_simple", linf_simple, linf_simple > threshold)
            }
            (CategoricalDriftMethod::LInfinity, ComparisonMethod::Robust) => {
                ("linf_robust", linf_robust, linf_robust > threshold)
            }
        };
        Some(FeatureDrift {
            name: feature.name.clone(),
            kind: FeatureKind::Categorical,
            n_baseline: n as f64,
            n_current: m as f64,
            linf_simple,
            linf_robust,
            ks: None,
            psi: distance::psi(&base_shares, &now_shares),
            js: distance::js_distance(&base_shares, &now_shares),
            wasserstein_normed: None,
            chi2_statistic: chi2.map(|t| t.statistic),
            chi2_p_value: chi2.map(|t| t.p_value),
            method: method_name,
            distance: decisive,
            threshold,
            drifted,
        })
    }
}

/// Whether the baseline asks for drift to be judged at all.
pub fn comparison_enabled(baseline: &Baseline) -> bool {
    baseline
        .constraints
        .monitoring_config
        .distribution_constraints
        .perform_comparison
        == Switch::Enabled
}
