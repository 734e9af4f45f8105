//! Event-time tumbling windows. Rows are assigned by their event time (a capture record's
//! `inferenceTime`, or the object's time for formats without one); a window closes when the
//! watermark — the newest time seen, less the allowed lateness — passes its end. Rows for a
//! window that already closed are counted as late, never silently dropped. A window holds its
//! monitor's mergeable state: a data-quality [`Profile`], a bias [`BiasState`], a
//! [`ModelQualityWindow`], an [`AttributionState`], a [`MultivariateWindow`] (or, label-joined,
//! the rows waiting for their labels), which [`codec`] turns into bytes to store and back.

pub mod codec;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, BooleanArray, Int64Array};
use arrow::compute::filter_record_batch;
use arrow::record_batch::RecordBatch;

use crate::attribution::{AttributionSpec, AttributionState};
use crate::bias::{BiasSpec, BiasState};
use crate::decode::{Chunk, INFERENCE_TIME, WindowRows};
use crate::model_quality::{
    ClassScoreRun, JoinKey, Membership, ModelQualitySpec, ModelQualityState, PredictionRun,
};
use crate::multivariate::{MultivariateSpec, MultivariateWindow};
use crate::profile::Profile;

/// What a monitor's windows hold.
#[derive(Debug, Clone)]
pub enum StateKind {
    DataQuality,
    Bias(Arc<BiasSpec>),
    ModelQuality(Arc<ModelQualitySpec>),
    FeatureAttribution(Arc<AttributionSpec>),
    /// A model-quality monitor fed by the label join: windows hold predictions until their
    /// labels arrive.
    Predictions(Arc<ModelQualitySpec>),
    /// A bias monitor fed by the label join: windows hold their rows until their labels arrive.
    BiasRows(Arc<BiasSpec>),
    /// Multivariate drift: the reconstruction error of the rows against the baseline's PCA.
    MultivariateDrift(Arc<MultivariateSpec>),
}

impl StateKind {
    pub fn empty(&self) -> WindowState {
        match self {
            StateKind::DataQuality => WindowState::DataQuality(Profile::default()),
            StateKind::Bias(spec) => WindowState::Bias(Box::new(BiasState::new(spec.clone()))),
            StateKind::ModelQuality(spec) => {
                WindowState::ModelQuality(Box::new(ModelQualityWindow::new(spec.clone())))
            }
            StateKind::FeatureAttribution(spec) => {
                WindowState::FeatureAttribution(Box::new(AttributionState::new(spec)))
            }
            StateKind::Predictions(spec) => WindowState::Predictions(PredictionWindow {
                spec: spec.clone(),
                runs: Vec::new(),
                scores: Vec::new(),
            }),
            StateKind::BiasRows(spec) => WindowState::BiasRows(BiasRowsWindow {
                spec: spec.clone(),
                runs: Vec::new(),
                refused_rows: 0,
            }),
            StateKind::MultivariateDrift(spec) => {
                WindowState::MultivariateDrift(Box::new(MultivariateWindow::new(spec.clone())))
            }
        }
    }
}

/// One window's mergeable state.
#[derive(Debug)]
pub enum WindowState {
    DataQuality(Profile),
    /// Boxed: a bias state is several times a profile's size.
    Bias(Box<BiasState>),
    ModelQuality(Box<ModelQualityWindow>),
    FeatureAttribution(Box<AttributionState>),
    Predictions(PredictionWindow),
    BiasRows(BiasRowsWindow),
    MultivariateDrift(Box<MultivariateWindow>),
}

impl WindowState {
    /// Adds rows; `keys` (one per row, see [`RowKeys`]) decide a model-quality row's
    /// subsamples and are not needed by the other kinds.
    pub fn add_batch(&mut self, rows: &RecordBatch, keys: &[JoinKey]) {
        match self {
            WindowState::DataQuality(profile) => profile.add_batch(rows),
            WindowState::Bias(state) => state.add_batch(rows),
            WindowState::ModelQuality(window) => window.add_batch(rows, keys),
            WindowState::FeatureAttribution(state) => state.add_batch(rows),
            WindowState::Predictions(window) => window.add_batch(rows, keys),
            WindowState::BiasRows(window) => window.runs.push(BiasRows::of(rows, keys)),
            WindowState::MultivariateDrift(window) => window.add_batch(rows),
        }
    }

    /// Both states belong to the same window key, so to the same monitor and kind. `Err`
    /// (and `self` unchanged) when the merged counts would pass [`MAX_STATE_ROWS`], which only
    /// a damaged or forged stored state can make happen (see [`WindowState::count_bound`]).
    pub fn merge(&mut self, other: WindowState) -> Result<(), MergeOverflow> {
        checked_bound(self.count_bound(), other.count_bound())?;
        self.merge_unchecked(other);
        Ok(())
    }

    /// An upper bound of every count the state holds, which a merge adds up: a merged state's
    /// is at most the sum of its parts'. It is the state's rows (an attribution state: all its
    /// counts summed, as one record holds many values). Decoding refuses a state with a count
    /// past its bound or a bound past [`MAX_STATE_ROWS`]; so while merges keep the sum of the
    /// bounds within it, no count can overflow (release builds would wrap silently).
    pub fn count_bound(&self) -> u64 {
        match self {
            WindowState::DataQuality(profile) => profile.row_count,
            WindowState::Bias(state) => state.rows(),
            WindowState::ModelQuality(window) => {
                window.state.rows().saturating_add(window.skipped_rows)
            }
            WindowState::FeatureAttribution(state) => state.count_bound(),
            WindowState::Predictions(window) => (window.runs.iter())
                .map(|run| {
                    (run.len() as u64).saturating_add(run.duplicates.saturating_add(run.skipped))
                })
                .fold(0, u64::saturating_add),
            WindowState::BiasRows(window) => {
                window.runs.iter().map(|run| run.keys.len() as u64).sum()
            }
            WindowState::MultivariateDrift(window) => window.count_bound(),
        }
    }

    fn merge_unchecked(&mut self, other: WindowState) {
        match (self, other) {
            (WindowState::DataQuality(a), WindowState::DataQuality(b)) => a.merge(b),
            (WindowState::Bias(a), WindowState::Bias(b)) => a.merge(*b),
            (WindowState::ModelQuality(a), WindowState::ModelQuality(b)) => a.merge(*b),
            (WindowState::FeatureAttribution(a), WindowState::FeatureAttribution(b)) => a.merge(&b),
            (WindowState::Predictions(a), WindowState::Predictions(b)) => {
                a.runs.extend(b.runs);
                a.scores.extend(b.scores);
            }
            (WindowState::BiasRows(a), WindowState::BiasRows(b)) => {
                a.runs.extend(b.runs);
                a.refused_rows += b.refused_rows;
            }
            (WindowState::MultivariateDrift(a), WindowState::MultivariateDrift(b)) => a.merge(&b),
            _ => unreachable!("one monitor's windows hold one kind of state"),
        }
    }

    pub fn row_count(&self) -> u64 {
        match self {
            WindowState::DataQuality(profile) => profile.row_count,
            WindowState::Bias(state) => state.rows(),
            WindowState::ModelQuality(window) => window.state.rows() + window.skipped_rows,
            WindowState::FeatureAttribution(state) => state.records,
            WindowState::Predictions(window) => (window.runs.iter())
                .map(|run| run.len() as u64 + run.duplicates + run.skipped)
                .sum(),
            WindowState::BiasRows(window) => {
                window.runs.iter().map(|run| run.keys.len() as u64).sum()
            }
            WindowState::MultivariateDrift(window) => window.row_count(),
        }
    }
}

/// The most a window's counts may add up to ([`WindowState::count_bound`]): 2^40, about 10^12
/// rows, past any window, yet far enough below u64's range that nothing a merge sums can wrap.
pub const MAX_STATE_ROWS: u64 = crate::model_quality::MAX_STATE_ROWS;

/// A merge that would take a window's counts past [`MAX_STATE_ROWS`]. Only a damaged or forged
/// stored state can: the part is left out and the window stays as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "merging would make {window} + {part} counts, more than a window may hold ({MAX_STATE_ROWS}): a damaged or forged state"
)]
pub struct MergeOverflow {
    pub window: u64,
    pub part: u64,
}

fn checked_bound(window: u64, part: u64) -> Result<u64, MergeOverflow> {
    (window.checked_add(part))
        .filter(|&sum| sum <= MAX_STATE_ROWS)
        .ok_or(MergeOverflow { window, part })
}

/// What a window may hold when the finaliser merges its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeLimits {
    /// `limits.max_window_rows`: rows a label-joined window holds until its labels.
    pub rows: WindowRows,
    /// `limits.max_columns`: columns of a data-quality or bias window (label-joined or not).
    /// Each object is within it; this stops objects that each bring new names.
    pub max_columns: usize,
}

impl MergeLimits {
    pub fn of(limits: &crate::decode::Limits) -> Self {
        Self {
            rows: limits.max_window_rows,
            max_columns: limits.max_columns,
        }
    }
}

/// What a window's merge left out to stay within its [`MergeLimits`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refused {
    /// Rows of parts that would have taken a label-joined window past
    /// `limits.max_window_rows`.
    pub rows: u64,
    /// Columns first seen in a part once the window had `limits.max_columns` (counted once
    /// per part that brought them).
    pub columns: u64,
}

/// Merges a window's parts, in the order given, within [`MergeLimits`]:
/// - a label-joined window's part (one object's rows of it) that would take it past
///   `limits.max_window_rows` is refused whole; its rows are counted in [`Refused::rows`] and
///   with the window's skipped rows (`label_join.json`'s `skipped_rows`);
/// - a column first seen once a data-quality or bias window has `limits.max_columns` is left
///   out and counted in [`Refused::columns`] (a bias analysis's own columns are always kept);
/// - a part whose counts would overflow the window's ([`MergeOverflow`]) is left out whole.
#[derive(Debug)]
pub struct WindowMerger {
    limits: MergeLimits,
    kind: StateKind,
    /// `None` until the first part.
    window: Option<WindowState>,
    /// The sum of the merged parts' [`WindowState::count_bound`].
    bound: u64,
    /// Rows a label-joined window holds (predictions, or bias rows).
    held_rows: u64,
    /// A label-joined bias window's columns so far.
    columns: std::collections::HashSet<String>,
    refused: Refused,
}

impl WindowMerger {
    pub fn new(kind: &StateKind, limits: MergeLimits) -> Self {
        Self {
            limits,
            kind: kind.clone(),
            window: None,
            bound: 0,
            held_rows: 0,
            columns: Default::default(),
            refused: Refused::default(),
        }
    }

    /// Adds one part (of the window's kind). `Err`: it was left out, the window unchanged.
    pub fn add(&mut self, part: WindowState) -> Result<(), MergeOverflow> {
        self.bound = checked_bound(self.bound, part.count_bound())?;
        let window = match (&mut self.window, &part) {
            (Some(window), _) => window,
            // Kinds without a per-part limit start from their first part as it is (a bias
            // state's sample would be drawn again if merged into an empty one; its columns
            // are each object's, within the limit).
            (
                None,
                WindowState::Bias(_)
                | WindowState::ModelQuality(_)
                | WindowState::FeatureAttribution(_),
            ) => {
                self.window = Some(part);
                return Ok(());
            }
            (None, _) => self.window.insert(self.kind.empty()),
        };
        match (window, part) {
            (WindowState::DataQuality(window), WindowState::DataQuality(part)) => {
                self.refused.columns += window.merge_within(part, self.limits.max_columns);
            }
            (WindowState::Bias(window), WindowState::Bias(part)) => {
                self.refused.columns += window.merge_within(*part, self.limits.max_columns);
            }
            (WindowState::Predictions(window), WindowState::Predictions(part)) => {
                // A part is taken or refused whole; its class scores (estimating monitors
                // only) count as a prediction per 4 scores, the memory of one.
                let rows = part.runs.iter().map(|run| run.len() as u64).sum::<u64>();
                let scores = part.scores.iter().map(|s| s.values() as u64).sum::<u64>();
                let held = rows.saturating_add(scores.div_ceil(4));
                if self.held_rows.saturating_add(held) <= self.limits.rows.predictions {
                    self.held_rows += held;
                    window.runs.extend(part.runs);
                    window.scores.extend(part.scores);
                } else {
                    // Kept as a count: the join adds a run's skipped rows to the window's.
                    self.refused.rows += rows;
                    let mut refused = PredictionRun::empty();
                    refused.duplicates = part.runs.iter().map(|run| run.duplicates).sum();
                    refused.skipped = rows + part.runs.iter().map(|run| run.skipped).sum::<u64>();
                    window.runs.push(refused);
                }
            }
            (WindowState::BiasRows(window), WindowState::BiasRows(part)) => {
                window.refused_rows += part.refused_rows;
                for mut run in part.runs {
                    let rows = run.keys.len() as u64;
                    if self.held_rows.saturating_add(rows) > self.limits.rows.bias_rows {
                        self.refused.rows += rows;
                        window.refused_rows += rows;
                        continue;
                    }
                    self.held_rows += rows;
                    let (columns, max) = (&mut self.columns, self.limits.max_columns);
                    let before = run.columns.len();
                    run.columns.retain(|(name, _)| {
                        columns.contains(name)
                            || ((columns.len() < max || window.spec.names_column(name))
                                && columns.insert(name.clone()))
                    });
                    self.refused.columns += (before - run.columns.len()) as u64;
                    window.runs.push(run);
                }
            }
            (window, part) => window.merge_unchecked(part),
        }
        Ok(())
    }

    /// The merged window and what it left out; `None` when no part was merged.
    pub fn finish(self) -> Option<(WindowState, Refused)> {
        Some((self.window?, self.refused))
    }
}

/// A joined model-quality monitor's window before its labels: its predictions, as sorted
/// runs in arrival order (one per batch or merged part), made one run when needed; with
/// the spec's `class_scores`, each prediction's score of every class beside them.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionWindow {
    pub spec: Arc<ModelQualitySpec>,
    pub runs: Vec<PredictionRun>,
    pub scores: Vec<ClassScoreRun>,
}

impl PredictionWindow {
    fn add_batch(&mut self, rows: &RecordBatch, keys: &[JoinKey]) {
        self.runs
            .push(match PredictionRun::from_batch(&self.spec, rows, keys) {
                Ok(added) => added,
                // A batch without the prediction column: every row is unusable.
                Err(_) => {
                    let mut none = PredictionRun::empty();
                    none.skipped = rows.num_rows() as u64;
                    none
                }
            });
        if !self.spec.class_scores.is_empty() {
            // A batch without a score column: every row is unscored.
            let scores = ClassScoreRun::from_batch(&self.spec.class_scores, rows, keys);
            self.scores.push(scores.unwrap_or_default());
        }
    }

    /// All predictions as one run; on a key in several runs, the earliest wins.
    pub fn run(&self) -> PredictionRun {
        PredictionRun::concat(&self.runs)
    }

    /// All class scores as one run (the same rule); `None` unless the spec has `class_scores`.
    pub fn score_run(&self) -> Option<ClassScoreRun> {
        (!self.spec.class_scores.is_empty()).then(|| ClassScoreRun::concat(&self.scores))
    }
}

/// One batch of a label-joined bias monitor's rows: every column as text (as a bias state
/// reads them), with each row's join key.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BiasRows {
    pub keys: Vec<JoinKey>,
    pub columns: Vec<(String, Vec<Option<String>>)>,
}

impl BiasRows {
    fn of(rows: &RecordBatch, keys: &[JoinKey]) -> Self {
        let columns = (rows.schema().fields().iter().zip(rows.columns()))
            .map(|(field, array)| {
                let text = crate::decode::as_text(array);
                let text = (text.as_any())
                    .downcast_ref::<arrow::array::StringArray>()
                    .expect("as_text gives Utf8");
                let values = (0..text.len())
                    .map(|i| text.is_valid(i).then(|| text.value(i).to_string()))
                    .collect();
                (field.name().clone(), values)
            })
            .collect();
        Self {
            keys: keys[..rows.num_rows()].to_vec(),
            columns,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        match self
            .columns
            .iter()
            .find(|(_, v)| v.len() != self.keys.len())
        {
            Some((name, _)) => Err(format!("column {name:?} has another number of rows")),
            None => Ok(()),
        }
    }
}

/// A label-joined bias monitor's window before its labels: its rows, in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub struct BiasRowsWindow {
    pub spec: Arc<BiasSpec>,
    pub runs: Vec<BiasRows>,
    /// Rows refused by the finaliser's merge (`limits.max_window_rows.bias_rows`); not stored,
    /// as stored parts never hold refusals.
    pub refused_rows: u64,
}

impl BiasRowsWindow {
    /// The window's keys sorted and unique, each with its first row (run, row); and how many
    /// rows repeated a key (dropped).
    pub fn first_rows(&self) -> (Vec<JoinKey>, Vec<(usize, usize)>, u64) {
        let mut rows: Vec<(JoinKey, (usize, usize))> = (self.runs.iter().enumerate())
            .flat_map(|(r, run)| run.keys.iter().enumerate().map(move |(i, k)| (*k, (r, i))))
            .collect();
        // Stable: the earliest row of a key stays first.
        rows.sort_by_key(|(key, _)| *key);
        let before = rows.len();
        rows.dedup_by_key(|(key, _)| *key);
        let duplicates = (before - rows.len()) as u64;
        let (keys, picks) = rows.into_iter().unzip();
        (keys, picks, duplicates)
    }

    /// The names of the window's columns, in order of appearance, but `except`.
    fn column_names(&self, except: Option<&str>) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for run in &self.runs {
            for (name, _) in &run.columns {
                if !names.contains(&name.as_str()) && Some(name.as_str()) != except {
                    names.push(name);
                }
            }
        }
        names
    }

    /// Column `name`'s values of the rows `picks` (missing where a run lacks the column).
    fn column<'a>(&'a self, name: &str, picks: &[&(usize, usize)]) -> Vec<Option<&'a str>> {
        (picks.iter())
            .map(|&&(run, row)| {
                let columns = &self.runs[run].columns;
                let (_, values) = columns.iter().find(|(n, _)| n == name)?;
                values[row].as_deref()
            })
            .collect()
    }

    /// The rows `picks` that have a label, with their label as the column `label_column`.
    pub fn labelled(
        &self,
        picks: &[(usize, usize)],
        labels: &[Option<String>],
        label_column: &str,
    ) -> RecordBatch {
        let kept: Vec<&(usize, usize)> = (picks.iter().zip(labels))
            .filter(|(_, label)| label.is_some())
            .map(|(pick, _)| pick)
            .collect();
        let mut fields = Vec::new();
        let mut arrays: Vec<arrow::array::ArrayRef> = Vec::new();
        for name in self.column_names(Some(label_column)) {
            fields.push(arrow::datatypes::Field::new(
                name,
                arrow::datatypes::DataType::Utf8,
                true,
            ));
            let values = self.column(name, &kept);
            arrays.push(Arc::new(arrow::array::StringArray::from(values)));
        }
        let label_values: Vec<Option<&str>> =
            labels.iter().flatten().map(|l| Some(l.as_str())).collect();
        fields.push(arrow::datatypes::Field::new(
            label_column,
            arrow::datatypes::DataType::Utf8,
            true,
        ));
        arrays.push(Arc::new(arrow::array::StringArray::from(label_values)));
        let schema = Arc::new(arrow::datatypes::Schema::new(fields));
        let options =
            arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(kept.len()));
        RecordBatch::try_new_with_options(schema, arrays, &options).expect("columns of one length")
    }

    /// The rows `picks` whose label is missing, with their keys, as a window of one run: what
    /// a window restated by late labels keeps.
    pub fn unlabelled(
        &self,
        keys: &[JoinKey],
        picks: &[(usize, usize)],
        labels: &[Option<String>],
    ) -> Self {
        let (keys, kept): (Vec<JoinKey>, Vec<&(usize, usize)>) = (keys.iter().zip(picks))
            .zip(labels)
            .filter(|(_, label)| label.is_none())
            .map(|((key, pick), _)| (*key, pick))
            .unzip();
        let columns = (self.column_names(None))
            .into_iter()
            .map(|name| {
                let values = self.column(name, &kept);
                (
                    name.to_string(),
                    values.into_iter().map(|v| v.map(str::to_string)).collect(),
                )
            })
            .collect();
        Self {
            spec: self.spec.clone(),
            runs: vec![BiasRows { keys, columns }],
            refused_rows: 0,
        }
    }
}

/// A model-quality monitor's window: the labelled predictions' state, and the rows left out.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelQualityWindow {
    pub spec: Arc<ModelQualitySpec>,
    pub state: ModelQualityState,
    /// Rows without a usable prediction or ground truth (a value missing or unreadable, or a
    /// column the monitor names absent from the batch).
    pub skipped_rows: u64,
}

impl ModelQualityWindow {
    pub fn new(spec: Arc<ModelQualitySpec>) -> Self {
        Self {
            state: ModelQualityState::new(spec.problem_type),
            spec,
            skipped_rows: 0,
        }
    }

    fn add_batch(&mut self, rows: &RecordBatch, keys: &[JoinKey]) {
        let added = crate::model_quality::add_batch(&mut self.state, &self.spec, rows, |row| {
            Membership::of_hash(keys[row] as u64)
        });
        self.skipped_rows += match added {
            Ok(skipped) => skipped.len() as u64,
            Err(_) => rows.num_rows() as u64,
        };
    }

    fn merge(&mut self, other: ModelQualityWindow) {
        self.state
            .merge(&other.state)
            .expect("one monitor's windows hold one problem type");
        self.skipped_rows += other.skipped_rows;
    }
}

/// Where a chunk's rows come from: a hash of the object's name and the chunk's first row in
/// it. A row's key — which decides a model-quality row's subsamples — is its record id
/// (`inferenceId`, else `eventId`) when it has one, else the object and its position there:
/// the same whatever the order, the replica or the restart that reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowKeys {
    pub object: u64,
    pub first_row: u64,
}

impl RowKeys {
    fn of(self, chunk: &Chunk) -> Vec<JoinKey> {
        use crate::model_quality::join_key;
        if let Some(events) = &chunk.events
            && events.column_by_name(crate::decode::EVENT_ID).is_some()
        {
            return crate::decode::join_keys(events)
                .map(|id| join_key(id.as_bytes()))
                .collect();
        }
        (0..chunk.features.num_rows() as u64)
            .map(|row| {
                let mut bytes = [0u8; 16];
                bytes[..8].copy_from_slice(&self.object.to_le_bytes());
                bytes[8..].copy_from_slice(&(self.first_row + row).to_le_bytes());
                join_key(&bytes)
            })
            .collect()
    }
}

/// Which window: the monitor (index in the config), the endpoint the path named, and the
/// window's start in seconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WindowKey {
    pub monitor: usize,
    pub endpoint: Option<String>,
    pub start: i64,
}

#[derive(Debug)]
pub struct ClosedWindow {
    pub key: WindowKey,
    pub end: i64,
    pub state: WindowState,
}

#[derive(Debug)]
pub struct Windows {
    size: i64,
    lateness: i64,
    open: BTreeMap<WindowKey, WindowState>,
    /// Newest event (or clock) time seen.
    newest: i64,
    /// Every window ending at or before this has been closed.
    closed_through: i64,
    late_rows: u64,
}

impl Windows {
    pub fn new(size_seconds: i64, lateness_seconds: i64) -> Self {
        assert!(size_seconds > 0, "window size must be positive");
        Self {
            size: size_seconds,
            lateness: lateness_seconds,
            open: BTreeMap::new(),
            newest: i64::MIN,
            closed_through: i64::MIN,
            late_rows: 0,
        }
    }

    pub fn size(&self) -> i64 {
        self.size
    }

    /// The windows still open.
    pub fn keys(&self) -> impl Iterator<Item = &WindowKey> {
        self.open.keys()
    }

    /// The newest event time seen, if any row had one.
    pub fn newest(&self) -> Option<i64> {
        (self.newest != i64::MIN).then_some(self.newest)
    }

    /// The open windows' states, for a caller that keeps them elsewhere (AWS mode stores
    /// each object's partial windows).
    pub fn into_open(self) -> impl Iterator<Item = (WindowKey, WindowState)> {
        self.open.into_iter()
    }

    /// Rows that arrived after their window had closed.
    pub fn late_rows(&self) -> u64 {
        self.late_rows
    }

    pub fn start_of(&self, time: i64) -> i64 {
        time.div_euclid(self.size) * self.size
    }

    /// Adds a chunk's rows to their windows, new windows starting as `kind` says. Rows take
    /// their time from the chunk's `inference_time` column when it has one, else `object_time`.
    pub fn add(
        &mut self,
        monitor: usize,
        kind: &StateKind,
        endpoint: Option<&str>,
        chunk: &Chunk,
        object_time: i64,
        row_keys: RowKeys,
    ) {
        // Only model-quality windows use the keys.
        let keys = match kind {
            StateKind::ModelQuality(_) | StateKind::Predictions(_) | StateKind::BiasRows(_) => {
                row_keys.of(chunk)
            }
            _ => Vec::new(),
        };
        let times = chunk.events.as_ref().and_then(|events| {
            events
                .column_by_name(INFERENCE_TIME)
                .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
                .cloned()
        });
        let row_times: Vec<i64> = match &times {
            Some(times) => (0..times.len())
                .map(|i| {
                    if times.is_null(i) {
                        object_time
                    } else {
                        times.value(i)
                    }
                })
                .collect(),
            None => vec![object_time; chunk.features.num_rows()],
        };
        let starts: Vec<i64> = row_times.iter().map(|&t| self.start_of(t)).collect();
        let mut distinct: Vec<i64> = starts.clone();
        distinct.sort_unstable();
        distinct.dedup();
        for start in distinct {
            let (rows, keys) = if starts.iter().all(|&s| s == start) {
                (chunk.features.clone(), keys.clone())
            } else {
                let mask =
                    BooleanArray::from(starts.iter().map(|&s| s == start).collect::<Vec<_>>());
                let keys = keys
                    .iter()
                    .zip(&starts)
                    .filter(|(_, s)| **s == start)
                    .map(|(k, _)| *k)
                    .collect();
                let rows = filter_record_batch(&chunk.features, &mask)
                    .expect("mask has the batch's length");
                (rows, keys)
            };
            self.add_rows(monitor, kind, endpoint, start, &rows, &keys);
        }
        if let Some(&newest) = row_times.iter().max() {
            self.newest = self.newest.max(newest);
        }
    }

    fn add_rows(
        &mut self,
        monitor: usize,
        kind: &StateKind,
        endpoint: Option<&str>,
        start: i64,
        rows: &RecordBatch,
        keys: &[JoinKey],
    ) {
        if start + self.size <= self.closed_through {
            self.late_rows += rows.num_rows() as u64;
            return;
        }
        self.open
            .entry(WindowKey {
                monitor,
                endpoint: endpoint.map(str::to_string),
                start,
            })
            .or_insert_with(|| kind.empty())
            .add_batch(rows, keys);
    }

    /// Merges windows profiled elsewhere (e.g. one object's windows, once it decoded whole).
    pub fn absorb(&mut self, other: Windows) {
        for (key, state) in other.open {
            if key.start + self.size <= self.closed_through {
                self.late_rows += state.row_count();
                continue;
            }
            match self.open.get_mut(&key) {
                // States built here from rows, not decoded: their counts are far from u64's.
                Some(existing) => existing.merge_unchecked(state),
                None => {
                    self.open.insert(key, state);
                }
            }
        }
        self.newest = self.newest.max(other.newest);
        self.late_rows += other.late_rows;
    }

    /// Lets the clock move the watermark, so windows close when traffic stops.
    pub fn observe_clock(&mut self, now: i64) {
        self.newest = self.newest.max(now);
    }

    /// Closes the windows the watermark has passed, oldest first.
    pub fn close_ready(&mut self) -> Vec<ClosedWindow> {
        let watermark = self.newest.saturating_sub(self.lateness);
        self.close_through(watermark)
    }

    /// Closes every open window (end of input with `--once`, or shutdown).
    pub fn close_all(&mut self) -> Vec<ClosedWindow> {
        self.close_through(i64::MAX)
    }

    fn close_through(&mut self, watermark: i64) -> Vec<ClosedWindow> {
        let ready: Vec<WindowKey> = self
            .open
            .keys()
            .filter(|k| k.start + self.size <= watermark)
            .cloned()
            .collect();
        self.closed_through = self.closed_through.max(watermark);
        let mut closed: Vec<ClosedWindow> = ready
            .into_iter()
            .map(|key| {
                let state = self.open.remove(&key).expect("key taken from the map");
                ClosedWindow {
                    end: key.start + self.size,
                    key,
                    state,
                }
            })
            .collect();
        closed.sort_by_key(|w| (w.key.start, w.key.monitor, w.key.endpoint.clone()));
        closed
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::profile::Profile;

    const NO_KEYS: RowKeys = RowKeys {
        object: 0,
        first_row: 0,
    };

    const DQ: StateKind = StateKind::DataQuality;

    /// A chunk of one text column `v` whose rows happened at `times`.
    fn chunk(times: &[i64]) -> Chunk {
        let values: Vec<String> = times.iter().map(|t| t.to_string()).collect();
        let features = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("v", DataType::Utf8, true)])),
            vec![Arc::new(StringArray::from(values))],
        )
        .unwrap();
        let events = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new(
                INFERENCE_TIME,
                DataType::Int64,
                true,
            )])),
            vec![Arc::new(Int64Array::from(times.to_vec()))],
        )
        .unwrap();
        Chunk {
            features,
            events: Some(events),
        }
    }

    #[test]
    fn rows_split_by_event_time_and_close_on_the_watermark() {
        // Windows of 100 s, 10 s lateness.
        let mut windows = Windows::new(100, 10);
        windows.add(0, &DQ, Some("ep"), &chunk(&[5, 99, 100, 150]), 0, NO_KEYS);
        // Newest 150 → watermark 140: [0, 100) closes with its two rows, [100, 200) stays.
        let closed = windows.close_ready();
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].key.start, 0);
        assert_eq!(closed[0].end, 100);
        assert_eq!(closed[0].state.row_count(), 2);
        // A row for the closed window is late and counted; one for the open window is not.
        windows.add(0, &DQ, Some("ep"), &chunk(&[50, 180]), 0, NO_KEYS);
        assert_eq!(windows.late_rows(), 1);
        let rest = windows.close_all();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].key.start, 100);
        assert_eq!(rest[0].state.row_count(), 3);
    }

    #[test]
    fn object_windows_merge_and_rows_without_times_use_the_object_time() {
        let mut windows = Windows::new(3600, 0);
        let mut object = Windows::new(3600, 0);
        let mut timeless = chunk(&[1, 2]);
        timeless.events = None;
        object.add(1, &DQ, None, &timeless, 7200, NO_KEYS);
        windows.absorb(object);
        windows.observe_clock(7200 + 3600);
        let closed = windows.close_ready();
        assert_eq!(closed.len(), 1);
        assert_eq!(
            closed[0].key,
            WindowKey {
                monitor: 1,
                endpoint: None,
                start: 7200
            }
        );
        assert_eq!(closed[0].state.row_count(), 2);
    }

    // ---- the finaliser's merge: limits and overflow ----

    fn text_batch(columns: &[(&str, Vec<String>)]) -> RecordBatch {
        RecordBatch::try_from_iter(columns.iter().map(|(name, values)| {
            (
                *name,
                Arc::new(StringArray::from(values.clone())) as arrow::array::ArrayRef,
            )
        }))
        .unwrap()
    }

    fn predictions_kind() -> StateKind {
        StateKind::Predictions(Arc::new(ModelQualitySpec {
            problem_type: crate::model_quality::ProblemType::BinaryClassification,
            inference_attribute: Some("pred".into()),
            probability_attribute: None,
            probability_threshold: None,
            ground_truth_attribute: "label".into(),
            class_scores: Vec::new(),
        }))
    }

    /// A stored part of `kind` holding `rows` rows keyed from `first_key`, each with the columns
    /// `names` (values "1"), as the finaliser reads it back.
    fn part(kind: &StateKind, first_key: u128, rows: usize, names: &[&str]) -> WindowState {
        let columns: Vec<(&str, Vec<String>)> = names
            .iter()
            .map(|n| (*n, vec!["1".to_string(); rows]))
            .collect();
        let keys: Vec<JoinKey> = (first_key..first_key + rows as u128).collect();
        let mut state = kind.empty();
        state.add_batch(&text_batch(&columns), &keys);
        codec::decode(&codec::encode(&state), kind).unwrap()
    }

    fn limits(predictions: u64, bias_rows: u64, max_columns: usize) -> MergeLimits {
        MergeLimits {
            rows: WindowRows {
                predictions,
                bias_rows,
            },
            max_columns,
        }
    }

    /// Parts of 100, 150 and 20 predictions under a limit of 220: the second would pass it and
    /// is refused whole; the third still fits. Refused rows are the window's skipped rows, so
    /// the join counts them in `label_join.json`'s `skipped_rows`.
    #[test]
    fn a_joined_window_refuses_parts_past_max_window_rows_and_counts_them() {
        let kind = predictions_kind();
        let mut merger = WindowMerger::new(&kind, limits(220, 1, 1));
        for (first, rows) in [(0, 100), (1000, 150), (2000, 20)] {
            merger.add(part(&kind, first, rows, &["pred"])).unwrap();
        }
        let (window, refused) = merger.finish().unwrap();
        assert_eq!(
            refused,
            Refused {
                rows: 150,
                columns: 0
            }
        );
        let WindowState::Predictions(window) = window else {
            panic!("expected predictions")
        };
        let run = window.run();
        assert_eq!((run.len(), run.skipped, run.duplicates), (120, 150, 0));
        // Every row is still counted, held or refused.
        assert_eq!(WindowState::Predictions(window).row_count(), 270);
    }

    fn scored_kind(classes: &[&str]) -> StateKind {
        let StateKind::Predictions(spec) = predictions_kind() else {
            unreachable!()
        };
        let mut spec = (*spec).clone();
        spec.problem_type = crate::model_quality::ProblemType::MulticlassClassification;
        spec.class_scores = (classes.iter())
            .map(|c| (c.to_string(), format!("p{c}")))
            .collect();
        StateKind::Predictions(Arc::new(spec))
    }

    /// An estimating multiclass window keeps each prediction's class scores through a stored
    /// part; they count against `max_window_rows.predictions` as a prediction per 4 scores.
    #[test]
    fn class_scores_are_stored_with_their_part_and_held_within_the_window_limit() {
        let kind = scored_kind(&["a", "b"]);
        let columns = ["pred", "pa", "pb"];
        // 100 predictions with 200 scores hold 150; 10 more would hold 165.
        let mut merger = WindowMerger::new(&kind, limits(160, 1, 1));
        merger.add(part(&kind, 0, 100, &columns)).unwrap();
        merger.add(part(&kind, 1000, 10, &columns)).unwrap();
        let (window, refused) = merger.finish().unwrap();
        assert_eq!(refused.rows, 10);
        let WindowState::Predictions(window) = window else {
            panic!("expected predictions")
        };
        let scores = window.score_run().unwrap();
        assert_eq!((scores.len(), scores.values()), (100, 200));
        let mut cursor = scores.cursor();
        assert_eq!(cursor.scores_of(7), Some(&[1.0, 1.0][..]));

        // Scores stored for other classes than the configured ones are left out; the
        // predictions are kept.
        let stored = codec::encode(&part(&kind, 0, 5, &columns));
        let WindowState::Predictions(other) =
            codec::decode(&stored, &scored_kind(&["a", "c"])).unwrap()
        else {
            panic!("expected predictions")
        };
        assert_eq!(other.run().len(), 5);
        assert!(other.score_run().unwrap().is_empty());
    }

    /// A predictions part stored before class scores existed (format version 2) is read as
    /// one without them.
    #[test]
    fn a_version_2_predictions_part_is_read_without_class_scores() {
        #[derive(serde::Serialize)]
        struct Version2<'a> {
            problem_type: crate::model_quality::ProblemType,
            run: &'a PredictionRun,
        }
        let kind = scored_kind(&["a", "b"]);
        let WindowState::Predictions(window) = part(&kind, 0, 3, &["pred", "pa", "pb"]) else {
            panic!("expected predictions")
        };
        let run = window.run();
        let body = postcard::to_stdvec(&Version2 {
            problem_type: crate::model_quality::ProblemType::MulticlassClassification,
            run: &run,
        })
        .unwrap();
        let mut bytes = codec::MAGIC.to_vec();
        bytes.extend_from_slice(&2u16.to_le_bytes());
        bytes.push(4);
        bytes.extend(zstd::encode_all(&body[..], 3).unwrap());
        let WindowState::Predictions(read) = codec::decode(&bytes, &kind).unwrap() else {
            panic!("expected predictions")
        };
        assert_eq!(read.run(), run);
        assert!(read.score_run().unwrap().is_empty());
    }

    /// A label-joined bias window: rows past `bias_rows` refused whole per part, and columns
    /// past `max_columns` left out of the parts that bring them, except the analysis's own.
    #[test]
    fn a_joined_bias_window_stops_at_its_row_and_column_limits() {
        let spec = crate::fuzz::fuzz_bias_spec();
        let kind = StateKind::BiasRows(spec);
        let mut merger = WindowMerger::new(&kind, limits(1, 26, 3));
        merger
            .add(part(&kind, 0, 10, &["sex", "label", "pred"]))
            .unwrap();
        // A new column each: refused, the rows kept.
        merger.add(part(&kind, 100, 10, &["sex", "c1"])).unwrap();
        // Would make 30 rows: refused whole.
        merger.add(part(&kind, 200, 10, &["sex", "c2"])).unwrap();
        merger.add(part(&kind, 300, 5, &["label", "c3"])).unwrap();
        // A facet of the analysis is kept past the limit.
        merger.add(part(&kind, 400, 1, &["race", "c4"])).unwrap();
        let (window, refused) = merger.finish().unwrap();
        assert_eq!(
            refused,
            Refused {
                rows: 10,
                columns: 3
            }
        );
        let WindowState::BiasRows(window) = window else {
            panic!("expected bias rows")
        };
        assert_eq!(window.refused_rows, 10);
        assert_eq!(window.column_names(None), ["sex", "label", "pred", "race"]);
        let (keys, _, _) = window.first_rows();
        assert_eq!(keys.len(), 26);
    }

    /// A plain bias window: columns past `max_columns` left out, the analysis's own kept.
    #[test]
    fn a_bias_window_stops_at_max_columns_but_keeps_the_analysis_columns() {
        let kind = StateKind::Bias(crate::fuzz::fuzz_bias_spec());
        let mut merger = WindowMerger::new(&kind, limits(1, 1, 7));
        let roles = ["sex", "race", "zone", "label", "pred"];
        merger
            .add(part(&kind, 0, 4, &[&roles[..], &["x1"]].concat()))
            .unwrap();
        merger
            .add(part(&kind, 0, 4, &["sex", "label", "x2"]))
            .unwrap();
        merger
            .add(part(&kind, 0, 4, &["sex", "label", "x3"]))
            .unwrap();
        merger
            .add(part(&kind, 0, 4, &["pred", "x4", "x5"]))
            .unwrap();
        let (window, refused) = merger.finish().unwrap();
        assert_eq!(
            refused,
            Refused {
                rows: 0,
                columns: 3
            }
        );
        assert_eq!(window.row_count(), 16);
    }

    /// Objects each within `max_columns` but each with a new name: the data-quality window
    /// stops at the limit, and a kept column still counts every row.
    #[test]
    fn a_new_column_per_part_stops_a_data_quality_window_at_max_columns() {
        let mut merger = WindowMerger::new(&DQ, limits(1, 1, 3));
        for i in 0..6 {
            let name = format!("c{i}");
            merger.add(part(&DQ, 0, 2, &["id", &name])).unwrap();
        }
        let (window, refused) = merger.finish().unwrap();
        assert_eq!(
            refused,
            Refused {
                rows: 0,
                columns: 4
            }
        );
        let WindowState::DataQuality(profile) = window else {
            panic!("expected a profile")
        };
        let names: Vec<&str> = profile.columns.keys().map(String::as_str).collect();
        assert_eq!(names, ["id", "c0", "c1"]);
        assert_eq!(profile.row_count, 12);
        assert_eq!(profile.columns["c1"].num_missing, 10);
    }

    /// Two decoded profiles whose rows together pass [`MAX_STATE_ROWS`]: the merge is an error
    /// and leaves the window as it was, instead of wrapping (release) or panicking (debug).
    #[test]
    fn a_merge_past_max_state_rows_is_an_error_and_changes_nothing() {
        let mut big = Profile::default();
        big.add_batch(&text_batch(&[("v", vec!["1".into(), "2".into()])]));
        // Scaled so every count stays within the rows, as a decoded state must.
        big.row_count = MAX_STATE_ROWS / 2 + 1;
        let column = big.columns.get_mut("v").unwrap();
        column.num_present = big.row_count;
        let stored = codec::encode(&WindowState::DataQuality(big));
        let decoded = || codec::decode(&stored, &DQ).unwrap();
        let mut window = decoded();
        let error = window.merge(decoded()).unwrap_err();
        assert_eq!(
            error,
            MergeOverflow {
                window: MAX_STATE_ROWS / 2 + 1,
                part: MAX_STATE_ROWS / 2 + 1
            }
        );
        assert!(error.to_string().contains("damaged or forged"), "{error}");
        assert_eq!(window.row_count(), MAX_STATE_ROWS / 2 + 1);
        // The finaliser's merge leaves such a part out and goes on with the rest.
        let mut merger = WindowMerger::new(&DQ, limits(1, 1, 10));
        merger.add(decoded()).unwrap();
        assert!(merger.add(decoded()).is_err());
        merger.add(part(&DQ, 0, 3, &["v"])).unwrap();
        let (window, _) = merger.finish().unwrap();
        assert_eq!(window.row_count(), MAX_STATE_ROWS / 2 + 4);
    }

    /// The other kinds' counts: attribution values, model-quality skipped rows, predictions'
    /// duplicates. Each merge past the bound is an error, never a wrap.
    #[test]
    fn merges_of_every_kind_past_max_state_rows_are_errors() {
        use crate::attribution::{AttributionSpec, AttributionState};
        let half = MAX_STATE_ROWS / 2 + 1;
        let mut attribution = AttributionState::new(&AttributionSpec::default());
        attribution.refused_values = half;
        let mut window = WindowState::FeatureAttribution(Box::new(attribution.clone()));
        let other = WindowState::FeatureAttribution(Box::new(attribution));
        assert!(window.merge(other).is_err());

        let WindowState::Predictions(mut predictions) = predictions_kind().empty() else {
            unreachable!()
        };
        let mut run = PredictionRun::empty();
        run.duplicates = half;
        predictions.runs.push(run);
        let mut window = WindowState::Predictions(predictions.clone());
        assert!(window.merge(WindowState::Predictions(predictions)).is_err());
        assert_eq!(window.row_count(), half);

        let spec = match predictions_kind() {
            StateKind::Predictions(spec) => spec,
            _ => unreachable!(),
        };
        let mut quality = ModelQualityWindow::new(spec);
        quality.skipped_rows = half;
        let mut window = WindowState::ModelQuality(Box::new(quality.clone()));
        assert!(
            window
                .merge(WindowState::ModelQuality(Box::new(quality)))
                .is_err()
        );
    }
}
