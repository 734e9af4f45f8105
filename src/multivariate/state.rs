//! The mergeable per-window state of the reconstruction error, and what a window reports.

use serde::{Deserialize, Serialize};

/// Rows seen in a window: the count, mean and sum of squared deviations of their
/// reconstruction errors (merged with Chan et al.'s formula, exact up to rounding), and per
/// feature the sum of squared residuals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowState {
    pub rows: u64,
    mean: f64,
    m2: f64,
    squared_residuals: Vec<f64>,
    /// Rows refused for an unreadable value.
    pub refused_rows: u64,
}

impl WindowState {
    pub fn new(features: usize) -> Self {
        Self {
            rows: 0,
            mean: 0.0,
            m2: 0.0,
            squared_residuals: vec![0.0; features],
            refused_rows: 0,
        }
    }

    /// Adds one row's residual (standardised row minus its reconstruction).
    pub(super) fn add(&mut self, residual: &[f64]) {
        let mut squared = 0.0;
        for (sum, r) in self.squared_residuals.iter_mut().zip(residual) {
            *sum += r * r;
            squared += r * r;
        }
        let error = squared.sqrt();
        self.rows += 1;
        let delta = error - self.mean;
        self.mean += delta / self.rows as f64;
        self.m2 += delta * (error - self.mean);
    }

    /// Folds `other` (a state of the same baseline) into this one.
    pub fn merge(&mut self, other: &WindowState) {
        assert_eq!(
            self.squared_residuals.len(),
            other.squared_residuals.len(),
            "states of one baseline"
        );
        self.refused_rows += other.refused_rows;
        if other.rows == 0 {
            return;
        }
        for (a, b) in self
            .squared_residuals
            .iter_mut()
            .zip(&other.squared_residuals)
        {
            *a += b;
        }
        let (n_a, n_b) = (self.rows as f64, other.rows as f64);
        let n = n_a + n_b;
        let delta = other.mean - self.mean;
        self.mean += delta * n_b / n;
        self.m2 += other.m2 + delta * delta * n_a * n_b / n;
        self.rows += other.rows;
    }

    /// The mean reconstruction error; `None` without rows.
    pub fn mean_error(&self) -> Option<f64> {
        (self.rows > 0).then_some(self.mean)
    }

    /// NannyML's sampling error: the standard deviation (ddof 1) of the row errors over √n;
    /// `None` below 2 rows.
    pub fn sampling_error(&self) -> Option<f64> {
        (self.rows > 1).then(|| {
            let n = self.rows as f64;
            (self.m2 / (n - 1.0)).sqrt() / n.sqrt()
        })
    }

    /// Features the state is for (its per-feature sums).
    pub fn features(&self) -> usize {
        self.squared_residuals.len()
    }

    /// Checks a state read from outside (a stored window part) for `features` features: every
    /// sum finite and non-negative, no error without rows, and its counts within `max_rows`
    /// so that merges cannot overflow them.
    pub fn validate(&self, features: usize, max_rows: u64) -> Result<(), String> {
        if self.squared_residuals.len() != features {
            return Err(format!(
                "{} per-feature sums for a baseline of {features} features",
                self.squared_residuals.len()
            ));
        }
        match self.rows.checked_add(self.refused_rows) {
            Some(n) if n <= max_rows => {}
            _ => {
                return Err(format!(
                    "{} rows and {} refused, more than a window may hold ({max_rows})",
                    self.rows, self.refused_rows
                ));
            }
        }
        let sums = [self.mean, self.m2]
            .into_iter()
            .chain(self.squared_residuals.iter().copied());
        if let Some(bad) = sums.into_iter().find(|x| !(x.is_finite() && *x >= 0.0)) {
            return Err(format!("a sum is {bad}, not a finite number at least 0"));
        }
        if self.rows == 0 && (self.mean != 0.0 || self.m2 != 0.0) {
            return Err("an error without rows".into());
        }
        Ok(())
    }

    /// Each feature's share of the summed squared reconstruction error (0 without error).
    pub fn shares(&self) -> Vec<f64> {
        let total: f64 = self.squared_residuals.iter().sum();
        self.squared_residuals
            .iter()
            .map(|s| if total > 0.0 { s / total } else { 0.0 })
            .collect()
    }
}

/// A feature and its share of a window's squared reconstruction error, beside its share over
/// the reference (a share far above the reference's points at the feature whose relation to
/// the others changed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureShare {
    pub feature: String,
    pub share: f64,
    pub reference_share: f64,
}

/// One window's (or chunk's) result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChunkResult {
    pub rows: u64,
    pub rows_refused: u64,
    /// Mean reconstruction error; `null` without rows.
    pub reconstruction_error: Option<f64>,
    pub sampling_error: Option<f64>,
    /// `null`: no bound on that side.
    pub lower_threshold: Option<f64>,
    pub upper_threshold: Option<f64>,
    pub alert: bool,
    pub top_features: Vec<FeatureShare>,
}
