//! Model Monitor's model-quality files: `statistics.json`, `constraints.json` and
//! `constraint_violations.json`, laid out as the service writes them (FORMATS.md §7.2;
//! tests/fixtures/sagemaker-real/: sdk-pipeline-mq-regression, awsmljp-nyctaxi-monitor-samples).
//!
//! A violation is the metric on the wrong side of its threshold, strictly
//! (`GreaterThanThreshold`: value > threshold), worded as the service words it:
//! `Metric mae with 48.7 was GreaterThanThreshold '38.2'`, or with the standard deviation
//! `Metric r2 with -53.8 +/- 4.8 was LessThanThreshold '-7.7'` (numbers as Java prints them).

use chrono::{DateTime, SecondsFormat, Utc};
use indexmap::IndexMap;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::ProblemType;
use super::metrics::{MetricValue, ModelQualityStatistics};
use crate::format::java_double;

pub use crate::baseline::{CONSTRAINTS_FILE, STATISTICS_FILE};

/// A number as Model Monitor writes it: a JSON number, or the string `"NaN"` (also for
/// infinities, which JSON cannot hold).
struct Number(Option<f64>);

impl Serialize for Number {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.filter(|x| x.is_finite()) {
            Some(x) => serializer.serialize_f64(x),
            None => serializer.serialize_str("NaN"),
        }
    }
}

#[derive(Serialize)]
struct MetricJson {
    value: Number,
    standard_deviation: Number,
}

#[derive(Serialize)]
struct RocJson {
    false_positive_rates: Vec<f64>,
    true_positive_rates: Vec<f64>,
}

#[derive(Serialize)]
struct PrecisionRecallJson {
    precisions: Vec<f64>,
    recalls: Vec<f64>,
}

/// The metrics object, in Model Monitor's order: the confusion matrix first, the curves
/// before `auc`.
struct MetricsJson<'a>(&'a ModelQualityStatistics);

impl Serialize for MetricsJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let statistics = self.0;
        let mut map = serializer.serialize_map(None)?;
        if let Some(matrix) = &statistics.confusion_matrix {
            let matrix: IndexMap<&str, IndexMap<&str, u64>> = matrix
                .iter()
                .map(|(actual, row)| {
                    (
                        actual.as_str(),
                        row.iter().map(|(p, n)| (p.as_str(), *n)).collect(),
                    )
                })
                .collect();
            map.serialize_entry("confusion_matrix", &matrix)?;
        }
        for (name, metric) in &statistics.metrics {
            if name == "auc" {
                if let Some(roc) = &statistics.roc {
                    map.serialize_entry(
                        "receiver_operating_characteristic_curve",
                        &RocJson {
                            false_positive_rates: roc.points.iter().map(|p| p.0).collect(),
                            true_positive_rates: roc.points.iter().map(|p| p.1).collect(),
                        },
                    )?;
                }
                if let Some(pr) = &statistics.precision_recall {
                    map.serialize_entry(
                        "precision_recall_curve",
                        &PrecisionRecallJson {
                            precisions: pr.points.iter().map(|p| p.1).collect(),
                            recalls: pr.points.iter().map(|p| p.0).collect(),
                        },
                    )?;
                }
            }
            map.serialize_entry(
                name,
                &MetricJson {
                    value: Number(Some(metric.value)),
                    standard_deviation: Number(metric.standard_deviation),
                },
            )?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct DatasetJson {
    item_count: u64,
    evaluation_time: String,
}

/// `statistics.json` as Model Monitor lays it out; serialize it (e.g. with
/// `json_file::write_json`).
#[derive(Serialize)]
pub struct StatisticsFile<'a> {
    version: f64,
    dataset: DatasetJson,
    #[serde(flatten)]
    metrics: IndexMap<&'static str, MetricsJson<'a>>,
}

/// The `statistics.json` of `statistics`, evaluated at `evaluation_time`.
pub fn statistics_file(
    statistics: &ModelQualityStatistics,
    evaluation_time: DateTime<Utc>,
) -> StatisticsFile<'_> {
    StatisticsFile {
        version: 0.0,
        dataset: DatasetJson {
            item_count: statistics.item_count,
            evaluation_time: evaluation_time.to_rfc3339_opts(SecondsFormat::Millis, true),
        },
        metrics: IndexMap::from([(
            statistics.problem_type.metrics_key(),
            MetricsJson(statistics),
        )]),
    }
}

/// The scalar metrics of a `statistics.json` (driftd's or Model Monitor's): name → value and
/// standard deviation (`None` for `"NaN"`). Curves and the confusion matrix are skipped.
pub fn metric_values(
    statistics: &str,
) -> Result<(ProblemType, Vec<(String, MetricValue)>), String> {
    let (problem_type, metrics) = serde_json::from_str::<ByProblemType<Value>>(statistics)
        .map_err(|e| e.to_string())?
        .entries()
        .ok_or("no binary_classification_metrics, multiclass_classification_metrics or regression_metrics")?;
    let values = metrics
        .into_iter()
        .filter_map(|(name, metric)| {
            let value = metric.get("value")?.as_f64()?;
            let standard_deviation = metric.get("standard_deviation").and_then(Value::as_f64);
            Some((
                name,
                MetricValue {
                    value,
                    standard_deviation,
                },
            ))
        })
        .collect();
    Ok((problem_type, values))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ComparisonOperator {
    GreaterThanThreshold,
    GreaterThanOrEqualToThreshold,
    LessThanThreshold,
    LessThanOrEqualToThreshold,
}

impl ComparisonOperator {
    fn violated(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::GreaterThanThreshold => value > threshold,
            Self::GreaterThanOrEqualToThreshold => value >= threshold,
            Self::LessThanThreshold => value < threshold,
            Self::LessThanOrEqualToThreshold => value <= threshold,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::GreaterThanThreshold => "GreaterThanThreshold",
            Self::GreaterThanOrEqualToThreshold => "GreaterThanOrEqualToThreshold",
            Self::LessThanThreshold => "LessThanThreshold",
            Self::LessThanOrEqualToThreshold => "LessThanOrEqualToThreshold",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constraint {
    pub threshold: f64,
    pub comparison_operator: ComparisonOperator,
}

/// `constraints.json` of a model-quality monitor.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelQualityConstraints {
    pub problem_type: ProblemType,
    /// Metric name → constraint, in the file's order.
    pub constraints: IndexMap<String, Constraint>,
}

impl Serialize for ModelQualityConstraints {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("version", &0.0)?;
        map.serialize_entry(self.problem_type.constraints_key(), &self.constraints)?;
        map.end()
    }
}

/// The three keys a model-quality file may hold its entries under; `IndexMap` keeps the file's
/// order (a `serde_json::Value` would sort it).
#[derive(Deserialize)]
struct ByProblemType<T> {
    #[serde(alias = "binary_classification_metrics")]
    binary_classification_constraints: Option<IndexMap<String, T>>,
    #[serde(alias = "multiclass_classification_metrics")]
    multiclass_classification_constraints: Option<IndexMap<String, T>>,
    #[serde(alias = "regression_metrics")]
    regression_constraints: Option<IndexMap<String, T>>,
}

impl<T> ByProblemType<T> {
    fn entries(self) -> Option<(ProblemType, IndexMap<String, T>)> {
        match (
            self.binary_classification_constraints,
            self.multiclass_classification_constraints,
            self.regression_constraints,
        ) {
            (Some(entries), _, _) => Some((ProblemType::BinaryClassification, entries)),
            (_, Some(entries), _) => Some((ProblemType::MulticlassClassification, entries)),
            (_, _, Some(entries)) => Some((ProblemType::Regression, entries)),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for ModelQualityConstraints {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (problem_type, constraints) = ByProblemType::<Constraint>::deserialize(deserializer)?
            .entries()
            .ok_or_else(|| {
                serde::de::Error::custom(
                    "no binary_classification_constraints, multiclass_classification_constraints or regression_constraints",
                )
            })?;
        Ok(Self {
            problem_type,
            constraints,
        })
    }
}

/// Error metrics: a violation is the metric going up.
const ERROR_METRICS: &[&str] = &[
    "mae",
    "mse",
    "rmse",
    "false_positive_rate",
    "false_negative_rate",
];

/// Constraints suggested from a baseline: each metric's own value as its threshold, so any
/// worsening is a violation (as Model Monitor suggests them). Best-constant-classifier metrics
/// describe the data, not the model, and get none; nor does a metric without a finite value.
pub fn suggest_constraints(statistics: &ModelQualityStatistics) -> ModelQualityConstraints {
    let constraints = statistics
        .metrics
        .iter()
        .filter(|(name, m)| !name.ends_with("_best_constant_classifier") && m.value.is_finite())
        .map(|(name, metric)| {
            let comparison_operator = if ERROR_METRICS.contains(&name.as_str()) {
                ComparisonOperator::GreaterThanThreshold
            } else {
                ComparisonOperator::LessThanThreshold
            };
            (
                name.clone(),
                Constraint {
                    threshold: metric.value,
                    comparison_operator,
                },
            )
        })
        .collect();
    ModelQualityConstraints {
        problem_type: statistics.problem_type,
        constraints,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelQualityViolation {
    pub constraint_check_type: String,
    pub description: String,
    pub metric_name: String,
}

/// `constraint_violations.json`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelQualityViolations {
    pub violations: Vec<ModelQualityViolation>,
}

/// The violations of `metrics` (a window's scalar metrics) against `constraints`, in the
/// constraints' order. A constrained metric the window lacks (no AUC without scores) or whose
/// value is not a number is not a violation.
pub fn check(
    constraints: &ModelQualityConstraints,
    metrics: &[(String, MetricValue)],
) -> ModelQualityViolations {
    let violations = constraints
        .constraints
        .iter()
        .filter_map(|(name, constraint)| {
            let (_, metric) = metrics.iter().find(|(n, _)| n == name)?;
            let operator = constraint.comparison_operator;
            if !operator.violated(metric.value, constraint.threshold) {
                return None;
            }
            let spread = metric
                .standard_deviation
                .map(|sd| format!(" +/- {}", java_double(sd)))
                .unwrap_or_default();
            Some(ModelQualityViolation {
                constraint_check_type: operator.name().to_string(),
                description: format!(
                    "Metric {name} with {}{spread} was {} '{}'",
                    java_double(metric.value),
                    operator.name(),
                    java_double(constraint.threshold)
                ),
                metric_name: name.clone(),
            })
        })
        .collect();
    ModelQualityViolations { violations }
}
