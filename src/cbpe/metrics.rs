//! One-vs-rest building blocks: realized metrics (as scikit-learn computes them from labels),
//! CBPE's estimates from calibrated probabilities (NannyML's `estimate_*`), and the
//! reference-side sampling-error components (`nannyml.sampling_error`).

use super::numpy;

/// ROC AUC of 0/1 `labels` against `scores` with ties averaged (= scikit-learn's
/// `roc_auc_score`, the trapezoid under the tie-grouped ROC curve); NaN with one class.
pub fn roc_auc(labels: &[f64], scores: &[f64]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let positives = labels.iter().filter(|&&l| l == 1.0).count() as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return f64::NAN;
    }
    // Mann–Whitney U with mid-ranks for ties.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mid_rank = (i + j) as f64 / 2.0 + 1.0;
        let tied_positives = order[i..=j].iter().filter(|&&r| labels[r] == 1.0).count();
        rank_sum += mid_rank * tied_positives as f64;
        i = j + 1;
    }
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// Counts of one class against the rest: true/false positives/negatives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub tp: usize,
    pub fp: usize,
    pub tn: usize,
    pub fn_: usize,
}

impl Counts {
    pub fn of(predicted: impl Iterator<Item = bool>, actual: impl Iterator<Item = bool>) -> Self {
        let mut c = Self::default();
        for (p, a) in predicted.zip(actual) {
            match (p, a) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, false) => c.tn += 1,
                (false, true) => c.fn_ += 1,
            }
        }
        c
    }

    fn ratio(numerator: usize, denominator: usize) -> f64 {
        if denominator == 0 {
            0.0
        } else {
            numerator as f64 / denominator as f64
        }
    }

    /// scikit-learn's precision (0 when nothing is predicted positive).
    pub fn precision(&self) -> f64 {
        Self::ratio(self.tp, self.tp + self.fp)
    }

    pub fn recall(&self) -> f64 {
        Self::ratio(self.tp, self.tp + self.fn_)
    }

    /// scikit-learn's F1: 2·TP / (2·TP + FP + FN), 0 when that is 0/0.
    pub fn f1(&self) -> f64 {
        Self::ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }

    /// TN / (TN + FP); NaN when there are no negatives (NannyML's rule).
    pub fn specificity(&self) -> f64 {
        if self.tn + self.fp == 0 {
            f64::NAN
        } else {
            self.tn as f64 / (self.tn + self.fp) as f64
        }
    }
}

/// CBPE's expected one-vs-rest confusion sums over a chunk: `p` the calibrated probability of
/// the class, `predicted` whether the model predicted it. Each is `np.sum` of an `np.where`.
#[derive(Debug, Clone, Copy)]
pub struct Expected {
    pub tp: f64,
    pub fp: f64,
    pub tn: f64,
    pub fn_: f64,
}

impl Expected {
    pub fn of(predicted: &[bool], p: &[f64]) -> Self {
        let column = |f: &dyn Fn(bool, f64) -> f64| -> f64 {
            let values: Vec<f64> = predicted.iter().zip(p).map(|(&y, &p)| f(y, p)).collect();
            numpy::sum(&values)
        };
        Self {
            tp: column(&|y, p| if y { p } else { 0.0 }),
            fp: column(&|y, p| if y { 1.0 - p } else { 0.0 }),
            tn: column(&|y, p| if y { 0.0 } else { 1.0 - p }),
            fn_: column(&|y, p| if y { 0.0 } else { p }),
        }
    }

    fn ratio(numerator: f64, denominator: f64) -> f64 {
        if denominator != 0.0 {
            numerator / denominator
        } else {
            0.0
        }
    }

    pub fn f1(&self) -> f64 {
        Self::ratio(self.tp, self.tp + 0.5 * (self.fp + self.fn_))
    }

    pub fn precision(&self) -> f64 {
        Self::ratio(self.tp, self.tp + self.fp)
    }

    pub fn recall(&self) -> f64 {
        Self::ratio(self.tp, self.tp + self.fn_)
    }

    pub fn specificity(&self) -> f64 {
        Self::ratio(self.tn, self.tn + self.fp)
    }
}

/// NannyML's `estimate_roc_auc`: rows sorted by the uncalibrated score, descending (ties not
/// grouped: a stable sort, reversed, as `np.argsort(...)[::-1]` of distinct scores);
/// cumulative calibrated probabilities as expected true positives, the rest as expected false
/// positives, both rounded to 5 decimals; the trapezoid under that curve.
pub fn estimate_roc_auc(calibrated: &[f64], uncalibrated: &[f64]) -> f64 {
    let mut order: Vec<usize> = (0..uncalibrated.len()).collect();
    order.sort_by(|&a, &b| uncalibrated[a].total_cmp(&uncalibrated[b]));
    order.reverse();
    let n = order.len();
    let mut tps = Vec::with_capacity(n + 1);
    let mut fps = Vec::with_capacity(n + 1);
    tps.push(0.0);
    fps.push(0.0);
    let mut cumulative = 0.0;
    for (i, &row) in order.iter().enumerate() {
        cumulative += calibrated[row];
        tps.push(cumulative);
        fps.push((i + 1) as f64 - cumulative);
    }
    let tps: Vec<f64> = tps.into_iter().map(numpy::round5).collect();
    let fps: Vec<f64> = fps.into_iter().map(numpy::round5).collect();
    let (tp_total, fp_total) = (tps[n], fps[n]);
    let tpr: Vec<f64> = tps.iter().map(|t| t / tp_total).collect();
    let fpr: Vec<f64> = fps.iter().map(|f| f / fp_total).collect();
    // sklearn.metrics.auc = np.trapezoid(tpr, fpr) for non-decreasing fpr.
    let terms: Vec<f64> = (1..=n)
        .map(|i| (fpr[i] - fpr[i - 1]) * (tpr[i] + tpr[i - 1]) / 2.0)
        .collect();
    numpy::sum(&terms)
}

/// The reference rows of one class against the rest, for the sampling-error components.
pub struct Reference<'a> {
    pub actual: &'a [bool],
    pub predicted: &'a [bool],
}

fn ones_then_zeros(ones: usize, zeros: usize, one: f64) -> Vec<f64> {
    let mut values = vec![one; ones];
    values.resize(ones + zeros, 0.0);
    values
}

/// A sampling-error component: the spread of the per-row contributions on the reference and
/// the share of rows that contribute. `spread` is a standard deviation (binary) or a
/// variance (multiclass), as NannyML keeps them.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Component {
    pub spread: f64,
    pub fraction: f64,
}

/// Which spread: binary components keep `np.std`, multiclass ones `np.var`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spread {
    Std,
    Var,
}

impl Spread {
    fn of(self, values: &[f64]) -> f64 {
        match self {
            Spread::Std => numpy::std(values),
            Spread::Var => numpy::var(values),
        }
    }
}

impl Reference<'_> {
    fn counts(&self) -> Counts {
        Counts::of(self.predicted.iter().copied(), self.actual.iter().copied())
    }

    fn n(&self) -> f64 {
        self.actual.len() as f64
    }

    /// F1: rows that are TP (1), FN or FP (0); binary scales them by NannyML's correcting
    /// factor, multiclass does not.
    pub fn f1(&self, spread: Spread) -> Component {
        let c = self.counts();
        let relevant = c.tp + c.fn_ + c.fp;
        if relevant == 0 {
            return Component {
                spread: f64::NAN,
                fraction: 0.0,
            };
        }
        let one = match spread {
            Spread::Std => relevant as f64 / ((c.fn_ + c.fp) as f64 * 0.5 + c.tp as f64),
            Spread::Var => 1.0,
        };
        Component {
            spread: spread.of(&ones_then_zeros(c.tp, c.fn_ + c.fp, one)),
            fraction: relevant as f64 / self.n(),
        }
    }

    pub fn precision(&self, spread: Spread) -> Component {
        let c = self.counts();
        Component {
            spread: spread.of(&ones_then_zeros(c.tp, c.fp, 1.0)),
            fraction: (c.tp + c.fp) as f64 / self.n(),
        }
    }

    pub fn recall(&self, spread: Spread) -> Component {
        let c = self.counts();
        Component {
            spread: spread.of(&ones_then_zeros(c.tp, c.fn_, 1.0)),
            fraction: (c.tp + c.fn_) as f64 / self.n(),
        }
    }

    pub fn specificity(&self, spread: Spread) -> Component {
        let c = self.counts();
        Component {
            spread: spread.of(&ones_then_zeros(c.tn, c.fp, 1.0)),
            fraction: (c.tn + c.fp) as f64 / self.n(),
        }
    }
}

/// NannyML's AUC component: with the minority as positives (labels and scores flipped when
/// positives are the majority), the positives' ranks by score (rank 0 left out, as
/// `np.unique(...)[1:]` does), each less the number of positives ranked before it, over the
/// negatives; their spread, and the positive rate. Ties in score are ordered stably (numpy's
/// default sort is not stable, so its order among ties is not reproducible).
pub fn auc_component(actual: &[bool], scores: &[f64], spread: Spread) -> Component {
    let n = actual.len();
    let positives = actual.iter().filter(|&&a| a).count();
    let flip = positives as f64 / n as f64 > 0.5;
    let (labels, scores): (Vec<bool>, Vec<f64>) = actual
        .iter()
        .zip(scores)
        .map(|(&a, &s)| if flip { (!a, 1.0 - s) } else { (a, s) })
        .unzip();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let n_pos = labels.iter().filter(|&&l| l).count();
    let n_neg = (n - n_pos) as f64;
    let ser: Vec<f64> = order
        .iter()
        .enumerate()
        .filter(|&(rank, &row)| rank > 0 && labels[row])
        .enumerate()
        .map(|(i, (rank, _))| (rank - i) as f64 / n_neg)
        .collect();
    Component {
        spread: spread.of(&ser),
        fraction: n_pos as f64 / n as f64,
    }
}

/// `np.nanmean ± 3 · np.nanstd` of the realized reference-chunk values, each bound replaced
/// by its limit when past it; `None` limits are open.
pub fn thresholds(
    values: &[f64],
    lower_limit: Option<f64>,
    upper_limit: Option<f64>,
) -> (f64, f64) {
    let finite: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    let mean = numpy::mean(&finite);
    let std = numpy::std(&finite);
    let mut lower = mean - std * 3.0;
    let mut upper = mean + std * 3.0;
    if let Some(limit) = lower_limit
        && lower <= limit
    {
        lower = limit;
    }
    if let Some(limit) = upper_limit
        && upper >= limit
    {
        upper = limit;
    }
    (lower, upper)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_auc_averages_ties() {
        // sklearn.metrics.roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) = 0.75
        assert_eq!(roc_auc(&[0.0, 0.0, 1.0, 1.0], &[0.1, 0.4, 0.35, 0.8]), 0.75);
        // a tie between a positive and a negative counts one half: (1 + 0.5 + 1 + 1) / 4
        assert_eq!(roc_auc(&[0.0, 0.0, 1.0, 1.0], &[0.1, 0.5, 0.5, 0.8]), 0.875);
        assert!(roc_auc(&[1.0, 1.0], &[0.1, 0.2]).is_nan());
    }

    #[test]
    fn expected_sums_split_probability_by_prediction() {
        let e = Expected::of(&[true, false], &[0.8, 0.3]);
        assert_eq!((e.tp, e.fp, e.fn_), (0.8, 1.0 - 0.8, 0.3));
        assert!((e.tn - 0.7).abs() < 1e-15);
    }

    #[test]
    fn perfectly_calibrated_certain_scores_estimate_auc_one() {
        assert_eq!(
            estimate_roc_auc(&[1.0, 1.0, 0.0, 0.0], &[0.9, 0.8, 0.2, 0.1]),
            1.0
        );
    }

    #[test]
    fn thresholds_clip_to_limits() {
        let (lower, upper) = thresholds(&[0.9, 1.0, f64::NAN], Some(0.0), Some(1.0));
        // mean 0.95, std 0.05: 0.8 and 1.1 → 1.
        assert!((lower - 0.8).abs() < 1e-12);
        assert_eq!(upper, 1.0);
    }
}
