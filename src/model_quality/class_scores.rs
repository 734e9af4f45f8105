//! A multiclass model's score of every class, per prediction: what CBPE estimates a
//! label-joined multiclass window from (`[monitor.estimate]`). The join itself needs only the
//! predicted class ([`super::PredictionRun`]), so the scores are kept beside it, by the same
//! keys, and only by monitors that estimate.

use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use super::join::{JoinKey, number, text_column};
use crate::decode::missing_column;

/// Rows sorted by key, one per key: `scores[i * width..(i + 1) * width]` are row `i`'s, in the
/// order of the spec's `class_scores` (its classes, sorted).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassScoreRun {
    width: u16,
    keys: Vec<JoinKey>,
    scores: Vec<f64>,
}

impl ClassScoreRun {
    /// The scores of a capture batch, from the columns `columns` (one per class); `keys[i]` is
    /// row `i`'s join key. A row with a score missing or not a finite number is left out (the
    /// estimate counts it as unscored). `Err`: the batch lacks a column.
    pub fn from_batch(
        columns: &[(String, String)],
        batch: &RecordBatch,
        keys: &[JoinKey],
    ) -> Result<Self, String> {
        let arrays = (columns.iter())
            .map(|(_, name)| {
                text_column(batch, name)
                    .ok_or_else(|| missing_column("estimate.probability_attributes", name, batch))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut rows: Vec<(JoinKey, usize)> = Vec::with_capacity(batch.num_rows());
        let mut values = Vec::with_capacity(batch.num_rows() * arrays.len());
        for (row, &key) in keys.iter().enumerate().take(batch.num_rows()) {
            let start = values.len();
            for array in &arrays {
                match number(array, row) {
                    Some(score) => values.push(score),
                    None => break,
                }
            }
            if values.len() == start + arrays.len() {
                rows.push((key, start));
            } else {
                values.truncate(start);
            }
        }
        let width = arrays.len();
        // A stable sort keeps each key's first row, as a prediction run does.
        rows.sort_by_key(|(key, _)| *key);
        rows.dedup_by_key(|(key, _)| *key);
        let mut run = Self {
            width: width as u16,
            keys: Vec::with_capacity(rows.len()),
            scores: Vec::with_capacity(rows.len() * width),
        };
        for (key, start) in rows {
            run.keys.push(key);
            run.scores.extend_from_slice(&values[start..start + width]);
        }
        Ok(run)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Scores held (rows × classes): what the run costs, 8 bytes each.
    pub fn values(&self) -> usize {
        self.scores.len()
    }

    /// The rows of `runs` as one run; on a key in several, the earliest run's row wins (as in
    /// [`super::PredictionRun::concat`]).
    pub fn concat(runs: &[Self]) -> Self {
        let width = runs.iter().map(|r| r.width).find(|&w| w > 0).unwrap_or(0);
        let mut rows: Vec<(JoinKey, usize, usize)> = (runs.iter().enumerate())
            .filter(|(_, run)| run.width == width)
            .flat_map(|(r, run)| run.keys.iter().enumerate().map(move |(i, &k)| (k, r, i)))
            .collect();
        rows.sort_unstable_by_key(|&(key, r, _)| (key, r));
        rows.dedup_by_key(|(key, _, _)| *key);
        let w = usize::from(width);
        let mut merged = Self {
            width,
            keys: Vec::with_capacity(rows.len()),
            scores: Vec::with_capacity(rows.len() * w),
        };
        for (key, r, i) in rows {
            merged.keys.push(key);
            merged
                .scores
                .extend_from_slice(&runs[r].scores[i * w..(i + 1) * w]);
        }
        merged
    }

    /// The scores of `key`'s row, if the run has one. `keys` must be asked in increasing
    /// order through one [`ScoreCursor`].
    pub fn cursor(&self) -> ScoreCursor<'_> {
        ScoreCursor { run: self, at: 0 }
    }

    /// What a decoded run must satisfy: keys strictly increasing, `width` scores per key, each
    /// finite.
    pub fn validate(&self) -> Result<(), String> {
        if self.keys.len().checked_mul(usize::from(self.width)) != Some(self.scores.len()) {
            return Err(format!(
                "{} keys of {} scores but {} scores",
                self.keys.len(),
                self.width,
                self.scores.len()
            ));
        }
        if self.keys.windows(2).any(|w| w[0] >= w[1]) {
            return Err("keys out of order".into());
        }
        if self.scores.iter().any(|s| !s.is_finite()) {
            return Err("a score is not a finite number".into());
        }
        Ok(())
    }

    /// Gives back the spare capacity a decoded run's vectors grew into.
    pub fn shrink_to_fit(&mut self) {
        self.keys.shrink_to_fit();
        self.scores.shrink_to_fit();
    }
}

/// Looks up a run's rows by keys in increasing order, in one pass.
pub struct ScoreCursor<'a> {
    run: &'a ClassScoreRun,
    at: usize,
}

impl<'a> ScoreCursor<'a> {
    pub fn scores_of(&mut self, key: JoinKey) -> Option<&'a [f64]> {
        let keys = &self.run.keys;
        while self.at < keys.len() && keys[self.at] < key {
            self.at += 1;
        }
        let w = usize::from(self.run.width);
        (keys.get(self.at) == Some(&key)).then(|| &self.run.scores[self.at * w..(self.at + 1) * w])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::decode::testing::text_batch as batch;

    fn columns() -> Vec<(String, String)> {
        vec![("a".into(), "pa".into()), ("b".into(), "pb".into())]
    }

    #[test]
    fn a_row_with_every_score_is_kept_by_key_and_the_first_of_a_key_wins() {
        let rows = batch(&[
            (
                "pa",
                &[Some("0.2"), Some("0.9"), Some("x"), Some("0.5"), None],
            ),
            (
                "pb",
                &[
                    Some("0.8"),
                    Some("0.1"),
                    Some("0.3"),
                    Some("0.5"),
                    Some("1"),
                ],
            ),
        ]);
        let run = ClassScoreRun::from_batch(&columns(), &rows, &[7, 3, 5, 7, 1]).unwrap();
        run.validate().unwrap();
        // Rows 2 ("x") and 4 (missing) are left out; key 7's first row wins.
        assert_eq!(run.keys, vec![3, 7]);
        assert_eq!(run.scores, vec![0.9, 0.1, 0.2, 0.8]);
        let mut cursor = run.cursor();
        assert_eq!(cursor.scores_of(1), None);
        assert_eq!(cursor.scores_of(3), Some(&[0.9, 0.1][..]));
        assert_eq!(cursor.scores_of(5), None);
        assert_eq!(cursor.scores_of(7), Some(&[0.2, 0.8][..]));
    }

    #[test]
    fn concat_keeps_the_earliest_runs_row_of_a_key() {
        let first = batch(&[("pa", &[Some("0.1")]), ("pb", &[Some("0.9")])]);
        let second = batch(&[
            ("pa", &[Some("0.6"), Some("0.7")]),
            ("pb", &[Some("0.4"), Some("0.3")]),
        ]);
        let a = ClassScoreRun::from_batch(&columns(), &first, &[4]).unwrap();
        let b = ClassScoreRun::from_batch(&columns(), &second, &[4, 2]).unwrap();
        let merged = ClassScoreRun::concat(&[a, b]);
        merged.validate().unwrap();
        assert_eq!(merged.keys, vec![2, 4]);
        assert_eq!(merged.scores, vec![0.7, 0.3, 0.1, 0.9]);
    }

    #[test]
    fn a_missing_column_is_named_and_forged_runs_are_refused() {
        let rows = batch(&[("pa", &[Some("0.1")])]);
        let error = ClassScoreRun::from_batch(&columns(), &rows, &[1]).unwrap_err();
        assert!(error.contains("pb"), "{error}");
        let forged = ClassScoreRun {
            width: 2,
            keys: vec![1, 2],
            scores: vec![0.1, 0.9, 0.5],
        };
        assert!(forged.validate().is_err());
        let unordered = ClassScoreRun {
            width: 1,
            keys: vec![2, 1],
            scores: vec![0.1, 0.9],
        };
        assert!(unordered.validate().is_err());
    }
}
