//! Data-quality constraints of a baseline checked against a window (`constraint_violations.json`,
//! FORMATS.md §3.3 and §4.1), with Model Monitor's wording where it is known.

use serde::{Deserialize, Serialize};

use super::drift::DriftReport;
use crate::baseline::Baseline;
use crate::baseline::constraints::Switch;
use crate::format::java_double;
use crate::profile::{ColumnProfile, DataType, Frequencies, Profile};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckType {
    DataTypeCheck,
    CompletenessCheck,
    BaselineDriftCheck,
    MissingColumnCheck,
    ExtraColumnCheck,
    CategoricalValuesCheck,
    /// driftd's addition, off unless asked for (`Baseline::non_negative_check`): Model Monitor
    /// suggests `is_non_negative` but raises nothing for negative values (a real execution with
    /// negative values under `is_non_negative: true` lists no violation for them).
    IsNonNegativeCheck,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub feature_name: String,
    pub constraint_check_type: CheckType,
    pub description: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConstraintViolations {
    pub violations: Vec<Violation>,
}

/// Checks `current` against the baseline's constraints; `drift` supplies the distances for
/// `baseline_drift_check`.
pub fn check(baseline: &Baseline, current: &Profile, drift: &DriftReport) -> ConstraintViolations {
    let config = &baseline.constraints.monitoring_config;
    let mut violations = Vec::new();
    if config.evaluate_constraints == Switch::Disabled {
        return ConstraintViolations { violations };
    }
    let baseline_columns = baseline.constraints.features.len();
    for constraint in &baseline.constraints.features {
        let overrides = constraint.overrides();
        if overrides.evaluate_constraints == Some(Switch::Disabled) {
            continue;
        }
        let name = &constraint.name;
        let mut flag = |check, description: String| {
            violations.push(Violation {
                feature_name: name.clone(),
                constraint_check_type: check,
                description,
            })
        };
        let Some(column) = current.columns.get(name) else {
            flag(
                CheckType::MissingColumnCheck,
                format!(
                    "There are missing columns in current dataset. Number of columns in current dataset: {}, Number of columns in baseline constraints: {baseline_columns}",
                    current.columns.len()
                ),
            );
            continue;
        };

        let required = overrides
            .datatype_check_threshold
            .unwrap_or(config.datatype_check_threshold);
        if let Some((matching, present)) = type_matches(constraint.inferred_type, column)
            && (matching as f64) < required * present as f64
        {
            flag(
                CheckType::DataTypeCheck,
                format!(
                    "Data type match requirement is not met. Expected data type: {:?}, Expected match: {}%. Observed: Only {}% of data is {:?}.",
                    constraint.inferred_type,
                    java_double(required * 100.0),
                    java_double(matching as f64 * 100.0 / present as f64),
                    constraint.inferred_type
                ),
            );
        }

        if let Some(expected) = constraint.completeness {
            let observed = column.completeness();
            if observed < expected {
                flag(
                    CheckType::CompletenessCheck,
                    format!(
                        "Data completeness requirement is not met. Expected: {}%. Observed: Only {}%.",
                        java_double(expected * 100.0),
                        java_double(observed * 100.0)
                    ),
                );
            }
        }

        if baseline.non_negative_check
            && constraint
                .num_constraints
                .is_some_and(|n| n.is_non_negative)
            && column.moments.count > 0
            && column.moments.min < 0.0
        {
            flag(
                CheckType::IsNonNegativeCheck,
                format!(
                    "Value: {} does not meet the constraint requirement! Expected non-negative values, observed minimum {}.",
                    java_double(non_negative_share(column)),
                    java_double(column.moments.min)
                ),
            );
        }

        let domain = constraint
            .string_constraints
            .as_ref()
            .and_then(|s| s.domains.as_ref());
        if let Some(domain) = domain {
            let required = overrides
                .domain_content_threshold
                .unwrap_or(config.domain_content_threshold);
            match in_domain_share(domain, column) {
                Some(in_domain) if in_domain < required => flag(
                    CheckType::CategoricalValuesCheck,
                    format!(
                        "Value: {} does not meet the constraint requirement! ",
                        java_double(in_domain)
                    ),
                ),
                Some(_) => {}
                // Too many distinct values to have kept them: all but a few of them are
                // necessarily outside a domain of at most 120 values.
                None => flag(
                    CheckType::CategoricalValuesCheck,
                    format!(
                        "Value: unknown (more than {} distinct values, the domain has {}) does not meet the constraint requirement! ",
                        Frequencies::CAP,
                        domain.len()
                    ),
                ),
            }
        }

        if super::drift::comparison_enabled(baseline)
            && let Some(feature) = drift.feature(name)
            && feature.drifted
        {
            // Every real drift violation, numerical or categorical, has this wording; only a
            // chi-squared test (a p-value below its threshold) cannot be said with it.
            let description = if feature.method == "chi2_p_value" {
                format!(
                    "Categorical chi-squared p-value: {} is below categorical threshold: {}",
                    java_double(feature.distance),
                    java_double(feature.threshold)
                )
            } else {
                format!(
                    "Baseline drift distance: {} exceeds threshold: {}",
                    java_double(feature.distance),
                    java_double(feature.threshold)
                )
            };
            flag(CheckType::BaselineDriftCheck, description);
        }
    }
    for name in current.columns.keys() {
        if baseline.constraints.feature(name).is_none() {
            violations.push(Violation {
                feature_name: name.clone(),
                constraint_check_type: CheckType::ExtraColumnCheck,
                description: format!(
                    "There are extra columns in current dataset. Number of columns in current dataset: {}, Number of columns in baseline constraints: {baseline_columns}",
                    current.columns.len()
                ),
            });
        }
    }
    ConstraintViolations { violations }
}

/// How many present values have the baseline's type, and how many are present; `None` when
/// nothing is present to judge. The match is exact, as Deequ's type ratio: real executions
/// flag a String feature whose values are numbers ("Only 0.0% of data is String") and an
/// Integral one with a few fractional values, so an Integral value does not count as
/// Fractional either. `true`/`false` values count as String, the type driftd reports for them.
fn type_matches(expected: DataType, column: &ColumnProfile) -> Option<(u64, u64)> {
    let t = &column.types;
    let present = t.integral + t.fractional + t.boolean + t.string;
    if present == 0 {
        return None;
    }
    let matching = match expected {
        DataType::Integral => t.integral,
        DataType::Fractional => t.fractional,
        DataType::Boolean => t.boolean,
        DataType::String => t.string + t.boolean,
        DataType::Unknown => return None,
    };
    Some((matching, present))
}

/// Share of the numeric values that are ≥ 0, read from the sketch.
fn non_negative_share(column: &ColumnProfile) -> f64 {
    let total = column.kll.total_weight();
    if total == 0 {
        return 1.0;
    }
    1.0 - column.kll.rank_exclusive(0.0) as f64 / total as f64
}

/// Share of present values inside the baseline's domain; `None` when the column has too many
/// distinct values to have kept them.
fn in_domain_share(domain: &[String], column: &ColumnProfile) -> Option<f64> {
    let counts = column.frequencies.counts()?;
    let total: u64 = counts.values().sum();
    let inside: u64 = domain
        .iter()
        .filter_map(|value| counts.get(value.as_str()))
        .sum();
    Some(if total == 0 {
        1.0
    } else {
        inside as f64 / total as f64
    })
}
