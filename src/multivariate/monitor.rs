//! Multivariate drift as a monitor of `driftd run` (`kind = "multivariate_drift"`): each
//! window is one chunk. Its rows go into a [`MultivariateWindow`] (the baseline's mergeable
//! [`WindowState`] and, per feature, the rows refused for it), which merges across objects and
//! replicas; a closed window is evaluated against the baseline's thresholds as they are, learned
//! on chunks of [`Baseline::chunk_size`] rows (NannyML applies them to chunks of any size too),
//! and yields `multivariate_drift.json` in the layout of `driftd check --kind
//! multivariate-drift`, a `multivariate_drift_check` violation when it alerts, and driftd's
//! datums in its own CloudWatch namespaces.
//!
//! Bounded: a window's state is a few counts and one sum per feature, and the refusals at most
//! one count per feature; a baseline has at most [`super::MAX_FEATURES`] features, so a window
//! holds a few KB whatever its rows (256 features named `f000`…: a 3.6 KB body, 2.3 KB stored;
//! window/codec.rs's `a_multivariate_window_at_the_feature_limit_stays_small`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, StringArray};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Baseline, ChunkResult, Encoding, MAX_FEATURES, WindowState};
use crate::analyze::metrics::{MetricDatum, MetricScope};

/// The check type of a window that alerts (`constraint_violations.json`, rules).
pub const CHECK_TYPE: &str = "multivariate_drift_check";
/// driftd's own CloudWatch namespaces (Model Monitor has no multivariate drift): real-time
/// endpoint monitors, and batch ones.
pub const ENDPOINT_NAMESPACE: &str = "driftd/Endpoints/multivariate-drift-metrics";
pub const BATCH_NAMESPACE: &str = "driftd/ModelMonitoring/multivariate-drift-metrics";
/// The window's mean reconstruction error.
pub const ERROR_METRIC: &str = "multivariate_reconstruction_error";
/// Its sampling error (standard error of the mean).
pub const SAMPLING_ERROR_METRIC: &str = "multivariate_sampling_error";
/// 1 when the error is outside the baseline's thresholds, else 0.
pub const ALERT_METRIC: &str = "multivariate_drift_alert";

/// A monitor's baseline, with the digest every stored window state of it carries (a part
/// stored under another baseline is refused, not merged).
#[derive(Debug, PartialEq)]
pub struct MultivariateSpec {
    pub baseline: Baseline,
    pub digest: String,
}

impl MultivariateSpec {
    pub fn new(baseline: Baseline) -> Self {
        let json = serde_json::to_vec(&baseline).expect("a baseline serializes");
        let digest = Sha256::digest(&json);
        let digest = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Self { baseline, digest }
    }

    /// Reads `multivariate_baseline.json` (`path` is the file, or the folder holding it, as
    /// `driftd baseline --kind multivariate-drift --output` writes it) and checks it.
    pub fn load(path: &Path) -> Result<Self, String> {
        let file = if path.is_dir() {
            path.join(crate::multivariate_run::BASELINE_FILE)
        } else {
            path.to_path_buf()
        };
        let baseline: Baseline = crate::json_file::read_json(&file).map_err(|e| e.to_string())?;
        check_baseline(&baseline).map_err(|e| format!("{}: {e}", file.display()))?;
        Ok(Self::new(baseline))
    }
}

/// What evaluating rows needs of a baseline read from a file (a hand-edited or damaged one
/// must be refused at start-up, not panic or mislead per window).
pub fn check_baseline(baseline: &Baseline) -> Result<(), String> {
    let width = baseline.features.len();
    if width == 0 || width > MAX_FEATURES {
        return Err(format!(
            "{width} features; a multivariate baseline has 1 to {MAX_FEATURES}"
        ));
    }
    for (i, feature) in baseline.features.iter().enumerate() {
        if baseline.features[..i]
            .iter()
            .any(|f| f.name == feature.name)
        {
            return Err(format!("feature {:?} appears twice", feature.name));
        }
        let mut numbers = vec![feature.scaler_mean, feature.pca_mean, feature.scaler_scale];
        match &feature.encoding {
            Encoding::Continuous { impute } => numbers.push(*impute),
            Encoding::Categorical { frequencies, .. } => numbers.extend(frequencies.values()),
        }
        if numbers.iter().any(|x| !x.is_finite()) || feature.scaler_scale == 0.0 {
            return Err(format!(
                "feature {:?}: its encoding, scaling and centring must be finite numbers (scale not 0)",
                feature.name
            ));
        }
    }
    if baseline.components.len() > width {
        return Err(format!(
            "{} components for {width} features",
            baseline.components.len()
        ));
    }
    if let Some(axis) = (baseline.components.iter())
        .find(|axis| axis.len() != width || axis.iter().any(|x| !x.is_finite()))
    {
        return Err(format!(
            "a component has {} loadings (some not finite?) for {width} features",
            axis.len()
        ));
    }
    if baseline.chunk_size == 0 {
        return Err("chunk_size is 0".into());
    }
    let bounds = [baseline.lower_threshold, baseline.upper_threshold];
    if bounds.iter().flatten().any(|x| !x.is_finite()) {
        return Err("a threshold is not a finite number".into());
    }
    Ok(())
}

/// A multivariate-drift monitor's window: the reconstruction-error state, and the rows refused
/// per feature (a feature column absent from the rows, or a value that does not read as a
/// number): each refused row counted once, under the first feature that refused it.
#[derive(Debug, Clone, PartialEq)]
pub struct MultivariateWindow {
    pub spec: Arc<MultivariateSpec>,
    pub state: WindowState,
    pub refused_by_feature: BTreeMap<String, u64>,
}

/// A [`MultivariateWindow`] as stored (window/codec.rs), without its baseline.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredWindow {
    pub baseline_digest: String,
    pub state: WindowState,
    pub refused_by_feature: BTreeMap<String, u64>,
}

impl MultivariateWindow {
    pub fn new(spec: Arc<MultivariateSpec>) -> Self {
        Self {
            state: spec.baseline.new_state(),
            spec,
            refused_by_feature: BTreeMap::new(),
        }
    }

    /// Adds a batch's rows, finding the baseline's features by column name.
    pub fn add_batch(&mut self, rows: &RecordBatch) {
        let baseline = &self.spec.baseline;
        let mut columns = Vec::with_capacity(baseline.features.len());
        for feature in &baseline.features {
            let Some(array) = rows.column_by_name(&feature.name) else {
                // Without the column no row of the batch can be placed.
                let refused = rows.num_rows() as u64;
                self.state.refused_rows += refused;
                *self
                    .refused_by_feature
                    .entry(feature.name.clone())
                    .or_default() += refused;
                return;
            };
            let text = crate::decode::as_text(array);
            let text = (text.as_any().downcast_ref::<StringArray>())
                .expect("as_text gives Utf8")
                .clone();
            columns.push(text);
        }
        let mut cells: Vec<Option<&str>> = Vec::with_capacity(columns.len());
        let mut scratch = Vec::with_capacity(columns.len());
        for row in 0..rows.num_rows() {
            cells.clear();
            cells.extend(
                columns
                    .iter()
                    .map(|c| c.is_valid(row).then(|| c.value(row))),
            );
            if let Err(unreadable) = baseline.add_row(&mut self.state, &cells, &mut scratch) {
                *self
                    .refused_by_feature
                    .entry(unreadable.feature)
                    .or_default() += 1;
            }
        }
    }

    pub fn merge(&mut self, other: &MultivariateWindow) {
        self.state.merge(&other.state);
        for (feature, refused) in &other.refused_by_feature {
            *self.refused_by_feature.entry(feature.clone()).or_default() += refused;
        }
    }

    /// Rows accepted and refused: every count the window holds is at most this.
    pub fn count_bound(&self) -> u64 {
        self.state.rows.saturating_add(self.state.refused_rows)
    }

    pub fn row_count(&self) -> u64 {
        self.count_bound()
    }

    pub fn evaluate(&self) -> ChunkResult {
        self.spec.baseline.evaluate(&self.state)
    }

    pub fn to_stored(&self) -> StoredWindow {
        StoredWindow {
            baseline_digest: self.spec.digest.clone(),
            state: self.state.clone(),
            refused_by_feature: self.refused_by_feature.clone(),
        }
    }

    /// A stored window of `spec`'s baseline, checked: `Err((true, …))` when it was stored under
    /// another baseline, `Err((false, …))` when it is unsound.
    pub fn from_stored(
        spec: &Arc<MultivariateSpec>,
        stored: StoredWindow,
        max_rows: u64,
    ) -> Result<Self, (bool, String)> {
        if stored.baseline_digest != spec.digest {
            return Err((
                true,
                format!(
                    "multivariate baseline: stored {}, configured {} (the baseline file changed since the window's rows were read)",
                    stored.baseline_digest, spec.digest
                ),
            ));
        }
        let features = &spec.baseline.features;
        stored
            .state
            .validate(features.len(), max_rows)
            .map_err(|e| (false, e))?;
        if let Some(name) = (stored.refused_by_feature.keys())
            .find(|name| !features.iter().any(|f| &f.name == *name))
        {
            return Err((false, format!("rows refused for {name:?}, not a feature")));
        }
        let refused = (stored.refused_by_feature.values()).try_fold(0u64, |a, b| a.checked_add(*b));
        if refused != Some(stored.state.refused_rows) {
            return Err((
                false,
                format!(
                    "{:?} rows refused per feature, {} in all",
                    stored.refused_by_feature, stored.state.refused_rows
                ),
            ));
        }
        Ok(Self {
            spec: spec.clone(),
            state: stored.state,
            refused_by_feature: stored.refused_by_feature,
        })
    }
}

/// `constraint_violations.json` of a multivariate-drift window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MultivariateViolations {
    pub version: String,
    pub violations: Vec<MultivariateViolation>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MultivariateViolation {
    /// The feature with the largest share of the window's error.
    pub feature_name: String,
    pub metric_name: String,
    pub constraint_check_type: String,
    pub description: String,
}

/// A violation when the window alerts.
pub fn violations(baseline: &Baseline, result: &ChunkResult) -> MultivariateViolations {
    let violations = match result.reconstruction_error.filter(|_| result.alert) {
        None => Vec::new(),
        Some(error) => {
            let bound = |b: Option<f64>| b.map_or("none".to_string(), |b| b.to_string());
            let top: Vec<String> = (result.top_features.iter())
                .map(|f| format!("{} {:.1}%", f.feature, 100.0 * f.share))
                .collect();
            vec![MultivariateViolation {
                feature_name: (result.top_features.first())
                    .map_or_else(String::new, |f| f.feature.clone()),
                metric_name: "reconstruction_error".into(),
                constraint_check_type: CHECK_TYPE.into(),
                description: format!(
                    "Multivariate drift: reconstruction error {error} is outside the thresholds (lower {}, upper {}) learned on chunks of {} rows; the window has {} rows; share of the error: {}",
                    bound(result.lower_threshold),
                    bound(result.upper_threshold),
                    baseline.chunk_size,
                    result.rows,
                    top.join(", ")
                ),
            }]
        }
    };
    MultivariateViolations {
        version: "1.0".into(),
        violations,
    }
}

/// The window's datums: [`ERROR_METRIC`], [`SAMPLING_ERROR_METRIC`] and [`ALERT_METRIC`]
/// (dimensions `Endpoint`, `MonitoringSchedule`); none without an accepted row.
pub fn metrics(result: &ChunkResult, scope: &MetricScope) -> Vec<MetricDatum> {
    let Some(error) = result.reconstruction_error else {
        return Vec::new();
    };
    let datum = |name: &str, value: f64| MetricDatum {
        metric_name: name.into(),
        timestamp: scope.timestamp,
        dimensions: scope.dimensions(),
        value: Some(value),
        statistic_values: None,
        unit: "None".into(),
    };
    let mut datums = vec![datum(ERROR_METRIC, error)];
    if let Some(sampling) = result.sampling_error {
        datums.push(datum(SAMPLING_ERROR_METRIC, sampling));
    }
    datums.push(datum(ALERT_METRIC, f64::from(u8::from(result.alert))));
    datums
}

/// The window's `multivariate_drift.json`: the layout of `driftd check --kind
/// multivariate-drift`'s file with the window as its one chunk (none without an accepted row):
/// `input_rows` is the window's rows, `chunk_size` the rows per chunk the thresholds were
/// learned on. driftd adds `rows_refused_by_feature`.
pub fn drift_file(
    baseline: &Baseline,
    result: &ChunkResult,
    refused_by_feature: &BTreeMap<String, u64>,
) -> serde_json::Value {
    use crate::multivariate_run::{Chunk, DriftFile};
    let chunks: Vec<Chunk> = (result.rows > 0)
        .then(|| Chunk {
            index: 0,
            start_row: 0,
            end_row: result.rows - 1,
            result: result.clone(),
        })
        .into_iter()
        .collect();
    let file = DriftFile {
        features: baseline.features.iter().map(|f| f.name.as_str()).collect(),
        components: baseline.component_count(),
        chunk_size: baseline.chunk_size,
        input_rows: result.rows,
        rows_refused: result.rows_refused,
        lower_threshold: baseline.lower_threshold,
        upper_threshold: baseline.upper_threshold,
        chunks: &chunks,
    };
    let mut value = serde_json::to_value(&file).expect("the drift file serializes");
    value["rows_refused_by_feature"] =
        serde_json::to_value(refused_by_feature).expect("counts serialize");
    value
}
