//! A window's profile against its baseline → findings: the window's statistics, constraint
//! violations and drift. Pure and synchronous; nothing here does I/O.

pub mod distance;
pub mod drift;
pub mod metrics;
pub mod quality;

use crate::baseline::{Baseline, Constraints, Statistics};
use crate::profile::Profile;

pub use drift::DriftReport;
pub use quality::{CheckType, ConstraintViolations, Violation};

/// Everything one window yields for the data-quality monitor.
#[derive(Debug, Clone)]
pub struct Findings {
    pub statistics: Statistics,
    /// Suggested from the window itself, as a Model Monitor execution writes its
    /// `constraints.json` (observed completeness, the window's types).
    pub constraints: Constraints,
    pub violations: ConstraintViolations,
    pub drift: DriftReport,
}

pub fn analyze(baseline: &Baseline, current: &Profile) -> Findings {
    let drift = drift::compare(baseline, current);
    let statistics = Statistics::from_profile(current);
    Findings {
        constraints: Constraints::suggest(&statistics),
        statistics,
        violations: quality::check(baseline, current, &drift),
        drift,
    }
}

/// Headerless input (capture CSV) names its columns `_c0, _c1, …`; like Model Monitor, take the
/// baseline's names by position. Columns beyond the baseline's keep their positional names, so
/// the extra column check still sees them.
pub fn adopt_baseline_names(mut profile: Profile, baseline: &Statistics) -> Profile {
    let positional = |name: &str, i: usize| name == format!("_c{i}");
    let headerless = profile
        .columns
        .keys()
        .enumerate()
        .all(|(i, name)| positional(name, i));
    let baseline_positional = baseline
        .features
        .iter()
        .enumerate()
        .all(|(i, f)| positional(&f.name, i));
    if !headerless || baseline_positional {
        return profile;
    }
    profile.columns = std::mem::take(&mut profile.columns)
        .into_iter()
        .enumerate()
        .map(|(i, (name, column))| match baseline.features.get(i) {
            Some(feature) => (feature.name.clone(), column),
            None => (name, column),
        })
        .collect();
    profile
}
