//! Rule files: `[[rule]]` tables in `*.toml` files of one directory. Unknown keys are rejected and
//! every error names the file, the line and the key, and says what to change.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::analyze::CheckType;
use crate::bias::metrics::Metric;

/// The check type of a bias monitor's violations (`constraint_violations.json` of Clarify).
pub const BIAS_DRIFT_CHECK: &str = "bias_drift_check";
/// Bounds the condition history each series keeps (and so the state that is persisted).
const MAX_WINDOWS: u32 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("{path}: cannot read: {error}")]
    Read {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    rule: Vec<Spanned<Rule>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Unique across the directory: it keys the rule's state and its alerts.
    pub name: String,
    /// Globs (`*`, `?`) over monitor names.
    #[serde(default = "match_all")]
    pub monitors: Vec<String>,
    /// Globs over endpoint names; a batch monitor (no endpoint) is matched as `""`.
    #[serde(default = "match_all")]
    pub endpoints: Vec<String>,
    pub severity: Severity,
    pub condition: Condition,
    #[serde(default)]
    pub persistence: Persistence,
    /// Consecutive windows without the condition that end a firing episode.
    #[serde(default = "one")]
    pub resolve_after: u32,
    pub alert: Option<AlertSpec>,
    pub retrain: Option<RetrainSpec>,
}

fn match_all() -> Vec<String> {
    vec!["*".to_string()]
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// What must hold in one window. Externally tagged (`[rule.condition.drift]`) so toml keeps the
/// spans of the keys inside, and errors point at the right line.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// Any constraint violation of the given check types (all when empty) on matching features.
    Violation {
        #[serde(default)]
        check_types: Vec<String>,
        #[serde(default = "match_all")]
        features: Vec<String>,
    },
    /// A drift statistic of a matching feature above a threshold.
    Drift {
        features: Vec<String>,
        statistic: DriftStatistic,
        above: f64,
    },
    /// A bias metric of a matching facet above `above` or below `below`.
    Bias {
        metrics: Vec<String>,
        #[serde(default = "match_all")]
        facets: Vec<String>,
        above: Option<f64>,
        below: Option<f64>,
    },
    /// A model-quality metric (a `statistics.json` key: `f1`, `auc`, `mae`, …) above `above`
    /// or below `below`.
    ModelQuality {
        metrics: Vec<String>,
        above: Option<f64>,
        below: Option<f64>,
    },
    /// `[monitor.estimate]`: a matching metric's estimate (CBPE, before labels: `f1`,
    /// `roc_auc`, `accuracy`, …) outside the thresholds its reference learned.
    EstimatedPerformance {
        #[serde(default = "match_all")]
        metrics: Vec<String>,
    },
    /// Feature attribution: the NDCG of a matching label's ranking below `below` (Model
    /// Monitor's own threshold is 0.9).
    FeatureAttribution {
        #[serde(default = "match_all")]
        labels: Vec<String>,
        below: f64,
    },
    /// Multivariate drift: without `above`, the window's reconstruction error is outside the
    /// baseline's thresholds (the window alerts); with it, the error is above `above`.
    MultivariateDrift { above: Option<f64> },
    /// At least this many features drifted (by the baseline's method).
    DriftedFeatures { at_least: usize },
    /// The window had no records (windows missing between two that arrive count too).
    NoData {},
    /// At least this many rows of the series arrived after their window had closed (AWS mode:
    /// counted as late, not merged) since the rules' previous window.
    LateRows { at_least: u64 },
}

/// The per-feature numbers of `drift.json`; `distance` is the one the baseline's method chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftStatistic {
    Distance,
    LinfSimple,
    LinfRobust,
    Ks,
    Psi,
    Js,
    WassersteinNormed,
    Chi2Statistic,
}

/// The condition must hold in at least `at_least` (default: all) of the last `windows` windows.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persistence {
    pub windows: u32,
    pub at_least: Option<u32>,
}

impl Default for Persistence {
    fn default() -> Self {
        Persistence {
            windows: 1,
            at_least: None,
        }
    }
}

impl Persistence {
    pub fn required(&self) -> u32 {
        self.at_least.unwrap_or(self.windows)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSpec {
    /// After a resolve, no new firing alert until this much window time has passed.
    #[serde(default, with = "humantime_serde")]
    pub cooldown: Duration,
    /// While firing, repeat the alert this often (window time).
    #[serde(default, with = "humantime_serde")]
    pub remind_after: Option<Duration>,
    /// AWS mode: the SNS topic for this rule's alerts; default `sinks.sns_topic_arn`.
    pub topic_arn: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrainSpec {
    /// At most one retrain trigger of this rule, monitor and endpoint per this much window time.
    #[serde(default, with = "humantime_serde")]
    pub cooldown: Duration,
    /// AWS mode: the SNS topic the trigger is published to; default `sinks.retrain_topic_arn`.
    pub topic_arn: Option<String>,
    /// AWS mode: the SQS queue the trigger is sent to, instead of a topic; default
    /// `sinks.retrain_queue_url`.
    pub queue_url: Option<String>,
}

impl Rule {
    pub fn covers(&self, monitor: &str, endpoint: Option<&str>) -> bool {
        let endpoint = endpoint.unwrap_or("");
        self.monitors.iter().any(|g| glob_match(g, monitor))
            && self.endpoints.iter().any(|g| glob_match(g, endpoint))
    }

    /// The first problem as (key, message).
    fn validate(&self) -> Result<(), (&'static str, String)> {
        let valid_name = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
        if self.name.is_empty() || !self.name.chars().all(valid_name) {
            return Err((
                "name",
                "use letters, digits, '-', '_' and '.' only (it goes into alert and retrain keys)"
                    .into(),
            ));
        }
        globs("monitors", &self.monitors)?;
        globs("endpoints", &self.endpoints)?;
        let p = &self.persistence;
        if !(1..=MAX_WINDOWS).contains(&p.windows) {
            return Err((
                "windows",
                format!("persistence.windows must be 1 to {MAX_WINDOWS}"),
            ));
        }
        if !(1..=p.windows).contains(&p.required()) {
            return Err((
                "at_least",
                format!(
                    "persistence.at_least must be 1 to persistence.windows ({})",
                    p.windows
                ),
            ));
        }
        if !(1..=MAX_WINDOWS).contains(&self.resolve_after) {
            return Err(("resolve_after", format!("must be 1 to {MAX_WINDOWS}")));
        }
        self.validate_condition()?;
        if self.alert.is_none() && self.retrain.is_none() {
            return Err((
                "name",
                "the rule does nothing: add an [rule.alert] and/or a [rule.retrain] table".into(),
            ));
        }
        if let Some(AlertSpec {
            remind_after: Some(d),
            ..
        }) = &self.alert
            && d.is_zero()
        {
            return Err((
                "remind_after",
                "alert.remind_after must be longer than 0 (leave it out for no reminders)".into(),
            ));
        }
        let topics = [
            self.alert.as_ref().and_then(|a| a.topic_arn.as_ref()),
            self.retrain.as_ref().and_then(|r| r.topic_arn.as_ref()),
        ];
        if let Some(arn) = topics
            .into_iter()
            .flatten()
            .find(|a| !a.starts_with("arn:"))
        {
            return Err((
                "topic_arn",
                format!("{arn:?} is not a topic ARN (arn:aws:sns:REGION:ACCOUNT:TOPIC)"),
            ));
        }
        if let Some(retrain) = &self.retrain {
            if retrain.topic_arn.is_some() && retrain.queue_url.is_some() {
                return Err((
                    "queue_url",
                    "retrain goes to a topic or a queue: set topic_arn or queue_url, not both"
                        .into(),
                ));
            }
            if let Some(url) = &retrain.queue_url
                && !(url.starts_with("https://") || url.starts_with("http://"))
            {
                return Err((
                    "queue_url",
                    format!(
                        "{url:?} is not a queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE)"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate_condition(&self) -> Result<(), (&'static str, String)> {
        match &self.condition {
            Condition::Violation {
                check_types,
                features,
            } => {
                for check in check_types {
                    if !known_check_type(check) {
                        return Err((
                            "check_types",
                            format!(
                                "unknown check type {check:?}; use data_type_check, completeness_check, baseline_drift_check, missing_column_check, extra_column_check, categorical_values_check, is_non_negative_check, {BIAS_DRIFT_CHECK} or {} (or [] for any)",
                                crate::multivariate::monitor::CHECK_TYPE
                            ),
                        ));
                    }
                }
                globs("features", features)
            }
            Condition::Drift {
                features, above, ..
            } => {
                globs("features", features)?;
                finite("above", *above)
            }
            Condition::Bias {
                metrics,
                facets,
                above,
                below,
            } => {
                if metrics.is_empty() {
                    return Err((
                        "metrics",
                        "name at least one bias metric, e.g. [\"DPPL\"]".into(),
                    ));
                }
                if let Some(m) = metrics
                    .iter()
                    .find(|m| !Metric::ALL.iter().any(|k| k.name() == *m))
                {
                    let names: Vec<_> = Metric::ALL.iter().map(|k| k.name()).collect();
                    return Err((
                        "metrics",
                        format!("unknown bias metric {m:?}; use one of {}", names.join(", ")),
                    ));
                }
                globs("facets", facets)?;
                bounds(*above, *below)
            }
            Condition::ModelQuality {
                metrics,
                above,
                below,
            } => {
                if metrics.is_empty() {
                    return Err((
                        "metrics",
                        "name at least one model-quality metric, e.g. [\"f1\"]".into(),
                    ));
                }
                if let Some(m) = metrics.iter().find(|m| !known_model_quality_metric(m)) {
                    return Err((
                        "metrics",
                        format!(
                            "unknown model-quality metric {m:?}; use a statistics.json key such as accuracy, f1, auc, weighted_f1 or mae"
                        ),
                    ));
                }
                bounds(*above, *below)
            }
            Condition::DriftedFeatures { at_least } => {
                if *at_least == 0 {
                    return Err(("at_least", "must be at least 1".into()));
                }
                Ok(())
            }
            Condition::LateRows { at_least } => {
                if *at_least == 0 {
                    return Err(("at_least", "must be at least 1".into()));
                }
                Ok(())
            }
            Condition::FeatureAttribution { labels, below } => {
                globs("labels", labels)?;
                finite("below", *below)
            }
            Condition::EstimatedPerformance { metrics } => globs("metrics", metrics),
            Condition::MultivariateDrift { above } => match above {
                Some(above) => finite("above", *above),
                None => Ok(()),
            },
            Condition::NoData {} => Ok(()),
        }
    }
}

fn known_check_type(name: &str) -> bool {
    use serde::de::IntoDeserializer;
    let as_check: Result<CheckType, serde::de::value::Error> =
        CheckType::deserialize(name.into_deserializer());
    name == BIAS_DRIFT_CHECK || name == crate::multivariate::monitor::CHECK_TYPE || as_check.is_ok()
}

fn finite(key: &'static str, x: f64) -> Result<(), (&'static str, String)> {
    if x.is_finite() {
        Ok(())
    } else {
        Err((key, format!("{key} must be a finite number")))
    }
}

fn globs(key: &'static str, patterns: &[String]) -> Result<(), (&'static str, String)> {
    if patterns.is_empty() {
        return Err((
            key,
            format!("{key} is empty: list at least one glob, e.g. [\"*\"]"),
        ));
    }
    if let Some(p) = patterns.iter().find(|p| p.contains(['[', ']', '{', '}'])) {
        return Err((
            key,
            format!("{p:?}: only the wildcards * and ? are supported"),
        ));
    }
    Ok(())
}

/// `*` matches any run of characters, `?` any one character; everything else itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was and the text position it is currently taken to end at.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// All rules of a directory, in file-name order, then in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

impl RuleSet {
    /// Reads every `*.toml` file of `dir`. Rule names must be unique across the files.
    pub fn load_dir(dir: &Path) -> Result<RuleSet, RuleError> {
        let read_error = |error| RuleError::Read {
            path: dir.to_path_buf(),
            error,
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_error)? {
            let path = entry.map_err(read_error)?.path();
            if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();
        let mut set = RuleSet::default();
        let mut origin: Vec<(PathBuf, usize)> = Vec::new();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|error| RuleError::Read {
                path: path.clone(),
                error,
            })?;
            for (rule, line) in parse(&path, &text)? {
                if let Some(i) = set.rules.iter().position(|r| r.name == rule.name) {
                    let (first_path, first_line) = &origin[i];
                    return Err(RuleError::Invalid {
                        path,
                        line,
                        message: format!(
                            "rule {:?} is already defined at {}:{first_line}; rule names must be unique (they key the rule's state)",
                            rule.name,
                            first_path.display()
                        ),
                    });
                }
                set.rules.push(rule);
                origin.push((path.clone(), line));
            }
        }
        Ok(set)
    }

    /// Parses one file's text; `path` only names it in errors.
    pub fn from_toml(path: &Path, text: &str) -> Result<RuleSet, RuleError> {
        let rules = parse(path, text)?;
        let mut set = RuleSet::default();
        for (rule, line) in rules {
            if set.rules.iter().any(|r| r.name == rule.name) {
                return Err(RuleError::Invalid {
                    path: path.to_path_buf(),
                    line,
                    message: format!("rule {:?} is defined twice; rename one", rule.name),
                });
            }
            set.rules.push(rule);
        }
        Ok(set)
    }
}

/// Each rule with the line its table starts on.
fn parse(path: &Path, text: &str) -> Result<Vec<(Rule, usize)>, RuleError> {
    let invalid = |offset: usize, message: String| RuleError::Invalid {
        path: path.to_path_buf(),
        line: line_of(text, offset),
        message,
    };
    let file: RuleFile = toml::from_str(text).map_err(|e| {
        invalid(
            e.span().map_or(0, |s| s.start),
            e.message().trim_end().to_string(),
        )
    })?;
    // A rule's span may cover only its header: its keys are up to the next rule's start.
    let starts: Vec<usize> = file.rule.iter().map(|r| r.span().start).collect();
    let mut rules = Vec::with_capacity(file.rule.len());
    for (i, spanned) in file.rule.into_iter().enumerate() {
        let start = starts[i];
        let end = starts.get(i + 1).copied().unwrap_or(text.len());
        let rule = spanned.into_inner();
        if let Err((key, message)) = rule.validate() {
            let offset = key_offset(&text[start..end], key).map_or(start, |o| start + o);
            return Err(invalid(
                offset,
                format!("rule {:?}: {key}: {message}", rule.name),
            ));
        }
        rules.push((rule, line_of(text, start)));
    }
    Ok(rules)
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Where `key = …` is written inside a rule's text: at the start of a line, else inline.
fn key_offset(rule_text: &str, key: &str) -> Option<usize> {
    let mut offset = 0;
    for line in rule_text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix(key)
            && rest.trim_start().starts_with('=')
        {
            return Some(offset + line.len() - trimmed.len());
        }
        offset += line.len();
    }
    [format!("{key} ="), format!("{key}=")]
        .iter()
        .find_map(|needle| rule_text.find(needle.as_str()))
}

/// Bounds of a metric condition: `above` and/or `below`, finite, and not overlapping.
fn bounds(above: Option<f64>, below: Option<f64>) -> Result<(), (&'static str, String)> {
    match (above, below) {
        (None, None) => Err((
            "metrics",
            "set above and/or below: the condition holds when the metric is beyond them".into(),
        )),
        (Some(a), Some(b)) => {
            finite("above", a)?;
            finite("below", b)?;
            if b >= a {
                return Err((
                    "below",
                    format!(
                        "below ({b}) must be less than above ({a}), or the condition always holds"
                    ),
                ));
            }
            Ok(())
        }
        (Some(a), None) => finite("above", a),
        (None, Some(b)) => finite("below", b),
    }
}

/// Whether `name` is a metric some model-quality `statistics.json` has.
fn known_model_quality_metric(name: &str) -> bool {
    use crate::model_quality::{ModelQualityState, ProblemType, evaluate};
    if let Some(estimated) = name.strip_prefix("estimated_") {
        return crate::cbpe::BINARY_METRICS.contains(&estimated);
    }
    name == "auc"
        || [
            ProblemType::BinaryClassification,
            ProblemType::MulticlassClassification,
            ProblemType::Regression,
        ]
        .into_iter()
        .any(|problem| {
            evaluate(&mut ModelQualityState::new(problem))
                .metric(name)
                .is_some()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        RuleSet::from_toml(Path::new("rules/x.toml"), text)
            .unwrap_err()
            .to_string()
    }

    const GOOD: &str = r#"
[[rule]]
name = "drift"
severity = "warning"
[rule.condition.drift]
features = ["age"]
statistic = "linf_robust"
above = 0.2
[rule.alert]
"#;

    #[test]
    fn globs_match_like_a_shell() {
        assert!(glob_match("*", ""));
        assert!(glob_match("churn-*", "churn-endpoint"));
        assert!(glob_match("*-dq", "churn-dq"));
        assert!(glob_match("a*b*c", "aXbYbZc"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(!glob_match("churn-*", "loans-endpoint"));
        assert!(!glob_match("", "x"));
        assert!(glob_match("", ""));
    }

    #[test]
    fn the_shipped_rules_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let set = RuleSet::load_dir(&dir).unwrap();
        assert_eq!(set.rules[0].name, "any-violation");
        assert!(set.rules[0].covers("m", None));
        assert!(set.rules[0].alert.is_some());
        // The commented-out retraining rule is valid once uncommented.
        let text = std::fs::read_to_string(dir.join("default.toml")).unwrap();
        let commented = &text[text.find("# [[rule]]").unwrap()..];
        let uncommented: String = commented
            .lines()
            .map(|l| format!("{}\n", l.trim_start_matches('#').trim_start()))
            .collect();
        let set = RuleSet::from_toml(Path::new("default.toml"), &uncommented).unwrap();
        let rule = &set.rules[0];
        assert_eq!(rule.name, "retrain-on-drift");
        assert_eq!(rule.persistence.required(), 3);
        assert!(rule.retrain.is_some());
    }

    #[test]
    fn a_good_rule_parses_with_defaults() {
        let set = RuleSet::from_toml(Path::new("x.toml"), GOOD).unwrap();
        let rule = &set.rules[0];
        assert_eq!(rule.persistence, Persistence::default());
        assert_eq!(rule.resolve_after, 1);
        assert_eq!(rule.monitors, ["*"]);
        assert_eq!(rule.alert, Some(AlertSpec::default()));
        assert!(rule.covers("churn", Some("churn-endpoint")));
    }

    #[test]
    fn invalid_files_name_file_line_and_key() {
        let cases: &[(&str, &str)] = &[
            // Unknown key, reported by toml at its own line.
            (
                "[[rule]]\nname = \"a\"\nseverity = \"warning\"\nthreshold = 1\n",
                "rules/x.toml:4: unknown field `threshold`",
            ),
            (
                "[[rule]]\nname = \"a\"\nseverity = \"loud\"\n",
                "rules/x.toml:3: unknown variant `loud`",
            ),
            (
                &GOOD.replace("above = 0.2", "above = nan"),
                "rules/x.toml:8: rule \"drift\": above: above must be a finite number",
            ),
            (
                &GOOD.replace("statistic = \"linf_robust\"", "statistic = \"l2\""),
                "rules/x.toml:7: unknown variant `l2`",
            ),
            (
                &GOOD.replace("features = [\"age\"]", "features = []"),
                "rules/x.toml:6: rule \"drift\": features: features is empty",
            ),
            (
                &format!("{GOOD}[rule.persistence]\nwindows = 2\nat_least = 3\n"),
                "rules/x.toml:12: rule \"drift\": at_least: persistence.at_least must be 1 to persistence.windows (2)",
            ),
            (
                &format!("{GOOD}[rule.persistence]\nwindows = 0\n"),
                "rules/x.toml:11: rule \"drift\": windows: persistence.windows must be 1 to 1000",
            ),
            (
                &GOOD.replace(
                    "name = \"drift\"",
                    "name = \"drift\"\nmonitors = [\"[ab]\"]",
                ),
                "rules/x.toml:4: rule \"drift\": monitors: \"[ab]\": only the wildcards",
            ),
            (
                &GOOD.replace("[rule.alert]\n", ""),
                "rules/x.toml:3: rule \"drift\": name: the rule does nothing",
            ),
            (
                "[[rule]]\nname = \"v\"\nseverity = \"info\"\ncondition = { violation = { check_types = [\"typo_check\"] } }\nalert = {}\n",
                "rules/x.toml:4: rule \"v\": check_types: unknown check type \"typo_check\"",
            ),
            (
                "[[rule]]\nname = \"b\"\nseverity = \"info\"\nalert = {}\n[rule.condition.bias]\nmetrics = [\"DPPL\"]\nabove = 0.1\nbelow = 0.2\n",
                "rules/x.toml:8: rule \"b\": below: below (0.2) must be less than above (0.1)",
            ),
            (
                "[[rule]]\nname = \"b\"\nseverity = \"info\"\nalert = {}\n[rule.condition.bias]\nmetrics = [\"XYZ\"]\nabove = 0.1\n",
                "rules/x.toml:6: rule \"b\": metrics: unknown bias metric \"XYZ\"",
            ),
            (
                &format!("{GOOD}{GOOD}"),
                "rules/x.toml:11: rule \"drift\" is defined twice",
            ),
            (
                "[[rule]]\nname = \"m\"\nseverity = \"info\"\nalert = {}\n[rule.condition.multivariate_drift]\nabove = nan\n",
                "rules/x.toml:6: rule \"m\": above: above must be a finite number",
            ),
        ];
        for (text, expected) in cases {
            let message = error(text);
            assert!(
                message.starts_with(expected),
                "{expected:?}\nnot at the start of\n{message:?}"
            );
        }
    }

    #[test]
    fn multivariate_conditions_and_check_type_are_known() {
        let text = "[[rule]]\nname = \"a\"\nseverity = \"info\"\nalert = {}\n[rule.condition.multivariate_drift]\n\n[[rule]]\nname = \"b\"\nseverity = \"info\"\nalert = {}\n[rule.condition.violation]\ncheck_types = [\"multivariate_drift_check\"]\n";
        let set = RuleSet::from_toml(Path::new("rules/x.toml"), text).unwrap();
        assert_eq!(
            set.rules[0].condition,
            Condition::MultivariateDrift { above: None }
        );
    }

    #[test]
    fn duplicate_names_across_files_name_both() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), GOOD).unwrap();
        std::fs::write(dir.path().join("b.toml"), format!("\n\n{GOOD}")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let message = RuleSet::load_dir(dir.path()).unwrap_err().to_string();
        let a = dir.path().join("a.toml");
        let b = dir.path().join("b.toml");
        assert!(
            message.starts_with(&format!(
                "{}:4: rule \"drift\" is already defined at {}:2",
                b.display(),
                a.display()
            )),
            "{message}"
        );
    }
}
