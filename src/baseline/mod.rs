//! Baselines in SageMaker's format: `statistics.json` + `constraints.json` in one directory.

pub mod constraints;
pub mod statistics;

use std::path::Path;

pub use constraints::Constraints;
pub use statistics::Statistics;

use crate::json_file::{FileError, read_json, write_json};
use crate::profile::Profile;

pub const STATISTICS_FILE: &str = "statistics.json";
pub const CONSTRAINTS_FILE: &str = "constraints.json";

/// What new data is compared with.
#[derive(Debug, Clone)]
pub struct Baseline {
    pub statistics: Statistics,
    pub constraints: Constraints,
    /// driftd's `is_non_negative_check`, off by default: Model Monitor raises nothing for
    /// negative values under `is_non_negative: true`, so a migrating team gets it only on request.
    pub non_negative_check: bool,
}

impl Baseline {
    /// Builds a baseline from the profile of a baseline dataset, as Model Monitor's
    /// `suggest_baseline` job does.
    pub fn from_profile(profile: &Profile) -> Self {
        let statistics = Statistics::from_profile(profile);
        let constraints = Constraints::suggest(&statistics);
        Self {
            statistics,
            constraints,
            non_negative_check: false,
        }
    }

    /// Reads `statistics.json` and `constraints.json` from `dir` (driftd's or SageMaker's).
    pub fn load(dir: &Path) -> Result<Self, FileError> {
        Ok(Self {
            statistics: read_json(&dir.join(STATISTICS_FILE))?,
            constraints: read_json(&dir.join(CONSTRAINTS_FILE))?,
            non_negative_check: false,
        })
    }

    pub fn write(&self, dir: &Path) -> Result<(), FileError> {
        write_json(&dir.join(STATISTICS_FILE), &self.statistics)?;
        write_json(&dir.join(CONSTRAINTS_FILE), &self.constraints)
    }
}
