//! Multivariate drift by PCA reconstruction error, as NannyML 0.13.1's
//! `DataReconstructionDriftCalculator` computes it (defaults: `n_components=0.65`, mean /
//! most-frequent imputation, `StandardDeviationThreshold(3, 3)`).
//!
//! Fitting on a reference:
//! - a feature is continuous when every present value reads as a number, else categorical
//!   (pandas' dtype rule for a text file);
//! - missing values are imputed: continuous with the reference mean, categorical with the most
//!   frequent value (ties: the smallest text, as scikit-learn's `SimpleImputer`);
//! - categorical values become their relative frequency in the (imputed) reference, an unseen
//!   value 0 (category_encoders' `CountEncoder(normalize=True)`, `handle_unknown="value"`);
//! - every column is standardised (mean, ddof-0 standard deviation; a constant column keeps
//!   scale 1, as scikit-learn's `StandardScaler`);
//! - PCA on the standardised reference keeps the fewest leading components whose explained
//!   variance ratio sums past 0.65 (scikit-learn's rule for a float `n_components`);
//! - a row's reconstruction error is the Euclidean distance between the standardised row and
//!   its projection back from the kept components; a chunk's value is the mean over its rows;
//! - thresholds: mean ± 3 standard deviations (ddof 0) of the reference chunks' values; a lower
//!   threshold at or below 0 is dropped (NannyML's lower limit 0 with `override_using_none`);
//!   a chunk alerts when its value is not strictly between the thresholds.
//!
//! Per window the state ([`WindowState`]) is a count, the mean and squared deviations of the
//! row errors (Chan's merge) and per feature the sum of squared residuals: it merges exactly
//! (up to float rounding) across objects and replicas. The per-feature sums say which features
//! the model of the reference fails to reconstruct: their shares of the squared error.
//!
//! Limits: at most [`MAX_FEATURES`] features (the fit is O(rows · features²)), at most
//! [`MAX_CATEGORIES`] distinct values of a categorical feature (the baseline keeps each), at
//! most [`MAX_REFERENCE_CELLS`] reference values held in memory. A row with a value that
//! cannot be read (text in a continuous feature, an infinite number) is refused and counted.

pub mod monitor;
mod state;
#[cfg(test)]
mod tests;

use indexmap::IndexMap;
use nalgebra::{DMatrix, SymmetricEigen};
use serde::{Deserialize, Serialize};

use crate::cbpe::Chunking;
use crate::cbpe::numpy;

pub use monitor::{MultivariateSpec, MultivariateWindow};
pub use state::{ChunkResult, FeatureShare, WindowState};

/// NannyML's default `n_components`: the share of variance the kept components explain.
pub const VARIANCE_KEPT: f64 = 0.65;
/// Thresholds are the reference chunks' mean ± this many standard deviations.
pub const THRESHOLD_STDS: f64 = 3.0;
/// Most features one baseline takes: the fit costs O(rows · features²) and the eigen
/// decomposition O(features³).
pub const MAX_FEATURES: usize = 256;
/// Most distinct values of one categorical feature (each is kept in the baseline with its
/// frequency); a column with more is most likely an identifier, not a feature.
pub const MAX_CATEGORIES: usize = 10_000;
/// Most reference values (rows × features) held in memory while fitting: 12 bytes each
/// (the number and a category code), so about 600 MB at the limit.
pub const MAX_REFERENCE_CELLS: usize = 50_000_000;
/// Features reported as contributing most to a chunk's error.
pub const TOP_FEATURES: usize = 3;

/// Text read as a missing value (pandas' `read_csv` defaults, the common ones).
pub fn is_missing(text: &str) -> bool {
    matches!(
        text.trim(),
        "" | "NA"
            | "N/A"
            | "n/a"
            | "NaN"
            | "nan"
            | "-NaN"
            | "-nan"
            | "NULL"
            | "null"
            | "None"
            | "<NA>"
    )
}

/// How one feature becomes a number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Encoding {
    /// The value itself; a missing value is the reference mean.
    Continuous { impute: f64 },
    /// The value's relative frequency in the reference (0 when unseen); a missing value is
    /// `impute`, the reference's most frequent value.
    Categorical {
        impute: String,
        frequencies: IndexMap<String, f64>,
    },
}

/// One feature of a baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    pub name: String,
    #[serde(flatten)]
    pub encoding: Encoding,
    /// StandardScaler's mean and scale of the encoded column.
    pub scaler_mean: f64,
    pub scaler_scale: f64,
    /// The mean of the standardised column (PCA centres on it; ~0).
    pub pca_mean: f64,
    /// This feature's share of the squared reconstruction error over the whole reference.
    pub reference_share: f64,
}

/// What a row's value could not be read as.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("feature {feature:?}: {text:?} is not a finite number")]
pub struct Unreadable {
    pub feature: String,
    pub text: String,
}

/// Why a baseline could not be fitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    #[error("no features")]
    NoFeatures,
    #[error("{0} features, more than the {MAX_FEATURES} a multivariate baseline takes")]
    TooManyFeatures(usize),
    #[error("the reference has {0} usable rows; PCA needs at least 2")]
    TooFewRows(usize),
    #[error(
        "more than {MAX_REFERENCE_CELLS} reference values (rows × features); use a smaller reference"
    )]
    TooManyCells,
    #[error("feature {0:?} has no value in the reference")]
    NoValues(String),
    #[error(
        "feature {0:?} has more than {MAX_CATEGORIES} distinct values; an identifier is not a feature (leave it out of --features)"
    )]
    TooManyCategories(String),
    #[error("a row has {got} values for {expected} features")]
    RowWidth { expected: usize, got: usize },
}

/// A reference column as read: numbers while they read as such, and a dictionary of the texts
/// (until it passes [`MAX_CATEGORIES`]) in case the column turns out categorical.
#[derive(Debug, Default)]
struct RawColumn {
    /// NaN for a missing value or for text that is not a number.
    numbers: Vec<f64>,
    /// Every present value reads as a number.
    numeric: bool,
    codes: Vec<u32>,
    dictionary: IndexMap<String, u32>,
    dictionary_full: bool,
}

const MISSING_CODE: u32 = u32::MAX;

/// Collects the reference row by row (text cells, `None` for missing).
#[derive(Debug)]
pub struct ReferenceBuilder {
    names: Vec<String>,
    columns: Vec<RawColumn>,
    rows: usize,
}

impl ReferenceBuilder {
    pub fn new(names: Vec<String>) -> Result<Self, FitError> {
        if names.is_empty() {
            return Err(FitError::NoFeatures);
        }
        if names.len() > MAX_FEATURES {
            return Err(FitError::TooManyFeatures(names.len()));
        }
        let columns = names
            .iter()
            .map(|_| RawColumn {
                numeric: true,
                ..RawColumn::default()
            })
            .collect();
        Ok(Self {
            names,
            columns,
            rows: 0,
        })
    }

    /// The same columns under other names (when the names are known only after the first
    /// row).
    pub fn renamed(mut self, names: Vec<String>) -> Self {
        assert_eq!(names.len(), self.names.len(), "one name per column");
        self.names = names;
        self
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn push_row(&mut self, cells: &[Option<&str>]) -> Result<(), FitError> {
        if cells.len() != self.columns.len() {
            return Err(FitError::RowWidth {
                expected: self.columns.len(),
                got: cells.len(),
            });
        }
        if (self.rows + 1) * self.columns.len() > MAX_REFERENCE_CELLS {
            return Err(FitError::TooManyCells);
        }
        for (column, cell) in self.columns.iter_mut().zip(cells) {
            let text = cell.map(str::trim).filter(|t| !is_missing(t));
            let Some(text) = text else {
                column.numbers.push(f64::NAN);
                column.codes.push(MISSING_CODE);
                continue;
            };
            let number = text.parse::<f64>().ok();
            if number.is_none() {
                column.numeric = false;
            }
            column.numbers.push(number.unwrap_or(f64::NAN));
            let code = match column.dictionary.get(text) {
                Some(&code) => code,
                None if column.dictionary.len() < MAX_CATEGORIES => {
                    let code = column.dictionary.len() as u32;
                    column.dictionary.insert(text.to_string(), code);
                    code
                }
                None => {
                    column.dictionary_full = true;
                    MISSING_CODE
                }
            };
            column.codes.push(code);
        }
        self.rows += 1;
        Ok(())
    }
}

/// A fitted multivariate-drift baseline (`multivariate_baseline.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub features: Vec<Feature>,
    /// Kept principal axes, one row of `features.len()` loadings each.
    pub components: Vec<Vec<f64>>,
    /// Explained variance ratio of every axis (kept or not), descending.
    pub explained_variance_ratio: Vec<f64>,
    /// Rows per chunk the thresholds were learned on (the last chunk also holds the rest).
    pub chunk_size: usize,
    pub reference_rows: usize,
    /// Reference rows refused for an unreadable value.
    pub reference_rows_refused: u64,
    /// The reference chunks' mean reconstruction errors.
    pub reference_chunk_errors: Vec<f64>,
    pub lower_threshold: Option<f64>,
    pub upper_threshold: Option<f64>,
}

impl Baseline {
    /// Fits on the reference. `chunking` splits the reference into the chunks whose errors set
    /// the thresholds; later chunks should have the same size ([`Baseline::chunk_size`]).
    pub fn fit(reference: ReferenceBuilder, chunking: Chunking) -> Result<Self, FitError> {
        let ReferenceBuilder {
            names,
            columns,
            rows,
        } = reference;
        let width = names.len();
        // Rows with an infinite number in a continuous feature are refused.
        let mut kept = vec![true; rows];
        for column in columns.iter().filter(|c| c.numeric) {
            for (row, x) in column.numbers.iter().enumerate() {
                if x.is_infinite() {
                    kept[row] = false;
                }
            }
        }
        let n = kept.iter().filter(|&&k| k).count();
        if n < 2 {
            return Err(FitError::TooFewRows(n));
        }
        let mut encodings = Vec::with_capacity(width);
        let mut encoded = vec![0.0; n * width];
        for (j, (name, column)) in names.iter().zip(&columns).enumerate() {
            let encoding = if column.numeric {
                let present: Vec<f64> = column
                    .numbers
                    .iter()
                    .zip(&kept)
                    .filter(|(x, k)| **k && !x.is_nan())
                    .map(|(x, _)| *x)
                    .collect();
                if present.is_empty() {
                    return Err(FitError::NoValues(name.clone()));
                }
                Encoding::Continuous {
                    impute: numpy::mean(&present),
                }
            } else {
                if column.dictionary_full {
                    return Err(FitError::TooManyCategories(name.clone()));
                }
                let mut counts = vec![0u64; column.dictionary.len()];
                let mut missing = 0u64;
                for (code, _) in column.codes.iter().zip(&kept).filter(|(_, k)| **k) {
                    match *code {
                        MISSING_CODE => missing += 1,
                        code => counts[code as usize] += 1,
                    }
                }
                let texts: Vec<&String> = column.dictionary.keys().collect();
                let Some(mode) = (0..counts.len())
                    .filter(|&c| counts[c] > 0)
                    .max_by(|&a, &b| counts[a].cmp(&counts[b]).then(texts[b].cmp(texts[a])))
                else {
                    return Err(FitError::NoValues(name.clone()));
                };
                counts[mode] += missing;
                let mut frequencies: IndexMap<String, f64> = texts
                    .iter()
                    .zip(&counts)
                    .filter(|(_, c)| **c > 0)
                    .map(|(t, c)| ((*t).clone(), *c as f64 / n as f64))
                    .collect();
                frequencies.sort_keys();
                Encoding::Categorical {
                    impute: texts[mode].clone(),
                    frequencies,
                }
            };
            // The encoded value per category code, and for a missing value.
            let (by_code, when_missing): (Vec<f64>, f64) = match &encoding {
                Encoding::Continuous { impute } => (Vec::new(), *impute),
                Encoding::Categorical {
                    impute,
                    frequencies,
                } => (
                    column
                        .dictionary
                        .keys()
                        .map(|t| frequencies.get(t).copied().unwrap_or(0.0))
                        .collect(),
                    frequencies[impute],
                ),
            };
            for (i, row) in (0..rows).filter(|&row| kept[row]).enumerate() {
                encoded[i * width + j] = if column.numeric {
                    let x = column.numbers[row];
                    if x.is_nan() { when_missing } else { x }
                } else {
                    match column.codes[row] {
                        MISSING_CODE => when_missing,
                        code => by_code[code as usize],
                    }
                };
            }
            encodings.push(encoding);
        }
        drop(columns);

        // StandardScaler: mean and ddof-0 standard deviation per column.
        let mut scaler_mean = vec![0.0; width];
        let mut scaler_scale = vec![1.0; width];
        for j in 0..width {
            let column: Vec<f64> = (0..n).map(|i| encoded[i * width + j]).collect();
            let mean = numpy::mean(&column);
            let var = numpy::var(&column);
            scaler_mean[j] = mean;
            // scikit-learn's `_is_constant_feature`: a variance within rounding of 0.
            let eps = f64::EPSILON;
            let bound = n as f64 * eps * var + (n as f64 * mean * eps).powi(2);
            scaler_scale[j] = if var <= bound { 1.0 } else { var.sqrt() };
        }
        for i in 0..n {
            for j in 0..width {
                let x = &mut encoded[i * width + j];
                *x = (*x - scaler_mean[j]) / scaler_scale[j];
            }
        }
        let pca_mean: Vec<f64> = (0..width)
            .map(|j| numpy::mean(&(0..n).map(|i| encoded[i * width + j]).collect::<Vec<_>>()))
            .collect();
        // Covariance of the standardised reference (the denominator does not change the axes
        // nor the variance ratios).
        let mut covariance = DMatrix::<f64>::zeros(width, width);
        let mut centred = vec![0.0; width];
        for i in 0..n {
            for j in 0..width {
                centred[j] = encoded[i * width + j] - pca_mean[j];
            }
            for a in 0..width {
                for b in a..width {
                    covariance[(a, b)] += centred[a] * centred[b];
                }
            }
        }
        for a in 0..width {
            for b in 0..a {
                covariance[(a, b)] = covariance[(b, a)];
            }
        }
        covariance /= (n - 1) as f64;
        let eigen = SymmetricEigen::new(covariance);
        let mut order: Vec<usize> = (0..width).collect();
        order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
        let variances: Vec<f64> = order
            .iter()
            .map(|&a| eigen.eigenvalues[a].max(0.0))
            .collect();
        let total: f64 = variances.iter().sum();
        let explained_variance_ratio: Vec<f64> = variances
            .iter()
            .map(|v| if total > 0.0 { v / total } else { 0.0 })
            .collect();
        // scikit-learn: searchsorted(cumsum(ratio), 0.65, side="right") + 1, at most all.
        let mut cumulative = 0.0;
        let mut kept_components = width;
        for (i, ratio) in explained_variance_ratio.iter().enumerate() {
            cumulative += ratio;
            if cumulative > VARIANCE_KEPT {
                kept_components = i + 1;
                break;
            }
        }
        let kept_components = kept_components.min(n).min(width);
        let components: Vec<Vec<f64>> = order[..kept_components]
            .iter()
            .map(|&a| eigen.eigenvectors.column(a).iter().copied().collect())
            .collect();

        let features: Vec<Feature> = names
            .into_iter()
            .zip(encodings)
            .enumerate()
            .map(|(j, (name, encoding))| Feature {
                name,
                encoding,
                scaler_mean: scaler_mean[j],
                scaler_scale: scaler_scale[j],
                pca_mean: pca_mean[j],
                reference_share: 0.0,
            })
            .collect();
        let mut baseline = Baseline {
            features,
            components,
            explained_variance_ratio,
            chunk_size: 0,
            reference_rows: n,
            reference_rows_refused: (rows - n) as u64,
            reference_chunk_errors: Vec::new(),
            lower_threshold: None,
            upper_threshold: None,
        };

        // Reference errors per row (the standardised rows are already at hand).
        let mut whole = baseline.new_state();
        let ranges = chunking.ranges(n);
        baseline.chunk_size = match chunking {
            Chunking::Size(size) => size,
            Chunking::Count(count) => (n / count.max(1)).max(1),
        };
        let mut residual = vec![0.0; width];
        for (start, end) in ranges {
            let mut chunk = baseline.new_state();
            for i in start..end {
                for j in 0..width {
                    residual[j] = encoded[i * width + j] - pca_mean[j];
                }
                baseline.add_centred(&mut chunk, &mut residual);
            }
            baseline
                .reference_chunk_errors
                .push(chunk.mean_error().expect("a chunk has rows"));
            whole.merge(&chunk);
        }
        let values = &baseline.reference_chunk_errors;
        let centre = numpy::mean(values);
        let spread = numpy::std(values);
        let lower = centre - THRESHOLD_STDS * spread;
        baseline.lower_threshold = (lower > 0.0).then_some(lower);
        baseline.upper_threshold = Some(centre + THRESHOLD_STDS * spread);
        let shares = whole.shares();
        for (feature, share) in baseline.features.iter_mut().zip(shares) {
            feature.reference_share = share;
        }
        Ok(baseline)
    }

    /// The kept components.
    pub fn component_count(&self) -> usize {
        self.components.len()
    }

    /// An empty window state for this baseline.
    pub fn new_state(&self) -> WindowState {
        WindowState::new(self.features.len())
    }

    /// Adds one row (text cells in feature order, `None` for missing) to `state`. A row with
    /// an unreadable value is not added: the state counts it as refused and the error says
    /// which feature.
    pub fn add_row(
        &self,
        state: &mut WindowState,
        cells: &[Option<&str>],
        scratch: &mut Vec<f64>,
    ) -> Result<(), Unreadable> {
        if let Err(error) = self.standardise(cells, scratch) {
            state.refused_rows += 1;
            return Err(error);
        }
        for (x, feature) in scratch.iter_mut().zip(&self.features) {
            *x -= feature.pca_mean;
        }
        self.add_centred(state, scratch);
        Ok(())
    }

    /// A row encoded, imputed and standardised into `out`.
    pub fn standardise(
        &self,
        cells: &[Option<&str>],
        out: &mut Vec<f64>,
    ) -> Result<(), Unreadable> {
        assert_eq!(cells.len(), self.features.len(), "one cell per feature");
        out.clear();
        for (feature, cell) in self.features.iter().zip(cells) {
            let text = cell.map(str::trim).filter(|t| !is_missing(t));
            let value = match (&feature.encoding, text) {
                (Encoding::Continuous { impute }, None) => *impute,
                (Encoding::Continuous { .. }, Some(text)) => text
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| Unreadable {
                        feature: feature.name.clone(),
                        text: text.to_string(),
                    })?,
                (
                    Encoding::Categorical {
                        impute,
                        frequencies,
                    },
                    text,
                ) => frequencies
                    .get(text.unwrap_or(impute))
                    .copied()
                    .unwrap_or(0.0),
            };
            out.push((value - feature.scaler_mean) / feature.scaler_scale);
        }
        Ok(())
    }

    /// Adds a standardised, centred row; leaves its residual in `row`.
    fn add_centred(&self, state: &mut WindowState, row: &mut [f64]) {
        // residual = row − Vᵀ(V row)
        let projections: Vec<f64> = self
            .components
            .iter()
            .map(|axis| axis.iter().zip(row.iter()).map(|(a, x)| a * x).sum())
            .collect();
        for (axis, p) in self.components.iter().zip(&projections) {
            for (x, a) in row.iter_mut().zip(axis) {
                *x -= a * p;
            }
        }
        state.add(row);
    }

    /// The chunk value, thresholds, alert and top features of a window's state.
    pub fn evaluate(&self, state: &WindowState) -> ChunkResult {
        let value = state.mean_error();
        let lower = self.lower_threshold.unwrap_or(f64::NEG_INFINITY);
        let upper = self.upper_threshold.unwrap_or(f64::INFINITY);
        let shares = state.shares();
        let mut top: Vec<FeatureShare> = self
            .features
            .iter()
            .zip(shares)
            .map(|(f, share)| FeatureShare {
                feature: f.name.clone(),
                share,
                reference_share: f.reference_share,
            })
            .collect();
        top.sort_by(|a, b| b.share.total_cmp(&a.share));
        top.truncate(TOP_FEATURES);
        ChunkResult {
            rows: state.rows,
            rows_refused: state.refused_rows,
            reconstruction_error: value,
            sampling_error: state.sampling_error(),
            lower_threshold: self.lower_threshold,
            upper_threshold: self.upper_threshold,
            alert: value.is_some_and(|v| !(lower < v && v < upper)),
            top_features: if state.rows > 0 { top } else { Vec::new() },
        }
    }
}
