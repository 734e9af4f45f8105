//! Clarify's bias metrics (FORMATS.md §6): read `analysis_config.json`, reduce rows to a
//! mergeable [`BiasState`], and write `analysis.json` as Clarify does.
//!
//! ```text
//! analysis_config.json ─► BiasSpec ─┐
//! Arrow batches ────────────────────┴► BiasState ─(merge)─► evaluate ─► metrics ─► analysis.json
//! ```
//!
//! smclarify (Clarify's open-source metric code) is the reference: tests/it/bias_oracle.rs compares
//! every metric with its `bias_report`.

pub mod config;
pub mod drift;
pub mod groups;
pub mod metrics;
pub mod report;
pub mod state;

pub use config::{BiasSpec, ConfigError};
pub use metrics::{Metric, Stage};
pub use report::{Analysis, analysis};
pub use state::{BiasState, Evaluation};

pub const ANALYSIS_FILE: &str = "analysis.json";
