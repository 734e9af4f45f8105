//! Binary scores for the ROC and precision-recall curves and the AUC, kept exactly: a sorted
//! table of (score, label, subsample membership) → count. Exact-mergeable (counts add), and
//! bounded: a window holding more than [`MAX_SCORE_ENTRIES`] distinct (score, label,
//! membership) entries gives up its curves and AUC (the refusal is counted in
//! [`ScoreTable::refused_rows`]) rather than growing without bound or approximating.
//!
//! Model scores are usually distinct, so an entry per row is the common case: 16 bytes a row,
//! 32 MiB at the bound. Rows are appended unsorted and the table is sorted and compacted
//! whenever it has doubled, which keeps adding O(1) amortised.

use serde::{Deserialize, Serialize};

use super::sample::Membership;

/// The most entries a window's score table holds: 2,097,152 (a window of two million rows with
/// distinct scores). Beyond it the curves and AUC of that window are not reported.
pub const MAX_SCORE_ENTRIES: usize = 1 << 21;

/// Entries below which the table is not compacted yet.
const COMPACT_AT_LEAST: usize = 4096;
/// The count's share of an entry's second word; the tag sits above it.
const COUNT_BITS: u32 = 56;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ScoreTable {
    /// (order-preserving score bits, tag << 56 | count); tag = positive label in bit 0, the
    /// membership's bits above it. Sorted and without repeated keys up to `sorted`.
    entries: Vec<(u64, u64)>,
    #[serde(skip)]
    sorted: usize,
    /// Rows added, whether kept or refused.
    rows: u64,
    refused: bool,
}

/// One curve point per distinct score, highest score first: cumulative (positives, negatives).
struct Cumulative {
    points: Vec<(u64, u64)>,
    positives: u64,
    negatives: u64,
}

impl PartialEq for ScoreTable {
    fn eq(&self, other: &Self) -> bool {
        (self.rows, self.refused) == (other.rows, other.refused)
            && self.compacted() == other.compacted()
    }
}

impl ScoreTable {
    /// Adds one row; `score` must not be NaN.
    pub(crate) fn add(&mut self, score: f64, positive: bool, membership: Membership) {
        self.rows += 1;
        if self.refused {
            return;
        }
        let tag = u64::from(positive) | (u64::from(membership.bits()) << 1);
        self.entries
            .push((order_key(score), (tag << COUNT_BITS) | 1));
        if self.entries.len() >= 2 * self.sorted.max(COMPACT_AT_LEAST) {
            self.compact();
        }
    }

    pub(crate) fn merge(&mut self, other: &ScoreTable) {
        self.rows += other.rows;
        if self.refused || other.refused {
            self.refuse();
            return;
        }
        self.entries.extend_from_slice(&other.entries);
        self.compact();
    }

    /// Rows whose scores were dropped because the table outgrew [`MAX_SCORE_ENTRIES`].
    pub(crate) fn refused_rows(&self) -> u64 {
        if self.refused { self.rows } else { 0 }
    }

    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    /// Sorts and folds repeated (score, tag) entries into one; refuses past the bound.
    pub(crate) fn compact(&mut self) {
        self.entries = self.compacted();
        self.sorted = self.entries.len();
        if self.entries.len() > MAX_SCORE_ENTRIES {
            self.refuse();
        }
    }

    fn refuse(&mut self) {
        self.refused = true;
        self.entries = Vec::new();
        self.sorted = 0;
    }

    fn compacted(&self) -> Vec<(u64, u64)> {
        let mut entries = self.entries.clone();
        entries.sort_unstable_by_key(|&(key, word)| (key, word >> COUNT_BITS));
        let mut out: Vec<(u64, u64)> = Vec::with_capacity(entries.len());
        for (key, word) in entries {
            match out.last_mut() {
                Some((k, w)) if *k == key && *w >> COUNT_BITS == word >> COUNT_BITS => {
                    *w += word & COUNT_MASK
                }
                _ => out.push((key, word)),
            }
        }
        out
    }

    /// Checks what a decoded table must satisfy; the message says what is wrong.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let mut kept = 0u64;
        for &(_, word) in &self.entries {
            let tag = (word >> COUNT_BITS) as u8;
            if Membership::from_bits(tag >> 1).is_none() {
                return Err(format!("score entry with membership bits {:#b}", tag >> 1));
            }
            kept = kept.saturating_add(word & COUNT_MASK);
        }
        if self.refused && !self.entries.is_empty() {
            return Err("a refused score table still holds entries".into());
        }
        if !self.refused && kept != self.rows {
            return Err(format!(
                "score table counts {kept} rows in its entries but says {}",
                self.rows
            ));
        }
        Ok(())
    }

    /// The curve of accumulator `sample` (0 = whole); `None` when refused. Needs `compact`.
    fn cumulative(&self, sample: usize) -> Option<Cumulative> {
        if self.refused {
            return None;
        }
        debug_assert_eq!(self.sorted, self.entries.len(), "compact first");
        let mut points = Vec::new();
        let (mut positives, mut negatives) = (0u64, 0u64);
        let mut current = None;
        for &(key, word) in self.entries.iter().rev() {
            let tag = word >> COUNT_BITS;
            if (tag >> 1) & (1 << sample) == 0 {
                continue;
            }
            if current.is_some_and(|k| k != key) {
                points.push((positives, negatives));
            }
            current = Some(key);
            let count = word & COUNT_MASK;
            if tag & 1 == 1 {
                positives += count;
            } else {
                negatives += count;
            }
        }
        if current.is_some() {
            points.push((positives, negatives));
        }
        Some(Cumulative {
            points,
            positives,
            negatives,
        })
    }

    /// The ROC curve of accumulator `sample`, Spark's way: (0, 0), one (FPR, TPR) point per
    /// distinct score from the highest, (1, 1).
    pub(crate) fn roc(&self, sample: usize) -> Option<Vec<(f64, f64)>> {
        let curve = self.cumulative(sample)?;
        let mut points = Vec::with_capacity(curve.points.len() + 2);
        points.push((0.0, 0.0));
        for &(tp, fp) in &curve.points {
            points.push((ratio(fp, curve.negatives), ratio(tp, curve.positives)));
        }
        points.push((1.0, 1.0));
        Some(points)
    }

    /// The precision-recall curve, Spark's way: (recall, precision) per distinct score, after
    /// a first point (0, the first point's precision).
    pub(crate) fn precision_recall(&self, sample: usize) -> Option<Vec<(f64, f64)>> {
        let curve = self.cumulative(sample)?;
        let mut points: Vec<(f64, f64)> = curve
            .points
            .iter()
            .map(|&(tp, fp)| (ratio(tp, curve.positives), ratio(tp, tp + fp)))
            .collect();
        let first = points.first().map_or(1.0, |p| p.1);
        points.insert(0, (0.0, first));
        Some(points)
    }

    /// The area under the ROC curve by the trapezoidal rule, summed from the first point.
    pub(crate) fn auc(&self, sample: usize) -> Option<f64> {
        let roc = self.roc(sample)?;
        Some(
            roc.windows(2)
                .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
                .sum(),
        )
    }
}

/// `part / whole`, 0 when `whole` is 0 (Spark's rule for FPR and recall without negatives or
/// positives).
pub(crate) fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// A u64 whose order is the score's numeric order (−0 is 0).
fn order_key(score: f64) -> u64 {
    let bits = (score + 0.0).to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Membership {
        Membership::from_bits(0b11_1111).unwrap()
    }

    #[test]
    fn scores_order_like_numbers() {
        let mut keys: Vec<f64> = vec![0.5, -1.0, 0.0, -0.0, 1e-300, -1e-300, 2.0];
        keys.sort_by_key(|s| order_key(*s));
        assert_eq!(keys, [-1.0, -1e-300, 0.0, -0.0, 1e-300, 0.5, 2.0]);
        assert_eq!(order_key(0.0), order_key(-0.0));
    }

    #[test]
    fn tied_scores_make_one_point_and_sklearn_s_auc() {
        // sklearn.metrics.roc_auc_score([1, 0, 1, 0], [0.9, 0.9, 0.4, 0.1]) == 0.625
        let mut table = ScoreTable::default();
        for (score, positive) in [(0.9, true), (0.9, false), (0.4, true), (0.1, false)] {
            table.add(score, positive, all());
        }
        table.compact();
        assert_eq!(table.auc(0), Some(0.625));
        assert_eq!(
            table.roc(0).unwrap(),
            [(0.0, 0.0), (0.5, 0.5), (0.5, 1.0), (1.0, 1.0), (1.0, 1.0)]
        );
        assert_eq!(
            table.precision_recall(0).unwrap(),
            [(0.0, 0.5), (0.5, 0.5), (1.0, 2.0 / 3.0), (1.0, 0.5)]
        );
    }

    #[test]
    fn past_the_bound_the_table_refuses_and_counts() {
        let mut table = ScoreTable::default();
        for i in 0..(MAX_SCORE_ENTRIES + 1) {
            table.add(i as f64, i % 2 == 0, all());
        }
        table.compact();
        assert_eq!(table.refused_rows(), MAX_SCORE_ENTRIES as u64 + 1);
        assert_eq!(table.auc(0), None);
        let mut small = ScoreTable::default();
        small.add(0.5, true, all());
        small.merge(&table);
        assert_eq!(small.refused_rows(), MAX_SCORE_ENTRIES as u64 + 2);
    }
}
