//! Calibration: scikit-learn's `IsotonicRegression(out_of_bounds="clip")` and NannyML's rule
//! for whether to use it (`nannyml.calibration.needs_calibration`).
//!
//! The rule: no calibration for a reference with one class or a ROC AUC above 0.999.
//! Otherwise ten `StratifiedShuffleSplit(n_splits=10, test_size=0.1, random_state=42)` splits
//! each fit an isotonic regression on their train rows and calibrate their test rows; the test
//! rows of all splits are pooled, and calibration is used when the expected calibration error
//! (ECE, 10 equal-count bins over the pooled rows sorted by score) after it is lower than
//! before. The splits are reproduced draw for draw (numpy's MT19937 stream, scikit-learn's
//! `_approximate_mode`, legacy `permutation`), so the same rows land in the same splits as in
//! NannyML. One thing is not reproduced: numpy sorts the pooled scores for the ECE bins with
//! an unstable sort whose order among equal scores depends on the CPU's SIMD path; driftd sorts
//! stably. With tied scores on a bin edge the two ECEs can differ in the last digits, and the
//! decision only when the two ECEs are that close.

use super::numpy::{self, RandomState};

/// A fitted isotonic regression: the knots of its piecewise-linear, non-decreasing map.
#[derive(Debug, Clone, PartialEq)]
pub struct Isotonic {
    x: Vec<f64>,
    y: Vec<f64>,
}

impl Isotonic {
    /// Fits scores → P(label = 1) as scikit-learn does: rows sorted by (score, label), equal
    /// scores (within 1e-15) merged into their mean label weighted by count, pool adjacent
    /// violators, then interior points of flat runs dropped. `None` for no rows.
    pub fn fit(scores: &[f64], labels: &[f64]) -> Option<Self> {
        if scores.is_empty() {
            return None;
        }
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| {
            scores[a]
                .total_cmp(&scores[b])
                .then(labels[a].total_cmp(&labels[b]))
        });
        // _make_unique: runs of equal x (x − run start < resolution 1e-15) averaged.
        let mut x = Vec::new();
        let mut y = Vec::new();
        let mut w = Vec::new();
        let mut current_x = scores[order[0]];
        let mut current_y = 0.0;
        let mut current_w = 0.0;
        for &i in &order {
            let xi = scores[i];
            if xi - current_x >= 1e-15 {
                x.push(current_x);
                w.push(current_w);
                y.push(current_y / current_w);
                current_x = xi;
                current_w = 1.0;
                current_y = labels[i];
            } else {
                current_w += 1.0;
                current_y += labels[i];
            }
        }
        x.push(current_x);
        w.push(current_w);
        y.push(current_y / current_w);
        pool_adjacent_violators(&mut y, &mut w);
        // Drop points whose y equals both neighbours' (the interpolation is the same).
        let n = y.len();
        let keep: Vec<bool> = (0..n)
            .map(|i| i == 0 || i == n - 1 || y[i] != y[i - 1] || y[i] != y[i + 1])
            .collect();
        let x = x
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(v, _)| *v)
            .collect();
        let y = y
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(v, _)| *v)
            .collect();
        Some(Self { x, y })
    }

    /// The calibrated value of `score`: clipped to the fitted range, then interpolated.
    pub fn predict(&self, score: f64) -> f64 {
        if self.x.len() == 1 {
            return self.y[0];
        }
        let clipped = score.clamp(self.x[0], self.x[self.x.len() - 1]);
        numpy::interp(clipped, &self.x, &self.y)
    }
}

/// scikit-learn's `_inplace_contiguous_isotonic_regression`, step for step (so the block means
/// are summed in the same order).
fn pool_adjacent_violators(y: &mut [f64], w: &mut [f64]) {
    let n = y.len();
    let mut target: Vec<usize> = (0..n).collect();
    let mut i = 0;
    while i < n {
        let mut k = target[i] + 1;
        if k == n {
            break;
        }
        if y[i] < y[k] {
            i = k;
            continue;
        }
        let mut sum_wy = w[i] * y[i];
        let mut sum_w = w[i];
        loop {
            let prev_y = y[k];
            sum_wy += w[k] * y[k];
            sum_w += w[k];
            k = target[k] + 1;
            if k == n || prev_y < y[k] {
                y[i] = sum_wy / sum_w;
                w[i] = sum_w;
                target[i] = k - 1;
                target[k - 1] = i;
                if i > 0 {
                    i = target[i - 1];
                }
                break;
            }
        }
    }
    let mut i = 0;
    while i < n {
        let k = target[i] + 1;
        let value = y[i];
        for v in &mut y[i + 1..k] {
            *v = value;
        }
        i = k;
    }
}

/// scikit-learn's `_approximate_mode`: how many of `n_draws` each class gets, proportionally,
/// with the remainder going to the largest fractional parts (ties broken at random).
fn approximate_mode(class_counts: &[usize], n_draws: usize, rng: &mut RandomState) -> Vec<usize> {
    let total: usize = class_counts.iter().sum();
    let continuous: Vec<f64> = class_counts
        .iter()
        .map(|&c| c as f64 / total as f64 * n_draws as f64)
        .collect();
    let mut floored: Vec<f64> = continuous.iter().map(|c| c.floor()).collect();
    let mut need_to_add = (n_draws as f64 - numpy::sum(&floored)) as i64;
    if need_to_add > 0 {
        let remainder: Vec<f64> = continuous
            .iter()
            .zip(&floored)
            .map(|(c, f)| c - f)
            .collect();
        let mut values = remainder.clone();
        values.sort_by(|a, b| b.total_cmp(a));
        values.dedup();
        for value in values {
            let inds: Vec<usize> = (0..remainder.len())
                .filter(|&i| remainder[i] == value)
                .collect();
            let add_now = (inds.len() as i64).min(need_to_add) as usize;
            // rng.choice(inds, add_now, replace=False) = inds[permutation(len)[:add_now]]
            let chosen = rng.permutation(inds.len());
            for &c in &chosen[..add_now] {
                floored[inds[c]] += 1.0;
            }
            need_to_add -= add_now as i64;
            if need_to_add == 0 {
                break;
            }
        }
    }
    floored.iter().map(|&f| f as usize).collect()
}

/// The test rows of `StratifiedShuffleSplit(n_splits, test_size=0.1, random_state=seed)` over
/// `classes` (class indices `0..k`, every class at least twice), each split's rows in the
/// order scikit-learn yields them; the train rows are the other rows. `None` when
/// scikit-learn would refuse the split (a class of one row, too few rows for the classes).
pub fn stratified_test_splits(
    classes: &[usize],
    n_splits: usize,
    seed: u32,
) -> Option<Vec<Vec<usize>>> {
    let n = classes.len();
    let k = classes.iter().max().map_or(0, |m| m + 1);
    let mut class_counts = vec![0usize; k];
    for &c in classes {
        class_counts[c] += 1;
    }
    // np.unique's classes are only those present.
    let present: Vec<usize> = (0..k).filter(|&c| class_counts[c] > 0).collect();
    let counts: Vec<usize> = present.iter().map(|&c| class_counts[c]).collect();
    let n_test = (0.1 * n as f64).ceil() as usize;
    let n_train = n - n_test;
    if counts.iter().any(|&c| c < 2) || n_train < counts.len() || n_test < counts.len() {
        return None;
    }
    // Each class's rows in row order (np.argsort(y_indices, kind="stable")).
    let class_rows: Vec<Vec<usize>> = present
        .iter()
        .map(|&c| (0..n).filter(|&i| classes[i] == c).collect())
        .collect();
    let mut rng = RandomState::new(seed);
    let mut splits = Vec::with_capacity(n_splits);
    for _ in 0..n_splits {
        let n_i = approximate_mode(&counts, n_train, &mut rng);
        let remaining: Vec<usize> = counts.iter().zip(&n_i).map(|(c, t)| c - t).collect();
        let t_i = approximate_mode(&remaining, n_test, &mut rng);
        let mut train = Vec::with_capacity(n_train);
        let mut test = Vec::with_capacity(n_test);
        for (class, rows) in class_rows.iter().enumerate() {
            let permutation = rng.permutation(counts[class]);
            let permuted: Vec<usize> = permutation.iter().map(|&p| rows[p]).collect();
            train.extend_from_slice(&permuted[..n_i[class]]);
            test.extend_from_slice(&permuted[n_i[class]..n_i[class] + t_i[class]]);
        }
        // train = rng.permutation(train), drawn (and discarded here) before the test's.
        rng.shuffle(&mut train);
        rng.shuffle(&mut test);
        splits.push(test);
    }
    Some(splits)
}

/// NannyML's ECE: rows sorted by probability, cut into `edges` (index ranges), each bin's
/// |mean probability − mean label| weighted by its share of the rows.
fn expected_calibration_error(
    labels: &[f64],
    probabilities: &[f64],
    edges: &[(usize, usize)],
) -> f64 {
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    order.sort_by(|&a, &b| probabilities[a].total_cmp(&probabilities[b]));
    let p: Vec<f64> = order.iter().map(|&i| probabilities[i]).collect();
    let y: Vec<f64> = order.iter().map(|&i| labels[i]).collect();
    let terms: Vec<f64> = edges
        .iter()
        .map(|&(left, right)| {
            let weight = (right - left) as f64 / p.len() as f64;
            weight * (numpy::mean(&p[left..right]) - numpy::mean(&y[left..right])).abs()
        })
        .collect();
    numpy::sum(&terms)
}

/// NannyML's `_get_bin_index_edges`; `None` when fewer than 2 bins fit.
fn bin_index_edges(length: usize, bin_count: usize) -> Option<Vec<(usize, usize)>> {
    let mut bins = bin_count;
    if length <= 2 * bins {
        bins = length / 2;
        if bins < 2 {
            return None;
        }
    }
    let width = length / bins;
    let mut edges: Vec<usize> = (0..=length).step_by(width).collect();
    let last = edges.len() - 1;
    edges[last] = length;
    Some(edges.windows(2).map(|w| (w[0], w[1])).collect())
}

/// Why calibration was or was not chosen (reported in the output).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CalibrationDecision {
    pub calibrated: bool,
    /// ECE of the pooled test rows before and after calibration; `None` when the decision
    /// was made before the splits (one class, AUC above 0.999, too few rows).
    pub ece_before: Option<f64>,
    pub ece_after: Option<f64>,
}

/// NannyML's `needs_calibration` for one-vs-rest `labels` (0/1) and `scores`.
pub fn needs_calibration(labels: &[f64], scores: &[f64]) -> CalibrationDecision {
    let no = CalibrationDecision {
        calibrated: false,
        ece_before: None,
        ece_after: None,
    };
    let positives = labels.iter().filter(|&&l| l == 1.0).count();
    if positives == 0 || positives == labels.len() {
        return no;
    }
    if super::metrics::roc_auc(labels, scores) > 0.999 {
        return no;
    }
    let classes: Vec<usize> = labels.iter().map(|&l| l as usize).collect();
    // scikit-learn raises for a class of one row; NannyML would fail there. driftd does not
    // calibrate such a reference.
    let Some(splits) = stratified_test_splits(&classes, 10, 42) else {
        return no;
    };
    let mut pooled_labels = Vec::new();
    let mut pooled_scores = Vec::new();
    let mut pooled_calibrated = Vec::new();
    let mut in_test = vec![false; labels.len()];
    for test in &splits {
        in_test.iter_mut().for_each(|t| *t = false);
        for &i in test {
            in_test[i] = true;
        }
        let (train_scores, train_labels): (Vec<f64>, Vec<f64>) = (0..labels.len())
            .filter(|&i| !in_test[i])
            .map(|i| (scores[i], labels[i]))
            .unzip();
        let model = Isotonic::fit(&train_scores, &train_labels).expect("train rows");
        for &i in test {
            pooled_labels.push(labels[i]);
            pooled_scores.push(scores[i]);
            pooled_calibrated.push(model.predict(scores[i]));
        }
    }
    let Some(edges) = bin_index_edges(pooled_scores.len(), 10) else {
        return no;
    };
    let before = expected_calibration_error(&pooled_labels, &pooled_scores, &edges);
    let after = expected_calibration_error(&pooled_labels, &pooled_calibrated, &edges);
    CalibrationDecision {
        calibrated: before > after,
        ece_before: Some(before),
        ece_after: Some(after),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isotonic_pools_violators_into_their_mean() {
        // labels 1, 0, 1 at increasing scores: the first two pool to 0.5.
        let model = Isotonic::fit(&[0.1, 0.2, 0.3], &[1.0, 0.0, 1.0]).unwrap();
        assert_eq!(model.predict(0.1), 0.5);
        assert_eq!(model.predict(0.2), 0.5);
        assert_eq!(model.predict(0.3), 1.0);
        assert_eq!(model.predict(0.25), 0.75);
        // Clipped outside the fitted range.
        assert_eq!(model.predict(-5.0), 0.5);
        assert_eq!(model.predict(5.0), 1.0);
    }

    #[test]
    fn isotonic_averages_equal_scores() {
        let model = Isotonic::fit(&[0.5, 0.5, 0.5, 0.9], &[0.0, 1.0, 1.0, 1.0]).unwrap();
        assert!((model.predict(0.5) - 2.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn bin_edges_match_nannyml_docstring() {
        assert_eq!(
            bin_index_edges(20, 4).unwrap(),
            vec![(0, 5), (5, 10), (10, 15), (15, 20)]
        );
        assert_eq!(bin_index_edges(3, 10), None);
    }

    #[test]
    fn stratified_splits_are_scikit_learns_row_for_row() {
        // Three classes of 7, 11 and 13 rows: the test rows' remainders tie, so
        // _approximate_mode draws (rng.choice) between them. Expected from scikit-learn 1.9.1:
        //   y = [0]*7 + [1]*11 + [2]*13, shuffled by np.random.RandomState(5).permutation;
        //   StratifiedShuffleSplit(n_splits=3, test_size=0.1, random_state=42).split(X, y)
        let classes = [
            1, 2, 2, 2, 1, 1, 0, 2, 2, 2, 2, 1, 0, 2, 0, 0, 2, 1, 2, 2, 2, 1, 0, 1, 1, 1, 2, 0, 1,
            1, 0,
        ];
        assert_eq!(
            stratified_test_splits(&classes, 3, 42).unwrap(),
            vec![vec![30, 8, 2, 17], vec![2, 30, 0, 18], vec![15, 3, 8, 23]]
        );
        // A class of one row: scikit-learn refuses to split.
        assert_eq!(stratified_test_splits(&[0, 0, 0, 1], 10, 42), None);
    }

    #[test]
    fn stratified_split_test_sizes_are_stratified() {
        // 30 of class 0, 70 of class 1: 10 test rows, 3 and 7.
        let classes: Vec<usize> = (0..100).map(|i| usize::from(i >= 30)).collect();
        let splits = stratified_test_splits(&classes, 10, 42).unwrap();
        assert_eq!(splits.len(), 10);
        for test in splits {
            assert_eq!(test.len(), 10);
            assert_eq!(test.iter().filter(|&&i| i < 30).count(), 3);
        }
    }
}
