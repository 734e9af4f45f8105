//! The mergeable part of CBPE: what a streaming window keeps so that every estimate except the
//! ROC AUC follows from it. Per predicted class j: the rows predicting j, and for every class
//! i the sum of calibrated P(i) over them. Two windows' sums add; the estimates of the merged
//! sums equal the estimates of the concatenated rows up to the order of floating-point
//! addition (~1e-15 relative), because every CBPE metric but the AUC is a ratio of these sums.

use serde::{Deserialize, Serialize};

use super::Kind;

/// Expected confusion sums of a set of rows (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectedSums {
    /// Rows predicting class j.
    pub predicted: Vec<u64>,
    /// `probability[i][j]`: Σ calibrated P(class i) over the rows predicting class j. Binary:
    /// i = 0 is 1 − P(1), i = 1 is P(1).
    pub probability: Vec<Vec<f64>>,
}

/// The estimates that follow from [`ExpectedSums`], in the estimator's metric order without
/// the ROC AUC.
#[derive(Debug, Clone, PartialEq)]
pub struct SumEstimates {
    pub f1: f64,
    pub precision: f64,
    pub recall: f64,
    pub specificity: f64,
    pub accuracy: f64,
    /// `confusion[i][j]`: expected rows of true class i predicted as j.
    pub confusion: Vec<Vec<f64>>,
}

fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator != 0.0 {
        numerator / denominator
    } else {
        0.0
    }
}

impl ExpectedSums {
    /// Empty sums over `classes` classes (binary: 2).
    pub fn new(classes: usize) -> Self {
        Self {
            predicted: vec![0; classes],
            probability: vec![vec![0.0; classes]; classes],
        }
    }

    /// Adds one row: its predicted class and its calibrated probability per class (binary:
    /// `[1 − p, p]`).
    pub fn add(&mut self, predicted: usize, calibrated: &[f64]) {
        self.predicted[predicted] += 1;
        for (row, &p) in self.probability.iter_mut().zip(calibrated) {
            row[predicted] += p;
        }
    }

    /// Adds another window's sums (same classes).
    pub fn merge(&mut self, other: &ExpectedSums) {
        for (a, b) in self.predicted.iter_mut().zip(&other.predicted) {
            *a += b;
        }
        for (a, b) in self.probability.iter_mut().zip(&other.probability) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
    }

    pub fn rows(&self) -> u64 {
        self.predicted.iter().sum()
    }

    /// The estimates: binary from class 1's one-vs-rest sums; multiclass as macro means of
    /// each class's, accuracy the mean probability of the predicted class.
    pub fn estimates(&self, kind: Kind) -> SumEstimates {
        let k = self.predicted.len();
        let n = self.rows() as f64;
        // One-vs-rest (TP, FP, TN, FN) of class c.
        let one_vs_rest = |c: usize| {
            let tp = self.probability[c][c];
            let fp = self.predicted[c] as f64 - tp;
            let fn_: f64 = (0..k)
                .filter(|&j| j != c)
                .map(|j| self.probability[c][j])
                .sum();
            let tn = (n - self.predicted[c] as f64) - fn_;
            (tp, fp, tn, fn_)
        };
        let metrics = |(tp, fp, tn, fn_): (f64, f64, f64, f64)| {
            [
                ratio(tp, tp + 0.5 * (fp + fn_)),
                ratio(tp, tp + fp),
                ratio(tp, tp + fn_),
                ratio(tn, tn + fp),
            ]
        };
        let [f1, precision, recall, specificity] = match kind {
            Kind::Binary => metrics(one_vs_rest(1)),
            Kind::Multiclass => {
                let per_class: Vec<[f64; 4]> = (0..k).map(|c| metrics(one_vs_rest(c))).collect();
                std::array::from_fn(|m| per_class.iter().map(|v| v[m]).sum::<f64>() / k as f64)
            }
        };
        let accuracy = (0..k).map(|c| self.probability[c][c]).sum::<f64>() / n;
        SumEstimates {
            f1,
            precision,
            recall,
            specificity,
            accuracy,
            confusion: self.probability.clone(),
        }
    }
}
