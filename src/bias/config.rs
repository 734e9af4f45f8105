//! Clarify's `analysis_config.json` (FORMATS.md §6.4), the bias part of it.
//!
//! The file is data written by other tools (the SageMaker SDK, a baselining job), so unknown keys
//! are ignored; what driftd needs is checked and an error names the file and the key.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::metrics::{Metric, Stage};
use crate::json_file::{FileError, read_json};

/// A column given by name or by 0-based position in `headers`.
/// How a window's metric is judged against its baseline value (`bias::drift`'s documentation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftRule {
    #[default]
    Clarify,
    Bootstrap,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ColumnRef {
    Index(usize),
    Name(String),
}

#[derive(Debug, Clone, Deserialize)]
struct RawConfig {
    #[serde(default)]
    headers: Vec<String>,
    label: Option<ColumnRef>,
    #[serde(default)]
    label_values_or_threshold: Vec<Value>,
    predicted_label: Option<ColumnRef>,
    probability_threshold: Option<f64>,
    #[serde(default)]
    facet: Vec<RawFacet>,
    group_variable: Option<ColumnRef>,
    #[serde(default)]
    excluded_columns: Vec<ColumnRef>,
    #[serde(default)]
    methods: RawMethods,
    /// driftd's own key (Clarify ignores it): the bias drift rule.
    #[serde(default)]
    driftd_bias_drift_rule: DriftRule,
}

#[derive(Debug, Clone, Deserialize)]
struct RawFacet {
    name_or_index: ColumnRef,
    #[serde(default)]
    value_or_threshold: Vec<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct RawMethods {
    pre_training_bias: Option<RawStage>,
    post_training_bias: Option<RawStage>,
}

#[derive(Debug, Clone, Deserialize)]
struct RawStage {
    methods: MethodList,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum MethodList {
    /// `"all"`.
    Word(String),
    Names(Vec<String>),
}

/// One facet: the column, and the values (categorical) or the single threshold (numeric) that
/// select the disadvantaged group *d*. No values: one report per distinct value.
#[derive(Debug, Clone, PartialEq)]
pub struct FacetSpec {
    pub name: String,
    pub values: Vec<Value>,
}

/// What a bias analysis computes, with every column resolved to the name it has in the data.
#[derive(Debug, Clone, PartialEq)]
pub struct BiasSpec {
    /// Names for positional columns (`_c0`, `_c1`, … of headerless CSV and capture data).
    pub headers: Vec<String>,
    pub label: String,
    pub label_values: Vec<Value>,
    pub predicted_label: Option<String>,
    /// When given and the predicted label column holds fractional numbers (scores), a score
    /// above it is a positive prediction.
    pub probability_threshold: Option<f64>,
    pub facets: Vec<FacetSpec>,
    pub group_variable: Option<String>,
    /// Columns that are not features for the Flip Test.
    pub excluded: Vec<String>,
    /// Sorted by name, as Clarify reports them.
    pub pre_training: Vec<Metric>,
    pub post_training: Vec<Metric>,
    /// `driftd_bias_drift_rule`: Clarify's rule unless `"bootstrap"` opts into driftd's.
    pub drift_rule: DriftRule,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

impl BiasSpec {
    /// Reads and checks an `analysis_config.json`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = read_json(path)?;
        Self::from_raw(raw).map_err(|(key, message)| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        })
    }

    /// Parses the text of an `analysis_config.json`; `name` is what errors call it.
    pub fn from_json(text: &str, name: &str) -> Result<Self, ConfigError> {
        let invalid = |key: String, message: String| ConfigError::Invalid {
            path: PathBuf::from(name),
            key,
            message,
        };
        let raw: RawConfig =
            serde_json::from_str(text).map_err(|e| invalid("(file)".into(), e.to_string()))?;
        Self::from_raw(raw).map_err(|(key, message)| invalid(key, message))
    }

    fn from_raw(raw: RawConfig) -> Result<Self, (String, String)> {
        let column = |r: &ColumnRef, key: &str| -> Result<String, (String, String)> {
            match r {
                ColumnRef::Name(name) => Ok(name.clone()),
                ColumnRef::Index(i) if raw.headers.is_empty() => Ok(format!("_c{i}")),
                ColumnRef::Index(i) => raw.headers.get(*i).cloned().ok_or_else(|| {
                    (
                        key.to_string(),
                        format!("index {i} is past the {} headers", raw.headers.len()),
                    )
                }),
            }
        };
        let label = raw
            .label
            .as_ref()
            .ok_or_else(|| {
                (
                    "label".to_string(),
                    "missing; bias metrics need the label column".to_string(),
                )
            })
            .and_then(|r| column(r, "label"))?;
        if raw.label_values_or_threshold.is_empty() {
            return Err((
                "label_values_or_threshold".into(),
                "missing or empty; give the positive label values or a threshold".into(),
            ));
        }
        if raw.facet.is_empty() {
            return Err((
                "facet".into(),
                "missing or empty; name at least one facet".into(),
            ));
        }
        let facets = raw
            .facet
            .iter()
            .enumerate()
            .map(|(i, f)| {
                Ok::<_, (String, String)>(FacetSpec {
                    name: column(&f.name_or_index, &format!("facet[{i}].name_or_index"))?,
                    values: f.value_or_threshold.clone(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let predicted_label = raw
            .predicted_label
            .as_ref()
            .map(|r| column(r, "predicted_label"))
            .transpose()?;
        let group_variable = raw
            .group_variable
            .as_ref()
            .map(|r| column(r, "group_variable"))
            .transpose()?;
        let excluded = raw
            .excluded_columns
            .iter()
            .enumerate()
            .map(|(i, r)| column(r, &format!("excluded_columns[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let pre_training =
            stage_methods(raw.methods.pre_training_bias.as_ref(), Stage::PreTraining)?;
        let post_training =
            stage_methods(raw.methods.post_training_bias.as_ref(), Stage::PostTraining)?;
        if pre_training.is_empty() && post_training.is_empty() {
            return Err((
                "methods".into(),
                "names neither pre_training_bias nor post_training_bias".into(),
            ));
        }
        if !post_training.is_empty() && predicted_label.is_none() {
            return Err((
                "predicted_label".into(),
                "missing; post-training metrics need the model's predictions".into(),
            ));
        }
        Ok(Self {
            headers: raw.headers,
            label,
            label_values: raw.label_values_or_threshold,
            predicted_label,
            probability_threshold: raw.probability_threshold,
            facets,
            group_variable,
            excluded,
            pre_training,
            post_training,
            drift_rule: raw.driftd_bias_drift_rule,
        })
    }

    /// Whether the analysis names `column` (as a batch names it): the label, the predicted
    /// label, a facet or the group variable. Limits never leave these out.
    pub fn names_column(&self, column: &str) -> bool {
        let name = self.display_name(column);
        name == self.label
            || self.predicted_label.as_deref() == Some(name)
            || self.group_variable.as_deref() == Some(name)
            || self.facets.iter().any(|f| f.name == name)
    }

    /// The name a data column goes by: a positional `_c{i}` takes `headers[i]` when there is one.
    pub fn display_name<'a>(&'a self, column: &'a str) -> &'a str {
        column
            .strip_prefix("_c")
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| self.headers.get(i))
            .map_or(column, String::as_str)
    }
}

fn stage_methods(stage: Option<&RawStage>, which: Stage) -> Result<Vec<Metric>, (String, String)> {
    let key = match which {
        Stage::PreTraining => "methods.pre_training_bias.methods",
        Stage::PostTraining => "methods.post_training_bias.methods",
    };
    let known: Vec<Metric> = Metric::ALL
        .iter()
        .copied()
        .filter(|m| m.stage() == which)
        .collect();
    let mut metrics = match stage.map(|s| &s.methods) {
        None => return Ok(Vec::new()),
        Some(MethodList::Word(word)) if word == "all" => known.clone(),
        Some(MethodList::Word(word)) => {
            return Err((
                key.into(),
                format!("{word:?} is neither \"all\" nor a list of metric names"),
            ));
        }
        Some(MethodList::Names(names)) => names
            .iter()
            .map(|name| {
                known
                    .iter()
                    .copied()
                    .find(|m| m.name() == name)
                    .ok_or_else(|| {
                        let names: Vec<&str> = known.iter().map(|m| m.name()).collect();
                        (
                            key.to_string(),
                            format!("unknown metric {name:?}; known: {}", names.join(", ")),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    metrics.sort_by_key(|m| m.name());
    metrics.dedup();
    Ok(metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_monitor_config_by_index_and_ignores_unknown_keys() {
        let spec = BiasSpec::from_json(
            r#"{"version": "1.0", "dataset_type": "text/csv", "headers": ["Target", "Age", "Sex", "p"],
                "label": 0, "label_values_or_threshold": [1], "predicted_label": "p",
                "facet": [{"name_or_index": 2, "value_or_threshold": [0]}], "group_variable": "Age",
                "methods": {"pre_training_bias": {"methods": ["KL", "CI"]},
                            "post_training_bias": {"methods": "all"}, "shap": {"num_samples": 10}}}"#,
            "analysis_config.json",
        )
        .unwrap();
        assert_eq!(spec.label, "Target");
        assert_eq!(spec.facets[0].name, "Sex");
        assert_eq!(spec.pre_training, [Metric::CI, Metric::KL]);
        assert_eq!(spec.post_training.len(), 13);
        assert_eq!(spec.display_name("_c1"), "Age");
        assert_eq!(spec.display_name("_c9"), "_c9");
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let error = BiasSpec::from_json(
            r#"{"label": "y", "label_values_or_threshold": [1], "facet": [{"name_or_index": "s"}],
                "methods": {"pre_training_bias": {"methods": ["CI", "XYZ"]}}}"#,
            "cfg.json",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error
                .starts_with("cfg.json: methods.pre_training_bias.methods: unknown metric \"XYZ\""),
            "{error}"
        );
        let error = BiasSpec::from_json(
            r#"{"label": "y", "label_values_or_threshold": [1], "facet": [{"name_or_index": "s"}],
                "methods": {"post_training_bias": {"methods": "all"}}}"#,
            "cfg.json",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("cfg.json: predicted_label: missing"),
            "{error}"
        );
    }
}
