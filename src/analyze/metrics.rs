//! Metric datums with Model Monitor's names (FORMATS.md §5.2), in the shape of its BYOC metric
//! file (§5.3), which is also the shape of a CloudWatch `PutMetricData` datum.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Findings;
use crate::baseline::Baseline;
use crate::baseline::constraints::Switch;
use crate::model_quality::ModelQualityStatistics;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricDatum {
    pub metric_name: String,
    /// Written as RFC 3339 (`2026-11-01T01:00:00Z`), as Model Monitor's metric file has it.
    pub timestamp: DateTime<Utc>,
    pub dimensions: Vec<Dimension>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistic_values: Option<StatisticValues>,
    pub unit: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Dimension {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatisticValues {
    pub sample_count: f64,
    pub sum: f64,
    pub minimum: f64,
    pub maximum: f64,
}

/// Who the datums are about: Model Monitor's dimensions. Batch monitors have no endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricScope {
    pub endpoint: Option<String>,
    pub monitoring_schedule: String,
    pub timestamp: DateTime<Utc>,
}

impl MetricScope {
    /// `Endpoint` (when there is one) and `MonitoringSchedule`; monitors add their own after.
    pub fn dimensions(&self) -> Vec<Dimension> {
        let mut dimensions = Vec::with_capacity(2);
        if let Some(endpoint) = &self.endpoint {
            dimensions.push(Dimension {
                name: "Endpoint".into(),
                value: endpoint.clone(),
            });
        }
        dimensions.push(Dimension {
            name: "MonitoringSchedule".into(),
            value: self.monitoring_schedule.clone(),
        });
        dimensions
    }
}

/// `feature_data_*` (numeric features: count, sum, min, max), `feature_non_null_*`
/// (completeness) and `feature_baseline_drift_*` (the distance the drift check used), unless
/// the baseline's `emit_metrics` is Disabled.
pub fn data_quality_metrics(
    baseline: &Baseline,
    findings: &Findings,
    scope: &MetricScope,
) -> Vec<MetricDatum> {
    if baseline.constraints.monitoring_config.emit_metrics == Switch::Disabled {
        return Vec::new();
    }
    let datum = |metric_name: String, value, statistic_values, unit: &str| MetricDatum {
        metric_name,
        timestamp: scope.timestamp,
        dimensions: scope.dimensions(),
        value,
        statistic_values,
        unit: unit.to_string(),
    };
    let mut datums = Vec::new();
    for feature in &findings.statistics.features {
        let name = &feature.name;
        if let Some(numbers) = &feature.numerical_statistics {
            datums.push(datum(
                format!("feature_data_{name}"),
                None,
                Some(StatisticValues {
                    sample_count: numbers.common.num_present as f64,
                    sum: numbers.sum,
                    minimum: numbers.min,
                    maximum: numbers.max,
                }),
                "None",
            ));
        }
        if let Some(common) = feature.common() {
            let total = common.num_present + common.num_missing;
            let completeness = if total == 0 {
                0.0
            } else {
                common.num_present as f64 / total as f64
            };
            datums.push(datum(
                format!("feature_non_null_{name}"),
                Some(completeness),
                None,
                "None",
            ));
        }
        // CloudWatch takes no NaN (a χ² p-value with too few categories to test).
        if let Some(drift) = findings.drift.feature(name)
            && drift.distance.is_finite()
        {
            datums.push(datum(
                format!("feature_baseline_drift_{name}"),
                Some(drift.distance),
                None,
                "None",
            ));
        }
    }
    datums
}

/// One datum per finite model-quality metric, named by its statistics key (FORMATS.md §5.4),
/// for `aws/sagemaker/Endpoints/model-metrics` (batch: `…/ModelMonitoring/model-metrics`).
pub fn model_quality_metrics(
    statistics: &ModelQualityStatistics,
    scope: &MetricScope,
) -> Vec<MetricDatum> {
    data(statistics.cloudwatch_metrics(), scope)
}

/// One datum per (name, value), at the window's time with its dimensions.
pub fn data(values: Vec<(String, f64)>, scope: &MetricScope) -> Vec<MetricDatum> {
    values
        .into_iter()
        .map(|(metric_name, value)| MetricDatum {
            metric_name,
            timestamp: scope.timestamp,
            dimensions: scope.dimensions(),
            value: Some(value),
            statistic_values: None,
            unit: "None".to_string(),
        })
        .collect()
}
