//! Clarify's `analysis.json` (FORMATS.md §6.5): per stage the label, the positive label values
//! (or the label's interval), and per facet and facet value the metrics, sorted by name, with
//! Clarify's descriptions; ±∞ as the strings `"Infinity"` / `"-Infinity"`; a metric that cannot be
//! computed has `"value": null` and its `"error"`.
//!
//! driftd's one addition: when the Flip Test ran on a sample of the rows, its entry says so in a
//! `"note"`.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::config::BiasSpec;
use super::groups::BiasGroups;
use super::metrics::{self, Metric, Stage};
use super::state::Evaluation;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_training_bias_metrics: Option<StageReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_training_bias_metrics: Option<StageReport>,
    /// The counts behind the metrics: not part of Clarify's file, written beside it as
    /// `bias_groups.json` (None when read back from a file).
    #[serde(skip)]
    pub groups: Option<Box<BiasGroups>>,
}

impl Analysis {
    /// A metric's value for a facet value (metric names are unique across the two stages).
    pub fn value(&self, facet: &str, facet_value: &str, metric: &str) -> Option<f64> {
        [
            &self.pre_training_bias_metrics,
            &self.post_training_bias_metrics,
        ]
        .into_iter()
        .flatten()
        .filter_map(|stage| stage.facets.get(facet))
        .flatten()
        .filter(|f| f.value_or_threshold == facet_value)
        .flat_map(|f| &f.metrics)
        .find(|m| m.name == metric)
        .and_then(|m| m.value)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageReport {
    pub label: String,
    pub label_value_or_threshold: String,
    pub facets: IndexMap<String, Vec<FacetReport>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FacetReport {
    pub value_or_threshold: String,
    pub metrics: Vec<MetricEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricEntry {
    pub name: String,
    pub description: String,
    #[serde(with = "value_serde")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl MetricEntry {
    fn new(metric: Metric, result: metrics::MetricResult) -> Self {
        let (value, error) = match result {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(e)),
        };
        MetricEntry {
            name: metric.name().to_string(),
            description: metric.description().to_string(),
            value,
            error,
            note: None,
        }
    }
}

/// `value`: a number, `"Infinity"` / `"-Infinity"`, or null (smclarify's `inf_as_str`).
mod value_serde {
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_json::Value;

    pub fn serialize<S: Serializer>(value: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            None => s.serialize_none(),
            Some(v) if *v == f64::INFINITY => s.serialize_str("Infinity"),
            Some(v) if *v == f64::NEG_INFINITY => s.serialize_str("-Infinity"),
            // JSON has no NaN; no Clarify metric produces one from counts.
            Some(v) if v.is_nan() => s.serialize_none(),
            Some(v) => s.serialize_f64(*v),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) if s == "Infinity" => Some(f64::INFINITY),
            Value::String(s) if s == "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        })
    }
}

/// The `analysis.json` of an evaluated state.
pub fn analysis(spec: &BiasSpec, evaluation: &Evaluation) -> Analysis {
    let stage = |metrics: &[Metric], which: Stage| -> Option<StageReport> {
        if metrics.is_empty() {
            return None;
        }
        let stage_error = match which {
            Stage::PreTraining => evaluation.label_error.clone(),
            Stage::PostTraining => evaluation
                .label_error
                .clone()
                .or(evaluation.prediction_error.clone()),
        };
        let facets = evaluation
            .facets
            .iter()
            .map(|facet| {
                let reports = match &facet.selections {
                    Ok(selections) => selections
                        .iter()
                        .map(|selection| FacetReport {
                            value_or_threshold: selection.value_or_threshold.clone(),
                            metrics: metrics
                                .iter()
                                .map(|&metric| {
                                    if let Some(error) = &stage_error {
                                        return MetricEntry::new(metric, Err(error.clone()));
                                    }
                                    if metric != Metric::FT {
                                        return MetricEntry::new(
                                            metric,
                                            metrics::compute(metric, &selection.counts),
                                        );
                                    }
                                    let result = selection
                                        .flip_test
                                        .clone()
                                        .unwrap_or_else(|| Err("no predictions".into()))
                                        .map(|flips| flips.value());
                                    let mut entry = MetricEntry::new(metric, result);
                                    if evaluation.sample.is_partial() {
                                        entry.note = Some(format!(
                                            "computed on a uniform sample of {} of {} rows",
                                            evaluation.sample.rows, evaluation.sample.of
                                        ));
                                    }
                                    entry
                                })
                                .collect(),
                        })
                        .collect(),
                    // A facet that cannot be split: one entry whose metrics all carry the error.
                    Err(error) => vec![FacetReport {
                        value_or_threshold: String::new(),
                        metrics: metrics
                            .iter()
                            .map(|&m| MetricEntry::new(m, Err(error.clone())))
                            .collect(),
                    }],
                };
                (facet.name.clone(), reports)
            })
            .collect();
        Some(StageReport {
            label: evaluation.label.clone(),
            label_value_or_threshold: evaluation.label_value_or_threshold.clone(),
            facets,
        })
    };
    Analysis {
        version: "1.0".to_string(),
        post_training_bias_metrics: stage(&spec.post_training, Stage::PostTraining),
        pre_training_bias_metrics: stage(&spec.pre_training, Stage::PreTraining),
        groups: Some(Box::new(BiasGroups::new(spec, evaluation))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infinite_values_are_strings_and_errors_have_null_values() {
        let entries = [
            MetricEntry::new(Metric::TE, Ok(f64::INFINITY)),
            MetricEntry::new(Metric::CI, Err("CI: facet set is empty.".into())),
        ];
        let text = serde_json::to_string(&entries).unwrap();
        assert_eq!(
            text,
            r#"[{"name":"TE","description":"Treatment Equality (TE)","value":"Infinity"},{"name":"CI","description":"Class Imbalance (CI)","value":null,"error":"CI: facet set is empty."}]"#
        );
        let back: Vec<MetricEntry> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, entries);
    }
}
