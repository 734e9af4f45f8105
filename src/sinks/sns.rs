//! The alert a rule's `alert` action publishes: a JSON body (documented in the README, "AWS
//! mode") with the rule's verdict and the window's findings, and one readable subject line.
//! Sending it is [`super::actions`]'s job.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::{Outcome, WindowReport};
use crate::analyze::CheckType;
use crate::baseline::Constraints;
use crate::bias::drift::BiasViolations;
use crate::bias::{ANALYSIS_FILE, Analysis};
use crate::rules::{Action, AlertKind, Evidence, Severity};

/// SNS limits a subject to 100 printable ASCII characters.
const MAX_SUBJECT: usize = 100;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Alert {
    /// Version of this body's shape.
    pub version: u32,
    /// The rule that fired, and whether this is the first alert of the episode, a reminder, or
    /// the all-clear.
    pub rule: String,
    pub kind: AlertKind,
    /// The same for every alert of one rule, monitor and endpoint: receivers fold firing,
    /// reminders and resolved into one incident by it.
    pub dedup_key: String,
    pub severity: Severity,
    pub monitor: String,
    pub endpoint: Option<String>,
    pub window: AlertWindow,
    pub rows: u64,
    /// What made the rule's condition hold in this window (empty when resolved).
    pub evidence: Evidence,
    /// Every violation of the window, whether or not the rule looks at it.
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
    /// Multivariate drift only: `multivariate_drift.json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multivariate_drift: Option<String>,
    /// Model quality with `[monitor.estimate]`: `estimated_performance.json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_performance: Option<String>,
}

/// What an alert or trigger says about the window it was decided on.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowContext {
    pub monitor: String,
    pub endpoint: Option<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub rows: u64,
    pub findings: Vec<AlertFinding>,
    pub report: Option<ReportLinks>,
}

impl WindowContext {
    /// A closed window, with links to its files when reports go to S3.
    pub fn of(report: &WindowReport, report_dir_uri: Option<&str>) -> Self {
        Self {
            monitor: report.monitor.clone(),
            endpoint: report.endpoint.clone(),
            start: report.start,
            end: report.end,
            rows: report.rows,
            findings: findings(report),
            report: report_dir_uri.map(|dir| report_links(report, dir)),
        }
    }

    /// A window in which nothing arrived.
    pub fn silent(monitor: &str, endpoint: Option<&str>, start: i64, end: i64) -> Self {
        let time = |t| DateTime::<Utc>::from_timestamp(t, 0).unwrap_or_default();
        Self {
            monitor: monitor.to_string(),
            endpoint: endpoint.map(str::to_string),
            start: time(start),
            end: time(end),
            rows: 0,
            findings: Vec::new(),
            report: None,
        }
    }
}

/// The alert body for a rule's alert action; `None` for other actions.
pub fn alert(action: &Action, window: &WindowContext) -> Option<Alert> {
    let Action::Alert {
        rule,
        severity,
        kind,
        dedup_key,
        evidence,
        ..
    } = action
    else {
        return None;
    };
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    Some(Alert {
        version: 2,
        rule: rule.clone(),
        kind: *kind,
        dedup_key: dedup_key.clone(),
        severity: *severity,
        monitor: window.monitor.clone(),
        endpoint: window.endpoint.clone(),
        window: AlertWindow {
            start: time(window.start),
            end: time(window.end),
        },
        rows: window.rows,
        evidence: evidence.clone(),
        findings: window.findings.clone(),
        report: window.report.clone(),
    })
}

/// The window's files under its S3 report directory.
fn report_links(report: &WindowReport, dir: &str) -> ReportLinks {
    let bias = matches!(
        report.outcome,
        Outcome::Bias { .. } | Outcome::FeatureAttribution { .. }
    );
    let data_quality = matches!(report.outcome, Outcome::DataQuality { .. });
    let multivariate = matches!(report.outcome, Outcome::MultivariateDrift { .. });
    let estimated = matches!(
        report.outcome,
        Outcome::ModelQuality {
            estimate: Some(_),
            ..
        }
    );
    ReportLinks {
        directory: dir.to_string(),
        constraint_violations: format!("{dir}{}", super::file::VIOLATIONS_FILE),
        statistics: (!bias && !multivariate)
            .then(|| format!("{dir}{}", crate::baseline::STATISTICS_FILE)),
        drift: data_quality.then(|| format!("{dir}{}", super::file::DRIFT_FILE)),
        analysis: bias.then(|| format!("{dir}{ANALYSIS_FILE}")),
        multivariate_drift: multivariate
            .then(|| format!("{dir}{}", crate::multivariate_run::RESULT_FILE)),
        estimated_performance: estimated
            .then(|| format!("{dir}{}", crate::estimate::ESTIMATED_PERFORMANCE_FILE)),
    }
}

/// Every violation of the window as alert findings.
fn findings(report: &WindowReport) -> Vec<AlertFinding> {
    match &report.outcome {
        Outcome::DataQuality {
            constraints,
            findings,
        } => data_quality_findings(constraints, findings),
        Outcome::Bias {
            analysis,
            violations,
            ..
        } => bias_findings(analysis, violations),
        Outcome::ModelQuality {
            statistics,
            violations,
            estimate,
            ..
        } => {
            let mut findings: Vec<AlertFinding> = (violations.violations.iter())
                .map(|v| AlertFinding {
                    feature: v.metric_name.clone(),
                    facet_value: None,
                    check: v.constraint_check_type.clone(),
                    statistic: Some(v.metric_name.clone()),
                    value: statistics.metric(&v.metric_name).map(|m| m.value),
                    // The baseline's threshold is in the description.
                    threshold: None,
                    description: v.description.clone(),
                })
                .collect();
            findings.extend(estimate.iter().flat_map(|e| e.alerts()).map(|(name, m)| {
                let outside = if m.value < m.lower_threshold {
                    ("below", m.lower_threshold)
                } else {
                    ("above", m.upper_threshold)
                };
                AlertFinding {
                    feature: name.to_string(),
                    facet_value: None,
                    check: "estimated_performance".into(),
                    statistic: Some(format!("estimated_{name}")),
                    value: Some(m.value),
                    threshold: Some(outside.1),
                    description: format!(
                        "estimated {name} {:.4} (±{:.4}) is {} the threshold {:.4} learned on the reference; estimated from the scores before the labels came (CBPE)",
                        m.value,
                        3.0 * m.sampling_error,
                        outside.0,
                        outside.1
                    ),
                }
            }));
            findings
        }
        Outcome::FeatureAttribution {
            drift, violations, ..
        } => violations
            .violations
            .iter()
            .map(|v| AlertFinding {
                feature: v.label.clone(),
                facet_value: None,
                check: v.constraint_check_type.clone(),
                statistic: Some("ndcg".into()),
                value: drift
                    .iter()
                    .find(|d| d.label == v.label)
                    .and_then(|d| d.ndcg),
                threshold: None,
                description: v.description.clone(),
            })
            .collect(),
        Outcome::MultivariateDrift {
            result, violations, ..
        } => multivariate_findings(result, violations),
    }
}

/// A multivariate-drift window's alert: the reconstruction error and the threshold it crossed
/// (the upper one, or the lower one when the error fell below it).
fn multivariate_findings(
    result: &crate::multivariate::ChunkResult,
    violations: &crate::multivariate::monitor::MultivariateViolations,
) -> Vec<AlertFinding> {
    let error = result.reconstruction_error;
    let below = error
        .zip(result.lower_threshold)
        .is_some_and(|(e, l)| e <= l);
    violations
        .violations
        .iter()
        .map(|v| AlertFinding {
            feature: v.feature_name.clone(),
            facet_value: None,
            check: v.constraint_check_type.clone(),
            statistic: Some(v.metric_name.clone()),
            value: error,
            threshold: if below {
                result.lower_threshold
            } else {
                result.upper_threshold
            },
            description: v.description.clone(),
        })
        .collect()
}

/// The findings of a data-quality window.
fn data_quality_findings(
    constraints: &Constraints,
    findings: &crate::analyze::Findings,
) -> Vec<AlertFinding> {
    findings
        .violations
        .violations
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
        .collect()
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

/// `driftd firing (critical) drift-rule: churn-dq on churn-ep, 3 violations, window
/// 2026-11-01T01:00:00Z`, in printable ASCII. Within SNS's limit by shortening the longest of
/// the names (rule, monitor, endpoint), never the verdict or the window's time.
pub fn subject(alert: &Alert) -> String {
    let ascii = |text: &str| -> String {
        text.chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect()
    };
    let n = alert.findings.len();
    let compose = |names: &[String; 3]| {
        let [rule, monitor, endpoint] = names;
        let on = if endpoint.is_empty() {
            String::new()
        } else {
            format!(" on {endpoint}")
        };
        format!(
            "driftd {} ({}) {rule}: {monitor}{on}, {n} violation{}, window {}",
            name(&alert.kind),
            name(&alert.severity),
            if n == 1 { "" } else { "s" },
            alert.window.start,
        )
    };
    // A character at a time off the longest name, so that they share the cut.
    const ELLIPSIS: &str = "...";
    let mut names = [
        ascii(&alert.rule),
        ascii(&alert.monitor),
        ascii(alert.endpoint.as_deref().unwrap_or_default()),
    ];
    let mut cut = [false; 3];
    loop {
        let shown = [0, 1, 2].map(|i| {
            if cut[i] {
                format!("{}{ELLIPSIS}", names[i])
            } else {
                names[i].clone()
            }
        });
        let text = compose(&shown);
        let longest = (0..3).max_by_key(|&i| shown[i].len()).expect("three names");
        if text.len() <= MAX_SUBJECT || names[longest].len() <= 1 {
            // ASCII: one byte a character.
            return text[..text.len().min(MAX_SUBJECT)].to_string();
        }
        names[longest].pop();
        cut[longest] = true;
    }
}

/// A unit enum's serde name (`firing`, `critical`).
pub fn name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(monitor: &str, endpoint: Option<&str>, findings: usize) -> Alert {
        Alert {
            version: 2,
            rule: "drift".into(),
            kind: AlertKind::Firing,
            dedup_key: format!("drift/{monitor}/{}", endpoint.unwrap_or("-")),
            severity: Severity::Critical,
            monitor: monitor.into(),
            endpoint: endpoint.map(str::to_string),
            window: AlertWindow {
                start: "2026-11-01T01:00:00Z".into(),
                end: "2026-11-01T02:00:00Z".into(),
            },
            rows: 10,
            evidence: Evidence {
                window_start: 0,
                window_end: 3600,
                matches: Vec::new(),
            },
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
            "driftd firing (critical) drift: churn-dq on churn-ep, 2 violations, window 2026-11-01T01:00:00Z"
        );
        assert_eq!(
            subject(&alert("batch-dq", None, 1)),
            "driftd firing (critical) drift: batch-dq, 1 violation, window 2026-11-01T01:00:00Z"
        );
        let long = subject(&alert(&format!("mönitor-{}", "x".repeat(200)), None, 1));
        assert_eq!(long.chars().count(), MAX_SUBJECT);
        assert!(
            long.starts_with("driftd firing (critical) drift: m?nitor-xxx")
                && long.ends_with("xxx..., 1 violation, window 2026-11-01T01:00:00Z"),
            "the names are cut, not the window: {long}"
        );
        let both = subject(&alert(&"m".repeat(60), Some(&"e".repeat(60)), 1));
        assert_eq!(both.len(), MAX_SUBJECT);
        assert!(both.ends_with("window 2026-11-01T01:00:00Z"), "{both}");
    }

    #[test]
    fn the_body_has_the_documented_fields() {
        let body = serde_json::to_value(alert("m", Some("e"), 1)).unwrap();
        for key in [
            "version",
            "rule",
            "kind",
            "dedup_key",
            "severity",
            "monitor",
            "endpoint",
            "window",
            "rows",
            "evidence",
            "findings",
            "report",
        ] {
            assert!(body.get(key).is_some(), "{key}");
        }
        assert_eq!(body["kind"], "firing");
        assert_eq!(body["severity"], "critical");
        assert_eq!(body["dedup_key"], "drift/m/e");
        let finding = &body["findings"][0];
        assert_eq!(finding["check"], "baseline_drift_check");
        assert_eq!(finding["statistic"], "linf_robust");
        assert_eq!(finding["threshold"], 0.1);
    }
}
