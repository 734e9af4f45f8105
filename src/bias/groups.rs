//! driftd's addition to a bias window: the row counts behind Clarify's metrics, per facet value
//! (`bias_groups.json`, written beside Clarify's files, which stay as Clarify writes them). The
//! compliance report's impact and coverage tables need them; `analysis.json` holds only ratios.

use serde::{Deserialize, Serialize};

use super::config::BiasSpec;
use super::metrics::{Confusion, FacetCounts};
use super::state::Evaluation;

pub const GROUPS_FILE: &str = "bias_groups.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BiasGroups {
    pub version: String,
    /// Rows of the window.
    pub rows: u64,
    pub label: String,
    pub label_value_or_threshold: String,
    /// Why labels could not be read as positive/negative (then every label counts as negative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_error: Option<String>,
    /// Why predictions could not be read, or that the analysis has no predicted label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction_error: Option<String>,
    pub facets: Vec<FacetGroups>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FacetGroups {
    pub name: String,
    /// Whether the facet's values were configured (one group of those values against the rest)
    /// or enumerated (each value against the rest; missing values in no group).
    pub configured_values: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub groups: Vec<GroupCounts>,
}

/// One facet selection (Clarify's `value_or_threshold`): its rows and the rest's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupCounts {
    pub value_or_threshold: String,
    pub facet: Cells,
    pub rest: Cells,
}

/// Rows by binary label × binary prediction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cells {
    pub true_positive: u64,
    pub false_positive: u64,
    pub false_negative: u64,
    pub true_negative: u64,
}

impl Cells {
    fn of(confusion: &Confusion, in_facet: usize) -> Self {
        let c = &confusion[in_facet];
        Cells {
            true_positive: c[1][1],
            false_positive: c[0][1],
            false_negative: c[1][0],
            true_negative: c[0][0],
        }
    }

    pub fn rows(&self) -> u64 {
        self.true_positive + self.false_positive + self.false_negative + self.true_negative
    }

    pub fn predicted_positive(&self) -> u64 {
        self.true_positive + self.false_positive
    }

    pub fn labelled_positive(&self) -> u64 {
        self.true_positive + self.false_negative
    }

    pub fn add(&mut self, other: &Cells) {
        self.true_positive += other.true_positive;
        self.false_positive += other.false_positive;
        self.false_negative += other.false_negative;
        self.true_negative += other.true_negative;
    }
}

impl GroupCounts {
    /// The counts the metrics take, without the group variable's split (so not for CDDL or
    /// CDDPL).
    pub fn facet_counts(&self) -> FacetCounts {
        let mut all = Confusion::default();
        for (side, cells) in [(0, &self.rest), (1, &self.facet)] {
            all[side][1][1] = cells.true_positive;
            all[side][0][1] = cells.false_positive;
            all[side][1][0] = cells.false_negative;
            all[side][0][0] = cells.true_negative;
        }
        FacetCounts { all, groups: None }
    }
}

impl BiasGroups {
    /// The counts of an evaluated state.
    pub fn new(spec: &BiasSpec, evaluation: &Evaluation) -> Self {
        let facets = evaluation
            .facets
            .iter()
            .zip(&spec.facets)
            .map(|(facet, facet_spec)| {
                let (groups, error) = match &facet.selections {
                    Ok(selections) => (
                        selections
                            .iter()
                            .map(|s| GroupCounts {
                                value_or_threshold: s.value_or_threshold.clone(),
                                facet: Cells::of(&s.counts.all, 1),
                                rest: Cells::of(&s.counts.all, 0),
                            })
                            .collect(),
                        None,
                    ),
                    Err(e) => (Vec::new(), Some(e.clone())),
                };
                FacetGroups {
                    name: facet.name.clone(),
                    configured_values: !facet_spec.values.is_empty(),
                    error,
                    groups,
                }
            })
            .collect();
        BiasGroups {
            version: "1.0".into(),
            rows: evaluation.sample.of,
            label: evaluation.label.clone(),
            label_value_or_threshold: evaluation.label_value_or_threshold.clone(),
            label_error: evaluation.label_error.clone(),
            prediction_error: match &spec.predicted_label {
                Some(_) => evaluation.prediction_error.clone(),
                None => Some("the analysis names no predicted label".into()),
            },
            facets,
        }
    }
}
