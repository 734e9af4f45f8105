//! Event-time tumbling windows. Rows are assigned by their event time (a capture record's
//! `inferenceTime`, or the object's time for formats without one); a window closes when the
//! watermark — the newest time seen, less the allowed lateness — passes its end. Rows for a
//! window that already closed are counted as late, never silently dropped. A window holds its
//! monitor's mergeable state: a data-quality [`Profile`], a bias [`BiasState`] or a
//! [`ModelQualityWindow`], which [`codec`] turns into bytes to store and back.

pub mod codec;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, BooleanArray, Int64Array};
use arrow::compute::filter_record_batch;
use arrow::record_batch::RecordBatch;

use crate::attribution::{AttributionSpec, AttributionState};
use crate::bias::{BiasSpec, BiasState};
use crate::decode::{Chunk, INFERENCE_TIME};
use crate::model_quality::{
    JoinKey, Membership, ModelQualitySpec, ModelQualityState, PredictionRun,
};
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
            }),
            StateKind::BiasRows(spec) => WindowState::BiasRows(BiasRowsWindow {
                spec: spec.clone(),
                runs: Vec::new(),
            }),
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
        }
    }

    /// Both states belong to the same window key, so to the same monitor and kind.
    pub fn merge(&mut self, other: WindowState) {
        match (self, other) {
            (WindowState::DataQuality(a), WindowState::DataQuality(b)) => a.merge(b),
            (WindowState::Bias(a), WindowState::Bias(b)) => a.merge(*b),
            (WindowState::ModelQuality(a), WindowState::ModelQuality(b)) => a.merge(*b),
            (WindowState::FeatureAttribution(a), WindowState::FeatureAttribution(b)) => a.merge(&b),
            (WindowState::Predictions(a), WindowState::Predictions(b)) => a.runs.extend(b.runs),
            (WindowState::BiasRows(a), WindowState::BiasRows(b)) => a.runs.extend(b.runs),
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
        }
    }
}

/// A joined model-quality monitor's window before its labels: its predictions, as sorted
/// runs in arrival order (one per batch or merged part), made one run when needed.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionWindow {
    pub spec: Arc<ModelQualitySpec>,
    pub runs: Vec<PredictionRun>,
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
    }

    /// All predictions as one run; on a key in several runs, the earliest wins.
    pub fn run(&self) -> PredictionRun {
        PredictionRun::concat(&self.runs)
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
                Some(existing) => existing.merge(state),
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
}
