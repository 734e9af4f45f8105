//! driftd's addition to a bias window: the row counts behind Clarify's metrics, per facet value
//! (`bias_groups.json`, written beside Clarify's files, which stay as Clarify writes them). The
//! compliance report's impact and coverage tables need them; `analysis.json` holds only ratios.

use serde::{Deserialize, Serialize};

use super::config::BiasSpec;
use super::metrics::{Confusion, FacetCounts, FlipCounts, GroupKey};
use super::state::{Evaluation, PairEvaluation};

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
    /// The intersectional counts, one per pair of facets. Absent from the files of an older
    /// driftd, and `None` when the window's state kept none (window-state format version 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairs: Option<Vec<PairGroups>>,
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
    /// The same rows split by the group variable's value (CDDL and CDDPL need it); absent
    /// without a group variable, and from the files of an older driftd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_group: Option<Vec<GroupVariableCounts>>,
    /// The Flip Test's counts, when FT was computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flips: Option<FlipCounts>,
}

/// One value of the group variable: its rows in the facet selection and in the rest (rows
/// without a value are in no entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupVariableCounts {
    pub group: GroupKey,
    pub facet: Cells,
    pub rest: Cells,
}

/// The counts of one pair of facets: one cell per combination of their groups that has rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairGroups {
    pub facets: [String; 2],
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub cells: Vec<PairCellCounts>,
    /// Rows with a missing value of an enumerated facet (the unknown category).
    pub unknown: u64,
    /// Rows in no cell because the window's state reached its limit of pair cells.
    pub refused: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairCellCounts {
    /// The cell's group of each facet, e.g. ["sex = 0", "race = b"].
    pub groups: [String; 2],
    pub counts: Cells,
}

impl PairGroups {
    fn new(pair: &PairEvaluation) -> Self {
        let (cells, unknown, error) = match &pair.table {
            Ok(table) => (
                table
                    .cells
                    .iter()
                    .map(|cell| PairCellCounts {
                        groups: cell.groups.clone(),
                        counts: Cells::of_label_prediction(&cell.counts),
                    })
                    .collect(),
                table.unknown,
                None,
            ),
            Err(e) => (Vec::new(), 0, Some(e.clone())),
        };
        PairGroups {
            facets: pair.facets.clone(),
            error,
            cells,
            unknown,
            refused: pair.refused,
        }
    }
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
        Self::of_label_prediction(&confusion[in_facet])
    }

    /// From rows indexed by binary label, then binary prediction.
    fn of_label_prediction(c: &[[u64; 2]; 2]) -> Self {
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
    /// The counts the metrics take (with the group variable's split when the file has it).
    pub fn facet_counts(&self) -> FacetCounts {
        FacetCounts {
            all: confusion(&self.facet, &self.rest),
            groups: self.by_group.as_ref().map(|groups| {
                groups
                    .iter()
                    .map(|g| (g.group.clone(), confusion(&g.facet, &g.rest)))
                    .collect()
            }),
        }
    }
}

/// The confusion counts of the facet selection and of the rest.
fn confusion(facet: &Cells, rest: &Cells) -> Confusion {
    let mut all = Confusion::default();
    for (side, cells) in [(0, rest), (1, facet)] {
        all[side][1][1] = cells.true_positive;
        all[side][0][1] = cells.false_positive;
        all[side][1][0] = cells.false_negative;
        all[side][0][0] = cells.true_negative;
    }
    all
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
                                by_group: s.counts.groups.as_ref().map(|groups| {
                                    groups
                                        .iter()
                                        .map(|(group, c)| GroupVariableCounts {
                                            group: group.clone(),
                                            facet: Cells::of(c, 1),
                                            rest: Cells::of(c, 0),
                                        })
                                        .collect()
                                }),
                                flips: s.flip_test.clone().and_then(Result::ok),
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
            pairs: evaluation
                .pairs
                .as_ref()
                .map(|pairs| pairs.iter().map(PairGroups::new).collect()),
        }
    }
}
