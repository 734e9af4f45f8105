//! Clarify's bias metrics (FORMATS.md §6.2–6.3) as pure functions of counts, with smclarify's
//! conventions: `divide` (0/0 = 0, x/0 = +∞), outcome values present in one group only dropped
//! from KL/JS/LP/TVD/KS, a difference of two +∞ ratios is 0, and smclarify's error messages.
//!
//! Every metric but the Flip Test is a function of the confusion counts of facet *d* and facet
//! *a* (and, for CDDL/CDDPL, of those counts per group), which is what makes the window state
//! mergeable. The Flip Test needs rows; [`flip_test`] takes them.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    PreTraining,
    PostTraining,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    CI,
    DPL,
    KL,
    JS,
    LP,
    TVD,
    KS,
    CDDL,
    DPPL,
    DI,
    DCA,
    DCR,
    RD,
    SD,
    DAR,
    DRR,
    AD,
    TE,
    CDDPL,
    FT,
    GE,
}

impl Metric {
    pub const ALL: [Metric; 21] = [
        Metric::CI,
        Metric::DPL,
        Metric::KL,
        Metric::JS,
        Metric::LP,
        Metric::TVD,
        Metric::KS,
        Metric::CDDL,
        Metric::DPPL,
        Metric::DI,
        Metric::DCA,
        Metric::DCR,
        Metric::RD,
        Metric::SD,
        Metric::DAR,
        Metric::DRR,
        Metric::AD,
        Metric::TE,
        Metric::CDDPL,
        Metric::FT,
        Metric::GE,
    ];

    pub fn name(self) -> &'static str {
        self.info().0
    }

    /// The first docstring line of smclarify's function, which is what Clarify writes (typo
    /// "Liebler" included).
    pub fn description(self) -> &'static str {
        self.info().1
    }

    pub fn stage(self) -> Stage {
        self.info().2
    }

    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The value of no bias: 1 for the ratio DI, 0 for every difference and divergence.
    pub fn ideal(self) -> f64 {
        if self == Metric::DI { 1.0 } else { 0.0 }
    }

    fn info(self) -> (&'static str, &'static str, Stage) {
        use Stage::{PostTraining as Post, PreTraining as Pre};
        match self {
            Metric::CI => ("CI", "Class Imbalance (CI)", Pre),
            Metric::DPL => (
                "DPL",
                "Difference in Positive Proportions in Labels (DPL)",
                Pre,
            ),
            Metric::KL => ("KL", "Kullback-Liebler Divergence (KL)", Pre),
            Metric::JS => ("JS", "Jensen-Shannon Divergence (JS)", Pre),
            Metric::LP => ("LP", "L-p Norm (LP)", Pre),
            Metric::TVD => ("TVD", "Total Variation Distance (TVD)", Pre),
            Metric::KS => ("KS", "Kolmogorov-Smirnov Distance (KS)", Pre),
            Metric::CDDL => (
                "CDDL",
                "Conditional Demographic Disparity in Labels (CDDL)",
                Pre,
            ),
            Metric::DPPL => (
                "DPPL",
                "Difference in Positive Proportions in Predicted Labels (DPPL)",
                Post,
            ),
            Metric::DI => ("DI", "Disparate Impact (DI)", Post),
            Metric::DCA => ("DCA", "Difference in Conditional Acceptance (DCA)", Post),
            Metric::DCR => ("DCR", "Difference in Conditional Rejection (DCR)", Post),
            Metric::RD => ("RD", "Recall Difference (RD)", Post),
            Metric::SD => ("SD", "Specificity Difference (SD)", Post),
            Metric::DAR => ("DAR", "Difference in Acceptance Rates (DAR)", Post),
            Metric::DRR => ("DRR", "Difference in Rejection Rates (DRR)", Post),
            Metric::AD => ("AD", "Accuracy Difference (AD)", Post),
            Metric::TE => ("TE", "Treatment Equality (TE)", Post),
            Metric::CDDPL => (
                "CDDPL",
                "Conditional Demographic Disparity in Predicted Labels (CDDPL)",
                Post,
            ),
            Metric::FT => ("FT", "Flip Test (FT)", Post),
            Metric::GE => ("GE", "Generalized Entropy (GE)", Post),
        }
    }
}

/// Row counts by facet (`[0]` = *a*, `[1]` = *d*), binary label and binary prediction.
pub type Confusion = [[[u64; 2]; 2]; 2];

/// What every metric but FT is computed from, for one facet selection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FacetCounts {
    pub all: Confusion,
    /// Per value of the group variable (absent: no group variable). Rows whose group value is
    /// missing are in `all` only, as in smclarify (NaN never equals itself).
    pub groups: Option<BTreeMap<GroupKey, Confusion>>,
}

/// A group variable's value, in np.unique's order (a column holds one kind), so that CDDL and
/// CDDPL sum their groups in Clarify's order.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum GroupKey {
    Int(i64),
    /// A non-NaN value as [`GroupKey::float`] encodes it.
    Float(u64),
    Text(String),
}

impl GroupKey {
    /// The bits of `x` (-0.0 folded into 0.0) mapped so that their order is numeric order.
    pub fn float(x: f64) -> Self {
        let bits = (x + 0.0).to_bits();
        GroupKey::Float(if bits >> 63 == 1 {
            !bits
        } else {
            bits | 1 << 63
        })
    }
}

pub type MetricResult = Result<f64, String>;

/// smclarify's `divide`: 0/0 = 0, x/0 = ±∞.
pub fn divide(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        if a == 0.0 {
            0.0
        } else if a < 0.0 {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        }
    } else {
        a / b
    }
}

/// `x - y`, except that two +∞ ratios differ by 0 (smclarify's rule for DCA … TE).
fn difference(x: f64, y: f64) -> f64 {
    if x == y && x == f64::INFINITY {
        0.0
    } else {
        x - y
    }
}

/// Counts of one facet group (`d` = 1 for *d*, 0 for *a*).
struct Group {
    n: f64,
    tp: f64,
    fp: f64,
    tn: f64,
    #[allow(clippy::struct_field_names)]
    fn_: f64,
}

impl Group {
    fn of(c: &Confusion, d: usize) -> Self {
        let g = &c[d];
        Group {
            tn: g[0][0] as f64,
            fp: g[0][1] as f64,
            fn_: g[1][0] as f64,
            tp: g[1][1] as f64,
            n: (g[0][0] + g[0][1] + g[1][0] + g[1][1]) as f64,
        }
    }
    fn labels_pos(&self) -> f64 {
        self.tp + self.fn_
    }
    fn labels_neg(&self) -> f64 {
        self.tn + self.fp
    }
    fn preds_pos(&self) -> f64 {
        self.tp + self.fp
    }
    fn preds_neg(&self) -> f64 {
        self.tn + self.fn_
    }
}

/// Every metric except FT (see [`flip_test`]).
pub fn compute(metric: Metric, counts: &FacetCounts) -> MetricResult {
    let c = &counts.all;
    let a = Group::of(c, 0);
    let d = Group::of(c, 1);
    // DCO, DLR, DLA, AD and TE check d first, with their own prefixes.
    let nonempty = |prefix: &str| -> Result<(), String> {
        if d.n == 0.0 {
            return Err(format!("{prefix}Facet set is empty"));
        }
        if a.n == 0.0 {
            return Err(format!("{prefix}Negated Facet set is empty"));
        }
        Ok(())
    };
    match metric {
        Metric::CI => {
            if a.n == 0.0 {
                return Err(
                    "CI: negated facet set is empty. Check that x[~facet] has non-zero length."
                        .into(),
                );
            }
            if d.n == 0.0 {
                return Err(
                    "CI: facet set is empty. Check that x[facet] has non-zero length.".into(),
                );
            }
            Ok((a.n - d.n) / (a.n + d.n))
        }
        Metric::DPL => positive_proportion_difference(&a, &d, Group::labels_pos),
        Metric::DPPL => positive_proportion_difference(&a, &d, Group::preds_pos),
        Metric::KL | Metric::JS | Metric::LP | Metric::TVD | Metric::KS => {
            label_distribution_distance(metric, &a, &d)
        }
        Metric::CDDL => conditional_demographic_disparity(counts, 1),
        Metric::CDDPL => conditional_demographic_disparity(counts, 2),
        Metric::DI => {
            if a.n == 0.0 {
                return Err("Negated facet set is empty".into());
            }
            if d.n == 0.0 {
                return Err("Facet set is empty".into());
            }
            Ok(divide(d.preds_pos() / d.n, a.preds_pos() / a.n))
        }
        Metric::DCA => {
            nonempty("DCO: ")?;
            Ok(difference(
                divide(a.labels_pos(), a.preds_pos()),
                divide(d.labels_pos(), d.preds_pos()),
            ))
        }
        Metric::DCR => {
            nonempty("DCO: ")?;
            Ok(difference(
                divide(d.labels_neg(), d.preds_neg()),
                divide(a.labels_neg(), a.preds_neg()),
            ))
        }
        Metric::RD => {
            nonempty("DLA: ")?;
            Ok(difference(
                divide(a.tp, a.tp + a.fn_),
                divide(d.tp, d.tp + d.fn_),
            ))
        }
        Metric::SD => {
            nonempty("DLA: ")?;
            Ok(difference(
                divide(d.tn, d.tn + d.fp),
                divide(a.tn, a.tn + a.fp),
            ))
        }
        Metric::DAR => {
            nonempty("DLR: ")?;
            Ok(difference(
                divide(a.tp, a.preds_pos()),
                divide(d.tp, d.preds_pos()),
            ))
        }
        Metric::DRR => {
            nonempty("DLR: ")?;
            Ok(difference(
                divide(d.tn, d.preds_neg()),
                divide(a.tn, a.preds_neg()),
            ))
        }
        Metric::AD => {
            nonempty("")?;
            Ok(difference(
                divide(a.tp + a.tn, a.n),
                divide(d.tp + d.tn, d.n),
            ))
        }
        Metric::TE => {
            nonempty("")?;
            Ok(difference(divide(d.fn_, d.fp), divide(a.fn_, a.fp)))
        }
        Metric::GE => generalized_entropy(c),
        Metric::FT => Err("the Flip Test needs rows; use flip_test".into()),
    }
}

/// DPL / DPPL: q_a − q_d with q = positives / n (smclarify's `common.DPL`).
fn positive_proportion_difference(
    a: &Group,
    d: &Group,
    positives: fn(&Group) -> f64,
) -> MetricResult {
    if a.n == 0.0 {
        return Err("Negative facet set is empty.".into());
    }
    if d.n == 0.0 {
        return Err("Facet set is empty.".into());
    }
    Ok(positives(a) / a.n - positives(d) / d.n)
}

/// KL, JS, LP (p = 2), TVD and KS between the binary label distributions of *a* and *d*, over
/// the outcomes that both groups have (smclarify's `pdfs_aligned_nonzero`).
fn label_distribution_distance(metric: Metric, a: &Group, d: &Group) -> MetricResult {
    let mut pa = Vec::with_capacity(2);
    let mut pd = Vec::with_capacity(2);
    // Outcomes in sorted order (False, True), as `pdf` sorts them.
    for (ca, cd) in [
        (a.labels_neg(), d.labels_neg()),
        (a.labels_pos(), d.labels_pos()),
    ] {
        if ca > 0.0 && cd > 0.0 {
            pa.push(ca / a.n);
            pd.push(cd / d.n);
        }
    }
    if pa.is_empty() {
        return Err("No instance of common facet found, dataset may be too small".into());
    }
    let pairs = || pa.iter().zip(&pd).map(|(&x, &y)| (x, y));
    Ok(match metric {
        Metric::KL => pairs().map(|(x, y)| x * (x / y).ln()).sum(),
        Metric::JS => {
            let kl_to_mean = |p: &dyn Fn(f64, f64) -> f64| -> f64 {
                pairs()
                    .map(|(x, y)| p(x, y) * (p(x, y) / (0.5 * (x + y))).ln())
                    .sum()
            };
            0.5 * (kl_to_mean(&|x, _| x) + kl_to_mean(&|_, y| y))
        }
        // numpy's `norm(x, 2)` is BLAS `dot(x, x)`, which Clarify's container accumulates with
        // fused multiply-adds: the real LP values need them.
        Metric::LP => pairs()
            .fold(0.0, |sum: f64, (x, y)| (x - y).mul_add(x - y, sum))
            .sqrt(),
        Metric::TVD => 0.5 * pairs().map(|(x, y)| (x - y).abs()).sum::<f64>(),
        Metric::KS => pairs().map(|(x, y)| (x - y).abs()).fold(0.0, f64::max),
        _ => unreachable!("not a label distribution metric"),
    })
}

/// CDDL (`axis` 1: labels) or CDDPL (`axis` 2: predictions): per group, the share of *d* among
/// the negatives minus its share among the positives, averaged with group sizes as weights.
fn conditional_demographic_disparity(counts: &FacetCounts, axis: usize) -> MetricResult {
    let Some(groups) = &counts.groups else {
        return Err("Group variable is empty or not provided".into());
    };
    // (positives, negatives, positives in d, negatives in d) of a confusion.
    let split = |c: &Confusion| -> [f64; 4] {
        let mut out = [0.0; 4];
        for (f, by_label) in c.iter().enumerate() {
            for (l, by_pred) in by_label.iter().enumerate() {
                for (p, &n) in by_pred.iter().enumerate() {
                    let positive = if axis == 1 { l == 1 } else { p == 1 };
                    let slot = if positive { 0 } else { 1 };
                    out[slot] += n as f64;
                    if f == 1 {
                        out[slot + 2] += n as f64;
                    }
                }
            }
        }
        out
    };
    let [pos, neg, _, _] = split(&counts.all);
    if pos == 0.0 {
        return Err("No positive labels in set".into());
    }
    if neg == 0.0 {
        return Err("No negative labels in set".into());
    }
    // smclarify appends each group's size and size·(rejected − accepted) to arrays (groups in
    // np.unique's order, the missing value last) and divides their np.sum: numpy's pairwise
    // summation, which the real values need to the last digit.
    let mut weighted = Vec::with_capacity(groups.len() + 1);
    let mut sizes = Vec::with_capacity(groups.len() + 1);
    let mut grouped_rows = 0.0;
    for c in groups.values() {
        let [pos, neg, pos_d, neg_d] = split(c);
        let accepted = if pos != 0.0 { pos_d / pos } else { 0.0 };
        let rejected = if neg != 0.0 { neg_d / neg } else { 0.0 };
        weighted.push((pos + neg) * (rejected - accepted));
        sizes.push(pos + neg);
        grouped_rows += pos + neg;
    }
    if grouped_rows < pos + neg {
        // Rows without a group value: np.unique lists NaN once, a group no row equals.
        weighted.push(0.0);
        sizes.push(0.0);
    }
    Ok(divide(numpy_sum(&weighted), numpy_sum(&sizes)))
}

/// `np.sum` of a contiguous float64 array: numpy's pairwise summation (eight accumulators over
/// blocks of up to 128 values, halves above that).
fn numpy_sum(values: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    let n = values.len();
    if n < 8 {
        return values.iter().fold(0.0, |sum, x| sum + x);
    }
    if n > BLOCK {
        let half = n / 2;
        let half = half - half % 8;
        return numpy_sum(&values[..half]) + numpy_sum(&values[half..]);
    }
    let mut r = [0.0; 8];
    r.copy_from_slice(&values[..8]);
    let whole = n - n % 8;
    for chunk in values[8..whole].chunks_exact(8) {
        for (acc, x) in r.iter_mut().zip(chunk) {
            *acc += x;
        }
    }
    let mut sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for x in &values[whole..] {
        sum += x;
    }
    sum
}

/// GE with α = 2 over all rows: benefit b = prediction − label + 1 (0 for a false negative, 2
/// for a false positive, 1 otherwise); GE = Σ((b/μ)² − 1) / (2N).
fn generalized_entropy(c: &Confusion) -> MetricResult {
    let sum = |l: usize, p: usize| (c[0][l][p] + c[1][l][p]) as f64;
    let (tn, fp, fn_, tp) = (sum(0, 0), sum(0, 1), sum(1, 0), sum(1, 1));
    let n = tn + fp + fn_ + tp;
    if n == 0.0 {
        return Err("dataset must be non-empty".into());
    }
    let mean = (tp + tn + 2.0 * fp) / n;
    if mean == 0.0 {
        return Err("All predicted labels are false negatives. There should be at least one prediction that is not false negative.".into());
    }
    let term = |b: f64| (b / mean).powi(2) - 1.0;
    Ok((fn_ * term(0.0) + (tp + tn) * term(1.0) + fp * term(2.0)) / (n * 2.0))
}

/// One row of the Flip Test: its features, whether it is in facet *d*, and the model's
/// (binary) prediction.
#[derive(Debug, Clone, Copy)]
pub struct FlipRow<'a> {
    pub features: &'a [f64],
    pub in_d: bool,
    pub predicted: bool,
}

/// Neighbours smclarify's k-NN uses: 5, or 1 when facet *a* has at most 9 rows.
const FT_NEIGHBOURS: usize = 5;
const FT_FEW_ROWS: usize = 9;

/// The Flip Test's counts over facet *d*'s rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FlipCounts {
    pub d_rows: u64,
    /// F⁺: rows the model accepts but the k-NN rejects.
    pub positive_flips: u64,
    /// F⁻: rows the model rejects but the k-NN accepts.
    pub negative_flips: u64,
}

impl FlipCounts {
    /// FT = (F⁺ − F⁻)/n_d.
    pub fn value(&self) -> f64 {
        divide(
            self.positive_flips as f64 - self.negative_flips as f64,
            self.d_rows as f64,
        )
    }
}

/// FT: a k-NN classifier (Euclidean, uniform votes) fitted on facet *a*'s features with the
/// model's predictions as targets predicts each *d* row; FT = (F⁺ − F⁻)/n_d, F⁺ = rows the model
/// accepts but the k-NN rejects, F⁻ the reverse (smclarify's `FlipSet_pos`/`FlipSet_neg`).
/// Neighbours at equal distance are taken in row order.
pub fn flip_test(rows: &[FlipRow]) -> Result<FlipCounts, String> {
    let (d, a): (Vec<&FlipRow>, Vec<&FlipRow>) = rows.iter().partition(|r| r.in_d);
    if d.is_empty() {
        return Err("Facet set is empty".into());
    }
    if a.is_empty() {
        return Err("Negated Facet set is empty".into());
    }
    if rows.iter().any(|r| r.features.iter().any(|x| x.is_nan())) {
        return Err("Input X contains NaN.".into());
    }
    if rows[0].features.is_empty() {
        return Err(format!(
            "Found array with 0 feature(s) (shape=({}, 0)) while a minimum of 1 is required by KNeighborsClassifier.",
            a.len()
        ));
    }
    let k = if a.len() > FT_FEW_ROWS {
        FT_NEIGHBOURS
    } else {
        1
    };
    let (mut positive_flips, mut negative_flips) = (0, 0);
    // The k nearest so far as (squared distance, prediction), sorted by distance.
    let mut nearest: Vec<(f64, bool)> = Vec::with_capacity(k + 1);
    for row in &d {
        nearest.clear();
        for other in &a {
            let distance: f64 = row
                .features
                .iter()
                .zip(other.features)
                .map(|(x, y)| (x - y) * (x - y))
                .sum();
            if nearest.len() == k && distance >= nearest[k - 1].0 {
                continue;
            }
            let at = nearest.partition_point(|&(n, _)| n <= distance);
            nearest.insert(at, (distance, other.predicted));
            nearest.truncate(k);
        }
        let votes = nearest.iter().filter(|(_, p)| *p).count();
        let knn_says = 2 * votes > nearest.len();
        positive_flips += u64::from(row.predicted && !knn_says);
        negative_flips += u64::from(!row.predicted && knn_says);
    }
    Ok(FlipCounts {
        d_rows: d.len() as u64,
        positive_flips,
        negative_flips,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confusion(a: [u64; 4], d: [u64; 4]) -> FacetCounts {
        // [tn, fp, fn, tp] per group.
        let c = |g: [u64; 4]| [[g[0], g[1]], [g[2], g[3]]];
        FacetCounts {
            all: [c(a), c(d)],
            groups: None,
        }
    }

    #[test]
    fn float_groups_sort_numerically() {
        let mut keys: Vec<GroupKey> = [0.5, -2.0, 3.0, -0.0, -1.0]
            .into_iter()
            .map(GroupKey::float)
            .collect();
        keys.sort();
        let expected: Vec<GroupKey> = [-2.0, -1.0, 0.0, 0.5, 3.0]
            .into_iter()
            .map(GroupKey::float)
            .collect();
        assert_eq!(keys, expected);
        assert_eq!(GroupKey::float(-0.0), GroupKey::float(0.0));
    }

    #[test]
    fn divide_follows_smclarify() {
        assert_eq!(divide(0.0, 0.0), 0.0);
        assert_eq!(divide(3.0, 0.0), f64::INFINITY);
        assert_eq!(divide(-3.0, 0.0), f64::NEG_INFINITY);
        assert_eq!(divide(1.0, 4.0), 0.25);
    }

    #[test]
    fn two_infinite_ratios_differ_by_zero_and_one_is_infinite() {
        // No false positives in either group: both FN/FP ratios are +∞ → TE = 0.
        let counts = confusion([5, 0, 2, 3], [4, 0, 1, 3]);
        assert_eq!(compute(Metric::TE, &counts), Ok(0.0));
        // Only d lacks false positives: TE = ∞ − 2/1.
        let counts = confusion([5, 1, 2, 3], [4, 0, 1, 3]);
        assert_eq!(compute(Metric::TE, &counts), Ok(f64::INFINITY));
        // DI with no positive prediction in a: qd/0 = ∞; with none anywhere 0/0 = 0.
        let counts = confusion([5, 0, 2, 0], [4, 1, 1, 0]);
        assert_eq!(compute(Metric::DI, &counts), Ok(f64::INFINITY));
        let counts = confusion([5, 0, 2, 0], [4, 0, 1, 0]);
        assert_eq!(compute(Metric::DI, &counts), Ok(0.0));
    }

    #[test]
    fn one_sided_outcomes_are_dropped_and_empty_groups_are_errors() {
        // d has only negative labels: only the "negative" outcome is common, Pa(0) vs Pd(0) = 1.
        let counts = confusion([3, 1, 4, 2], [5, 5, 0, 0]);
        let kl = compute(Metric::KL, &counts).unwrap();
        assert!((kl - 0.4 * (0.4f64).ln()).abs() < 1e-15);
        let counts = confusion([0, 0, 0, 0], [5, 5, 0, 0]);
        assert_eq!(
            compute(Metric::CI, &counts),
            Err("CI: negated facet set is empty. Check that x[~facet] has non-zero length.".into())
        );
        assert_eq!(
            compute(Metric::KS, &counts),
            Err("No instance of common facet found, dataset may be too small".into())
        );
        assert_eq!(
            compute(Metric::DCA, &counts),
            Err("DCO: Negated Facet set is empty".into())
        );
    }

    #[test]
    fn flip_test_counts_flips_against_the_nearest_neighbour() {
        let f = [[0.0], [1.0], [10.0], [11.0], [0.2], [10.2]];
        let rows: Vec<FlipRow> = [
            (false, false),
            (false, false),
            (false, true),
            (false, true),
            (true, true), // near a's negatives: the model accepts, k-NN rejects → F⁺
            (true, true), // near a's positives: no flip
        ]
        .iter()
        .zip(&f)
        .map(|(&(in_d, predicted), features)| FlipRow {
            features,
            in_d,
            predicted,
        })
        .collect();
        assert_eq!(flip_test(&rows).map(|f| f.value()), Ok(0.5));
    }
}
