//! The label join: predictions from capture, ground truth from label files, matched by the
//! capture's `inferenceId` (else its `eventId`) as the labels arrive.
//!
//! Everything here is pure; the daemon keeps one [`JoinState`] per series in its state store
//! and calls, in each finaliser pass, [`JoinState::absorb`] for each new label file, then
//! [`JoinState::join`] for each window due, then [`JoinState::expire`].
//!
//! - A pending prediction keeps a 128-bit hash of its key and what the metrics need (32 bytes
//!   for a binary prediction with a score); never the record.
//! - Labels that match no prediction yet wait (the orphan buffer) until `orphan_ttl`, then
//!   count as orphans.
//! - A window's predictions are matched when the window closes for labels; those left
//!   unmatched stay pending until `label_ttl`, so a label arriving later is counted late for
//!   its window instead of as an orphan.
//! - The first label of a key wins; a second one (in the same file, a later file, or after
//!   the first was matched, until `label_ttl`) is a duplicate.
//!
//! Times are event times in seconds (a label's is its file's time, the hour it was
//! collected). A window closes for labels at a time of its own (its end plus the lateness
//! allowed); only labels that arrived by then count as its labels, and expiries are judged at
//! that time too, so a replay of the same files gives the same result however fast it runs.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use arrow::array::{Array, StringArray};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use super::sample::{Membership, key_hash};
use super::state::{ModelQualityState, Observation};
use super::{ModelQualitySpec, ProblemType};
use crate::decode::{as_text, missing_column};

/// A record's join key, hashed to 128 bits (collisions are out of reach). Its low 64 bits are
/// [`key_hash`] of the key, so a joined row lands in the same subsamples as the same row read
/// from a labelled file.
pub type JoinKey = u128;

pub fn join_key(id: &[u8]) -> JoinKey {
    let high = twox_hash::XxHash64::oneshot(0x6a6f_696e, id);
    (u128::from(high) << 64) | u128::from(key_hash(id))
}

fn membership(key: JoinKey) -> Membership {
    Membership::of_hash(key as u64)
}

/// Distinct class names one run or join state keeps; a class past it is refused with its row.
pub const MAX_JOIN_CLASSES: usize = 1024;

/// Class names, stored once; runs and states refer to them by index.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Classes {
    names: Vec<String>,
    #[serde(skip)]
    index: HashMap<String, u16>,
}

impl PartialEq for Classes {
    fn eq(&self, other: &Self) -> bool {
        self.names == other.names
    }
}

impl Classes {
    fn id(&mut self, name: &str) -> Option<u16> {
        if self.index.len() != self.names.len() {
            self.reindex();
        }
        if let Some(&id) = self.index.get(name) {
            return Some(id);
        }
        if self.names.len() >= MAX_JOIN_CLASSES {
            return None;
        }
        let id = self.names.len() as u16;
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), id);
        Some(id)
    }

    fn reindex(&mut self) {
        self.index = (self.names.iter().enumerate())
            .map(|(i, name)| (name.clone(), i as u16))
            .collect();
    }

    fn name(&self, id: u16) -> &str {
        &self.names[id as usize]
    }

    fn validate(&self, ids: impl Iterator<Item = u16>) -> Result<(), String> {
        if self.names.len() > MAX_JOIN_CLASSES {
            return Err(format!("{} classes", self.names.len()));
        }
        for id in ids {
            if id as usize >= self.names.len() {
                return Err(format!("class {id} of {}", self.names.len()));
            }
        }
        Ok(())
    }
}

/// What a prediction keeps. 16 bytes: with its key, 32 per pending prediction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Predicted {
    /// `score` is NaN without a probability attribute.
    Binary {
        label: bool,
        score: f64,
    },
    Class(u16),
    Number(f64),
}

/// What a label keeps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Truth {
    Binary(bool),
    Class(u16),
    Number(f64),
}

/// Values sorted by key, one per key, with their class names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run<V> {
    pub classes: Classes,
    keys: Vec<JoinKey>,
    values: Vec<V>,
    /// Rows of the same key after the first: dropped.
    pub duplicates: u64,
    /// Rows without a usable value (missing, unreadable, or a class past the limit).
    pub skipped: u64,
}

pub type PredictionRun = Run<Predicted>;
pub type LabelRun = Run<Truth>;

impl<V: Copy + ClassRef> Run<V> {
    pub fn empty() -> Self {
        Self {
            classes: Classes::default(),
            keys: Vec::new(),
            values: Vec::new(),
            duplicates: 0,
            skipped: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Sorts `rows` by key, keeping each key's first row (a stable sort keeps arrival order).
    fn from_rows(classes: Classes, mut rows: Vec<(JoinKey, V)>, skipped: u64) -> Self {
        rows.sort_by_key(|(key, _)| *key);
        let before = rows.len();
        rows.dedup_by_key(|(key, _)| *key);
        let duplicates = (before - rows.len()) as u64;
        let (keys, values) = rows.into_iter().unzip();
        Self {
            classes,
            keys,
            values,
            duplicates,
            skipped,
        }
    }

    /// The rows of `runs` as one run; on a key in several, the earliest run's row wins. A
    /// k-way merge of the sorted runs: O(n log k), and no memory beyond the result.
    pub fn concat(runs: &[Self]) -> Self {
        let mut classes = Classes::default();
        let remaps: Vec<Vec<Option<u16>>> = (runs.iter())
            .map(|run| {
                (run.classes.names.iter())
                    .map(|name| classes.id(name))
                    .collect()
            })
            .collect();
        let total = runs.iter().map(|r| r.keys.len()).sum();
        let mut merged = Self {
            classes: Classes::default(),
            keys: Vec::with_capacity(total),
            values: Vec::with_capacity(total),
            duplicates: runs.iter().map(|r| r.duplicates).sum(),
            skipped: runs.iter().map(|r| r.skipped).sum(),
        };
        // Each run's next row, smallest key first and, on equal keys, the earliest run first.
        let mut next: BinaryHeap<Reverse<(JoinKey, usize, usize)>> = (runs.iter().enumerate())
            .filter(|(_, run)| !run.keys.is_empty())
            .map(|(r, run)| Reverse((run.keys[0], r, 0)))
            .collect();
        while let Some(Reverse((key, r, row))) = next.pop() {
            if let Some(&following) = runs[r].keys.get(row + 1) {
                next.push(Reverse((following, r, row + 1)));
            }
            match runs[r].values[row].remap(&remaps[r]) {
                None => merged.skipped += 1,
                Some(_) if merged.keys.last() == Some(&key) => merged.duplicates += 1,
                Some(value) => {
                    merged.keys.push(key);
                    merged.values.push(value);
                }
            }
        }
        merged.classes = classes;
        merged
    }

    /// Each row's key and value, in key order.
    pub fn rows(&self) -> impl Iterator<Item = (JoinKey, V)> + '_ {
        self.keys.iter().copied().zip(self.values.iter().copied())
    }

    /// The name of class `id`, as a value of this run refers to it.
    pub fn class_name(&self, id: u16) -> &str {
        self.classes.name(id)
    }

    /// Gives back the spare capacity a decoded run's vectors grew into (a deserializer cannot
    /// trust a stored length, so it grows them by doubling: up to twice the memory).
    pub fn shrink_to_fit(&mut self) {
        self.keys.shrink_to_fit();
        self.values.shrink_to_fit();
    }

    /// What a decoded run must satisfy: keys strictly increasing, classes in range.
    pub fn validate(&self) -> Result<(), String> {
        if self.keys.len() != self.values.len() {
            return Err("keys and values differ in number".into());
        }
        if self.keys.windows(2).any(|w| w[0] >= w[1]) {
            return Err("keys out of order".into());
        }
        self.classes
            .validate(self.values.iter().filter_map(|v| v.class()))
    }
}

/// The class a value refers to, and the value with its class renumbered.
pub trait ClassRef: Sized {
    fn class(&self) -> Option<u16>;
    fn with_class(self, class: u16) -> Self;

    fn remap(self, remap: &[Option<u16>]) -> Option<Self> {
        match self.class() {
            Some(class) => remap[class as usize].map(|c| self.with_class(c)),
            None => Some(self),
        }
    }
}

impl ClassRef for Predicted {
    fn class(&self) -> Option<u16> {
        match self {
            Predicted::Class(c) => Some(*c),
            _ => None,
        }
    }
    fn with_class(self, class: u16) -> Self {
        Predicted::Class(class)
    }
}

impl ClassRef for Truth {
    fn class(&self) -> Option<u16> {
        match self {
            Truth::Class(c) => Some(*c),
            _ => None,
        }
    }
    fn with_class(self, class: u16) -> Self {
        Truth::Class(class)
    }
}

/// A column as trimmed text; `None` values are missing.
pub(super) fn text_column(batch: &RecordBatch, name: &str) -> Option<StringArray> {
    let array = batch.column_by_name(name)?;
    Some(
        as_text(array)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("as_text gives Utf8")
            .clone(),
    )
}

fn value(column: &StringArray, row: usize) -> Option<&str> {
    (column.is_valid(row))
        .then(|| column.value(row).trim())
        .filter(|t| !t.is_empty())
}

pub(super) fn number(column: &StringArray, row: usize) -> Option<f64> {
    value(column, row)?
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
}

fn binary(column: &StringArray, row: usize) -> Option<bool> {
    match number(column, row)? {
        1.0 => Some(true),
        0.0 => Some(false),
        _ => None,
    }
}

fn class(column: &StringArray, row: usize) -> Option<String> {
    value(column, row).map(super::batch::canonical_class)
}

impl PredictionRun {
    /// The predictions of a capture batch; `keys[i]` is row `i`'s join key. `Err`: the batch
    /// lacks a column the spec names.
    pub fn from_batch(
        spec: &ModelQualitySpec,
        batch: &RecordBatch,
        keys: &[JoinKey],
    ) -> Result<Self, String> {
        let find = |setting: &str, name: &Option<String>| -> Result<Option<StringArray>, String> {
            name.as_deref()
                .map(|n| text_column(batch, n).ok_or_else(|| missing_column(setting, n, batch)))
                .transpose()
        };
        let inference = find("inference_attribute", &spec.inference_attribute)?;
        let probability = match spec.problem_type {
            ProblemType::BinaryClassification => {
                find("probability_attribute", &spec.probability_attribute)?
            }
            _ => None,
        };
        let mut classes = Classes::default();
        let mut rows = Vec::with_capacity(batch.num_rows());
        let mut skipped = 0;
        for (row, &key) in keys.iter().enumerate().take(batch.num_rows()) {
            let predicted = match spec.problem_type {
                ProblemType::BinaryClassification => (|| {
                    let score = match &probability {
                        Some(p) => Some(number(p, row)?),
                        None => None,
                    };
                    let label = match (spec.probability_threshold, score, &inference) {
                        (Some(threshold), Some(score), _) => score > threshold,
                        (_, _, Some(inference)) => binary(inference, row)?,
                        _ => return None,
                    };
                    Some(Predicted::Binary {
                        label,
                        score: score.unwrap_or(f64::NAN),
                    })
                })(),
                ProblemType::MulticlassClassification => inference
                    .as_ref()
                    .and_then(|c| class(c, row))
                    .and_then(|name| classes.id(&name))
                    .map(Predicted::Class),
                ProblemType::Regression => inference
                    .as_ref()
                    .and_then(|c| number(c, row))
                    .map(Predicted::Number),
            };
            match predicted {
                Some(predicted) => rows.push((key, predicted)),
                None => skipped += 1,
            }
        }
        Ok(Self::from_rows(classes, rows, skipped))
    }
}

/// A binary model's predictions as CBPE reads them: per row its score, its predicted label
/// (0 or 1) and, when asked for, its true label. Rows without a score are left out.
#[derive(Debug, Default)]
pub struct ScoredRows {
    pub scores: Vec<f64>,
    pub predicted: Vec<usize>,
    pub labels: Vec<usize>,
}

impl ScoredRows {
    fn push(&mut self, predicted: Predicted) -> bool {
        match predicted {
            Predicted::Binary { label, score } if !score.is_nan() => {
                self.scores.push(score);
                self.predicted.push(usize::from(label));
                true
            }
            _ => false,
        }
    }
}

impl PredictionRun {
    /// The run's scored binary predictions, in key order.
    pub fn scored(&self) -> ScoredRows {
        let mut rows = ScoredRows::default();
        for &predicted in &self.values {
            rows.push(predicted);
        }
        rows
    }

    /// The scored binary predictions with a binary label of the same key in `labels`, in key
    /// order (a labelled reference read with its row numbers as keys keeps the file's order).
    pub fn scored_with(&self, labels: &LabelRun) -> ScoredRows {
        let mut rows = ScoredRows::default();
        let mut truth = labels.keys.iter().zip(&labels.values).peekable();
        for (key, &predicted) in self.keys.iter().zip(&self.values) {
            while truth.next_if(|(k, _)| *k < key).is_some() {}
            let Some((_, &Truth::Binary(label))) = truth.next_if(|(k, _)| *k == key) else {
                continue;
            };
            if rows.push(predicted) {
                rows.labels.push(usize::from(label));
            }
        }
        rows
    }
}

impl LabelRun {
    /// The labels of a ground-truth batch: the `ground_truth_attribute` column, or with a
    /// CSV-encoded label (columns `_c0, …`) the first column when the batch has no column of
    /// that name.
    pub fn from_batch(
        spec: &ModelQualitySpec,
        batch: &RecordBatch,
        keys: &[JoinKey],
    ) -> Result<Self, String> {
        let name = &spec.ground_truth_attribute;
        let truth = text_column(batch, name)
            .or_else(|| text_column(batch, "_c0"))
            .ok_or_else(|| missing_column("ground_truth_attribute", name, batch))?;
        let mut classes = Classes::default();
        let mut rows = Vec::with_capacity(batch.num_rows());
        let mut skipped = 0;
        for (row, &key) in keys.iter().enumerate().take(batch.num_rows()) {
            let label = match spec.problem_type {
                ProblemType::BinaryClassification => binary(&truth, row).map(Truth::Binary),
                ProblemType::MulticlassClassification => class(&truth, row)
                    .and_then(|name| classes.id(&name))
                    .map(Truth::Class),
                ProblemType::Regression => number(&truth, row).map(Truth::Number),
            };
            match label {
                Some(label) => rows.push((key, label)),
                None => skipped += 1,
            }
        }
        Ok(Self::from_rows(classes, rows, skipped))
    }
}

/// What happened to predictions and labels, per window (and in total).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinCounts {
    /// Predictions of the window (one per key).
    pub predictions: u64,
    /// Predictions that had their label when the window closed for labels.
    pub labelled: u64,
    /// Predictions without a label then (they stay pending until `label_ttl`).
    pub unlabelled: u64,
    /// Labels for predictions of windows already closed (arrived since the last window).
    pub late_labels: u64,
    /// Labels that matched no prediction within `orphan_ttl` (expired since the last window).
    pub orphan_labels: u64,
    /// Second and later labels of a key (since the last window).
    pub duplicate_labels: u64,
    /// Second and later predictions of a key in the window.
    pub duplicate_predictions: u64,
    /// Rows without a usable prediction or label (missing, unreadable, class past the limit,
    /// or the pending-label limit reached) since the last window.
    pub skipped_rows: u64,
    /// With `restate`: how many times the window was restated with late labels. Not in the
    /// stored counts (kept in [`Restatable`]); in `label_join.json` from the first revision.
    #[serde(skip)]
    pub revision: u32,
}

impl JoinCounts {
    /// Labelled predictions over predictions; `None` for a window without predictions.
    pub fn label_coverage(&self) -> Option<f64> {
        (self.predictions > 0).then(|| self.labelled as f64 / self.predictions as f64)
    }

    /// `label_join.json`: the counts and the label coverage (`null` without predictions).
    pub fn file(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).expect("counts serialize");
        value["label_coverage"] = serde_json::json!(self.label_coverage());
        if self.revision > 0 {
            value["revision"] = serde_json::json!(self.revision);
        }
        value
    }
}

/// driftd's file beside a label-joined window's model-quality files.
pub const LABEL_JOIN_FILE: &str = "label_join.json";

/// A closed window's predictions still without a label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PendingWindow {
    start: i64,
    /// Event time after which its predictions are unlabelled for good.
    expires: i64,
    keys: Vec<JoinKey>,
}

/// A window's joined result, kept until the window is committed, so that a finaliser that
/// dies in between commits the same result after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinedWindow {
    pub start: i64,
    pub state: Staged,
    pub counts: JoinCounts,
}

/// A joined window's state as staged: a model-quality state, or another kind's window state
/// in the window codec's bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Staged {
    ModelQuality(Box<ModelQualityState>),
    Window(Vec<u8>),
}

/// A joined window that late labels restate (`restate = true`), until its unlabelled
/// predictions expire: its result as last committed, what its unlabelled predictions need to
/// be folded in, and the late labels not folded in yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Restatable {
    pub result: JoinedWindow,
    /// The revision `result` is (0: the window's first result).
    revision: u32,
    /// A model-quality window's predictions without a label.
    unlabelled: PredictionRun,
    /// A bias window's rows without a label, in the window codec's bytes (the caller folds
    /// them in, see [`JoinState::restated`]).
    pub unlabelled_rows: Option<Vec<u8>>,
    /// Late labels of its predictions, not folded in yet.
    late: Vec<(JoinKey, Truth)>,
}

/// The join's durable state for one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinState {
    problem_type: ProblemType,
    classes: Classes,
    /// Labels without their prediction yet, by key: the label and its arrival time.
    waiting_keys: Vec<JoinKey>,
    waiting: Vec<(Truth, i64)>,
    /// Keys whose label was used, and when: a repeat until `label_ttl` is a duplicate.
    matched_keys: Vec<JoinKey>,
    matched_at: Vec<i64>,
    pending: Vec<PendingWindow>,
    /// Label files folded in whose stored runs may still exist (a restart must not fold them
    /// twice); forgotten once the store no longer lists them.
    pub absorbed: Vec<String>,
    /// Joined windows not yet known to be committed.
    pub staged: Vec<JoinedWindow>,
    /// Counts since the last joined window, reported with the next one.
    since_last: JoinCounts,
    /// Whether late labels restate their window (the monitor's `restate`; not stored).
    #[serde(skip)]
    pub restate: bool,
    /// Joined windows late labels restate (with `restate`), oldest first. Last, so that a
    /// state sealed before it existed reads as one without (see `JoinState::decode`).
    restatable: Vec<Restatable>,
}

/// How long labels wait for their predictions (`orphan`) and used keys and unlabelled
/// predictions are remembered (`label`), in seconds; and how many of each are remembered at
/// most (`max_remembered`), so that their memory is bounded whatever the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl {
    pub orphan: i64,
    pub label: i64,
    pub max_remembered: usize,
}

/// What absorbing one label file did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Absorbed {
    pub waiting: u64,
    pub late: u64,
    pub duplicates: u64,
    pub refused: u64,
}

/// A bias window's late labels as text, its rows without a label (window codec bytes) and
/// its result as last committed.
pub struct LateRows<'a> {
    pub labels: Vec<(JoinKey, String)>,
    pub rows: &'a [u8],
    pub result: &'a JoinedWindow,
}

/// A window's keys matched with the labels that arrived by its close.
struct Matched {
    /// The keys whose label came in time: their position among the window's keys (ascending)
    /// and their label. Sparse, so that a window of unlabelled predictions costs nothing here.
    labels: Vec<(usize, Truth)>,
    counts: JoinCounts,
    /// With `restate`: labels read before the window closed but collected after it.
    late: Vec<(JoinKey, Truth)>,
}

impl JoinState {
    pub fn new(problem_type: ProblemType) -> Self {
        Self {
            problem_type,
            classes: Classes::default(),
            waiting_keys: Vec::new(),
            waiting: Vec::new(),
            matched_keys: Vec::new(),
            matched_at: Vec::new(),
            pending: Vec::new(),
            absorbed: Vec::new(),
            staged: Vec::new(),
            since_last: JoinCounts::default(),
            restate: false,
            restatable: Vec::new(),
        }
    }

    /// Labels waiting for their prediction.
    pub fn waiting_labels(&self) -> usize {
        self.waiting_keys.len()
    }

    /// Predictions of closed windows still waiting for their label.
    pub fn pending_predictions(&self) -> usize {
        self.pending.iter().map(|w| w.keys.len()).sum()
    }

    /// Folds in one label file's labels, which arrived at `arrived`. At most `max_waiting`
    /// labels wait; more are refused and counted.
    pub fn absorb(&mut self, labels: LabelRun, arrived: i64, max_waiting: usize) -> Absorbed {
        let mut outcome = Absorbed {
            duplicates: labels.duplicates,
            ..Absorbed::default()
        };
        self.since_last.skipped_rows += labels.skipped;
        let remap: Vec<Option<u16>> = (labels.classes.names.iter())
            .map(|name| self.classes.id(name))
            .collect();
        let mut waiting = Vec::new();
        let mut matched = Vec::new();
        // Keys of closed windows' pending predictions that got their (late) label, per window:
        // removed together afterwards, not one Vec::remove each.
        let mut labelled_late: Vec<Vec<JoinKey>> = vec![Vec::new(); self.pending.len()];
        for (key, truth) in labels.keys.into_iter().zip(labels.values) {
            if self.waiting_keys.binary_search(&key).is_ok()
                || self.matched_keys.binary_search(&key).is_ok()
            {
                outcome.duplicates += 1;
                continue;
            }
            if let Some(window) =
                (self.pending.iter()).position(|w| w.keys.binary_search(&key).is_ok())
            {
                labelled_late[window].push(key);
                outcome.late += 1;
                matched.push((key, arrived));
                let start = self.pending[window].start;
                if let Some(truth) = truth.remap(&remap)
                    && let Some(restatable) = self.restatable_mut(start)
                {
                    restatable.late.push((key, truth));
                }
                continue;
            }
            let Some(truth) = truth.remap(&remap) else {
                self.since_last.skipped_rows += 1;
                continue;
            };
            if self.waiting_keys.len() + waiting.len() >= max_waiting {
                outcome.refused += 1;
                continue;
            }
            waiting.push((key, (truth, arrived)));
        }
        for (window, mut keys) in self.pending.iter_mut().zip(labelled_late) {
            if !keys.is_empty() {
                keys.sort_unstable();
                window.keys.retain(|k| keys.binary_search(k).is_err());
            }
        }
        outcome.waiting = waiting.len() as u64;
        merge_sorted(&mut self.waiting_keys, &mut self.waiting, waiting);
        merge_sorted(&mut self.matched_keys, &mut self.matched_at, matched);
        self.since_last.late_labels += outcome.late;
        self.since_last.duplicate_labels += outcome.duplicates;
        self.since_last.skipped_rows += outcome.refused;
        outcome
    }

    /// Matches the keys (sorted, unique) of a window closing for labels at event time `closes`
    /// with the labels that arrived by then (one arrived later is late for it, and not
    /// returned); those left unmatched stay pending until `expires`. Then expires what is past
    /// its time at `closes` (see [`JoinState::expire`]). Returns each key's label, and the
    /// window's counts (predictions, labelled, unlabelled, and what happened since the last
    /// window).
    fn match_keys(
        &mut self,
        start: i64,
        keys: &[JoinKey],
        closes: i64,
        expires: i64,
        ttl: Ttl,
    ) -> Matched {
        let mut counts = JoinCounts {
            predictions: keys.len() as u64,
            ..JoinCounts::default()
        };
        let mut labels = Vec::new();
        let mut unmatched = Vec::new();
        let mut used = vec![false; self.waiting_keys.len()];
        let mut matched = Vec::new();
        let mut late = Vec::new();
        let mut cursor = 0;
        for (row, &key) in keys.iter().enumerate() {
            // Both sides sorted: one walk.
            cursor += self.waiting_keys[cursor..].partition_point(|k| *k < key);
            if self.waiting_keys.get(cursor) != Some(&key) {
                unmatched.push(key);
                continue;
            }
            let (truth, arrived) = self.waiting[cursor];
            used[cursor] = true;
            matched.push((key, closes));
            if arrived > closes {
                // Read before this window closed, but collected after: late, as it would
                // have been had the window closed on time.
                counts.late_labels += 1;
                if self.restate {
                    late.push((key, truth));
                }
                continue;
            }
            labels.push((row, truth));
            counts.labelled += 1;
        }
        counts.unlabelled = counts.predictions - counts.labelled;
        let keep: Vec<bool> = used.iter().map(|u| !u).collect();
        retain_by(&mut self.waiting_keys, &keep);
        retain_by(&mut self.waiting, &keep);
        merge_sorted(&mut self.matched_keys, &mut self.matched_at, matched);
        if !unmatched.is_empty() {
            self.pending.push(PendingWindow {
                start,
                expires,
                keys: unmatched,
            });
        }
        self.expire(closes, ttl);
        let since = std::mem::take(&mut self.since_last);
        counts.late_labels += since.late_labels;
        counts.orphan_labels += since.orphan_labels;
        counts.duplicate_labels += since.duplicate_labels;
        counts.skipped_rows += since.skipped_rows;
        Matched {
            labels,
            counts,
            late,
        }
    }

    /// Joins a model-quality window's predictions (see `match_keys`: when it closes for labels
    /// at `closes`, which labels count); its state and counts are staged and returned.
    pub fn join(
        &mut self,
        start: i64,
        predictions: PredictionRun,
        closes: i64,
        expires: i64,
        ttl: Ttl,
    ) -> JoinedWindow {
        let Matched {
            labels,
            mut counts,
            late,
        } = self.match_keys(start, &predictions.keys, closes, expires, ttl);
        counts.duplicate_predictions = predictions.duplicates;
        counts.skipped_rows += predictions.skipped;
        let mut state = ModelQualityState::new(self.problem_type);
        // The unlabelled predictions' values are kept only to restate the window later.
        let mut unlabelled = Vec::new();
        let mut labels = labels.into_iter().peekable();
        let rows = predictions.keys.iter().zip(&predictions.values).enumerate();
        for (row, (&key, &predicted)) in rows {
            let Some((_, truth)) = labels.next_if(|(labelled, _)| *labelled == row) else {
                if self.restate {
                    unlabelled.push((key, predicted));
                }
                continue;
            };
            if !self.fold(&mut state, key, predicted, &predictions.classes, truth) {
                counts.labelled -= 1;
                counts.unlabelled += 1;
                counts.skipped_rows += 1;
            }
        }
        let joined = JoinedWindow {
            start,
            state: Staged::ModelQuality(Box::new(state)),
            counts,
        };
        self.staged.push(joined.clone());
        if self.restate {
            self.restatable.push(Restatable {
                result: joined.clone(),
                revision: 0,
                unlabelled: Run {
                    classes: predictions.classes,
                    keys: unlabelled.iter().map(|(key, _)| *key).collect(),
                    values: unlabelled.into_iter().map(|(_, value)| value).collect(),
                    duplicates: 0,
                    skipped: 0,
                },
                unlabelled_rows: None,
                late,
            });
        }
        joined
    }

    /// Adds a labelled prediction to `state`; `false` when the state refuses its class pair
    /// (past [`super::state::MAX_CLASSES`]).
    fn fold(
        &self,
        state: &mut ModelQualityState,
        key: JoinKey,
        predicted: Predicted,
        predicted_classes: &Classes,
        truth: Truth,
    ) -> bool {
        let observation = match (predicted, truth) {
            (Predicted::Binary { label, score }, Truth::Binary(actual)) => Observation::Binary {
                predicted: label,
                actual,
                score: (!score.is_nan()).then_some(score),
            },
            (Predicted::Class(p), Truth::Class(a)) => {
                let (p, a) = (predicted_classes.name(p), self.classes.name(a));
                if !state.admits_class_pair(a, p) {
                    return false;
                }
                Observation::Multiclass {
                    predicted: p,
                    actual: a,
                }
            }
            (Predicted::Number(predicted), Truth::Number(actual)) => {
                Observation::Regression { predicted, actual }
            }
            _ => unreachable!("one series joins one problem type"),
        };
        state
            .add(membership(key), observation)
            .expect("the state was made for the series' problem type");
        true
    }

    /// The labels (as text) of a window's keys, sorted and unique, joined as `join` does; a
    /// caller that builds the window's state from them stages it with [`JoinState::stage`]. A
    /// join state for labels as text is made with `ProblemType::MulticlassClassification`.
    pub fn join_labels(
        &mut self,
        start: i64,
        keys: &[JoinKey],
        closes: i64,
        expires: i64,
        ttl: Ttl,
    ) -> (Vec<Option<String>>, JoinCounts, Vec<(JoinKey, Truth)>) {
        let Matched {
            labels,
            counts,
            late,
        } = self.match_keys(start, keys, closes, expires, ttl);
        let mut text = vec![None; keys.len()];
        for (row, truth) in labels {
            text[row] = Some(self.text(truth));
        }
        (text, counts, late)
    }

    fn text(&self, truth: Truth) -> String {
        match truth {
            Truth::Class(class) => self.classes.name(class).to_string(),
            Truth::Binary(b) => u8::from(b).to_string(),
            Truth::Number(x) => x.to_string(),
        }
    }

    /// Stages a window's result built from [`JoinState::join_labels`]. With `restate`, its
    /// rows without a label (`unlabelled_rows`) and the labels `late` for them are kept too.
    pub fn stage(
        &mut self,
        start: i64,
        window: Vec<u8>,
        counts: JoinCounts,
        unlabelled_rows: Vec<u8>,
        late: Vec<(JoinKey, Truth)>,
    ) {
        let joined = JoinedWindow {
            start,
            state: Staged::Window(window),
            counts,
        };
        if self.restate {
            self.restatable.push(Restatable {
                result: joined.clone(),
                revision: 0,
                unlabelled: Run::empty(),
                unlabelled_rows: Some(unlabelled_rows),
                late,
            });
        }
        self.staged.push(joined);
    }

    fn restatable_mut(&mut self, start: i64) -> Option<&mut Restatable> {
        self.restatable.iter_mut().find(|r| r.result.start == start)
    }

    /// Windows with late labels not folded in yet, oldest first.
    pub fn restatements_due(&self) -> Vec<i64> {
        (self.restatable.iter())
            .filter(|r| !r.late.is_empty())
            .map(|r| r.result.start)
            .collect()
    }

    /// Folds the late labels of a model-quality window into its result: the window's next
    /// revision. The state keeps it as the window's result; the caller commits it.
    pub fn restate(&mut self, start: i64) -> Option<JoinedWindow> {
        let mut restatable = self.restatable_mut(start)?.clone();
        if restatable.late.is_empty() {
            return None;
        }
        let Staged::ModelQuality(state) = &mut restatable.result.state else {
            return None;
        };
        let counts = &mut restatable.result.counts;
        let mut folded = Vec::new();
        for (key, truth) in std::mem::take(&mut restatable.late) {
            let unlabelled = &restatable.unlabelled;
            let Ok(at) = unlabelled.keys.binary_search(&key) else {
                continue;
            };
            if self.fold(
                state,
                key,
                unlabelled.values[at],
                &unlabelled.classes,
                truth,
            ) {
                counts.labelled += 1;
                counts.unlabelled -= 1;
            }
            folded.push(key);
        }
        folded.sort_unstable();
        let unlabelled = &mut restatable.unlabelled;
        let keep: Vec<bool> = (unlabelled.keys.iter())
            .map(|k| folded.binary_search(k).is_err())
            .collect();
        retain_by(&mut unlabelled.keys, &keep);
        retain_by(&mut unlabelled.values, &keep);
        restatable.revision += 1;
        let mut result = restatable.result.clone();
        result.counts.revision = restatable.revision;
        *self.restatable_mut(start)? = restatable;
        Some(result)
    }

    /// A bias window's late labels as text, by key, and its rows without a label: what the
    /// caller folds in before it hands the result to [`JoinState::restated`].
    pub fn late_rows(&self, start: i64) -> Option<LateRows<'_>> {
        let restatable = self.restatable.iter().find(|r| r.result.start == start)?;
        Some(LateRows {
            labels: (restatable.late.iter())
                .map(|(key, truth)| (*key, self.text(*truth)))
                .collect(),
            rows: restatable.unlabelled_rows.as_deref()?,
            result: &restatable.result,
        })
    }

    /// Takes a bias window's next revision (its late labels folded in by the caller, `folded`
    /// of them matched a row) as the window's result; returns its counts.
    pub fn restated(&mut self, start: i64, window: Vec<u8>, folded: u64) -> Option<JoinCounts> {
        let restatable = self.restatable_mut(start)?;
        restatable.late.clear();
        let counts = &mut restatable.result.counts;
        counts.labelled += folded;
        counts.unlabelled -= folded;
        restatable.revision += 1;
        restatable.result.state = Staged::Window(window);
        Some(JoinCounts {
            revision: restatable.revision,
            ..restatable.result.counts
        })
    }

    /// Drops what is past its time at event time `now`: labels waiting longer than
    /// `orphan_ttl` (orphans, counted), used keys older than `label_ttl`, and closed windows'
    /// pending predictions past their expiry.
    /// Past `ttl.max_remembered` used keys, the oldest are forgotten early (a repeat of one
    /// is then taken for a new label); past as many pending predictions, the oldest windows'.
    pub fn expire(&mut self, now: i64, ttl: Ttl) {
        let Ttl {
            orphan: orphan_ttl,
            label: label_ttl,
            max_remembered,
        } = ttl;
        let keep: Vec<bool> = (self.waiting.iter())
            .map(|(_, arrived)| arrived.saturating_add(orphan_ttl) >= now)
            .collect();
        self.since_last.orphan_labels += keep.iter().filter(|k| !**k).count() as u64;
        retain_by(&mut self.waiting_keys, &keep);
        retain_by(&mut self.waiting, &keep);
        let keep: Vec<bool> = (self.matched_at.iter())
            .map(|at| at.saturating_add(label_ttl) >= now)
            .collect();
        retain_by(&mut self.matched_keys, &keep);
        retain_by(&mut self.matched_at, &keep);
        if self.matched_at.len() > max_remembered {
            let mut newest_first: Vec<usize> = (0..self.matched_at.len()).collect();
            newest_first.sort_by_key(|&i| std::cmp::Reverse(self.matched_at[i]));
            let mut keep = vec![false; self.matched_at.len()];
            for &i in &newest_first[..max_remembered] {
                keep[i] = true;
            }
            retain_by(&mut self.matched_keys, &keep);
            retain_by(&mut self.matched_at, &keep);
        }
        self.pending
            .retain(|w| w.expires >= now && !w.keys.is_empty());
        // Windows are pushed as they close: the oldest come first.
        while self.pending_predictions() > max_remembered {
            self.pending.remove(0);
        }
        // A window is restated while its predictions may still get labels, and until the
        // late labels it has are folded in.
        let pending = &self.pending;
        self.restatable
            .retain(|r| !r.late.is_empty() || pending.iter().any(|w| w.start == r.result.start));
    }

    /// What a decoded state must satisfy.
    pub fn validate(&self) -> Result<(), String> {
        let sorted = |keys: &[JoinKey]| keys.windows(2).all(|w| w[0] < w[1]);
        if self.waiting_keys.len() != self.waiting.len()
            || self.matched_keys.len() != self.matched_at.len()
        {
            return Err("keys and values differ in number".into());
        }
        if !sorted(&self.waiting_keys)
            || !sorted(&self.matched_keys)
            || !self.pending.iter().all(|w| sorted(&w.keys))
        {
            return Err("keys out of order".into());
        }
        let results = (self.staged.iter()).chain(self.restatable.iter().map(|r| &r.result));
        for joined in results {
            if let Staged::ModelQuality(state) = &joined.state {
                state.validate()?;
            }
        }
        for restatable in &self.restatable {
            restatable.unlabelled.validate()?;
        }
        let late = (self.restatable.iter()).flat_map(|r| r.late.iter().map(|(_, t)| t));
        let truths = self.waiting.iter().map(|(t, _)| t).chain(late);
        self.classes.validate(truths.filter_map(|t| t.class()))
    }
}

/// Durable bytes of a label run or a join state: a 4-byte magic, a version byte, then one
/// zstd frame (with its content checksum) of the postcard body. Bad bytes of any kind are an
/// error, never a panic.
const LABELS_MAGIC: [u8; 4] = *b"DRJL";
const LABELS_VERSION: u8 = 1;
const JOIN_STATE_MAGIC: [u8; 4] = *b"DRJS";
/// Version 2 added `JoinState::restatable`, its last field.
const JOIN_STATE_VERSION: u8 = 2;

/// The body is written straight into the compressor: a join state is the largest object a
/// series keeps, and its uncompressed body would be as large again in memory.
fn seal<T: Serialize>(magic: [u8; 4], version: u8, value: &T) -> Vec<u8> {
    let mut out = magic.to_vec();
    out.push(version);
    let mut encoder = zstd::stream::Encoder::new(out, 3).expect("zstd encoder");
    encoder.include_checksum(true).expect("zstd checksum flag");
    // Buffered: postcard writes a byte at a time.
    let buffered = std::io::BufWriter::with_capacity(1 << 16, encoder);
    let buffered = postcard::to_io(value, buffered).expect("join state serializes into a Vec");
    let Ok(encoder) = buffered.into_inner() else {
        unreachable!("writing into a Vec cannot fail")
    };
    encoder.finish().expect("zstd into a Vec")
}

/// The body of sealed bytes and their version, one of `versions`.
fn unseal_body(
    magic: [u8; 4],
    versions: &[u8],
    what: &str,
    bytes: &[u8],
) -> Result<(u8, Vec<u8>), String> {
    if bytes.len() < 5 || bytes[..4] != magic {
        return Err(format!("not a driftd {what}"));
    }
    if !versions.contains(&bytes[4]) {
        return Err(format!("{what} version {} is not supported", bytes[4]));
    }
    let body = crate::window::codec::decompress_bounded(&bytes[5..])
        .map_err(|e| format!("{what}: {e}"))?;
    Ok((bytes[4], body))
}

fn from_body<T: for<'de> Deserialize<'de>>(what: &str, body: &[u8]) -> Result<T, String> {
    let (value, rest) = postcard::take_from_bytes(body).map_err(|e| format!("{what}: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{what}: {} bytes after the body", rest.len()));
    }
    Ok(value)
}

impl LabelRun {
    pub fn encode(&self) -> Vec<u8> {
        seal(LABELS_MAGIC, LABELS_VERSION, self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let (_, body) = unseal_body(LABELS_MAGIC, &[LABELS_VERSION], "label run", bytes)?;
        let mut run: Self = from_body("label run", &body)?;
        run.validate().map_err(|e| format!("label run: {e}"))?;
        run.shrink_to_fit();
        Ok(run)
    }
}

impl JoinState {
    /// See [`Run::shrink_to_fit`]; the pending keys are most of a join state.
    fn shrink_to_fit(&mut self) {
        self.waiting_keys.shrink_to_fit();
        self.waiting.shrink_to_fit();
        self.matched_keys.shrink_to_fit();
        self.matched_at.shrink_to_fit();
        for window in &mut self.pending {
            window.keys.shrink_to_fit();
        }
        for window in &mut self.restatable {
            window.unlabelled.shrink_to_fit();
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        seal(JOIN_STATE_MAGIC, JOIN_STATE_VERSION, self)
    }

    /// Takes the sealed bytes so that they are freed before the body is read: the state is
    /// the largest object a series keeps.
    pub fn decode(bytes: Vec<u8>) -> Result<Self, String> {
        let what = "join state";
        let (version, mut body) =
            unseal_body(JOIN_STATE_MAGIC, &[1, JOIN_STATE_VERSION], what, &bytes)?;
        drop(bytes);
        if version == 1 {
            // Version 1 ends before `restatable`: an empty list is postcard's one zero byte.
            body.push(0);
        }
        let mut state: Self = from_body(what, &body)?;
        state.validate().map_err(|e| format!("{what}: {e}"))?;
        state.shrink_to_fit();
        Ok(state)
    }
}

fn retain_by<T>(items: &mut Vec<T>, keep: &[bool]) {
    let mut at = 0;
    items.retain(|_| {
        at += 1;
        keep[at - 1]
    });
}

/// Merges `new` (any order, keys not in `keys`) into the sorted `keys` and their `values`.
fn merge_sorted<V>(keys: &mut Vec<JoinKey>, values: &mut Vec<V>, mut new: Vec<(JoinKey, V)>) {
    if new.is_empty() {
        return;
    }
    new.sort_by_key(|(key, _)| *key);
    let old = std::mem::take(keys).into_iter().zip(std::mem::take(values));
    let mut merged = Vec::with_capacity(old.len() + new.len());
    let mut old = old.peekable();
    let mut new = new.into_iter().peekable();
    loop {
        let take_old = match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((a, _)), Some((b, _))) => a < b,
        };
        merged.push(if take_old { old.next() } else { new.next() }.expect("peeked"));
    }
    (*keys, *values) = merged.into_iter().unzip();
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::decode::testing::text_batch as batch;

    fn keys(ids: &[&str]) -> Vec<JoinKey> {
        ids.iter().map(|id| join_key(id.as_bytes())).collect()
    }

    fn binary_spec() -> ModelQualitySpec {
        ModelQualitySpec {
            problem_type: ProblemType::BinaryClassification,
            inference_attribute: Some("_c0".into()),
            probability_attribute: Some("_c1".into()),
            probability_threshold: None,
            ground_truth_attribute: "label".into(),
            class_scores: Vec::new(),
        }
    }

    fn predictions(ids: &[&str], labels: &[&str], scores: &[&str]) -> PredictionRun {
        let labels: Vec<Option<&str>> = labels.iter().map(|v| Some(*v)).collect();
        let scores: Vec<Option<&str>> = scores.iter().map(|v| Some(*v)).collect();
        let rows = batch(&[("_c0", &labels), ("_c1", &scores)]);
        PredictionRun::from_batch(&binary_spec(), &rows, &keys(ids)).unwrap()
    }

    fn labels(ids: &[&str], values: &[&str]) -> LabelRun {
        let values: Vec<Option<&str>> = values.iter().map(|v| Some(*v)).collect();
        LabelRun::from_batch(&binary_spec(), &batch(&[("_c0", &values)]), &keys(ids)).unwrap()
    }

    fn ttl(orphan: i64, label: i64) -> Ttl {
        Ttl {
            orphan,
            label,
            max_remembered: 1_000,
        }
    }

    const LONG: Ttl = Ttl {
        orphan: 1_000_000,
        label: 1_000_000,
        max_remembered: 1_000,
    };

    fn confusion(state: &Staged) -> [u64; 4] {
        let Staged::ModelQuality(state) = state else {
            panic!("model quality")
        };
        let ModelQualityState::Binary(state) = &**state else {
            panic!("binary")
        };
        let c = &state.confusion[0];
        [
            c.true_positives,
            c.false_positives,
            c.true_negatives,
            c.false_negatives,
        ]
    }

    fn restating() -> JoinState {
        let mut join = JoinState::new(ProblemType::BinaryClassification);
        join.restate = true;
        join
    }

    #[test]
    fn a_late_label_restates_its_window_as_if_it_had_come_in_time() {
        let run = || predictions(&["a", "b", "c"], &["1", "1", "0"], &["0.9", "0.6", "0.2"]);
        // In time: a (1) and b (0). Late, after the window closed at 300: b's is read before
        // (collected at 400) and c's after the join (collected at 500).
        let mut join = restating();
        join.absorb(labels(&["a"], &["1"]), 100, 10);
        join.absorb(labels(&["b"], &["0"]), 400, 10);
        let first = join.join(0, run(), 300, 10_000, LONG);
        // a: TP; b's label came late.
        assert_eq!(confusion(&first.state), [1, 0, 0, 0]);
        assert_eq!(join.restatements_due(), vec![0]);
        assert_eq!(join.absorb(labels(&["c"], &["1"]), 500, 10).late, 1);
        let second = join.restate(0).unwrap();
        // b: FP, c: FN, folded in; the window's counts move them to labelled.
        assert_eq!(confusion(&second.state), [1, 1, 0, 1]);
        assert_eq!(
            (
                second.counts.labelled,
                second.counts.unlabelled,
                second.counts.revision
            ),
            (3, 0, 1)
        );
        assert!(join.restatements_due().is_empty());
        // The same as a join that had every label in time (same keys, same subsamples).
        let mut calm = JoinState::new(ProblemType::BinaryClassification);
        calm.absorb(labels(&["a", "b", "c"], &["1", "0", "1"]), 100, 10);
        assert_eq!(calm.join(0, run(), 300, 10_000, LONG).state, second.state);
        // Nothing new: no revision; a repeat of c's label is a duplicate, not a restatement.
        assert!(join.restate(0).is_none());
        assert_eq!(join.absorb(labels(&["c"], &["0"]), 600, 10).duplicates, 1);
        assert!(join.restatements_due().is_empty());
        // It survives a round trip through its bytes.
        let decoded = JoinState::decode(join.encode()).unwrap();
        assert_eq!(decoded.restatable, join.restatable);
        // Once its predictions are labelled or expired, the window is no longer kept.
        join.expire(20_000, LONG);
        assert!(join.restatable.is_empty());
    }

    #[test]
    fn without_restate_a_late_label_is_only_counted() {
        let mut join = JoinState::new(ProblemType::BinaryClassification);
        join.join(0, predictions(&["a"], &["1"], &["0.9"]), 300, 10_000, LONG);
        assert_eq!(join.absorb(labels(&["a"], &["1"]), 500, 10).late, 1);
        assert!(join.restatements_due().is_empty());
        assert!(join.restate(0).is_none());
    }

    #[test]
    fn a_join_state_sealed_before_restatements_existed_still_reads() {
        let mut join = JoinState::new(ProblemType::BinaryClassification);
        join.absorb(labels(&["a"], &["1"]), 100, 10);
        join.join(0, predictions(&["b"], &["1"], &["0.9"]), 300, 10_000, LONG);
        // Version 1's body: this one's without the empty list (one zero byte) at its end.
        let mut body = postcard::to_stdvec(&join).unwrap();
        assert_eq!(body.pop(), Some(0));
        let mut sealed = JOIN_STATE_MAGIC.to_vec();
        sealed.push(1);
        sealed.extend(zstd::encode_all(&body[..], 3).unwrap());
        let decoded = JoinState::decode(sealed.clone()).unwrap();
        assert_eq!(decoded, join);
        sealed[4] = 3;
        assert!(
            JoinState::decode(sealed.clone())
                .unwrap_err()
                .contains("version 3")
        );
    }

    #[test]
    fn labels_before_and_after_their_predictions_are_joined_once() {
        let mut join = JoinState::new(ProblemType::BinaryClassification);
        // "a" labelled before its prediction arrives, "b" after, "c" never.
        join.absorb(labels(&["a"], &["1"]), 100, 10);
        join.absorb(labels(&["b"], &["0"]), 200, 10);
        let run = predictions(&["a", "b", "c"], &["1", "1", "0"], &["0.9", "0.6", "0.2"]);
        let joined = join.join(0, run, 300, 10_000, LONG);
        // a: TP, b: FP; c has no label.
        assert_eq!(confusion(&joined.state), [1, 1, 0, 0]);
        assert_eq!(
            (
                joined.counts.predictions,
                joined.counts.labelled,
                joined.counts.unlabelled
            ),
            (3, 2, 1)
        );
        assert_eq!(joined.counts.label_coverage(), Some(2.0 / 3.0));
        assert_eq!(join.waiting_labels(), 0);
        assert_eq!(join.pending_predictions(), 1);
    }

    #[test]
    fn the_first_label_wins_and_repeats_are_duplicates_until_label_ttl() {
        let mut join = JoinState::new(ProblemType::BinaryClassification);
        // In one file: the first of a key wins.
        let run = labels(&["a", "a"], &["1", "0"]);
        assert_eq!(run.duplicates, 1);
        join.absorb(run, 0, 10);
        // In a later file, before and after the match.
        assert_eq!(join.absorb(labels(&["a"], &["0"]), 10, 10).duplicates, 1);
        let joined = join.join(0, predictions(&["a"], &["1"], &["0.8"]), 20, 1_000, LONG);
        assert_eq!(
            confusion(&joined.state),
            [1, 0, 0, 0],
            "the first label (1) won"
        );
        assert_eq!(joined.counts.duplicate_labels, 2);
        assert_eq!(join.absorb(labels(&["a"], &["0"]), 30, 10).duplicates, 1);
        // Past label_ttl the key is forgotten: the same key is then a new (orphan) label.
        join.expire(20 + 100 + 1, ttl(1_000, 100));
        assert_eq!(join.absorb(labels(&["a"], &["0"]), 200, 10).waiting, 1);
    }

    #[test]
    fn a_label_after_its_window_closed_is_late_and_an_unknown_one_an_orphan() {
        let mut join = JoinState::new(ProblemType::BinaryClassification);
        join.join(
            0,
            predictions(&["a", "b"], &["1", "0"], &["0.9", "0.1"]),
            50,
            500,
            LONG,
        );
        let absorbed = join.absorb(labels(&["b", "zzz"], &["0", "1"]), 60, 10);
        assert_eq!((absorbed.late, absorbed.waiting), (1, 1));
        // "zzz" waits until orphan_ttl, then counts as an orphan in the next window.
        join.expire(60 + 30, ttl(30, 1_000));
        assert_eq!(join.waiting_labels(), 1);
        let next = join.join(
            3600,
            predictions(&[], &[], &[]),
            60 + 31,
            4_000,
            ttl(30, 1_000),
        );
        assert_eq!(join.waiting_labels(), 0);
        assert_eq!(next.counts.late_labels, 1);
        assert_eq!(next.counts.orphan_labels, 1);
        // The first window's pending predictions expire at 500 (a still pending).
        assert_eq!(join.pending_predictions(), 1);
        join.expire(501, ttl(30, 1_000));
        assert_eq!(join.pending_predictions(), 0);
    }

    #[test]
    fn a_label_collected_after_its_window_closed_is_late_even_when_read_before() {
        let mut join = JoinState::new(ProblemType::BinaryClassification);
        // A replay reads every file first: "b"'s label was collected at 500, after the window
        // closed at 400.
        join.absorb(labels(&["a"], &["1"]), 300, 10);
        join.absorb(labels(&["b"], &["1"]), 500, 10);
        let joined = join.join(
            0,
            predictions(&["a", "b"], &["1", "1"], &["0.9", "0.9"]),
            400,
            9_000,
            LONG,
        );
        assert_eq!(confusion(&joined.state), [1, 0, 0, 0]);
        assert_eq!(
            (
                joined.counts.labelled,
                joined.counts.unlabelled,
                joined.counts.late_labels
            ),
            (1, 1, 1)
        );
    }

    #[test]
    fn used_keys_and_pending_predictions_are_remembered_up_to_the_limit() {
        let mut join = JoinState::new(ProblemType::BinaryClassification);
        let few = Ttl {
            max_remembered: 2,
            ..LONG
        };
        join.absorb(labels(&["a", "b", "c"], &["1", "1", "1"]), 0, 10);
        // Window 0: a, b, c matched at 10, and d, e, f left pending.
        let run = predictions(
            &["a", "b", "c", "d", "e", "f"],
            &["1", "1", "1", "1", "1", "1"],
            &["0.9", "0.9", "0.9", "0.9", "0.9", "0.9"],
        );
        join.join(0, run, 10, 10_000, few);
        assert_eq!(join.matched_keys.len(), 2);
        // Three pending predictions in one window: past the limit, the window is dropped.
        assert_eq!(join.pending_predictions(), 0);
        // So a label for d is an orphan-to-be, not a late one.
        let absorbed = join.absorb(labels(&["d"], &["1"]), 20, 10);
        assert_eq!((absorbed.late, absorbed.waiting), (0, 1));
    }

    #[test]
    fn waiting_labels_stop_at_the_limit_and_the_rest_are_counted() {
        let mut join = JoinState::new(ProblemType::BinaryClassification);
        let absorbed = join.absorb(labels(&["a", "b", "c"], &["1", "1", "0"]), 0, 2);
        assert_eq!((absorbed.waiting, absorbed.refused), (2, 1));
        assert_eq!(join.waiting_labels(), 2);
    }

    #[test]
    fn unreadable_values_are_skipped_and_counted() {
        let run = predictions(&["a", "b"], &["1", "yes"], &["0.5", "0.5"]);
        assert_eq!((run.len(), run.skipped), (1, 1));
        let run = labels(&["a", "b"], &["2", "0"]);
        assert_eq!((run.len(), run.skipped), (1, 1));
    }

    #[test]
    fn merged_prediction_runs_keep_the_first_objects_row_and_remap_classes() {
        let spec = ModelQualitySpec {
            problem_type: ProblemType::MulticlassClassification,
            inference_attribute: Some("p".into()),
            probability_attribute: None,
            probability_threshold: None,
            ground_truth_attribute: "y".into(),
            class_scores: Vec::new(),
        };
        let a = PredictionRun::from_batch(
            &spec,
            &batch(&[("p", &[Some("cat"), Some("dog")])]),
            &keys(&["1", "2"]),
        )
        .unwrap();
        let b = PredictionRun::from_batch(
            &spec,
            &batch(&[("p", &[Some("bird"), Some("cat")])]),
            &keys(&["3", "2"]),
        )
        .unwrap();
        let merged = PredictionRun::concat(&[a, b]);
        assert_eq!((merged.len(), merged.duplicates), (3, 1));
        merged.validate().unwrap();
        let mut join = JoinState::new(ProblemType::MulticlassClassification);
        let truth = LabelRun::from_batch(
            &spec,
            &batch(&[("y", &[Some("dog"), Some("bird"), Some("cat")])]),
            &keys(&["2", "3", "1"]),
        )
        .unwrap();
        join.absorb(truth, 0, 10);
        let joined = join.join(0, merged, 0, 10, LONG);
        // All three right: "2" kept the first object's "dog".
        let Staged::ModelQuality(state) = &joined.state else {
            panic!()
        };
        let ModelQualityState::Multiclass(state) = &**state else {
            panic!()
        };
        for (actual, row) in &state.counts {
            assert_eq!(row.keys().collect::<Vec<_>>(), [actual], "{actual}");
        }
        assert_eq!(joined.counts.labelled, 3);
    }

    #[test]
    fn a_regression_window_joins_numbers_in_key_order() {
        let spec = ModelQualitySpec {
            problem_type: ProblemType::Regression,
            inference_attribute: Some("p".into()),
            probability_attribute: None,
            probability_threshold: None,
            ground_truth_attribute: "y".into(),
            class_scores: Vec::new(),
        };
        let predictions = PredictionRun::from_batch(
            &spec,
            &batch(&[("p", &[Some("2.5"), Some("1"), Some("4")])]),
            &keys(&["a", "b", "c"]),
        )
        .unwrap();
        let truth = LabelRun::from_batch(
            &spec,
            &batch(&[("y", &[Some("3"), Some("0.5")])]),
            &keys(&["a", "b"]),
        )
        .unwrap();
        let mut join = JoinState::new(ProblemType::Regression);
        join.absorb(truth, 0, 10);
        let joined = join.join(0, predictions, 10, 100, LONG);
        assert_eq!((joined.counts.labelled, joined.counts.unlabelled), (2, 1));
        let Staged::ModelQuality(mut state) = joined.state else {
            panic!()
        };
        // Errors 0.5 and 0.5: MAE 0.5, MSE 0.25.
        let statistics = crate::model_quality::evaluate(&mut state);
        // (Spark's sums agree with the exact values to rounding.)
        assert!((statistics.metric("mae").unwrap().value - 0.5).abs() < 1e-15);
        assert!((statistics.metric("mse").unwrap().value - 0.25).abs() < 1e-15);
    }

    #[test]
    fn states_and_runs_round_trip_and_damage_is_an_error() {
        let mut join = JoinState::new(ProblemType::BinaryClassification);
        join.absorb(labels(&["a", "b"], &["1", "0"]), 7, 10);
        join.join(
            0,
            predictions(&["b", "c"], &["1", "0"], &["0.7", "0.1"]),
            9,
            99,
            LONG,
        );
        let bytes = join.encode();
        assert_eq!(JoinState::decode(bytes.clone()).unwrap(), join);
        let run = labels(&["x"], &["1"]);
        assert_eq!(LabelRun::decode(&run.encode()).unwrap(), run);
        for cut in [0, 4, 5, bytes.len() / 2, bytes.len() - 1] {
            assert!(
                JoinState::decode(bytes[..cut].to_vec()).is_err(),
                "cut at {cut}"
            );
        }
        let mut flipped = bytes.clone();
        let last = flipped.len() - 6;
        flipped[last] ^= 0x40;
        assert!(JoinState::decode(flipped.clone()).is_err());
        assert!(
            LabelRun::decode(&bytes).is_err(),
            "a join state is not a label run"
        );
    }

    #[test]
    fn a_join_key_picks_the_same_subsamples_as_the_labelled_file_path() {
        let id = b"inference-42";
        assert_eq!(membership(join_key(id)), Membership::of_key(id));
    }
}
