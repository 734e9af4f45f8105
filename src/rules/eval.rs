//! Rules over a stream of closed windows → actions. Pure: time is window time (seconds since the
//! epoch of the windows' ends), so a replay gives the same actions.
//!
//! Per rule and series (monitor, endpoint) the state keeps whether the condition held in the
//! last `persistence.windows` windows. A series *fires* in a window where the condition holds and
//! holds in at least `persistence.at_least` of the last `persistence.windows` windows; that
//! starts an episode and sends one `Firing` alert. While the episode lasts, a window where the
//! condition holds sends a `Reminder` once `alert.remind_after` has passed since the last alert.
//! `resolve_after` consecutive windows without the condition end the episode with a `Resolved`
//! alert; for `alert.cooldown` after that, the series does not fire again. A retrain trigger goes
//! out once per episode (its idempotency key names the episode's first window), in a window of
//! the episode where the condition holds and `retrain.cooldown` has passed since the last one.
//!
//! Missing data: windows of a series that never arrive between two that do count as windows
//! without records (each as long as the window that arrives after the gap), for every rule, so
//! `no_data` holds in them and every other condition does not. Only the last
//! `persistence.windows + resolve_after` windows of a gap are replayed, so a long gap gives one
//! episode (firing late in the gap), not one alert per missing window. Silence after the last window is not seen here: the caller feeds
//! [`WindowFacts::empty`] for windows its clock closes without data.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::file::{Condition, DriftStatistic, Rule, RuleSet, Severity, glob_match};
use crate::analyze::drift::FeatureDrift;
use crate::analyze::{CheckType, Findings};
use crate::attribution::{AttributionViolations, LabelDrift};
use crate::bias::Analysis;
use crate::bias::drift::BiasViolations;
use crate::estimate::EstimatedPerformance;
use crate::model_quality::{ModelQualityStatistics, ModelQualityViolations};

/// What the rules see of one closed window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowFacts {
    pub monitor: String,
    pub endpoint: Option<String>,
    pub start: i64,
    pub end: i64,
    pub rows: u64,
    pub violations: Vec<ViolationFact>,
    pub drift: Vec<DriftFact>,
    pub drifted_features: usize,
    pub bias: Vec<BiasFact>,
    /// Model-quality metrics (`statistics.json` keys, and `estimated_<metric>` with
    /// `[monitor.estimate]`) with a finite value.
    pub model_quality: Vec<(String, f64)>,
    /// The estimated metrics (CBPE's names) outside their reference thresholds, with their
    /// estimates.
    pub estimated_alerts: Vec<(String, f64)>,
    /// Feature attribution: each baseline label's NDCG, where the window has one.
    pub attribution_ndcg: Vec<(String, f64)>,
    /// Multivariate drift: the window's reconstruction error, when it has rows.
    pub multivariate: Option<MultivariateFact>,
    /// Rows of the series counted late (they arrived after their window closed) since the
    /// rules' previous window.
    pub late_rows: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ViolationFact {
    /// The feature, or for bias violations the facet.
    pub feature: String,
    pub check_type: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DriftFact {
    pub feature: String,
    pub statistic: DriftStatistic,
    pub value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MultivariateFact {
    pub reconstruction_error: f64,
    /// Outside the baseline's thresholds.
    pub alert: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BiasFact {
    pub facet: String,
    pub facet_value: String,
    pub metric: String,
    pub value: f64,
}

impl WindowFacts {
    /// A window without records.
    pub fn empty(monitor: &str, endpoint: Option<&str>, start: i64, end: i64) -> Self {
        WindowFacts {
            monitor: monitor.to_string(),
            endpoint: endpoint.map(str::to_string),
            start,
            end,
            ..WindowFacts::default()
        }
    }

    pub fn from_findings(
        monitor: &str,
        endpoint: Option<&str>,
        start: i64,
        end: i64,
        findings: &Findings,
    ) -> Self {
        WindowFacts {
            rows: findings.statistics.dataset.item_count,
            violations: findings
                .violations
                .violations
                .iter()
                .map(|v| ViolationFact {
                    feature: v.feature_name.clone(),
                    check_type: check_type_name(v.constraint_check_type).to_string(),
                })
                .collect(),
            drift: findings
                .drift
                .features
                .iter()
                .flat_map(drift_facts)
                .collect(),
            drifted_features: findings.drift.features_drifted,
            ..WindowFacts::empty(monitor, endpoint, start, end)
        }
    }

    /// A bias monitor's window: the metrics that have a value, and the bias drift violations.
    pub fn from_bias(
        monitor: &str,
        endpoint: Option<&str>,
        start: i64,
        end: i64,
        rows: u64,
        analysis: &Analysis,
        violations: &BiasViolations,
    ) -> Self {
        let stages = [
            &analysis.pre_training_bias_metrics,
            &analysis.post_training_bias_metrics,
        ];
        let bias = stages
            .into_iter()
            .flatten()
            .flat_map(|stage| &stage.facets)
            .flat_map(|(facet, values)| values.iter().map(move |v| (facet, v)))
            .flat_map(|(facet, v)| {
                v.metrics.iter().filter_map(move |m| {
                    Some(BiasFact {
                        facet: facet.clone(),
                        facet_value: v.value_or_threshold.clone(),
                        metric: m.name.clone(),
                        value: m.value?,
                    })
                })
            })
            .collect();
        WindowFacts {
            rows,
            violations: violations
                .violations
                .iter()
                .map(|v| ViolationFact {
                    feature: v.facet.clone(),
                    check_type: v.constraint_check_type.clone(),
                })
                .collect(),
            bias,
            ..WindowFacts::empty(monitor, endpoint, start, end)
        }
    }
}

impl WindowFacts {
    /// A model-quality window: its metrics and its violations (the metric stands for the
    /// feature, the comparison operator for the check type).
    pub fn from_model_quality(
        monitor: &str,
        endpoint: Option<&str>,
        (start, end): (i64, i64),
        rows: u64,
        statistics: &ModelQualityStatistics,
        violations: &ModelQualityViolations,
        estimate: Option<&EstimatedPerformance>,
    ) -> Self {
        let mut model_quality = statistics.cloudwatch_metrics();
        let mut estimated_alerts = Vec::new();
        if let Some(estimate) = estimate {
            model_quality.extend(estimate.metric_values());
            estimated_alerts = (estimate.alerts().into_iter())
                .map(|(name, m)| (name.to_string(), m.value))
                .collect();
        }
        WindowFacts {
            rows,
            violations: violations
                .violations
                .iter()
                .map(|v| ViolationFact {
                    feature: v.metric_name.clone(),
                    check_type: v.constraint_check_type.clone(),
                })
                .collect(),
            model_quality,
            estimated_alerts,
            ..WindowFacts::empty(monitor, endpoint, start, end)
        }
    }
}

impl WindowFacts {
    /// A feature-attribution window: NDCG per label, and the violations (the label stands for
    /// the feature).
    pub fn from_attribution(
        monitor: &str,
        endpoint: Option<&str>,
        (start, end): (i64, i64),
        rows: u64,
        drift: &[LabelDrift],
        violations: &AttributionViolations,
    ) -> Self {
        WindowFacts {
            rows,
            violations: violations
                .violations
                .iter()
                .map(|v| ViolationFact {
                    feature: v.label.clone(),
                    check_type: v.constraint_check_type.clone(),
                })
                .collect(),
            attribution_ndcg: drift
                .iter()
                .filter_map(|d| d.ndcg.map(|n| (d.label.clone(), n)))
                .collect(),
            ..WindowFacts::empty(monitor, endpoint, start, end)
        }
    }
}

impl WindowFacts {
    /// A multivariate-drift window: its error and alert, and its violation (named by the
    /// feature with the largest share of the error).
    pub fn from_multivariate(
        monitor: &str,
        endpoint: Option<&str>,
        (start, end): (i64, i64),
        rows: u64,
        result: &crate::multivariate::ChunkResult,
        violations: &crate::multivariate::monitor::MultivariateViolations,
    ) -> Self {
        WindowFacts {
            rows,
            violations: violations
                .violations
                .iter()
                .map(|v| ViolationFact {
                    feature: v.feature_name.clone(),
                    check_type: v.constraint_check_type.clone(),
                })
                .collect(),
            multivariate: result.reconstruction_error.map(|error| MultivariateFact {
                reconstruction_error: error,
                alert: result.alert,
            }),
            ..WindowFacts::empty(monitor, endpoint, start, end)
        }
    }
}

/// The name `constraint_violations.json` uses (rule files validate against the same names).
fn check_type_name(check: CheckType) -> &'static str {
    match check {
        CheckType::DataTypeCheck => "data_type_check",
        CheckType::CompletenessCheck => "completeness_check",
        CheckType::BaselineDriftCheck => "baseline_drift_check",
        CheckType::MissingColumnCheck => "missing_column_check",
        CheckType::ExtraColumnCheck => "extra_column_check",
        CheckType::CategoricalValuesCheck => "categorical_values_check",
        CheckType::IsNonNegativeCheck => "is_non_negative_check",
    }
}

fn drift_facts(f: &FeatureDrift) -> impl Iterator<Item = DriftFact> + '_ {
    [
        (DriftStatistic::Distance, Some(f.distance)),
        (DriftStatistic::LinfSimple, Some(f.linf_simple)),
        (DriftStatistic::LinfRobust, Some(f.linf_robust)),
        (DriftStatistic::Ks, f.ks),
        (DriftStatistic::Psi, Some(f.psi)),
        (DriftStatistic::Js, Some(f.js)),
        (DriftStatistic::WassersteinNormed, f.wasserstein_normed),
        (DriftStatistic::Chi2Statistic, f.chi2_statistic),
    ]
    .into_iter()
    .filter_map(|(statistic, value)| {
        Some(DriftFact {
            feature: f.name.clone(),
            statistic,
            value: value?,
        })
    })
}

/// One thing in a window that made the condition hold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Match {
    /// The feature, or `facet=value` for bias metrics; none for whole-window conditions.
    pub subject: Option<String>,
    /// The check type, statistic or metric.
    pub what: String,
    pub value: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub window_start: i64,
    pub window_end: i64,
    pub matches: Vec<Match>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    Firing,
    Reminder,
    Resolved,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Alert {
        rule: String,
        monitor: String,
        endpoint: Option<String>,
        severity: Severity,
        kind: AlertKind,
        /// The same for every alert of a rule and series, so a receiver folds firing, reminders
        /// and resolved into one incident.
        dedup_key: String,
        evidence: Evidence,
    },
    Retrain {
        rule: String,
        monitor: String,
        endpoint: Option<String>,
        /// One per episode: safe to retry the trigger with it.
        idempotency_key: String,
        /// From the first window the firing condition looked at to the current window's end.
        from: i64,
        to: i64,
        evidence: Evidence,
    },
}

fn matches(condition: &Condition, facts: &WindowFacts) -> Vec<Match> {
    let any = |globs: &[String], name: &str| globs.iter().any(|g| glob_match(g, name));
    match condition {
        Condition::Violation {
            check_types,
            features,
        } => facts
            .violations
            .iter()
            .filter(|v| check_types.is_empty() || check_types.contains(&v.check_type))
            .filter(|v| any(features, &v.feature))
            .map(|v| Match {
                subject: Some(v.feature.clone()),
                what: v.check_type.clone(),
                value: None,
            })
            .collect(),
        Condition::Drift {
            features,
            statistic,
            above,
        } => facts
            .drift
            .iter()
            .filter(|d| d.statistic == *statistic && d.value > *above && any(features, &d.feature))
            .map(|d| Match {
                subject: Some(d.feature.clone()),
                what: statistic_name(d.statistic),
                value: Some(d.value),
            })
            .collect(),
        Condition::Bias {
            metrics,
            facets,
            above,
            below,
        } => facts
            .bias
            .iter()
            .filter(|b| metrics.contains(&b.metric) && any(facets, &b.facet))
            .filter(|b| above.is_some_and(|a| b.value > a) || below.is_some_and(|l| b.value < l))
            .map(|b| Match {
                subject: Some(format!("{}={}", b.facet, b.facet_value)),
                what: b.metric.clone(),
                value: Some(b.value),
            })
            .collect(),
        Condition::ModelQuality {
            metrics,
            above,
            below,
        } => facts
            .model_quality
            .iter()
            .filter(|(name, _)| metrics.contains(name))
            .filter(|(_, v)| above.is_some_and(|a| *v > a) || below.is_some_and(|l| *v < l))
            .map(|(name, value)| Match {
                subject: None,
                what: name.clone(),
                value: Some(*value),
            })
            .collect(),
        Condition::DriftedFeatures { at_least } => (facts.drifted_features >= *at_least)
            .then(|| Match {
                subject: None,
                what: "drifted_features".into(),
                value: Some(facts.drifted_features as f64),
            })
            .into_iter()
            .collect(),
        Condition::LateRows { at_least } => (facts.late_rows >= *at_least)
            .then(|| Match {
                subject: None,
                what: "late_rows".into(),
                value: Some(facts.late_rows as f64),
            })
            .into_iter()
            .collect(),
        Condition::EstimatedPerformance { metrics } => facts
            .estimated_alerts
            .iter()
            .filter(|(name, _)| any(metrics, name))
            .map(|(name, value)| Match {
                subject: None,
                what: format!("estimated_{name}"),
                value: Some(*value),
            })
            .collect(),
        Condition::FeatureAttribution { labels, below } => facts
            .attribution_ndcg
            .iter()
            .filter(|(label, ndcg)| *ndcg < *below && any(labels, label))
            .map(|(label, ndcg)| Match {
                subject: Some(label.clone()),
                what: "ndcg".into(),
                value: Some(*ndcg),
            })
            .collect(),
        Condition::MultivariateDrift { above } => (facts.multivariate)
            .filter(|m| match above {
                Some(above) => m.reconstruction_error > *above,
                None => m.alert,
            })
            .map(|m| Match {
                subject: None,
                what: "reconstruction_error".into(),
                value: Some(m.reconstruction_error),
            })
            .into_iter()
            .collect(),
        Condition::NoData {} => (facts.rows == 0)
            .then(|| Match {
                subject: None,
                what: "rows".into(),
                value: Some(0.0),
            })
            .into_iter()
            .collect(),
    }
}

fn statistic_name(s: DriftStatistic) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Every rule's state per series; serializable so it survives restarts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(into = "Vec<SeriesEntry>", from = "Vec<SeriesEntry>")]
pub struct RulesState {
    series: BTreeMap<SeriesKey, Series>,
}

impl RulesState {
    /// Forgets the state of rules no longer in `rules` (removed or renamed), so a rule added
    /// later under an old name starts clean; returns how many series were dropped.
    pub fn retain_rules(&mut self, rules: &RuleSet) -> usize {
        let before = self.series.len();
        self.series
            .retain(|key, _| rules.rules.iter().any(|r| r.name == key.rule));
        before - self.series.len()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct SeriesKey {
    rule: String,
    monitor: String,
    endpoint: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct SeriesEntry {
    #[serde(flatten)]
    key: SeriesKey,
    #[serde(flatten)]
    state: Series,
}

impl From<RulesState> for Vec<SeriesEntry> {
    fn from(state: RulesState) -> Self {
        state
            .series
            .into_iter()
            .map(|(key, state)| SeriesEntry { key, state })
            .collect()
    }
}

impl From<Vec<SeriesEntry>> for RulesState {
    fn from(entries: Vec<SeriesEntry>) -> Self {
        RulesState {
            series: entries.into_iter().map(|e| (e.key, e.state)).collect(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Series {
    /// The last windows, oldest first: (start, condition held).
    history: VecDeque<(i64, bool)>,
    last_end: Option<i64>,
    false_streak: u32,
    episode: Option<Episode>,
    resolved_at: Option<i64>,
    last_retrain: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Episode {
    /// Start of the window that fired.
    fired_start: i64,
    /// Start of the oldest window the persistence test looked at when it fired.
    from: i64,
    last_alert: i64,
    retrained: bool,
}

/// Applies every rule that covers the window's monitor and endpoint; the actions in rule order.
pub fn evaluate(rules: &RuleSet, state: &mut RulesState, facts: &WindowFacts) -> Vec<Action> {
    let mut actions = Vec::new();
    for rule in &rules.rules {
        if !rule.covers(&facts.monitor, facts.endpoint.as_deref()) {
            continue;
        }
        let key = SeriesKey {
            rule: rule.name.clone(),
            monitor: facts.monitor.clone(),
            endpoint: facts.endpoint.clone(),
        };
        let series = state.series.entry(key).or_default();
        let length = facts.end - facts.start;
        if let Some(last_end) = series.last_end
            && length > 0
            && facts.start > last_end
        {
            let missing = (facts.start - last_end) / length;
            let replay = missing.min(i64::from(rule.persistence.windows + rule.resolve_after));
            for i in (1..=replay).rev() {
                let start = facts.start - i * length;
                let empty = WindowFacts::empty(
                    &facts.monitor,
                    facts.endpoint.as_deref(),
                    start,
                    start + length,
                );
                step(rule, series, &empty, &mut actions);
            }
        }
        step(rule, series, facts, &mut actions);
    }
    actions
}

fn step(rule: &Rule, series: &mut Series, facts: &WindowFacts, actions: &mut Vec<Action>) {
    let found = matches(&rule.condition, facts);
    let holds = !found.is_empty();
    series.history.push_back((facts.start, holds));
    // A changed rule file may have shortened the history wanted.
    while series.history.len() > rule.persistence.windows as usize {
        series.history.pop_front();
    }
    series.last_end = Some(series.last_end.map_or(facts.end, |e| e.max(facts.end)));
    let persistent =
        series.history.iter().filter(|(_, h)| *h).count() >= rule.persistence.required() as usize;
    let now = facts.end;
    let evidence = Evidence {
        window_start: facts.start,
        window_end: facts.end,
        matches: found,
    };
    let endpoint = facts.endpoint.as_deref().unwrap_or("-");
    let alert = |kind: AlertKind| Action::Alert {
        rule: rule.name.clone(),
        monitor: facts.monitor.clone(),
        endpoint: facts.endpoint.clone(),
        severity: rule.severity,
        kind,
        dedup_key: format!("{}/{}/{endpoint}", rule.name, facts.monitor),
        evidence: evidence.clone(),
    };
    let elapsed = |since: i64, wait: std::time::Duration| now - since >= wait.as_secs() as i64;

    match &mut series.episode {
        Some(episode) if holds => {
            series.false_streak = 0;
            if let Some(remind) = rule.alert.as_ref().and_then(|a| a.remind_after)
                && elapsed(episode.last_alert, remind)
            {
                episode.last_alert = now;
                actions.push(alert(AlertKind::Reminder));
            }
        }
        Some(_) => {
            series.false_streak += 1;
            if series.false_streak >= rule.resolve_after {
                series.episode = None;
                series.resolved_at = Some(now);
                if rule.alert.is_some() {
                    actions.push(alert(AlertKind::Resolved));
                }
            }
        }
        None => {
            let cooling = match (&rule.alert, series.resolved_at) {
                (Some(a), Some(resolved)) => !elapsed(resolved, a.cooldown),
                _ => false,
            };
            if holds && persistent && !cooling {
                series.false_streak = 0;
                series.episode = Some(Episode {
                    fired_start: facts.start,
                    from: series.history.front().map_or(facts.start, |(s, _)| *s),
                    last_alert: now,
                    retrained: false,
                });
                if rule.alert.is_some() {
                    actions.push(alert(AlertKind::Firing));
                }
            }
        }
    }

    if let (Some(retrain), Some(episode)) = (&rule.retrain, &mut series.episode)
        && holds
        && !episode.retrained
        && series
            .last_retrain
            .is_none_or(|t| elapsed(t, retrain.cooldown))
    {
        episode.retrained = true;
        series.last_retrain = Some(now);
        actions.push(Action::Retrain {
            rule: rule.name.clone(),
            monitor: facts.monitor.clone(),
            endpoint: facts.endpoint.clone(),
            idempotency_key: format!(
                "{}/{}/{endpoint}/{}",
                rule.name,
                facts.monitor,
                rfc3339(episode.fired_start)
            ),
            from: episode.from,
            to: now,
            evidence,
        });
    }
}

fn rfc3339(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| seconds.to_string())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::analyze::drift::FeatureKind;
    use crate::analyze::{ConstraintViolations, DriftReport, Violation};
    use crate::baseline::statistics::Dataset;
    use crate::baseline::{Constraints, Statistics};

    const HOUR: i64 = 3600;

    fn rules(body: &str) -> RuleSet {
        let text = format!("[[rule]]\nname = \"r\"\nseverity = \"warning\"\n{body}");
        RuleSet::from_toml(Path::new("test.toml"), &text).unwrap()
    }

    /// Window `i` of monitor `m` on endpoint `e`: hour `i`, with 10 rows.
    fn window(i: i64) -> WindowFacts {
        WindowFacts {
            rows: 10,
            ..WindowFacts::empty("m", Some("e"), i * HOUR, (i + 1) * HOUR)
        }
    }

    fn violated(i: i64, feature: &str, check: &str) -> WindowFacts {
        WindowFacts {
            violations: vec![ViolationFact {
                feature: feature.into(),
                check_type: check.into(),
            }],
            ..window(i)
        }
    }

    /// Compact actions: `firing@3` (alert kind at the window's hour), `retrain <key> <from>-<to>`.
    fn summary(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::Alert { kind, evidence, .. } => {
                    format!("{kind:?}@{}", evidence.window_start / HOUR).to_lowercase()
                }
                Action::Retrain {
                    idempotency_key,
                    from,
                    to,
                    ..
                } => format!("retrain {idempotency_key} {}-{}", from / HOUR, to / HOUR),
            })
            .collect()
    }

    /// Runs windows through fresh state; every action, in order.
    fn run(rules: &RuleSet, windows: &[WindowFacts]) -> Vec<String> {
        let mut state = RulesState::default();
        let actions: Vec<Action> = windows
            .iter()
            .flat_map(|w| evaluate(rules, &mut state, w))
            .collect();
        summary(&actions)
    }

    /// Windows 0.. where `pattern` says whether the condition holds (`T`) in each.
    fn pattern(pattern: &str) -> Vec<WindowFacts> {
        pattern
            .chars()
            .enumerate()
            .map(|(i, c)| match c {
                'T' => violated(i as i64, "age", "baseline_drift_check"),
                _ => window(i as i64),
            })
            .collect()
    }

    const ANY_VIOLATION: &str = "[rule.condition.violation]\n[rule.alert]\n";

    #[test]
    fn fires_once_per_episode_and_resolves() {
        let set = rules(ANY_VIOLATION);
        assert_eq!(
            run(&set, &pattern("TTTFFTF")),
            ["firing@0", "resolved@3", "firing@5", "resolved@6"]
        );
    }

    #[test]
    fn alerts_carry_rule_severity_key_and_evidence() {
        let set = rules(ANY_VIOLATION);
        let mut state = RulesState::default();
        let actions = evaluate(&set, &mut state, &violated(2, "plan", "completeness_check"));
        assert_eq!(
            actions,
            [Action::Alert {
                rule: "r".into(),
                monitor: "m".into(),
                endpoint: Some("e".into()),
                severity: Severity::Warning,
                kind: AlertKind::Firing,
                dedup_key: "r/m/e".into(),
                evidence: Evidence {
                    window_start: 2 * HOUR,
                    window_end: 3 * HOUR,
                    matches: vec![Match {
                        subject: Some("plan".into()),
                        what: "completeness_check".into(),
                        value: None,
                    }],
                },
            }]
        );
    }

    #[test]
    fn violation_condition_filters_check_types_and_features() {
        let set = rules(
            "[rule.condition.violation]\ncheck_types = [\"completeness_check\"]\nfeatures = [\"pl*\"]\n[rule.alert]\n",
        );
        let windows = [
            violated(0, "plan", "baseline_drift_check"),
            violated(1, "age", "completeness_check"),
            violated(2, "plan", "completeness_check"),
        ];
        assert_eq!(run(&set, &windows), ["firing@2"]);
    }

    #[test]
    fn drift_condition_needs_the_statistic_of_a_named_feature_above_the_threshold() {
        let set = rules(
            "[rule.condition.drift]\nfeatures = [\"age\"]\nstatistic = \"linf_robust\"\nabove = 0.2\n[rule.alert]\n",
        );
        let drift = |i, feature: &str, statistic, value| WindowFacts {
            drift: vec![DriftFact {
                feature: feature.into(),
                statistic,
                value,
            }],
            ..window(i)
        };
        let windows = [
            drift(0, "age", DriftStatistic::LinfRobust, 0.2),
            drift(1, "income", DriftStatistic::LinfRobust, 0.3),
            drift(2, "age", DriftStatistic::Psi, 0.9),
            drift(3, "age", DriftStatistic::LinfRobust, 0.3),
        ];
        assert_eq!(run(&set, &windows), ["firing@3"]);
    }

    #[test]
    fn bias_condition_holds_beyond_either_bound() {
        let set = rules(
            "[rule.condition.bias]\nmetrics = [\"DPPL\"]\nfacets = [\"sex\"]\nabove = 0.1\nbelow = -0.1\n[rule.alert]\n",
        );
        let bias = |i, facet: &str, metric: &str, value| WindowFacts {
            bias: vec![BiasFact {
                facet: facet.into(),
                facet_value: "0".into(),
                metric: metric.into(),
                value,
            }],
            ..window(i)
        };
        let windows = [
            bias(0, "sex", "DPPL", 0.05),
            bias(1, "age", "DPPL", 0.5),
            bias(2, "sex", "DI", 0.5),
            bias(3, "sex", "DPPL", -0.2),
            bias(4, "sex", "DPPL", 0.0),
            bias(5, "sex", "DPPL", 0.2),
        ];
        assert_eq!(run(&set, &windows), ["firing@3", "resolved@4", "firing@5"]);
        let mut state = RulesState::default();
        let actions = evaluate(&set, &mut state, &windows[3]);
        let Action::Alert { evidence, .. } = &actions[0] else {
            panic!("{actions:?}")
        };
        assert_eq!(evidence.matches[0].subject.as_deref(), Some("sex=0"));
        assert_eq!(evidence.matches[0].value, Some(-0.2));
    }

    #[test]
    fn attribution_ndcg_below_a_bound_fires_for_matching_labels() {
        let set = rules(
            "[rule.condition.feature_attribution]\nlabels = [\"label0\"]\nbelow = 0.9\n[rule.alert]\n",
        );
        let ndcg = |i, label: &str, value| WindowFacts {
            attribution_ndcg: vec![(label.into(), value)],
            ..window(i)
        };
        let windows = [
            ndcg(0, "label0", 0.95),
            ndcg(1, "label1", 0.5),
            ndcg(2, "label0", 0.6875),
            ndcg(3, "label0", 0.9),
        ];
        assert_eq!(run(&set, &windows), ["firing@2", "resolved@3"]);
        let mut state = RulesState::default();
        let actions = evaluate(&set, &mut state, &windows[2]);
        let Action::Alert { evidence, .. } = &actions[0] else {
            panic!("{actions:?}")
        };
        assert_eq!(evidence.matches[0].subject.as_deref(), Some("label0"));
        assert_eq!(evidence.matches[0].what, "ndcg");
        assert_eq!(evidence.matches[0].value, Some(0.6875));
    }

    #[test]
    fn multivariate_drift_fires_on_the_alert_or_on_an_error_above_a_bound() {
        let mv = |i, error, alert| WindowFacts {
            multivariate: Some(MultivariateFact {
                reconstruction_error: error,
                alert,
            }),
            ..window(i)
        };
        // Window 2 has no accepted row: no error, so neither form holds.
        let windows = [
            mv(0, 1.0, false),
            mv(1, 1.6, true),
            window(2),
            mv(3, 1.3, false),
        ];
        let on_alert = rules("[rule.condition.multivariate_drift]\n[rule.alert]\n");
        assert_eq!(run(&on_alert, &windows), ["firing@1", "resolved@2"]);
        let above = rules("[rule.condition.multivariate_drift]\nabove = 1.2\n[rule.alert]\n");
        assert_eq!(
            run(&above, &windows),
            ["firing@1", "resolved@2", "firing@3"]
        );
        let mut state = RulesState::default();
        let actions = evaluate(&on_alert, &mut state, &windows[1]);
        let Action::Alert { evidence, .. } = &actions[0] else {
            panic!("{actions:?}")
        };
        assert_eq!(evidence.matches[0].subject, None);
        assert_eq!(evidence.matches[0].what, "reconstruction_error");
        assert_eq!(evidence.matches[0].value, Some(1.6));
    }

    #[test]
    fn f1_below_a_bound_for_two_of_three_windows_fires_once() {
        let set = rules(
            "[rule.condition.model_quality]\nmetrics = [\"f1\"]\nbelow = 0.8\n[rule.persistence]\nwindows = 3\nat_least = 2\n[rule.alert]\n",
        );
        let quality = |i, f1| WindowFacts {
            model_quality: vec![("accuracy".into(), 0.5), ("f1".into(), f1)],
            ..window(i)
        };
        let windows = [
            quality(0, 0.9),
            quality(1, 0.7),
            quality(2, 0.95),
            quality(3, 0.6),
            quality(4, 0.9),
            quality(5, 0.9),
        ];
        // 1 and 3 are two of the three windows 1–3; windows 2–4 hold one breach only.
        assert_eq!(run(&set, &windows), ["firing@3", "resolved@4"]);
        for (body, wrong) in [
            (
                "metrics = [\"f7\"]\nbelow = 0.8",
                "unknown model-quality metric \"f7\"",
            ),
            (
                "metrics = []\nbelow = 0.8",
                "name at least one model-quality metric",
            ),
            ("metrics = [\"mae\"]", "set above and/or below"),
        ] {
            let error = RuleSet::from_toml(
                Path::new("t.toml"),
                &format!("[[rule]]\nname = \"r\"\nseverity = \"info\"\n[rule.condition.model_quality]\n{body}\n[rule.alert]\n"),
            )
            .unwrap_err()
            .to_string();
            assert!(error.contains(wrong), "{error}");
        }
    }

    #[test]
    fn drifted_features_condition_counts() {
        let set = rules("[rule.condition.drifted_features]\nat_least = 2\n[rule.alert]\n");
        let drifted = |i, n| WindowFacts {
            drifted_features: n,
            ..window(i)
        };
        assert_eq!(
            run(
                &set,
                &[drifted(0, 1), drifted(1, 2), drifted(2, 3), drifted(3, 0)]
            ),
            ["firing@1", "resolved@3"]
        );
    }

    #[test]
    fn no_data_counts_empty_windows() {
        let set =
            rules("[rule.condition.no_data]\n[rule.persistence]\nwindows = 3\n[rule.alert]\n");
        let empty = |i| WindowFacts::empty("m", Some("e"), i * HOUR, (i + 1) * HOUR);
        let windows = [window(0), empty(1), empty(2), empty(3), empty(4), window(5)];
        assert_eq!(run(&set, &windows), ["firing@3", "resolved@5"]);
    }

    #[test]
    fn late_rows_fire_at_their_threshold() {
        let set = rules("[rule.condition.late_rows]\nat_least = 5\n[rule.alert]\n");
        let late = |i, n| WindowFacts {
            late_rows: n,
            ..window(i)
        };
        let windows = [window(0), late(1, 4), late(2, 5), window(3)];
        assert_eq!(run(&set, &windows), ["firing@2", "resolved@3"]);
        let error = RuleSet::from_toml(
            Path::new("t.toml"),
            "[[rule]]\nname = \"r\"\nseverity = \"info\"\n[rule.condition.late_rows]\nat_least = 0\n[rule.alert]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("at_least"), "{error}");
    }

    #[test]
    fn windows_missing_between_two_count_as_without_records() {
        let set =
            rules("[rule.condition.no_data]\n[rule.persistence]\nwindows = 3\n[rule.alert]\n");
        // Windows 1 to 3 never arrive: three empty windows, so it fires in window 3.
        assert_eq!(
            run(&set, &[window(0), window(4)]),
            ["firing@3", "resolved@4"]
        );
        // Two missing windows are not enough.
        assert_eq!(run(&set, &[window(0), window(3)]), Vec::<String>::new());
        // A long gap replays only its last windows (here 3 + 1): one firing, late in the gap.
        assert_eq!(
            run(&set, &[window(0), window(1000)]),
            ["firing@998", "resolved@1000"]
        );
        // Other conditions do not hold in missing windows.
        let set = rules(ANY_VIOLATION);
        assert_eq!(
            run(
                &set,
                &[
                    violated(0, "a", "data_type_check"),
                    violated(2, "a", "data_type_check")
                ]
            ),
            ["firing@0", "resolved@1", "firing@2"]
        );
    }

    #[test]
    fn consecutive_persistence() {
        let set = rules(&format!("{ANY_VIOLATION}[rule.persistence]\nwindows = 3\n"));
        assert_eq!(run(&set, &pattern("TTFTTTTF")), ["firing@5", "resolved@7"]);
    }

    #[test]
    fn m_of_n_persistence() {
        let set = rules(&format!(
            "resolve_after = 2\n{ANY_VIOLATION}[rule.persistence]\nwindows = 3\nat_least = 2\n"
        ));
        // Fires in 2 (2 of 3); one clean window does not resolve, two do; after that the
        // condition must hold in 2 of the last 3 again.
        assert_eq!(
            run(&set, &pattern("TFTFFTT")),
            ["firing@2", "resolved@4", "firing@6"]
        );
    }

    #[test]
    fn reminders_while_firing() {
        let set = rules("[rule.condition.violation]\n[rule.alert]\nremind_after = \"2h\"\n");
        assert_eq!(
            run(&set, &pattern("TTTTTF")),
            ["firing@0", "reminder@2", "reminder@4", "resolved@5"]
        );
    }

    #[test]
    fn resolves_only_after_k_clean_windows() {
        let set = rules(&format!("resolve_after = 3\n{ANY_VIOLATION}"));
        assert_eq!(
            run(&set, &pattern("TFFTFFFT")),
            ["firing@0", "resolved@6", "firing@7"]
        );
    }

    #[test]
    fn cooldown_suppresses_firing_after_a_resolve() {
        let set = rules("[rule.condition.violation]\n[rule.alert]\ncooldown = \"3h\"\n");
        // Resolved at the end of window 1 (2h); windows 2 and 3 end within 3h of it.
        assert_eq!(
            run(&set, &pattern("TFTTTF")),
            ["firing@0", "resolved@1", "firing@4", "resolved@5"]
        );
    }

    #[test]
    fn retrain_once_per_episode_with_its_own_cooldown() {
        let set = rules(&format!(
            "{ANY_VIOLATION}[rule.persistence]\nwindows = 2\n[rule.retrain]\ncooldown = \"5h\"\n"
        ));
        // Episode 1 fires in window 1 (windows 0–1). Episode 2 fires in window 5, but the last
        // retrain (end of window 1, 2h) is less than 5h before; it goes out in window 6 (7h).
        assert_eq!(
            run(&set, &pattern("TTTFTTTT")),
            [
                "firing@1",
                "retrain r/m/e/1970-01-01T01:00:00Z 0-2",
                "resolved@3",
                "firing@5",
                "retrain r/m/e/1970-01-01T05:00:00Z 4-7",
            ]
        );
    }

    #[test]
    fn a_retrain_only_rule_sends_no_alerts() {
        let set = rules("[rule.condition.violation]\n[rule.retrain]\n");
        assert_eq!(
            run(&set, &pattern("TTFT")),
            [
                "retrain r/m/e/1970-01-01T00:00:00Z 0-1",
                "retrain r/m/e/1970-01-01T03:00:00Z 3-4",
            ]
        );
    }

    #[test]
    fn rules_cover_their_monitors_and_endpoints_only() {
        let set = rules(&format!(
            "monitors = [\"churn-*\"]\nendpoints = [\"\", \"prod-?\"]\n{ANY_VIOLATION}"
        ));
        let on = |monitor: &str, endpoint: Option<&str>| WindowFacts {
            monitor: monitor.into(),
            endpoint: endpoint.map(str::to_string),
            ..violated(0, "a", "data_type_check")
        };
        let mut state = RulesState::default();
        for (monitor, endpoint, fires) in [
            ("churn-dq", Some("prod-1"), true),
            ("churn-dq", None, true),
            ("churn-dq", Some("staging-1"), false),
            ("loans-dq", Some("prod-1"), false),
        ] {
            let actions = evaluate(&set, &mut state, &on(monitor, endpoint));
            assert_eq!(actions.len(), usize::from(fires), "{monitor} {endpoint:?}");
        }
        assert_eq!(state.series.len(), 2);
    }

    #[test]
    fn state_survives_a_serde_round_trip() {
        let set = rules(&format!(
            "{ANY_VIOLATION}remind_after = \"2h\"\n[rule.persistence]\nwindows = 3\nat_least = 2\n[rule.retrain]\n"
        ));
        let windows = pattern("TFTTTFFTT");
        let whole = run(&set, &windows);
        let (before, after) = windows.split_at(4);
        let mut state = RulesState::default();
        let mut actions: Vec<Action> = before
            .iter()
            .flat_map(|w| evaluate(&set, &mut state, w))
            .collect();
        let json = serde_json::to_string(&state).unwrap();
        let mut restored: RulesState = serde_json::from_str(&json).unwrap();
        assert_eq!(restored, state);
        actions.extend(after.iter().flat_map(|w| evaluate(&set, &mut restored, w)));
        assert_eq!(summary(&actions), whole);
        assert_eq!(
            whole,
            [
                "firing@2",
                "retrain r/m/e/1970-01-01T02:00:00Z 0-3",
                "reminder@4",
                "resolved@5",
                "firing@8",
                "retrain r/m/e/1970-01-01T08:00:00Z 6-9",
            ]
        );
    }

    #[test]
    fn facts_from_findings_and_bias_reports() {
        let feature = FeatureDrift {
            name: "age".into(),
            kind: FeatureKind::Numerical,
            n_baseline: 100.0,
            n_current: 10.0,
            linf_simple: 0.1,
            linf_robust: 0.2,
            ks: Some(0.3),
            psi: 0.4,
            js: 0.5,
            wasserstein_normed: None,
            chi2_statistic: None,
            chi2_p_value: None,
            method: "linf_robust",
            distance: 0.2,
            threshold: 0.1,
            drifted: true,
        };
        let statistics = Statistics {
            version: 0.0,
            dataset: Dataset { item_count: 10 },
            features: vec![],
        };
        let findings = Findings {
            constraints: Constraints::suggest(&statistics),
            statistics,
            violations: ConstraintViolations {
                violations: vec![Violation {
                    feature_name: "age".into(),
                    constraint_check_type: CheckType::BaselineDriftCheck,
                    description: String::new(),
                }],
            },
            drift: DriftReport {
                features: vec![feature],
                features_compared: 1,
                features_drifted: 1,
                drifted_share: 1.0,
            },
        };
        let facts = WindowFacts::from_findings("m", None, 0, HOUR, &findings);
        assert_eq!(facts.rows, 10);
        assert_eq!(facts.drifted_features, 1);
        assert_eq!(
            facts.violations,
            [ViolationFact {
                feature: "age".into(),
                check_type: "baseline_drift_check".into()
            }]
        );
        let statistics: Vec<_> = facts.drift.iter().map(|d| (d.statistic, d.value)).collect();
        assert_eq!(
            statistics,
            [
                (DriftStatistic::Distance, 0.2),
                (DriftStatistic::LinfSimple, 0.1),
                (DriftStatistic::LinfRobust, 0.2),
                (DriftStatistic::Ks, 0.3),
                (DriftStatistic::Psi, 0.4),
                (DriftStatistic::Js, 0.5),
            ]
        );

        let analysis: Analysis = serde_json::from_value(serde_json::json!({
            "version": "1.0",
            "pre_training_bias_metrics": {"label": "y", "label_value_or_threshold": "1", "facets": {
                "sex": [{"value_or_threshold": "0", "metrics": [
                    {"name": "CI", "description": "", "value": 0.3},
                    {"name": "DPL", "description": "", "value": null, "error": "no rows"}
                ]}]
            }},
            "post_training_bias_metrics": {"label": "y", "label_value_or_threshold": "1", "facets": {
                "sex": [{"value_or_threshold": "0", "metrics": [
                    {"name": "DPPL", "description": "", "value": "-Infinity"}
                ]}]
            }}
        }))
        .unwrap();
        let violations: BiasViolations = serde_json::from_value(serde_json::json!({
            "version": "1.0",
            "violations": [{"facet": "sex", "facet_value": "0", "metric_name": "DPPL",
                "constraint_check_type": "bias_drift_check", "description": ""}]
        }))
        .unwrap();
        let facts = WindowFacts::from_bias("b", Some("e"), 0, HOUR, 7, &analysis, &violations);
        assert_eq!(facts.rows, 7);
        let bias: Vec<_> = facts
            .bias
            .iter()
            .map(|b| {
                (
                    b.facet.as_str(),
                    b.facet_value.as_str(),
                    b.metric.as_str(),
                    b.value,
                )
            })
            .collect();
        assert_eq!(
            bias,
            [
                ("sex", "0", "CI", 0.3),
                ("sex", "0", "DPPL", f64::NEG_INFINITY)
            ]
        );
        assert_eq!(
            facts.violations[0].check_type,
            super::super::file::BIAS_DRIFT_CHECK
        );
    }
}
