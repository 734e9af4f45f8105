//! CloudWatch metrics with Model Monitor's namespaces, names and dimensions (FORMATS.md §5):
//! each window's datums, sent with PutMetricData in batches within the API's limits.

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::primitives::DateTime as AwsDateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum as AwsDatum, StandardUnit, StatisticSet};
use chrono::Utc;

use super::retry::with_retries;
use crate::analyze::metrics::MetricDatum;
use crate::sinks::retry::attempt;

/// Real-time endpoint monitors (dimensions `Endpoint`, `MonitoringSchedule`).
pub const ENDPOINT_NAMESPACE: &str = "aws/sagemaker/Endpoints/data-metrics";
/// Batch transform monitors (dimension `MonitoringSchedule`).
pub const BATCH_NAMESPACE: &str = "aws/sagemaker/ModelMonitoring/data-metrics";
/// Bias monitors, real-time and batch (Clarify's dimensions added, FORMATS.md §5.5).
pub const BIAS_ENDPOINT_NAMESPACE: &str = "aws/sagemaker/Endpoints/bias-metrics";
pub const BIAS_BATCH_NAMESPACE: &str = "aws/sagemaker/ModelMonitoring/bias-metrics";
/// Model-quality monitors, real-time and batch (FORMATS.md §5.4).
pub const MODEL_ENDPOINT_NAMESPACE: &str = "aws/sagemaker/Endpoints/model-metrics";
pub const MODEL_BATCH_NAMESPACE: &str = "aws/sagemaker/ModelMonitoring/model-metrics";

/// Which monitor's metrics: each has its own namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    DataQuality,
    Bias,
    ModelQuality,
    /// Feature attribution drift (FORMATS.md §5.6).
    FeatureAttribution,
    /// driftd's multivariate drift, in driftd's own namespaces.
    MultivariateDrift,
}

/// PutMetricData takes at most 1,000 datums and 1 MB per request.
const MAX_DATUMS: usize = 1000;
const MAX_REQUEST_BYTES: usize = 900 * 1024;
/// CloudWatch refuses datums older than two weeks; a replay of old capture data must not
/// fail forever on them.
const MAX_AGE_DAYS: i64 = 14;

pub struct CloudWatchSink {
    client: Client,
    namespace_prefix: String,
    max_attempts: u32,
}

/// Model Monitor's namespace for a monitor of `family` with or without an endpoint.
pub fn namespace(prefix: &str, family: Family, endpoint: Option<&str>) -> String {
    let base = match (family, endpoint.is_some()) {
        (Family::DataQuality, true) => ENDPOINT_NAMESPACE,
        (Family::DataQuality, false) => BATCH_NAMESPACE,
        (Family::Bias, true) => BIAS_ENDPOINT_NAMESPACE,
        (Family::Bias, false) => BIAS_BATCH_NAMESPACE,
        (Family::ModelQuality, true) => MODEL_ENDPOINT_NAMESPACE,
        (Family::ModelQuality, false) => MODEL_BATCH_NAMESPACE,
        (Family::FeatureAttribution, true) => crate::attribution::ENDPOINT_NAMESPACE,
        (Family::FeatureAttribution, false) => crate::attribution::BATCH_NAMESPACE,
        (Family::MultivariateDrift, true) => crate::multivariate::monitor::ENDPOINT_NAMESPACE,
        (Family::MultivariateDrift, false) => crate::multivariate::monitor::BATCH_NAMESPACE,
    };
    format!("{prefix}{base}")
}

/// Splits datums into PutMetricData requests: at most [`MAX_DATUMS`] each and, by a generous
/// estimate of the encoded size, under the request size limit.
pub fn batches(datums: &[AwsDatum]) -> Vec<&[AwsDatum]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, datum) in datums.iter().enumerate() {
        // Query encoding: each field is `MetricData.member.N.<Path>=<value>&`.
        let size = 400
            + datum.metric_name().map_or(0, str::len) * 3
            + datum
                .dimensions()
                .iter()
                .map(|d| 80 + 3 * (d.name().map_or(0, str::len) + d.value().map_or(0, str::len)))
                .sum::<usize>();
        if i > start && (i - start == MAX_DATUMS || bytes + size > MAX_REQUEST_BYTES) {
            out.push(&datums[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < datums.len() {
        out.push(&datums[start..]);
    }
    out
}

fn to_aws(datum: &MetricDatum) -> AwsDatum {
    let mut out = AwsDatum::builder()
        .metric_name(&datum.metric_name)
        .timestamp(AwsDateTime::from_secs(datum.timestamp.timestamp()))
        .unit(StandardUnit::from(datum.unit.as_str()))
        .set_dimensions(Some(
            datum
                .dimensions
                .iter()
                .map(|d| Dimension::builder().name(&d.name).value(&d.value).build())
                .collect(),
        ));
    if let Some(value) = datum.value {
        out = out.value(value);
    }
    if let Some(stats) = &datum.statistic_values {
        out = out.statistic_values(
            StatisticSet::builder()
                .sample_count(stats.sample_count)
                .sum(stats.sum)
                .minimum(stats.minimum)
                .maximum(stats.maximum)
                .build(),
        );
    }
    out.build()
}

impl CloudWatchSink {
    pub fn new(client: Client, namespace_prefix: String, max_attempts: u32) -> Self {
        Self {
            client,
            namespace_prefix,
            max_attempts,
        }
    }

    /// Publishes one window's datums. Datums too old for CloudWatch are skipped with a warning.
    pub async fn publish(
        &self,
        family: Family,
        endpoint: Option<&str>,
        datums: &[MetricDatum],
    ) -> Result<(), String> {
        let namespace = namespace(&self.namespace_prefix, family, endpoint);
        let oldest = Utc::now() - chrono::Duration::days(MAX_AGE_DAYS);
        let mut fresh = Vec::with_capacity(datums.len());
        for datum in datums {
            if datum.timestamp >= oldest {
                fresh.push(to_aws(datum));
            }
        }
        if fresh.len() < datums.len() {
            tracing::warn!(
                namespace,
                skipped = datums.len() - fresh.len(),
                "CloudWatch accepts no metrics older than 14 days; those were skipped"
            );
        }
        for batch in batches(&fresh) {
            with_retries("CloudWatch PutMetricData", self.max_attempts, || async {
                self.client
                    .put_metric_data()
                    .namespace(&namespace)
                    .set_metric_data(Some(batch.to_vec()))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(attempt)
            })
            .await
            .map_err(|e| format!("{e} (namespace {namespace})"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::metrics::Dimension as Dim;

    fn datum(i: usize) -> MetricDatum {
        MetricDatum {
            metric_name: format!("feature_non_null_f{i}"),
            timestamp: "2026-11-01T01:00:00Z".parse().unwrap(),
            dimensions: vec![
                Dim {
                    name: "Endpoint".into(),
                    value: "ep".into(),
                },
                Dim {
                    name: "MonitoringSchedule".into(),
                    value: "mon".into(),
                },
            ],
            value: Some(1.0),
            statistic_values: None,
            unit: "None".into(),
        }
    }

    #[test]
    fn namespaces_follow_model_monitor_and_take_the_prefix() {
        assert_eq!(
            namespace("", Family::DataQuality, Some("ep")),
            "aws/sagemaker/Endpoints/data-metrics"
        );
        assert_eq!(
            namespace("staging/", Family::DataQuality, None),
            "staging/aws/sagemaker/ModelMonitoring/data-metrics"
        );
        assert_eq!(
            namespace("", Family::Bias, Some("ep")),
            "aws/sagemaker/Endpoints/bias-metrics"
        );
        assert_eq!(
            namespace("", Family::Bias, None),
            "aws/sagemaker/ModelMonitoring/bias-metrics"
        );
        assert_eq!(
            namespace("", Family::FeatureAttribution, Some("ep")),
            "aws/sagemaker/Endpoints/explainability-metrics"
        );
        assert_eq!(
            namespace("", Family::FeatureAttribution, None),
            "aws/sagemaker/ModelMonitoring/explainability-metrics"
        );
    }

    #[test]
    fn batches_hold_at_most_a_thousand_datums_and_keep_every_one() {
        let datums: Vec<AwsDatum> = (0..2500).map(|i| to_aws(&datum(i))).collect();
        let split = batches(&datums);
        assert_eq!(
            split.iter().map(|b| b.len()).collect::<Vec<_>>(),
            [1000, 1000, 500]
        );
        assert!(batches(&[]).is_empty());
        assert_eq!(batches(&datums[..1]).len(), 1);
    }

    #[test]
    fn long_names_split_batches_by_size() {
        let mut long = datum(0);
        long.metric_name = "x".repeat(250);
        long.dimensions[0].value = "e".repeat(255);
        let datums = vec![to_aws(&long); 1000];
        let split = batches(&datums);
        assert!(split.len() > 1);
        assert_eq!(split.iter().map(|b| b.len()).sum::<usize>(), 1000);
    }

    #[test]
    fn a_datum_converts_with_its_statistic_set() {
        let mut d = datum(1);
        d.value = None;
        d.statistic_values = Some(crate::analyze::metrics::StatisticValues {
            sample_count: 3.0,
            sum: 6.0,
            minimum: 1.0,
            maximum: 3.0,
        });
        let aws = to_aws(&d);
        assert_eq!(aws.metric_name(), Some("feature_non_null_f1"));
        assert_eq!(aws.dimensions().len(), 2);
        assert_eq!(aws.statistic_values().and_then(|s| s.sum()), Some(6.0));
        assert_eq!(aws.value(), None);
        assert_eq!(aws.unit(), Some(&StandardUnit::None));
    }
}
