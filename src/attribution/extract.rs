//! Per-record attributions out of a model's response.
//!
//! * Clarify online explainability (an endpoint with `ExplainerConfig`): the response is one JSON
//!   object whose `explanations.kernel_shap` is a list with one entry per request record —
//!   `null` when the record was not explained, else a list with one entry per feature:
//!   `{"feature_header": "Age", "attributions": [{"label": "…", "attribution": [0.12]}]}`
//!   (`feature_header` only with `feature_headers` configured, `label` only with
//!   `label_headers`; without them features are named by `headers` or `_c<index>`, labels
//!   `label<index>`). Shape as the AWS documentation and AWS's sample code
//!   (`sagemaker-clarify/online_explainability/*/visualization_utils.py`) read it.
//! * A model's own contributions at a JSON path (e.g. XGBoost `pred_contribs` returned under
//!   `contributions`): an object of feature → value, or an array of values named by `headers`
//!   (one value more than headers: the last is the bias, the expected value, as XGBoost writes
//!   it), or an array of those for a batch of records.

use serde_json::Value;

use super::{FIRST_LABEL, RecordAttributions};

#[derive(Debug, Clone, PartialEq)]
pub enum AttributionSource {
    /// `explanations.kernel_shap` of a Clarify online explainability response.
    ClarifyOnline { headers: Option<Vec<String>> },
    /// The value at `path` (keys separated by `.`; an array index is a number).
    JsonPath {
        path: Vec<String>,
        headers: Option<Vec<String>>,
        label: String,
    },
}

impl AttributionSource {
    /// `path` empty or `None`: Clarify's online explainability response; else a JSON path.
    pub fn new(path: Option<&str>, headers: Option<Vec<String>>, label: Option<String>) -> Self {
        match path.filter(|p| !p.is_empty()) {
            None => AttributionSource::ClarifyOnline { headers },
            Some(path) => AttributionSource::JsonPath {
                path: path.split('.').map(str::to_string).collect(),
                headers,
                label: label.unwrap_or_else(|| FIRST_LABEL.to_string()),
            },
        }
    }

    fn headers(&self) -> Option<&[String]> {
        match self {
            AttributionSource::ClarifyOnline { headers }
            | AttributionSource::JsonPath { headers, .. } => headers.as_deref(),
        }
    }

    fn feature_name(&self, index: usize) -> String {
        self.headers()
            .and_then(|h| h.get(index).cloned())
            .unwrap_or_else(|| format!("_c{index}"))
    }

    /// The records of one response value (a JSON document, or one line of JSON Lines): one
    /// entry per record, `None` for a record without attributions. An error names the field.
    pub fn records(&self, output: &Value) -> Result<Vec<Option<RecordAttributions>>, String> {
        match self {
            AttributionSource::ClarifyOnline { .. } => self.clarify_online(output),
            AttributionSource::JsonPath { path, label, .. } => {
                let mut value = output;
                for (depth, key) in path.iter().enumerate() {
                    let next = match value {
                        Value::Object(map) => map.get(key),
                        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
                        _ => None,
                    };
                    value =
                        next.ok_or_else(|| format!("no value at {}", path[..=depth].join(".")))?;
                }
                let joined = path.join(".");
                match value {
                    Value::Array(items)
                        if items.iter().all(|i| i.is_array() || i.is_object())
                            && !items.is_empty() =>
                    {
                        items
                            .iter()
                            .enumerate()
                            .map(|(i, item)| {
                                self.contributions(item, label, &format!("{joined}.{i}"))
                                    .map(Some)
                            })
                            .collect()
                    }
                    _ => Ok(vec![Some(self.contributions(value, label, &joined)?)]),
                }
            }
        }
    }

    fn contributions(
        &self,
        value: &Value,
        label: &str,
        at: &str,
    ) -> Result<RecordAttributions, String> {
        let mut record = RecordAttributions::default();
        match value {
            Value::Object(map) => {
                for (feature, v) in map {
                    let v = number(v).ok_or_else(|| format!("{at}.{feature} is not a number"))?;
                    record.values.push((label.to_string(), feature.clone(), v));
                }
            }
            Value::Array(items) => {
                let bias = self.headers().is_some_and(|h| items.len() == h.len() + 1);
                let features = if bias { items.len() - 1 } else { items.len() };
                for (i, v) in items.iter().enumerate() {
                    let v = number(v).ok_or_else(|| format!("{at}[{i}] is not a number"))?;
                    if i < features {
                        record
                            .values
                            .push((label.to_string(), self.feature_name(i), v));
                    } else {
                        record.expected.push((label.to_string(), v));
                    }
                }
            }
            _ => return Err(format!("{at} is neither an object nor an array")),
        }
        Ok(record)
    }

    fn clarify_online(&self, output: &Value) -> Result<Vec<Option<RecordAttributions>>, String> {
        let records = output
            .get("explanations")
            .ok_or("no explanations (was the endpoint created with a Clarify ExplainerConfig?)")?
            .get("kernel_shap")
            .ok_or("no explanations.kernel_shap")?
            .as_array()
            .ok_or("explanations.kernel_shap is not a list")?;
        records
            .iter()
            .enumerate()
            .map(|(r, record)| {
                let features = match record {
                    Value::Null => return Ok(None),
                    Value::Array(features) => features,
                    _ => return Err(format!("explanations.kernel_shap[{r}] is not a list")),
                };
                let mut out = RecordAttributions::default();
                for (f, feature) in features.iter().enumerate() {
                    let at = format!("explanations.kernel_shap[{r}][{f}]");
                    let name = match feature.get("feature_header") {
                        Some(Value::String(name)) => name.clone(),
                        Some(_) => return Err(format!("{at}.feature_header is not text")),
                        None => self.feature_name(f),
                    };
                    let attributions = feature
                        .get("attributions")
                        .and_then(Value::as_array)
                        .ok_or_else(|| format!("{at}.attributions is missing or not a list"))?;
                    for (l, attribution) in attributions.iter().enumerate() {
                        let label = match attribution.get("label") {
                            Some(Value::String(label)) => label.clone(),
                            Some(other @ Value::Number(_)) => other.to_string(),
                            _ => format!("label{l}"),
                        };
                        // Tabular features have one value; text features one per token
                        // (granularity), which a global feature ranking cannot use.
                        let value = match attribution.get("attribution") {
                            Some(Value::Array(values)) if values.len() == 1 => number(&values[0]),
                            Some(v @ Value::Number(_)) => number(v),
                            _ => None,
                        }
                        .ok_or_else(|| {
                            format!("{at}.attributions[{l}].attribution is not one number")
                        })?;
                        out.values.push((label, name.clone(), value));
                    }
                }
                Ok(Some(out))
            })
            .collect()
    }
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        // Some containers send numbers as text.
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
