//! Alerts on SNS: one message per window with violations. The body is JSON (documented in the
//! README, "AWS mode"); the subject is one readable line; `severity`, `monitor` and `endpoint`
//! are String message attributes, so subscribers can filter with a filter policy.

use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;
use chrono::SecondsFormat;
use serde::Serialize;

use super::retry::with_retries;
use super::{Outcome, WindowReport};
use crate::analyze::CheckType;
use crate::aws::attempt;
use crate::baseline::Constraints;
use crate::bias::drift::BiasViolations;
use crate::bias::{ANALYSIS_FILE, Analysis};

/// SNS limits a subject to 100 printable ASCII characters.
const MAX_SUBJECT: usize = 100;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Alert {
    /// Version of this body's shape.
    pub version: u32,
    pub monitor: String,
    pub endpoint: Option<String>,
    pub window: AlertWindow,
    /// `critical` when a feature drifted, a column is missing or a bias metric drifted, else
    /// `warning`.
    pub severity: &'static str,
    pub rows: u64,
    pub findings: Vec<AlertFinding>,
    /// Where the window's files are, when reports go to S3.
    pub report: Option<ReportLinks>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AlertWindow {
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AlertFinding {
    /// For bias: the facet.
    pub feature: String,
    /// Bias: the facet's value or threshold the metric is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facet_value: Option<String>,
    /// The `constraint_check_type` (Model Monitor's; `bias_drift_check` for bias).
    pub check: String,
    /// The statistic compared, its value in this window and the threshold it crossed, where
    /// the check has one number (drift distance, completeness; for bias the metric and its value,
    /// the baseline's value being in the description).
    pub statistic: Option<String>,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub description: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReportLinks {
    pub directory: String,
    pub constraint_violations: String,
    /// Data quality only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statistics: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<String>,
    /// Bias only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis: Option<String>,
}

/// The alert for a window, or `None` when it has no violation.
pub fn alert(report: &WindowReport, report_dir_uri: Option<&str>) -> Option<Alert> {
    let (findings, critical) = match &report.outcome {
        Outcome::DataQuality {
            constraints,
            findings,
        } => data_quality_findings(constraints, findings),
        Outcome::Bias {
            analysis,
            violations,
        } => (bias_findings(analysis, violations), true),
    };
    if findings.is_empty() {
        return None;
    }
    let bias = matches!(report.outcome, Outcome::Bias { .. });
    let time = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    Some(Alert {
        version: 1,
        monitor: report.monitor.clone(),
        endpoint: report.endpoint.clone(),
        window: AlertWindow {
            start: time(report.start),
            end: time(report.end),
        },
        severity: if critical { "critical" } else { "warning" },
        rows: report.rows,
        findings,
        report: report_dir_uri.map(|dir| ReportLinks {
            directory: dir.to_string(),
            constraint_violations: format!("{dir}{}", super::file::VIOLATIONS_FILE),
            statistics: (!bias).then(|| format!("{dir}{}", crate::baseline::STATISTICS_FILE)),
            drift: (!bias).then(|| format!("{dir}{}", super::file::DRIFT_FILE)),
            analysis: bias.then(|| format!("{dir}{ANALYSIS_FILE}")),
        }),
    })
}

/// The findings of a data-quality window, and whether any is critical.
fn data_quality_findings(
    constraints: &Constraints,
    findings: &crate::analyze::Findings,
) -> (Vec<AlertFinding>, bool) {
    let violations = &findings.violations.violations;
    let alert_findings = violations
        .iter()
        .map(|v| {
            let (statistic, value, threshold) = measure(
                constraints,
                findings,
                &v.feature_name,
                v.constraint_check_type,
            );
            AlertFinding {
                feature: v.feature_name.clone(),
                facet_value: None,
                check: serde_json::to_value(v.constraint_check_type)
                    .ok()
                    .and_then(|c| c.as_str().map(str::to_string))
                    .unwrap_or_default(),
                statistic,
                value,
                threshold,
                description: v.description.clone(),
            }
        })
        .collect();
    let critical = violations.iter().any(|v| {
        matches!(
            v.constraint_check_type,
            CheckType::BaselineDriftCheck | CheckType::MissingColumnCheck
        )
    });
    (alert_findings, critical)
}

/// A bias window's violations with the metric's value now and in the baseline.
fn bias_findings(analysis: &Analysis, violations: &BiasViolations) -> Vec<AlertFinding> {
    violations
        .violations
        .iter()
        .map(|v| AlertFinding {
            feature: v.facet.clone(),
            facet_value: Some(v.facet_value.clone()),
            check: v.constraint_check_type.clone(),
            statistic: Some(v.metric_name.clone()),
            value: analysis.value(&v.facet, &v.facet_value, &v.metric_name),
            threshold: None,
            description: v.description.clone(),
        })
        .collect()
}

fn measure(
    constraints: &Constraints,
    findings: &crate::analyze::Findings,
    feature: &str,
    check: CheckType,
) -> (Option<String>, Option<f64>, Option<f64>) {
    match check {
        CheckType::BaselineDriftCheck => match findings.drift.feature(feature) {
            Some(d) => (
                Some(d.method.to_string()),
                Some(d.distance),
                Some(d.threshold),
            ),
            None => (None, None, None),
        },
        CheckType::CompletenessCheck => {
            let value = findings
                .statistics
                .features
                .iter()
                .find(|f| f.name == feature)
                .and_then(|f| f.common())
                .map(|c| {
                    let total = c.num_present + c.num_missing;
                    if total == 0 {
                        0.0
                    } else {
                        c.num_present as f64 / total as f64
                    }
                });
            let threshold = constraints
                .features
                .iter()
                .find(|f| f.name == feature)
                .and_then(|f| f.completeness);
            (Some("completeness".into()), value, threshold)
        }
        _ => (None, None, None),
    }
}

/// `driftd critical: churn-dq on churn-ep, 3 violations, window 2026-11-01T01:00Z`, cut to
/// SNS's limit and to printable ASCII.
pub fn subject(alert: &Alert) -> String {
    let on = alert
        .endpoint
        .as_deref()
        .map(|e| format!(" on {e}"))
        .unwrap_or_default();
    let n = alert.findings.len();
    let text = format!(
        "driftd {}: {}{on}, {n} violation{}, window {}",
        alert.severity,
        alert.monitor,
        if n == 1 { "" } else { "s" },
        alert.window.start,
    );
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(MAX_SUBJECT)
        .collect()
}

pub struct SnsSink {
    client: Client,
    topic_arn: String,
    max_attempts: u32,
}

impl SnsSink {
    pub fn new(client: Client, topic_arn: String, max_attempts: u32) -> Self {
        Self {
            client,
            topic_arn,
            max_attempts,
        }
    }

    pub async fn publish(&self, alert: &Alert) -> Result<(), String> {
        let body = serde_json::to_string(alert).expect("an alert serializes");
        let subject = subject(alert);
        // String attributes only: a Binary attribute breaks raw delivery to SQS (FORMATS.md).
        let mut attributes = vec![
            ("severity", alert.severity.to_string()),
            ("monitor", alert.monitor.clone()),
        ];
        if let Some(endpoint) = &alert.endpoint {
            attributes.push(("endpoint", endpoint.clone()));
        }
        with_retries("SNS Publish", self.max_attempts, || async {
            let mut request = self
                .client
                .publish()
                .topic_arn(&self.topic_arn)
                .subject(&subject)
                .message(&body);
            for (name, value) in &attributes {
                request = request.message_attributes(
                    *name,
                    MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(value)
                        .build()
                        .expect("data type is set"),
                );
            }
            request.send().await.map(|_| ()).map_err(attempt)
        })
        .await
        .map_err(|e| format!("{e} (topic {})", self.topic_arn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(monitor: &str, endpoint: Option<&str>, findings: usize) -> Alert {
        Alert {
            version: 1,
            monitor: monitor.into(),
            endpoint: endpoint.map(str::to_string),
            window: AlertWindow {
                start: "2026-11-01T01:00:00Z".into(),
                end: "2026-11-01T02:00:00Z".into(),
            },
            severity: "critical",
            rows: 10,
            findings: (0..findings)
                .map(|i| AlertFinding {
                    feature: format!("f{i}"),
                    facet_value: None,
                    check: "baseline_drift_check".into(),
                    statistic: Some("linf_robust".into()),
                    value: Some(0.4),
                    threshold: Some(0.1),
                    description: String::new(),
                })
                .collect(),
            report: None,
        }
    }

    #[test]
    fn the_subject_is_one_readable_line_within_snss_limit() {
        assert_eq!(
            subject(&alert("churn-dq", Some("churn-ep"), 2)),
            "driftd critical: churn-dq on churn-ep, 2 violations, window 2026-11-01T01:00:00Z"
        );
        assert_eq!(
            subject(&alert("batch-dq", None, 1)),
            "driftd critical: batch-dq, 1 violation, window 2026-11-01T01:00:00Z"
        );
        let long = subject(&alert(&format!("mönitor-{}", "x".repeat(200)), None, 1));
        assert_eq!(long.chars().count(), MAX_SUBJECT);
        assert!(long.starts_with("driftd critical: m?nitor-xxx"));
    }

    #[test]
    fn the_body_has_the_documented_fields() {
        let body = serde_json::to_value(alert("m", Some("e"), 1)).unwrap();
        for key in [
            "version", "monitor", "endpoint", "window", "severity", "rows", "findings", "report",
        ] {
            assert!(body.get(key).is_some(), "{key}");
        }
        let finding = &body["findings"][0];
        assert_eq!(finding["check"], "baseline_drift_check");
        assert_eq!(finding["statistic"], "linf_robust");
        assert_eq!(finding["threshold"], 0.1);
    }
}
