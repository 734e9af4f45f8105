//! Decoded rows (Arrow) → observations: the columns a [`ModelQualitySpec`] names, parsed.
//!
//! Values are read from their text (Parquet numbers are printed first), so `1`, `1.0` and
//! ` 1 ` are the same label. Binary labels are the numbers 0 and 1; multiclass classes are
//! compared as numbers when both read as numbers (`1.0` is class `1`) and as text otherwise.

use arrow::array::{Array, StringArray};
use arrow::record_batch::RecordBatch;

use super::sample::Membership;
use super::state::{MAX_CLASSES, ModelQualityState, Observation};
use super::{ModelQualitySpec, ProblemType};
use crate::decode::as_text;

/// A row left out, and why: the column at fault and what is wrong with its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowSkip {
    /// The row's index in its batch.
    pub row: usize,
    pub field: String,
    pub message: String,
}

/// A batch that lacks a column the monitor needs: none of its rows can be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no column {column:?} (the {setting}); the columns are {available}")]
pub struct BatchError {
    pub setting: &'static str,
    pub column: String,
    pub available: String,
}

/// A column of the batch as text.
struct Column {
    name: String,
    text: StringArray,
}

impl Column {
    fn find(batch: &RecordBatch, setting: &'static str, name: &str) -> Result<Self, BatchError> {
        let Some(array) = batch.column_by_name(name) else {
            let names: Vec<String> = batch
                .schema()
                .fields()
                .iter()
                .map(|f| format!("{:?}", f.name()))
                .collect();
            return Err(BatchError {
                setting,
                column: name.to_string(),
                available: names.join(", "),
            });
        };
        let text = as_text(array)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("as_text gives Utf8")
            .clone();
        Ok(Self {
            name: name.to_string(),
            text,
        })
    }

    fn skip(&self, row: usize, message: String) -> RowSkip {
        RowSkip {
            row,
            field: self.name.clone(),
            message,
        }
    }

    fn value(&self, row: usize) -> Result<&str, RowSkip> {
        let text = (self.text.is_valid(row))
            .then(|| self.text.value(row).trim())
            .filter(|t| !t.is_empty());
        text.ok_or_else(|| self.skip(row, "missing value".into()))
    }

    fn number(&self, row: usize) -> Result<f64, RowSkip> {
        let text = self.value(row)?;
        text.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| self.skip(row, format!("{text:?} is not a finite number")))
    }

    fn binary(&self, row: usize) -> Result<bool, RowSkip> {
        match self.number(row)? {
            1.0 => Ok(true),
            0.0 => Ok(false),
            other => Err(self.skip(row, format!("{other} is not a binary label (0 or 1)"))),
        }
    }

    fn class(&self, row: usize) -> Result<String, RowSkip> {
        Ok(canonical_class(self.value(row)?))
    }
}

/// A class name as the states keep it: a number as its shortest form (`1.0` is class `1`),
/// other text as it is.
pub(crate) fn canonical_class(text: &str) -> String {
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && x.fract() == 0.0 && x.abs() < 9.007_199_254_740_992e15 => {
            format!("{}", x as i64)
        }
        Ok(x) if x.is_finite() => format!("{x}"),
        _ => text.to_string(),
    }
}

/// Adds the rows of `batch` to `state`; `membership(i)` says which subsamples row `i` is in.
/// Returns the rows left out (a missing or unreadable value), which the caller counts.
/// `spec` must be valid ([`ModelQualitySpec::validate`]) and `state` of its problem type.
pub fn add_batch(
    state: &mut ModelQualityState,
    spec: &ModelQualitySpec,
    batch: &RecordBatch,
    membership: impl Fn(usize) -> Membership,
) -> Result<Vec<RowSkip>, BatchError> {
    let truth = Column::find(
        batch,
        "ground truth attribute",
        &spec.ground_truth_attribute,
    )?;
    let inference = spec
        .inference_attribute
        .as_deref()
        .map(|name| Column::find(batch, "inference attribute", name))
        .transpose()?;
    let probability = match spec.problem_type {
        ProblemType::BinaryClassification => spec
            .probability_attribute
            .as_deref()
            .map(|name| Column::find(batch, "probability attribute", name))
            .transpose()?,
        _ => None,
    };
    let mut skipped = Vec::new();
    for row in 0..batch.num_rows() {
        let added = match spec.problem_type {
            ProblemType::BinaryClassification => (|| {
                let actual = truth.binary(row)?;
                let score = probability.as_ref().map(|p| p.number(row)).transpose()?;
                let predicted = match (spec.probability_threshold, score, &inference) {
                    (Some(threshold), Some(score), _) => score > threshold,
                    (_, _, Some(inference)) => inference.binary(row)?,
                    _ => unreachable!("a validated spec has an inference attribute or a threshold"),
                };
                let observation = Observation::Binary {
                    predicted,
                    actual,
                    score,
                };
                Ok(state.add(membership(row), observation))
            })(),
            ProblemType::MulticlassClassification => (|| {
                let inference = inference.as_ref().expect("validated spec");
                let actual = truth.class(row)?;
                let predicted = inference.class(row)?;
                if !state.admits_class_pair(&actual, &predicted) {
                    return Err(RowSkip {
                        row,
                        field: spec.ground_truth_attribute.clone(),
                        message: format!(
                            "a class past the {MAX_CLASSES} actual (or predicted per actual) classes one state keeps"
                        ),
                    });
                }
                let observation = Observation::Multiclass {
                    predicted: &predicted,
                    actual: &actual,
                };
                Ok(state.add(membership(row), observation))
            })(),
            ProblemType::Regression => (|| {
                let inference = inference.as_ref().expect("validated spec");
                let observation = Observation::Regression {
                    actual: truth.number(row)?,
                    predicted: inference.number(row)?,
                };
                Ok(state.add(membership(row), observation))
            })(),
        };
        match added {
            Ok(result) => result.expect("the state was made for the spec's problem type"),
            Err(skip) => skipped.push(skip),
        }
    }
    Ok(skipped)
}
