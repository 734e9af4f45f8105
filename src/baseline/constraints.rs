//! `constraints.json` (FORMATS.md §3): reading SageMaker's files and driftd's, and suggesting
//! constraints from a baseline's statistics the way Model Monitor does.

use serde::{Deserialize, Deserializer, Serialize};

use super::statistics::Statistics;
use crate::profile::DataType;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Constraints {
    pub version: f64,
    #[serde(default)]
    pub features: Vec<FeatureConstraints>,
    #[serde(default)]
    pub monitoring_config: MonitoringConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureConstraints {
    pub name: String,
    pub inferred_type: DataType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completeness: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_constraints: Option<NumConstraints>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_constraints: Option<StringConstraints>,
    /// The spelling of the AWS docs. The SDK writes the same thing as
    /// `string_constraints.monitoring_config_overrides`; both are read.
    #[serde(
        default,
        rename = "monitoringConfigOverrides",
        skip_serializing_if = "Option::is_none"
    )]
    pub monitoring_config_overrides: Option<ConfigOverrides>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NumConstraints {
    pub is_non_negative: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StringConstraints {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domains: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring_config_overrides: Option<ConfigOverrides>,
}

/// Per-feature overrides of `monitoring_config`: any key left out keeps the global value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluate_constraints: Option<Switch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datatype_check_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_content_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison_method: Option<ComparisonMethod>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Switch {
    Enabled,
    Disabled,
}

/// Real files say `"Enabled"`; the SDK's older test files use booleans.
impl<'de> Deserialize<'de> for Switch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Bool(true) => Ok(Switch::Enabled),
            Raw::Bool(false) => Ok(Switch::Disabled),
            Raw::Text(text) if text.eq_ignore_ascii_case("enabled") => Ok(Switch::Enabled),
            Raw::Text(text) if text.eq_ignore_ascii_case("disabled") => Ok(Switch::Disabled),
            Raw::Text(text) => Err(serde::de::Error::custom(format!(
                "expected \"Enabled\" or \"Disabled\", found {text:?}"
            ))),
        }
    }
}

/// Deequ's `linf_simple` or `linf_robust` (FORMATS.md §3.4). The docs table spells the values
/// `linf_simple`/`linf_robust`, real files `Simple`/`Robust`; both are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ComparisonMethod {
    #[serde(alias = "linf_simple")]
    Simple,
    #[serde(alias = "linf_robust")]
    Robust,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CategoricalDriftMethod {
    LInfinity,
    ChiSquared,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitoringConfig {
    #[serde(default = "enabled")]
    pub evaluate_constraints: Switch,
    #[serde(default = "enabled")]
    pub emit_metrics: Switch,
    #[serde(default = "one")]
    pub datatype_check_threshold: f64,
    #[serde(default = "one")]
    pub domain_content_threshold: f64,
    #[serde(default)]
    pub distribution_constraints: DistributionConstraints,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistributionConstraints {
    /// `enable_comparisons` is the spelling of the SDK's older test files.
    #[serde(default = "enabled", alias = "enable_comparisons")]
    pub perform_comparison: Switch,
    #[serde(default = "default_comparison_threshold")]
    pub comparison_threshold: f64,
    #[serde(default = "robust")]
    pub comparison_method: ComparisonMethod,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categorical_comparison_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categorical_drift_method: Option<CategoricalDriftMethod>,
}

fn enabled() -> Switch {
    Switch::Enabled
}
fn one() -> f64 {
    1.0
}
fn default_comparison_threshold() -> f64 {
    0.1
}
fn robust() -> ComparisonMethod {
    ComparisonMethod::Robust
}

/// What real suggested files carry (FORMATS.md §3.2): thresholds 1.0, "Robust", 0.1.
impl Default for MonitoringConfig {
    fn default() -> Self {
        Self {
            evaluate_constraints: Switch::Enabled,
            emit_metrics: Switch::Enabled,
            datatype_check_threshold: 1.0,
            domain_content_threshold: 1.0,
            distribution_constraints: DistributionConstraints::default(),
        }
    }
}

impl Default for DistributionConstraints {
    fn default() -> Self {
        Self {
            perform_comparison: Switch::Enabled,
            comparison_threshold: 0.1,
            comparison_method: ComparisonMethod::Robust,
            categorical_comparison_threshold: None,
            categorical_drift_method: None,
        }
    }
}

impl DistributionConstraints {
    pub fn categorical_threshold(&self) -> f64 {
        self.categorical_comparison_threshold
            .unwrap_or(self.comparison_threshold)
    }

    pub fn categorical_method(&self) -> CategoricalDriftMethod {
        self.categorical_drift_method
            .unwrap_or(CategoricalDriftMethod::LInfinity)
    }
}

impl FeatureConstraints {
    /// The overrides under either spelling; the docs' spelling wins where both say something.
    pub fn overrides(&self) -> ConfigOverrides {
        let nested = self
            .string_constraints
            .as_ref()
            .and_then(|s| s.monitoring_config_overrides.clone())
            .unwrap_or_default();
        let top = self.monitoring_config_overrides.clone().unwrap_or_default();
        ConfigOverrides {
            evaluate_constraints: top.evaluate_constraints.or(nested.evaluate_constraints),
            datatype_check_threshold: top
                .datatype_check_threshold
                .or(nested.datatype_check_threshold),
            domain_content_threshold: top
                .domain_content_threshold
                .or(nested.domain_content_threshold),
            comparison_threshold: top.comparison_threshold.or(nested.comparison_threshold),
            comparison_method: top.comparison_method.or(nested.comparison_method),
        }
    }
}

/// Deequ's histogram is only computed for columns with at most this many distinct values
/// (`ColumnProfiler.DEFAULT_CARDINALITY_THRESHOLD`), so only those can get a domain.
const DOMAIN_MAX_DISTINCT: usize = 120;
/// Deequ's `CategoricalRangeRule`: no domain when more than 10 % of the categories were seen
/// only once — such a column looks open-ended, and a domain would flag every new value.
const DOMAIN_MAX_SINGLETON_SHARE: f64 = 0.1;

impl Constraints {
    /// Suggests constraints from statistics, as Model Monitor's baselining job and each
    /// execution (for its window) do: completeness, non-negativity of numeric features whose
    /// minimum is ≥ 0, and domains of low-cardinality strings.
    ///
    /// Completeness is the observed share of present values, unrounded: a real execution with
    /// 91 of 93 values present writes `0.978494623655914` (not Deequ's rounded lower bound).
    pub fn suggest(statistics: &Statistics) -> Self {
        let features = statistics
            .features
            .iter()
            .map(|feature| {
                let common = feature.common();
                let completeness = common.map(|c| {
                    let n = c.num_present + c.num_missing;
                    if n == 0 {
                        0.0
                    } else {
                        c.num_present as f64 / n as f64
                    }
                });
                let num_constraints =
                    feature
                        .numerical_statistics
                        .as_ref()
                        .map(|n| NumConstraints {
                            is_non_negative: n.min >= 0.0,
                        });
                let string_constraints =
                    suggest_domain(feature.categories()).map(|domains| StringConstraints {
                        domains: Some(domains),
                        monitoring_config_overrides: None,
                    });
                FeatureConstraints {
                    name: feature.name.clone(),
                    inferred_type: feature.inferred_type,
                    completeness,
                    num_constraints,
                    string_constraints,
                    monitoring_config_overrides: None,
                }
            })
            .collect();
        Self {
            version: 0.0,
            features,
            monitoring_config: MonitoringConfig::default(),
        }
    }

    pub fn feature(&self, name: &str) -> Option<&FeatureConstraints> {
        self.features.iter().find(|f| f.name == name)
    }
}

fn suggest_domain(categories: Option<Vec<(String, u64)>>) -> Option<Vec<String>> {
    let categories = categories?;
    if categories.is_empty() || categories.len() > DOMAIN_MAX_DISTINCT {
        return None;
    }
    let singletons = categories.iter().filter(|(_, count)| *count == 1).count();
    if singletons as f64 / categories.len() as f64 > DOMAIN_MAX_SINGLETON_SHARE {
        return None;
    }
    let mut domain: Vec<String> = categories.into_iter().map(|(value, _)| value).collect();
    domain.sort();
    Some(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SDK's older hand-written test file spells overrides inside `string_constraints` and
    /// the comparison switch `enable_comparisons` (a boolean); the docs spell the overrides
    /// `monitoringConfigOverrides`. All of it must read.
    #[test]
    fn reads_both_override_spellings() {
        let text = r#"{
          "version": 0.0,
          "features": [
            {"name": "a", "inferred_type": "String",
             "string_constraints": {"domains": ["x"],
               "monitoring_config_overrides": {"evaluate_constraints": "Disabled"}}},
            {"name": "b", "inferred_type": "Fractional", "completeness": 0.9,
             "monitoringConfigOverrides": {"comparison_threshold": 0.3, "comparison_method": "linf_simple"}}
          ],
          "monitoring_config": {
            "evaluate_constraints": "Enabled", "emit_metrics": "Enabled",
            "distribution_constraints": {"enable_comparisons": true, "min_domain_mass": 1.0,
                                         "comparison_threshold": 0.2}
          }
        }"#;
        let c: Constraints = serde_json::from_str(text).unwrap();
        assert_eq!(
            c.feature("a").unwrap().overrides().evaluate_constraints,
            Some(Switch::Disabled)
        );
        let b = c.feature("b").unwrap().overrides();
        assert_eq!(b.comparison_threshold, Some(0.3));
        assert_eq!(b.comparison_method, Some(ComparisonMethod::Simple));
        let d = &c.monitoring_config.distribution_constraints;
        assert_eq!(d.perform_comparison, Switch::Enabled);
        assert_eq!(d.comparison_threshold, 0.2);
        assert_eq!(d.comparison_method, ComparisonMethod::Robust);
        assert_eq!(d.categorical_threshold(), 0.2);
        assert_eq!(c.monitoring_config.datatype_check_threshold, 1.0);
    }

    #[test]
    fn a_bad_switch_names_the_value() {
        let err =
            serde_json::from_str::<MonitoringConfig>(r#"{"emit_metrics": "Yes"}"#).unwrap_err();
        assert!(err.to_string().contains("\"Yes\""), "{err}");
    }
}
