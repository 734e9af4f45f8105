//! Feature-attribution drift (Model Monitor's fourth monitor kind, FORMATS.md §8): per window,
//! the global attribution of each feature and label — Clarify's aggregations of the records'
//! SHAP values (`mean_abs`, `mean_sq`, `median`) — and the NDCG of the window's feature ranking
//! scored with the baseline's attributions. Pure and synchronous: the records' attributions come
//! in through [`AttributionState::add_record`] or [`AttributionState::add_batch`], and states of
//! one spec merge in any order.
//!
//! Where the attributions come from is [`extract`]: the response of an endpoint with Clarify
//! online explainability (`explanations.kernel_shap`), or a model's own contributions at a JSON
//! path (XGBoost `pred_contribs`), or columns of a table (Clarify's per-record
//! `explanations_shap/out.csv`, whose columns are `<feature>_<label>`).

pub mod extract;

use std::collections::BTreeMap;

use arrow::array::{Array, Float64Array, StringArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::analyze::metrics::{Dimension, MetricDatum, MetricScope};
use crate::format::python_float;
use crate::profile::KllSketch;

pub use extract::AttributionSource;

pub const ANALYSIS_FILE: &str = "analysis.json";
/// Model Monitor's threshold: a label whose NDCG is below it has drifted.
pub const DEFAULT_THRESHOLD: f64 = 0.9;
/// Features one window keeps per label. Real tabular models have tens to hundreds; a value for
/// a further feature is refused and counted ([`AttributionState::refused_values`]), so a feature
/// name that differs on every record cannot grow a window without bound.
pub const DEFAULT_MAX_FEATURES: usize = 1_000;
/// Labels one window keeps (a multiclass model explains one per class); further ones are refused
/// and counted like features.
pub const MAX_LABELS: usize = 64;
/// The median's sketch: Deequ's KLL with a smaller `k` than the data-quality profile's 2048,
/// since a window holds one per feature and label (rank error about 1 % at k = 256).
const MEDIAN_SKETCH_K: usize = 256;
/// The label name Clarify gives a model's only (or first) output without `label_headers`.
pub const FIRST_LABEL: &str = "label0";
/// How canonical attribution columns (made by the capture decoder) join label and feature.
pub const COLUMN_SEPARATOR: char = '\u{1f}';

/// The feature name of the column that carries a label's expected value (a model's bias term):
/// the separator makes it unlike any real feature.
pub const EXPECTED_FEATURE: &str = "\u{1f}expected_value";

/// The name of the column that carries `feature`'s attribution for `label`.
pub fn column_name(label: &str, feature: &str) -> String {
    format!("{label}{COLUMN_SEPARATOR}{feature}")
}

/// Clarify's `agg_method` for global SHAP values.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Hash,
)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Aggregation {
    /// The mean of the absolute values (Clarify's default).
    #[default]
    MeanAbs,
    /// The mean of the squares.
    MeanSq,
    /// The median of the values (from a KLL sketch, so approximate past its buffer).
    Median,
}

/// What a feature-attribution monitor or check does with the attributions.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributionSpec {
    pub aggregation: Aggregation,
    /// NDCG below this is a `feature_attribution_drift_check` violation.
    pub threshold: f64,
    pub max_features: usize,
}

impl Default for AttributionSpec {
    fn default() -> Self {
        Self {
            aggregation: Aggregation::MeanAbs,
            threshold: DEFAULT_THRESHOLD,
            max_features: DEFAULT_MAX_FEATURES,
        }
    }
}

impl AttributionSpec {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.threshold.is_finite() && (0.0..=1.0).contains(&self.threshold)) {
            return Err(format!(
                "the NDCG threshold must be a number from 0 to 1, not {}",
                self.threshold
            ));
        }
        if self.max_features == 0 {
            return Err("the feature limit must be at least 1".into());
        }
        Ok(())
    }
}

/// One feature's attributions for one label: mergeable sums, and the sketch for the median.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSums {
    pub count: u64,
    pub sum_abs: f64,
    pub sum_sq: f64,
    /// Only with [`Aggregation::Median`].
    pub sketch: Option<KllSketch>,
}

impl FeatureSums {
    fn new(aggregation: Aggregation) -> Self {
        Self {
            count: 0,
            sum_abs: 0.0,
            sum_sq: 0.0,
            sketch: (aggregation == Aggregation::Median)
                .then(|| KllSketch::with_params(MEDIAN_SKETCH_K, KllSketch::DEFAULT_C)),
        }
    }

    fn add(&mut self, value: f64) {
        self.count += 1;
        self.sum_abs += value.abs();
        self.sum_sq += value * value;
        if let Some(sketch) = &mut self.sketch {
            sketch.update(value);
        }
    }

    fn merge(&mut self, other: &FeatureSums) {
        self.count += other.count;
        self.sum_abs += other.sum_abs;
        self.sum_sq += other.sum_sq;
        if let (Some(mine), Some(theirs)) = (&mut self.sketch, &other.sketch) {
            mine.merge(theirs);
        }
    }

    /// The global attribution under `aggregation`; `None` without values.
    pub fn global(&self, aggregation: Aggregation) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let n = self.count as f64;
        match aggregation {
            Aggregation::MeanAbs => Some(self.sum_abs / n),
            Aggregation::MeanSq => Some(self.sum_sq / n),
            Aggregation::Median => self.sketch.as_ref().and_then(median),
        }
    }
}

/// numpy's median over the sketch's weighted items: the middle item, or the mean of the two
/// middle ones for an even total weight. Exact while the sketch has not compacted.
fn median(sketch: &KllSketch) -> Option<f64> {
    let mut items = sketch.weighted_items();
    let total: u64 = items.iter().map(|(_, w)| w).sum();
    if total == 0 {
        return None;
    }
    items.sort_by(|a, b| a.0.total_cmp(&b.0));
    // The value at 0-based rank r of the expanded, sorted items.
    let at = |r: u64| {
        let mut seen = 0;
        for (x, w) in &items {
            seen += w;
            if r < seen {
                return *x;
            }
        }
        items.last().map_or(f64::NAN, |(x, _)| *x)
    };
    Some(if total % 2 == 1 {
        at(total / 2)
    } else {
        (at(total / 2 - 1) + at(total / 2)) / 2.0
    })
}

/// One label's features, in the order first seen (the order analysis.json lists them in).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelSums {
    pub features: IndexMap<String, FeatureSums>,
    /// Sum and count of the records' expected values (a model's bias term), when they carry one.
    pub expected_sum: f64,
    pub expected_count: u64,
}

/// A window's attributions: mergeable, bounded by the spec's feature limit and [`MAX_LABELS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributionState {
    pub aggregation: Aggregation,
    pub max_features: usize,
    pub labels: BTreeMap<String, LabelSums>,
    /// Records with at least one attribution.
    pub records: u64,
    /// Values refused because their feature or label was past the limits.
    pub refused_values: u64,
    /// Values that were not finite numbers (text that does not read as one, NaN, ±∞).
    pub bad_values: u64,
}

/// One record's attributions: label → feature → value, plus the label's expected value when the
/// record carries it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordAttributions {
    pub values: Vec<(String, String, f64)>,
    pub expected: Vec<(String, f64)>,
}

impl AttributionState {
    pub fn new(spec: &AttributionSpec) -> Self {
        Self {
            aggregation: spec.aggregation,
            max_features: spec.max_features,
            labels: BTreeMap::new(),
            records: 0,
            refused_values: 0,
            bad_values: 0,
        }
    }

    /// Adds one value; returns false when it was refused or bad (and counted).
    pub fn add_value(&mut self, label: &str, feature: &str, value: f64) -> bool {
        if !value.is_finite() {
            self.bad_values += 1;
            return false;
        }
        let (aggregation, max_features) = (self.aggregation, self.max_features);
        let Some(sums) = self.label_mut(label) else {
            self.refused_values += 1;
            return false;
        };
        if let Some(feature) = sums.features.get_mut(feature) {
            feature.add(value);
            return true;
        }
        if sums.features.len() >= max_features {
            self.refused_values += 1;
            return false;
        }
        let mut fresh = FeatureSums::new(aggregation);
        fresh.add(value);
        sums.features.insert(feature.to_string(), fresh);
        true
    }

    fn label_mut(&mut self, label: &str) -> Option<&mut LabelSums> {
        if !self.labels.contains_key(label) && self.labels.len() >= MAX_LABELS {
            return None;
        }
        Some(self.labels.entry(label.to_string()).or_default())
    }

    pub fn add_record(&mut self, record: &RecordAttributions) {
        let mut any = false;
        for (label, feature, value) in &record.values {
            any |= self.add_value(label, feature, *value);
        }
        for (label, value) in &record.expected {
            if value.is_finite()
                && let Some(sums) = self.label_mut(label)
            {
                sums.expected_sum += value;
                sums.expected_count += 1;
            }
        }
        self.records += u64::from(any);
    }

    /// Adds a batch of attribution columns: canonical ones (`<label>\x1f<feature>`, as the
    /// capture decoder makes them) or a table's (`<feature>_<label>` when the suffix is
    /// `label<N>`, as Clarify's per-record output names them, else a feature of `label0`).
    /// Values are numbers or their text; an empty cell is no value.
    pub fn add_batch(&mut self, rows: &RecordBatch) {
        let schema = rows.schema();
        let columns: Vec<(String, String, Vec<Option<f64>>)> = schema
            .fields()
            .iter()
            .zip(rows.columns())
            .map(|(field, column)| {
                let (label, feature) = split_column(field.name());
                (label, feature, column_values(column))
            })
            .collect();
        for row in 0..rows.num_rows() {
            let mut any = false;
            for (label, feature, values) in &columns {
                let Some(value) = values[row] else { continue };
                if feature == EXPECTED_FEATURE {
                    if value.is_finite()
                        && let Some(sums) = self.label_mut(label)
                    {
                        sums.expected_sum += value;
                        sums.expected_count += 1;
                    }
                } else {
                    any |= self.add_value(label, feature, value);
                }
            }
            self.records += u64::from(any);
        }
    }

    pub fn merge(&mut self, other: &AttributionState) {
        self.records += other.records;
        self.refused_values += other.refused_values;
        self.bad_values += other.bad_values;
        for (label, theirs) in &other.labels {
            let max_features = self.max_features;
            let Some(mine) = self.label_mut(label) else {
                self.refused_values += theirs.features.values().map(|f| f.count).sum::<u64>();
                continue;
            };
            mine.expected_sum += theirs.expected_sum;
            mine.expected_count += theirs.expected_count;
            let mut refused = 0;
            for (feature, sums) in &theirs.features {
                if let Some(existing) = mine.features.get_mut(feature) {
                    existing.merge(sums);
                } else if mine.features.len() < max_features {
                    mine.features.insert(feature.clone(), sums.clone());
                } else {
                    refused += sums.count;
                }
            }
            self.refused_values += refused;
        }
    }

    /// All the state's counts summed (saturating): records, refused and bad values, and each
    /// label's values and expected values. A merge adds them up or moves values to the refused
    /// ones, so a merged state's is at most the sum of its parts'; no single count passes it.
    pub fn count_bound(&self) -> u64 {
        let labels = self.labels.values().flat_map(|sums| {
            std::iter::once(sums.expected_count).chain(sums.features.values().map(|f| f.count))
        });
        [self.records, self.refused_values, self.bad_values]
            .into_iter()
            .chain(labels)
            .fold(0, u64::saturating_add)
    }

    /// What a decoded state must satisfy, so that merging it cannot overflow and reading it
    /// cannot panic: its counts sum to at most `max_counts`, it keeps at most [`MAX_LABELS`]
    /// labels and `max_features` features each, and each median sketch is sound and weighs no
    /// more than its feature's values.
    pub fn validate(&self, max_counts: u64) -> Result<(), String> {
        // Saturating, so a sum past u64 is past any limit too.
        if self.count_bound() > max_counts {
            return Err(format!(
                "its counts sum past what a state may hold ({max_counts})"
            ));
        }
        if self.labels.len() > MAX_LABELS
            || (self.labels.values()).any(|sums| sums.features.len() > self.max_features)
        {
            return Err("more labels or features than the limits allow".into());
        }
        let features = self.labels.values().flat_map(|sums| sums.features.iter());
        for (feature, sums) in features {
            if let Some(sketch) = &sums.sketch {
                (sketch.validate(MEDIAN_SKETCH_K, sums.count))
                    .map_err(|e| format!("feature {feature:?}: {e}"))?;
            }
        }
        Ok(())
    }

    /// The window's global attributions, as analysis.json holds them.
    pub fn explanations(&self) -> Explanations {
        let kernel_shap = self
            .labels
            .iter()
            .filter_map(|(label, sums)| {
                let global_shap_values: IndexMap<String, f64> = sums
                    .features
                    .iter()
                    .filter_map(|(f, s)| s.global(self.aggregation).map(|v| (f.clone(), v)))
                    .collect();
                if global_shap_values.is_empty() {
                    return None;
                }
                let expected_value = (sums.expected_count > 0)
                    .then(|| sums.expected_sum / sums.expected_count as f64);
                Some((
                    label.clone(),
                    LabelExplanation {
                        global_shap_values,
                        expected_value,
                    },
                ))
            })
            .collect();
        Explanations { kernel_shap }
    }
}

/// Splits a column name into (label, feature); see [`AttributionState::add_batch`].
pub fn split_column(name: &str) -> (String, String) {
    if let Some((label, feature)) = name.split_once(COLUMN_SEPARATOR) {
        return (label.to_string(), feature.to_string());
    }
    if let Some((feature, label)) = name.rsplit_once('_')
        && !feature.is_empty()
        && label
            .strip_prefix("label")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    {
        return (label.to_string(), feature.to_string());
    }
    (FIRST_LABEL.to_string(), name.to_string())
}

/// A column's values as numbers: `None` for a null or empty cell, NaN for text that is not a
/// number (counted as a bad value when added).
fn column_values(column: &arrow::array::ArrayRef) -> Vec<Option<f64>> {
    if column.data_type() == &DataType::Float64 {
        let array = column
            .as_any()
            .downcast_ref::<Float64Array>()
            .expect("checked type");
        return (0..array.len())
            .map(|i| array.is_valid(i).then(|| array.value(i)))
            .collect();
    }
    let text = crate::decode::as_text(column);
    let text = text
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("as_text gives Utf8");
    (0..text.len())
        .map(|i| {
            if text.is_null(i) || text.value(i).trim().is_empty() {
                return None;
            }
            Some(text.value(i).trim().parse::<f64>().unwrap_or(f64::NAN))
        })
        .collect()
}

/// `analysis.json` of an explainability job, as Clarify writes it:
/// `{"version": "1.0", "explanations": {"kernel_shap": {"label0": {"global_shap_values": {…},
/// "expected_value": …}}}}`. Reading ignores the bias sections a combined file also holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributionAnalysis {
    pub version: String,
    pub explanations: Explanations,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanations {
    pub kernel_shap: IndexMap<String, LabelExplanation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelExplanation {
    pub global_shap_values: IndexMap<String, f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_value: Option<f64>,
}

impl AttributionAnalysis {
    pub fn new(explanations: Explanations) -> Self {
        Self {
            version: "1.0".into(),
            explanations,
        }
    }

    /// Reads a Clarify (or driftd) explainability analysis.json; an error names the file and
    /// what is missing.
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let analysis: AttributionAnalysis =
            crate::json_file::read_json(path).map_err(|e| e.to_string())?;
        if analysis.explanations.kernel_shap.is_empty() {
            return Err(format!(
                "{}: explanations.kernel_shap holds no label",
                path.display()
            ));
        }
        for (label, explanation) in &analysis.explanations.kernel_shap {
            if explanation.global_shap_values.is_empty() {
                return Err(format!(
                    "{}: explanations.kernel_shap.{label}.global_shap_values is empty",
                    path.display()
                ));
            }
        }
        Ok(analysis)
    }
}

/// NDCG of the live ranking scored with the baseline's attributions (FORMATS.md §8):
/// DCG = Σ a(F′ᵢ)/log₂(i+1) over the live order F′, iDCG the same over the baseline's own order,
/// with a(f) the baseline's attribution. Features are the union of both sides; one missing from
/// a side has attribution 0 there (so a new feature gains nothing, and a vanished one ranks
/// last). Live ties are handled as scikit-learn's `ndcg_score` does (which the Model Monitor
/// documentation points to): a tied group gets the mean of its gains on each of its positions.
/// `None` when there are fewer than two features (a ranking of one is no ranking); 0 when every
/// baseline attribution is 0 (scikit-learn's convention).
pub fn ndcg(baseline: &IndexMap<String, f64>, live: &IndexMap<String, f64>) -> Option<f64> {
    let mut features: Vec<&str> = baseline.keys().map(String::as_str).collect();
    features.extend(
        live.keys()
            .map(String::as_str)
            .filter(|f| !baseline.contains_key(*f)),
    );
    if features.len() < 2 {
        return None;
    }
    let gain = |f: &str| baseline.get(f).copied().unwrap_or(0.0);
    let score = |f: &str| live.get(f).copied().unwrap_or(0.0);
    let discount = |position: usize| 1.0 / ((position + 2) as f64).log2();

    let mut ideal: Vec<f64> = features.iter().map(|f| gain(f)).collect();
    ideal.sort_by(|a, b| b.total_cmp(a));
    let idcg: f64 = ideal.iter().enumerate().map(|(i, g)| g * discount(i)).sum();

    let mut ranked: Vec<(f64, f64)> = features.iter().map(|f| (score(f), gain(f))).collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut dcg = 0.0;
    let mut start = 0;
    while start < ranked.len() {
        let mut end = start + 1;
        while end < ranked.len() && ranked[end].0 == ranked[start].0 {
            end += 1;
        }
        let mean_gain =
            ranked[start..end].iter().map(|(_, g)| g).sum::<f64>() / (end - start) as f64;
        let discounts: f64 = (start..end).map(discount).sum();
        dcg += mean_gain * discounts;
        start = end;
    }
    if idcg == 0.0 {
        return Some(0.0);
    }
    Some(dcg / idcg)
}

/// One label's comparison with the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelDrift {
    pub label: String,
    /// `None` when the window has no attributions for the label, or fewer than two features.
    pub ndcg: Option<f64>,
}

/// NDCG per label of the baseline, in the baseline's label order.
pub fn compare(baseline: &Explanations, live: &Explanations) -> Vec<LabelDrift> {
    baseline
        .kernel_shap
        .iter()
        .map(|(label, reference)| LabelDrift {
            label: label.clone(),
            ndcg: live.kernel_shap.get(label).and_then(|current| {
                ndcg(&reference.global_shap_values, &current.global_shap_values)
            }),
        })
        .collect()
}

/// `constraint_violations.json` of a feature-attribution drift monitor (FORMATS.md §4.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributionViolations {
    pub version: String,
    pub violations: Vec<AttributionViolation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributionViolation {
    pub label: String,
    pub metric_name: String,
    pub constraint_check_type: String,
    pub description: String,
}

pub const CHECK_TYPE: &str = "feature_attribution_drift_check";

/// A violation per label whose NDCG is below `threshold`, worded as Model Monitor words it
/// ("Feature attribution drift 0.7639720923277322 exceeds threshold 0.9", numbers as Python
/// prints them).
pub fn violations(drift: &[LabelDrift], threshold: f64) -> AttributionViolations {
    AttributionViolations {
        version: "1.0".into(),
        violations: drift
            .iter()
            .filter_map(|d| d.ndcg.filter(|n| *n < threshold).map(|n| (d, n)))
            .map(|(d, n)| AttributionViolation {
                label: d.label.clone(),
                metric_name: "shap".into(),
                constraint_check_type: CHECK_TYPE.into(),
                description: format!(
                    "Feature attribution drift {} exceeds threshold {}",
                    python_float(n),
                    python_float(threshold)
                ),
            })
            .collect(),
    }
}

/// CloudWatch namespace of a real-time endpoint's attribution metrics (FORMATS.md §5.1).
pub const ENDPOINT_NAMESPACE: &str = "aws/sagemaker/Endpoints/explainability-metrics";
/// The same for batch transform monitors.
pub const BATCH_NAMESPACE: &str = "aws/sagemaker/ModelMonitoring/explainability-metrics";

/// Clarify's datums (FORMATS.md §5.6): `feature_<name>` per feature (the global SHAP value) and
/// `ExpectedValue` per label when known, dimensions `Endpoint`, `MonitoringSchedule`,
/// `ExplainabilityMethod` = `KernelShap`, `Label`, `ValueType` (`GlobalShapValues` or
/// `ExpectedValue`). driftd adds `feature_attribution_ndcg` per label (`ValueType` `NDCG`), the
/// number its rules and alarms watch.
pub fn metrics(
    explanations: &Explanations,
    drift: &[LabelDrift],
    scope: &MetricScope,
) -> Vec<MetricDatum> {
    let dimensions = |label: &str, value_type: &str| {
        let mut dimensions = scope.dimensions();
        for (name, value) in [
            ("ExplainabilityMethod", "KernelShap"),
            ("Label", label),
            ("ValueType", value_type),
        ] {
            dimensions.push(Dimension {
                name: name.into(),
                value: value.into(),
            });
        }
        dimensions
    };
    let datum = |name: String, dimensions, value: f64| MetricDatum {
        metric_name: name,
        timestamp: scope.timestamp,
        dimensions,
        value: Some(value),
        statistic_values: None,
        unit: "None".into(),
    };
    let mut datums = Vec::new();
    for (label, explanation) in &explanations.kernel_shap {
        for (feature, value) in &explanation.global_shap_values {
            datums.push(datum(
                format!("feature_{feature}"),
                dimensions(label, "GlobalShapValues"),
                *value,
            ));
        }
        if let Some(expected) = explanation.expected_value {
            datums.push(datum(
                "ExpectedValue".into(),
                dimensions(label, "ExpectedValue"),
                expected,
            ));
        }
    }
    for d in drift {
        if let Some(ndcg) = d.ndcg {
            datums.push(datum(
                NDCG_METRIC.into(),
                dimensions(&d.label, "NDCG"),
                ndcg,
            ));
        }
    }
    datums
}

/// driftd's datum for a label's NDCG (Clarify publishes none; rules and alarms need it).
pub const NDCG_METRIC: &str = "feature_attribution_ndcg";

#[cfg(test)]
mod tests;
