//! The mergeable state of a bias analysis: what a window keeps so that its metrics can be
//! computed, and so that windows, restarts and replicas merge into exactly the metrics of the
//! whole data.
//!
//! Clarify decides from the *whole* column whether a facet or label is categorical or continuous
//! (pandas' type of the column, and for integers the share of distinct values), and whether the
//! configured values match as written or only after conversion. Those decisions are not known
//! while rows stream in, so every row is reduced to a small code that records the answer under
//! each reading (equal to a value as a number, as text, after conversion, above the threshold…),
//! and the counts are kept per facet code × label code × prediction code × group. [`BiasState::evaluate`]
//! makes Clarify's decisions once, from the column summaries, and collapses the codes to binary.
//!
//! The intersectional tables need the counts of each pair of facets: per pair, facet key ×
//! facet key × label code × prediction code. Their cells are bounded: past [`PAIR_CELLS`] cells
//! in a state, rows that would open a new cell are counted as refused instead.
//!
//! The Flip Test needs rows: a uniform reservoir sample of at most [`SAMPLE_ROWS`] rows (fixed
//! seed) is kept; below that every row is kept and FT is exact.
//!
//! A state serializes (serde) to everything but its spec and what derives from the spec (the
//! matchers); [`StoredBiasState::into_state`] re-attaches them. The reservoir's generator is
//! stored with it, so a state read back continues sampling exactly as the original would.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray};
use arrow::record_batch::RecordBatch;
use compact_str::CompactString;
use indexmap::{IndexMap, IndexSet};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::config::BiasSpec;
use super::metrics::{Confusion, FacetCounts, FlipCounts, FlipRow, GroupKey, flip_test};
use crate::decode::as_text;
use crate::format::{python_float, python_str};
use crate::profile::counts_within;

/// Rows the Flip Test sample keeps. Brute-force k-NN over it takes well under a second.
pub const SAMPLE_ROWS: usize = 10_000;

/// Cells of pair counts a state keeps over all its pairs of facets (a cell: two facet keys, a
/// label code and a prediction code). Typical analyses need a few hundred; two facets of ~100
/// values each with a handful of label and prediction codes would pass it. Each cell costs
/// about 40 bytes in the hash map, so the limit holds the pair counts under a megabyte.
pub const PAIR_CELLS: usize = 16_384;

/// Distinct integers remembered per role column to apply Clarify's uniqueness rule; a column with
/// more counts as continuous.
const DISTINCT_CAP: usize = 1 << 16;

/// smclarify's `UNIQUENESS_THRESHOLD`: an integer column is continuous when distinct/count ≥ it.
const UNIQUENESS_THRESHOLD: f64 = 0.05;

/// Texts pandas' `read_csv` reads as missing by default.
const NA_TEXTS: &[&str] = &[
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
];

// Bits of a row's code for one column (label, prediction, or a facet with values).
/// Equal, as a number, to a configured number.
const NUM_EQ: u8 = 1;
/// Equal, as a number, to a configured value converted to a number.
const NUM_EQ_CONV: u8 = 2;
/// Equal, as text, to a configured string.
const STR_EQ: u8 = 4;
/// Equal, as text, to a configured value converted to text (Python's `str`).
const STR_EQ_CONV: u8 = 8;
/// Above the single configured threshold.
const GT: u8 = 16;
/// Truncated to an integer, above the threshold (a float prediction cast to an integer label).
const GT_TRUNC: u8 = 32;
/// Above `probability_threshold`.
const ABOVE_PROB: u8 = 64;
const CODES: usize = 128;

/// One value as pandas would read it from text.
#[derive(Debug, Clone, Copy)]
struct Cell<'a> {
    /// `None` when missing.
    text: Option<&'a str>,
    number: Option<f64>,
    int: Option<i64>,
}

impl<'a> Cell<'a> {
    fn parse(text: Option<&'a str>) -> Self {
        let Some(text) = text.filter(|t| !NA_TEXTS.contains(t)) else {
            return Cell {
                text: None,
                number: None,
                int: None,
            };
        };
        let trimmed = text.trim();
        let int = trimmed.parse::<i64>().ok();
        let number = int
            .map(|i| i as f64)
            .or_else(|| trimmed.parse::<f64>().ok());
        Cell {
            text: Some(text),
            number,
            int,
        }
    }

    /// The value as a Flip Test feature (non-numbers are caught by the column's type).
    fn feature(&self) -> f64 {
        self.number.unwrap_or(f64::NAN)
    }
}

/// pandas' dtype of a column read from text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dtype {
    Int,
    Float,
    Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Typing {
    Categorical,
    Continuous,
}

/// What a whole column says about its type, mergeable.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ColumnKind {
    present: u64,
    non_int: bool,
    non_numeric: bool,
    max: f64,
    /// Distinct integers (role columns only); `None` once past [`DISTINCT_CAP`].
    distinct: Option<HashSet<i64>>,
}

impl ColumnKind {
    fn new(track_distinct: bool) -> Self {
        ColumnKind {
            present: 0,
            non_int: false,
            non_numeric: false,
            max: f64::NEG_INFINITY,
            distinct: track_distinct.then(HashSet::new),
        }
    }

    fn add(&mut self, cell: &Cell) {
        if cell.text.is_none() {
            return;
        }
        self.present += 1;
        match cell.number {
            Some(x) => self.max = self.max.max(x),
            None => self.non_numeric = true,
        }
        match cell.int {
            Some(i) => {
                if let Some(set) = &mut self.distinct {
                    set.insert(i);
                    if set.len() > DISTINCT_CAP {
                        self.distinct = None;
                    }
                }
            }
            None => self.non_int = true,
        }
    }

    fn merge(&mut self, other: &ColumnKind) {
        self.present += other.present;
        self.non_int |= other.non_int;
        self.non_numeric |= other.non_numeric;
        self.max = self.max.max(other.max);
        self.distinct = match (self.distinct.take(), &other.distinct) {
            (Some(mut mine), Some(theirs)) => {
                mine.extend(theirs);
                (mine.len() <= DISTINCT_CAP).then_some(mine)
            }
            _ => None,
        };
    }

    /// `rows` = rows of the whole state: a column absent from some rows has missing values there.
    fn dtype(&self, rows: u64) -> Dtype {
        if self.non_numeric {
            Dtype::Text
        } else if self.non_int || self.present < rows {
            Dtype::Float
        } else {
            Dtype::Int
        }
    }

    /// smclarify's `series_datatype`.
    fn typing(&self, rows: u64, values: usize) -> Typing {
        if values > 1 {
            return Typing::Categorical;
        }
        match self.dtype(rows) {
            Dtype::Text => Typing::Categorical,
            Dtype::Float => Typing::Continuous,
            Dtype::Int => {
                let distinct = self.distinct.as_ref().map_or(usize::MAX, HashSet::len);
                if distinct as f64 >= UNIQUENESS_THRESHOLD * self.present as f64 {
                    Typing::Continuous
                } else {
                    Typing::Categorical
                }
            }
        }
    }
}

/// Turns a cell into its code for one column's configured values.
#[derive(Debug, Clone)]
struct Matcher {
    numbers: Vec<f64>,
    converted_numbers: Vec<f64>,
    strings: Vec<String>,
    converted_strings: Vec<String>,
    threshold: Option<Threshold>,
    probability: Option<f64>,
}

/// A single numeric threshold, and whether it was written as an integer (it then prints as one).
#[derive(Debug, Clone, Copy)]
struct Threshold {
    value: f64,
    integer: bool,
}

impl Matcher {
    fn new(values: &[Value], probability: Option<f64>) -> Self {
        let as_number = |v: &Value| match v {
            Value::Number(n) => n.as_f64(),
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            _ => None,
        };
        let converted_number = |v: &Value| match v {
            Value::String(s) => s.trim().parse::<f64>().ok(),
            other => as_number(other),
        };
        let threshold = match values {
            [v] => converted_number(v).map(|value| Threshold {
                value,
                integer: matches!(v, Value::Number(n) if !n.is_f64()),
            }),
            _ => None,
        };
        Matcher {
            numbers: values.iter().filter_map(as_number).collect(),
            converted_numbers: values.iter().filter_map(converted_number).collect(),
            strings: values
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            converted_strings: values.iter().map(python_str).collect(),
            threshold,
            probability,
        }
    }

    fn code(&self, cell: &Cell) -> u8 {
        let mut code = 0;
        if let Some(x) = cell.number {
            if self.numbers.contains(&x) {
                code |= NUM_EQ;
            }
            if self.converted_numbers.contains(&x) {
                code |= NUM_EQ_CONV;
            }
            if let Some(t) = self.threshold {
                if x > t.value {
                    code |= GT;
                }
                if x.trunc() > t.value {
                    code |= GT_TRUNC;
                }
            }
            if self.probability.is_some_and(|p| x > p) {
                code |= ABOVE_PROB;
            }
        }
        if let Some(s) = cell.text {
            if self.strings.iter().any(|v| v == s) {
                code |= STR_EQ;
            }
            if self.converted_strings.iter().any(|v| v == s) {
                code |= STR_EQ_CONV;
            }
        }
        code
    }
}

/// Key of the counts: facet key (a code when the facet has values, else the interned value),
/// label code, prediction code, interned group value.
type CountKey = (u32, u8, u8, u32);

/// Missing value of the group variable (interned values are below it).
const NO_GROUP: u32 = u32::MAX;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FacetState {
    /// `None` for a facet without configured values (one report per value). Derived from the
    /// spec, so not stored: [`StoredBiasState::into_state`] rebuilds it.
    #[serde(skip)]
    matcher: Option<Matcher>,
    /// Values in order of first appearance (`None` = missing), for a facet without values.
    values: IndexSet<Option<CompactString>>,
    counts: HashMap<CountKey, u64>,
}

/// Key of a pair's counts: the first facet's key, the second's, label code, prediction code.
type PairKey = (u32, u32, u8, u8);

/// The counts of every pair of facets (i, j), i < j, in the order (0, 1), (0, 2), …, (1, 2), …
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PairCounts {
    counts: Vec<HashMap<PairKey, u64>>,
    /// Per pair: rows not counted because the state held [`PAIR_CELLS`] cells.
    refused: Vec<u64>,
}

impl PairCounts {
    fn new(facets: usize) -> Self {
        let pairs = facets * facets.saturating_sub(1) / 2;
        PairCounts {
            counts: vec![HashMap::new(); pairs],
            refused: vec![0; pairs],
        }
    }

    fn cells(&self) -> usize {
        self.counts.iter().map(HashMap::len).sum()
    }

    /// Adds `n` rows to a cell of pair `pair`, or counts them as refused when the cell is new
    /// and the state is full. `cells` is the state's current number of cells.
    fn add(&mut self, pair: usize, key: PairKey, n: u64, cells: &mut usize) {
        match self.counts[pair].get_mut(&key) {
            Some(count) => *count += n,
            None if *cells < PAIR_CELLS => {
                self.counts[pair].insert(key, n);
                *cells += 1;
            }
            None => self.refused[pair] += n,
        }
    }
}

/// The pairs (i, j), i < j, of `facets` facets, in [`PairCounts`]' order.
fn facet_pairs(facets: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..facets).flat_map(move |i| (i + 1..facets).map(move |j| (i, j)))
}

/// One sampled row for the Flip Test.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SampleRow {
    /// By index into [`BiasState::columns`]; columns first seen later are missing here.
    features: Vec<f64>,
    facet_keys: Vec<u32>,
    prediction: u8,
}

/// A uniform sample without replacement of at most [`SAMPLE_ROWS`] rows (Algorithm R), with a
/// fixed seed so that a run is reproducible.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Reservoir {
    seen: u64,
    rows: Vec<SampleRow>,
    rng: SplitMix64,
}

/// SplitMix64: a small, fast generator; statistical quality is ample for sampling. Its whole
/// state is the one `u64`, which is what makes it storable: a generator read back draws the
/// same numbers the original would have (no opaque library RNG to reseed).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SplitMix64(u64);

impl SplitMix64 {
    const SEED: u64 = 0x5eed_b1a5_d21f_7d00;

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by Lemire's multiply-shift (bias below 2⁻⁶⁴·n, negligible).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

impl Reservoir {
    fn new() -> Self {
        Reservoir {
            seen: 0,
            rows: Vec::new(),
            rng: SplitMix64(SplitMix64::SEED),
        }
    }

    /// The slot the next row goes to, if it is sampled.
    fn slot(&mut self) -> Option<usize> {
        self.seen += 1;
        if self.rows.len() < SAMPLE_ROWS {
            return Some(self.rows.len());
        }
        let j = self.rng.below(self.seen) as usize;
        (j < SAMPLE_ROWS).then_some(j)
    }

    fn put(&mut self, slot: usize, row: SampleRow) {
        if slot == self.rows.len() {
            self.rows.push(row);
        } else {
            self.rows[slot] = row;
        }
    }

    /// A uniform sample of the union: each draw takes from one side with probability
    /// proportional to the rows that side has not yet given, then a random row of its sample.
    fn merge(&mut self, mut other: Vec<SampleRow>, other_seen: u64) {
        let total = self.seen + other_seen;
        if total as usize <= SAMPLE_ROWS {
            self.rows.append(&mut other);
            self.seen = total;
            return;
        }
        let mut mine = std::mem::take(&mut self.rows);
        let (mut left_mine, mut left_other) = (self.seen, other_seen);
        let mut merged = Vec::with_capacity(SAMPLE_ROWS);
        while merged.len() < SAMPLE_ROWS {
            let from_mine = self.rng.below(left_mine + left_other) < left_mine;
            let (pool, left) = if from_mine {
                (&mut mine, &mut left_mine)
            } else {
                (&mut other, &mut left_other)
            };
            let pick = self.rng.below(pool.len() as u64) as usize;
            merged.push(pool.swap_remove(pick));
            *left -= 1;
        }
        self.rows = merged;
        self.seen = total;
    }
}

/// The mergeable state of one bias analysis over some rows (a window, an object, a replica's
/// share). Built with [`BiasState::add_batch`], combined with [`BiasState::merge`].
///
/// Serializes without the spec (it comes from config); read back through [`StoredBiasState`].
#[derive(Debug, Clone, Serialize)]
pub struct BiasState {
    #[serde(skip)]
    spec: Arc<BiasSpec>,
    #[serde(skip)]
    label_matcher: Matcher,
    // Stored fields: keep them in the order of `StoredBiasState`'s (the stored form is
    // positional).
    rows: u64,
    /// Every column seen, by display name (see [`BiasSpec::display_name`]).
    columns: IndexMap<String, ColumnKind>,
    /// Rows per label code and per prediction code (decides "any value matched as written").
    label_codes: Vec<u64>,
    prediction_codes: Vec<u64>,
    facets: Vec<FacetState>,
    groups: IndexSet<CompactString>,
    sample: Reservoir,
    /// `None` for a state read from window-state format version 1, which kept no pair counts
    /// (and for any merge with one: its pairs would be incomplete).
    pairs: Option<PairCounts>,
}

/// A [`BiasState`] read back without its spec: deserialize this from what a `BiasState`
/// serialized to, then [`StoredBiasState::into_state`].
#[derive(Debug, Deserialize)]
pub struct StoredBiasState {
    // The stored fields of `BiasState`, in its order.
    rows: u64,
    columns: IndexMap<String, ColumnKind>,
    label_codes: Vec<u64>,
    prediction_codes: Vec<u64>,
    facets: Vec<FacetState>,
    groups: IndexSet<CompactString>,
    sample: Reservoir,
    pairs: Option<PairCounts>,
}

impl StoredBiasState {
    /// Re-attaches the spec the state was built under (the caller makes sure it is the same
    /// analysis: see [`spec_shape`]). The indexes the state holds are checked, so that a stored
    /// state that is well-formed but inconsistent fails here, not with a panic in `evaluate`.
    pub fn into_state(self, spec: Arc<BiasSpec>) -> Result<BiasState, String> {
        let mut state = BiasState::new(spec);
        if self.facets.len() != state.facets.len() {
            return Err(format!(
                "{} facets stored, the spec has {}",
                self.facets.len(),
                state.facets.len()
            ));
        }
        if self.label_codes.len() != CODES || self.prediction_codes.len() != CODES {
            return Err(format!("label or prediction histogram is not {CODES} long"));
        }
        if self.sample.seen != self.rows || self.sample.rows.len() > SAMPLE_ROWS {
            return Err(format!(
                "sample of {} rows of {} does not fit {} rows",
                self.sample.rows.len(),
                self.sample.seen,
                self.rows
            ));
        }
        let code = |c: u8| usize::from(c) < CODES;
        let group = |g: u32| g == NO_GROUP || (g as usize) < self.groups.len();
        for (i, (stored, fresh)) in self.facets.iter().zip(&state.facets).enumerate() {
            // A facet with values is keyed by code, one without by index of its value.
            let keys = if fresh.matcher.is_some() {
                CODES
            } else {
                stored.values.len()
            };
            let counts_ok = stored
                .counts
                .keys()
                .all(|&(f, l, p, g)| (f as usize) < keys && code(l) && code(p) && group(g));
            let sample_ok = self.sample.rows.iter().all(|row| {
                row.facet_keys.len() == self.facets.len() && (row.facet_keys[i] as usize) < keys
            });
            if !counts_ok || !sample_ok {
                return Err(format!("facet {i} holds a value index out of range"));
            }
        }
        if let Some(pairs) = &self.pairs {
            let facet_keys: Vec<usize> = self
                .facets
                .iter()
                .zip(&state.facets)
                .map(|(stored, fresh)| match fresh.matcher {
                    Some(_) => CODES,
                    None => stored.values.len(),
                })
                .collect();
            let expected = state.pairs.as_ref().map_or(0, |p| p.counts.len());
            if pairs.counts.len() != expected || pairs.refused.len() != expected {
                return Err(format!(
                    "{} pairs of facets stored, the spec has {expected}",
                    pairs.counts.len()
                ));
            }
            let in_range =
                facet_pairs(self.facets.len())
                    .zip(&pairs.counts)
                    .all(|((i, j), counts)| {
                        counts.keys().all(|&(a, b, l, p)| {
                            (a as usize) < facet_keys[i]
                                && (b as usize) < facet_keys[j]
                                && code(l)
                                && code(p)
                        })
                    });
            if !in_range || pairs.cells() > PAIR_CELLS {
                return Err("pair counts hold a key out of range or too many cells".into());
            }
        }
        let rows_ok = self
            .sample
            .rows
            .iter()
            .all(|row| row.features.len() <= self.columns.len() && code(row.prediction));
        if !rows_ok {
            return Err("a sampled row does not fit the columns".into());
        }
        for (facet, stored) in state.facets.iter_mut().zip(self.facets) {
            facet.values = stored.values;
            facet.counts = stored.counts;
        }
        state.rows = self.rows;
        state.columns = self.columns;
        state.label_codes = self.label_codes;
        state.prediction_codes = self.prediction_codes;
        state.groups = self.groups;
        state.sample = self.sample;
        state.pairs = self.pairs;
        Ok(state)
    }
}

/// The parts of a spec that shape a state — how rows are coded and which columns have roles —
/// as JSON. States built under specs of one shape are interchangeable. The rest of a spec (the
/// methods, `excluded`) only matters to `evaluate`, so a stored state still reads under a config
/// that changed only those. Add here any spec field that `new` or `add_batch` comes to use.
pub fn spec_shape(spec: &BiasSpec) -> Value {
    let facets: Vec<Value> = spec
        .facets
        .iter()
        .map(|f| json!({"name": f.name, "values": f.values}))
        .collect();
    json!({
        "headers": spec.headers,
        "label": spec.label,
        "label_values": spec.label_values,
        "predicted_label": spec.predicted_label,
        "probability_threshold": spec.probability_threshold,
        "facets": facets,
        "group_variable": spec.group_variable,
    })
}

/// Sampled rows (features as bits, facet keys, prediction code), rows seen, generator state.
#[cfg(test)]
pub(crate) type SampleSnapshot = (Vec<(Vec<u64>, Vec<u32>, u8)>, u64, u64);

#[cfg(test)]
impl BiasState {
    /// The sample bit for bit (features as bits, facet keys, prediction code), rows seen, and
    /// the generator's state: for tests that a stored state samples on identically.
    pub(crate) fn sample_snapshot(&self) -> SampleSnapshot {
        let rows = self
            .sample
            .rows
            .iter()
            .map(|row| {
                let features = row.features.iter().map(|x| x.to_bits()).collect();
                (features, row.facet_keys.clone(), row.prediction)
            })
            .collect();
        (rows, self.sample.seen, self.sample.rng.0)
    }
}

impl BiasState {
    pub fn new(spec: Arc<BiasSpec>) -> Self {
        let facets = spec
            .facets
            .iter()
            .map(|f| FacetState {
                matcher: (!f.values.is_empty()).then(|| Matcher::new(&f.values, None)),
                values: IndexSet::new(),
                counts: HashMap::new(),
            })
            .collect();
        let pairs = PairCounts::new(spec.facets.len());
        BiasState {
            label_matcher: Matcher::new(&spec.label_values, spec.probability_threshold),
            spec,
            rows: 0,
            columns: IndexMap::new(),
            label_codes: vec![0; CODES],
            prediction_codes: vec![0; CODES],
            facets,
            groups: IndexSet::new(),
            sample: Reservoir::new(),
            pairs: Some(pairs),
        }
    }

    pub fn spec(&self) -> &Arc<BiasSpec> {
        &self.spec
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// What a decoded state's counts must satisfy, so that merging it cannot overflow (release
    /// builds would wrap silently): at most `max_rows` rows, and no histogram, facet, pair or
    /// column counting more than the state's rows. Merges keep this: a merged count is at most
    /// the merged rows, which the caller keeps within `max_rows`
    /// ([`crate::window::WindowState::merge`]).
    pub fn validate_counts(&self, max_rows: u64) -> Result<(), String> {
        let rows = self.rows;
        if rows > max_rows {
            return Err(format!(
                "{rows} rows, more than a bias state may hold ({max_rows})"
            ));
        }
        let within = |counts: &mut dyn Iterator<Item = &u64>| counts_within(counts.copied(), rows);
        let histograms =
            within(&mut self.label_codes.iter()) && within(&mut self.prediction_codes.iter());
        let facets = (self.facets.iter()).all(|facet| within(&mut facet.counts.values()));
        let columns = self.columns.values().all(|column| column.present <= rows);
        let pairs = self.pairs.as_ref().is_none_or(|pairs| {
            pairs.refused.iter().all(|&refused| refused <= rows)
                && (pairs.counts.iter()).all(|counts| within(&mut counts.values()))
        });
        if !(histograms && facets && columns && pairs) {
            return Err(format!("its counts pass the state's {rows} rows"));
        }
        Ok(())
    }

    fn is_role_column(&self, name: &str) -> bool {
        let spec = &self.spec;
        name == spec.label
            || spec.predicted_label.as_deref() == Some(name)
            || spec.facets.iter().any(|f| f.name == name)
    }

    /// Adds the rows of one batch. Columns are found by name (positional `_c{i}` names take the
    /// config's `headers`); a column missing from the batch is missing in its rows.
    pub fn add_batch(&mut self, batch: &RecordBatch) {
        let n = batch.num_rows();
        if n == 0 {
            return;
        }
        let texts: Vec<ArrayRef> = batch.columns().iter().map(as_text).collect();
        let texts: Vec<&StringArray> = texts
            .iter()
            .map(|a| {
                a.as_any()
                    .downcast_ref::<StringArray>()
                    .expect("cast to Utf8")
            })
            .collect();
        // Column index in the state of each batch column.
        let mut slots = Vec::with_capacity(texts.len());
        for field in batch.schema().fields() {
            let name = self.spec.display_name(field.name()).to_string();
            let track = self.is_role_column(&name);
            let entry = self.columns.entry(name);
            slots.push(entry.index());
            entry.or_insert_with(|| ColumnKind::new(track));
        }
        let find = |name: &str| -> Option<usize> {
            let slot = self.columns.get_index_of(name)?;
            slots.iter().position(|&s| s == slot)
        };
        let label_col = find(&self.spec.label);
        let prediction_col = self.spec.predicted_label.as_deref().and_then(find);
        let group_col = self.spec.group_variable.as_deref().and_then(find);
        let facet_cols: Vec<Option<usize>> =
            self.spec.facets.iter().map(|f| find(&f.name)).collect();

        let cells: Vec<Vec<Cell>> = texts
            .iter()
            .map(|array| {
                (0..n)
                    .map(|r| Cell::parse(array.is_valid(r).then(|| array.value(r))))
                    .collect()
            })
            .collect();
        for (column, &slot) in cells.iter().zip(&slots) {
            let kind = &mut self.columns[slot];
            column.iter().for_each(|cell| kind.add(cell));
        }
        let missing = Cell::parse(None);
        let cell = |col: Option<usize>, r: usize| col.map_or(missing, |c| cells[c][r]);

        let mut facet_keys = vec![0u32; self.facets.len()];
        let mut pair_cells = self.pairs.as_ref().map_or(0, PairCounts::cells);
        // `r` indexes the same row in every column.
        #[allow(clippy::needless_range_loop)]
        for r in 0..n {
            let label = self.label_matcher.code(&cell(label_col, r));
            let prediction = self.label_matcher.code(&cell(prediction_col, r));
            self.label_codes[label as usize] += 1;
            self.prediction_codes[prediction as usize] += 1;
            let group = match cell(group_col, r).text {
                Some(text) => self.groups.insert_full(CompactString::from(text)).0 as u32,
                None => NO_GROUP,
            };
            for (i, facet) in self.facets.iter_mut().enumerate() {
                let value = cell(facet_cols[i], r);
                let key = match &facet.matcher {
                    Some(matcher) => u32::from(matcher.code(&value)),
                    None => {
                        facet
                            .values
                            .insert_full(value.text.map(CompactString::from))
                            .0 as u32
                    }
                };
                facet_keys[i] = key;
                *facet
                    .counts
                    .entry((key, label, prediction, group))
                    .or_insert(0) += 1;
            }
            if let Some(pairs) = &mut self.pairs {
                for (pair, (i, j)) in facet_pairs(facet_keys.len()).enumerate() {
                    let key = (facet_keys[i], facet_keys[j], label, prediction);
                    pairs.add(pair, key, 1, &mut pair_cells);
                }
            }
            if let Some(slot) = self.sample.slot() {
                let mut features = vec![f64::NAN; self.columns.len()];
                for (c, &s) in slots.iter().enumerate() {
                    features[s] = cells[c][r].feature();
                }
                let row = SampleRow {
                    features,
                    facet_keys: facet_keys.clone(),
                    prediction,
                };
                self.sample.put(slot, row);
            }
        }
        self.rows += n as u64;
    }

    /// Adds `other`'s rows after this state's rows (first appearances keep that order). Both
    /// must come from the same spec.
    pub fn merge(&mut self, other: BiasState) {
        self.merge_within(other, usize::MAX);
    }

    /// [`BiasState::merge`] keeping at most `max_columns` columns (`limits.max_columns`, which
    /// bounds each object, applied to the window): a column of `other` new to `self` once
    /// `self` has that many is left out (its sampled values with it), unless the analysis
    /// names it ([`BiasSpec::names_column`]). Returns the number of columns left out.
    pub fn merge_within(&mut self, other: BiasState, max_columns: usize) -> u64 {
        debug_assert_eq!(
            self.spec, other.spec,
            "merging states of different analyses"
        );
        let mut refused = 0;
        let column_map: Vec<Option<usize>> = other
            .columns
            .iter()
            .map(|(name, kind)| match self.columns.get_index_of(name) {
                Some(i) => {
                    self.columns[i].merge(kind);
                    Some(i)
                }
                None if self.columns.len() >= max_columns && !self.spec.names_column(name) => {
                    refused += 1;
                    None
                }
                None => Some(self.columns.insert_full(name.clone(), kind.clone()).0),
            })
            .collect();
        for (mine, theirs) in self.label_codes.iter_mut().zip(&other.label_codes) {
            *mine += theirs;
        }
        for (mine, theirs) in self
            .prediction_codes
            .iter_mut()
            .zip(&other.prediction_codes)
        {
            *mine += theirs;
        }
        let group_map: Vec<u32> = other
            .groups
            .iter()
            .map(|g| self.groups.insert_full(g.clone()).0 as u32)
            .collect();
        let remap_group = |g: u32| {
            if g == NO_GROUP {
                g
            } else {
                group_map[g as usize]
            }
        };
        let mut facet_maps = Vec::with_capacity(self.facets.len());
        for (mine, theirs) in self.facets.iter_mut().zip(other.facets) {
            let value_map: Option<Vec<u32>> = mine.matcher.is_none().then(|| {
                theirs
                    .values
                    .iter()
                    .map(|v| mine.values.insert_full(v.clone()).0 as u32)
                    .collect()
            });
            let remap_facet = |k: u32| value_map.as_ref().map_or(k, |m| m[k as usize]);
            for ((f, l, p, g), n) in theirs.counts {
                *mine
                    .counts
                    .entry((remap_facet(f), l, p, remap_group(g)))
                    .or_insert(0) += n;
            }
            facet_maps.push(value_map);
        }
        self.pairs = match (self.pairs.take(), other.pairs) {
            (Some(mut mine), Some(theirs)) => {
                let remap = |facet: usize, k: u32| {
                    facet_maps[facet]
                        .as_ref()
                        .map_or(k, |m: &Vec<u32>| m[k as usize])
                };
                let mut cells = mine.cells();
                let pairs = facet_pairs(self.facets.len())
                    .zip(theirs.counts)
                    .enumerate();
                for (pair, ((i, j), counts)) in pairs {
                    // In key order, so that which cells a full state refuses does not depend
                    // on the hash map's order.
                    let mut counts: Vec<_> = counts.into_iter().collect();
                    counts.sort_unstable();
                    for ((a, b, l, p), n) in counts {
                        mine.add(pair, (remap(i, a), remap(j, b), l, p), n, &mut cells);
                    }
                    mine.refused[pair] += theirs.refused[pair];
                }
                Some(mine)
            }
            _ => None,
        };
        let width = self.columns.len();
        let rows = other
            .sample
            .rows
            .into_iter()
            .map(|row| {
                let mut features = vec![f64::NAN; width];
                for (i, x) in row.features.into_iter().enumerate() {
                    if let Some(column) = column_map[i] {
                        features[column] = x;
                    }
                }
                let facet_keys = row
                    .facet_keys
                    .iter()
                    .zip(&facet_maps)
                    .map(|(&k, map)| map.as_ref().map_or(k, |m| m[k as usize]))
                    .collect();
                SampleRow {
                    features,
                    facet_keys,
                    prediction: row.prediction,
                }
            })
            .collect();
        self.sample.merge(rows, other.sample.seen);
        self.rows += other.rows;
        refused
    }

    /// Makes Clarify's decisions (column types, value matching, thresholds) and collapses the
    /// counts to what the metrics take.
    pub fn evaluate(&self) -> Evaluation {
        let spec = &self.spec;
        let label = self.label_rule();
        let prediction = match (&label, &spec.predicted_label) {
            (Ok(label), Some(_)) => Some(self.prediction_rule(label)),
            (Err(e), Some(_)) => Some(Err(e.clone())),
            (_, None) => None,
        };
        let label_value_or_threshold = match &label {
            Ok(rule) => rule.description.clone(),
            Err(_) => join(&spec.label_values),
        };
        let want_flip_test = spec.post_training.contains(&super::metrics::Metric::FT);
        let facets = spec
            .facets
            .iter()
            .enumerate()
            .map(|(i, facet)| {
                let selections = match &label {
                    Ok(label) => self.facet_selections(i).map(|selections| {
                        selections
                            .into_iter()
                            .map(|(value_or_threshold, in_d)| {
                                let pred_bits = prediction.as_ref().and_then(|p| p.as_ref().ok());
                                let counts = self.counts(i, &in_d, label, pred_bits);
                                let flip_test = match &prediction {
                                    Some(Ok(p)) if want_flip_test => {
                                        Some(self.flip_test(i, &in_d, p))
                                    }
                                    _ => None,
                                };
                                Selection {
                                    value_or_threshold,
                                    counts,
                                    flip_test,
                                }
                            })
                            .collect()
                    }),
                    Err(e) => Err(e.clone()),
                };
                FacetEvaluation {
                    name: facet.name.clone(),
                    selections,
                }
            })
            .collect();
        let pairs = self.pairs.as_ref().map(|pairs| {
            let pred_bits = prediction.as_ref().and_then(|p| p.as_ref().ok());
            self.pair_evaluations(pairs, &label, pred_bits)
        });
        Evaluation {
            label: spec.label.clone(),
            label_value_or_threshold,
            label_error: label.err(),
            prediction_error: prediction.and_then(Result::err),
            facets,
            pairs,
            sample: FlipSample {
                rows: self.sample.rows.len(),
                of: self.sample.seen,
            },
        }
    }

    fn column(&self, name: &str) -> ColumnKind {
        self.columns
            .get(name)
            .cloned()
            .unwrap_or_else(|| ColumnKind::new(true))
    }

    /// Which bit of a code means "positive" for a column holding labels (or facet values).
    fn categorical_bit(dtype: Dtype, any: impl Fn(u8) -> bool) -> u8 {
        // smclarify compares as written first, and converts the configured values to the
        // column's type only when nothing matched.
        let (written, converted) = match dtype {
            Dtype::Text => (STR_EQ, STR_EQ_CONV),
            Dtype::Int | Dtype::Float => (NUM_EQ, NUM_EQ_CONV),
        };
        if any(written) { written } else { converted }
    }

    fn label_rule(&self) -> Result<Rule, String> {
        let spec = &self.spec;
        let kind = self.column(&spec.label);
        let dtype = kind.dtype(self.rows);
        let any = |bit: u8| any_code(&self.label_codes, bit);
        match kind.typing(self.rows, spec.label_values.len()) {
            Typing::Categorical => Ok(Rule {
                bit: Self::categorical_bit(dtype, any),
                typing: Typing::Categorical,
                dtype,
                description: join(&spec.label_values),
            }),
            Typing::Continuous => {
                let threshold = self.label_matcher.threshold.ok_or_else(threshold_error)?;
                Ok(Rule {
                    bit: GT,
                    typing: Typing::Continuous,
                    dtype,
                    description: interval(threshold, kind.max, dtype),
                })
            }
        }
    }

    fn prediction_rule(&self, label: &Rule) -> Result<u8, String> {
        let spec = &self.spec;
        let name = spec.predicted_label.as_deref().unwrap_or_default();
        let kind = self.column(name);
        let dtype = kind.dtype(self.rows);
        let any = |bit: u8| any_code(&self.prediction_codes, bit);
        let bit = if spec.probability_threshold.is_some() && dtype == Dtype::Float {
            ABOVE_PROB
        } else {
            let typing = kind.typing(self.rows, spec.label_values.len());
            if typing != label.typing {
                return Err(
                    "Predicted Label Column series datatype is not the same as Label Column series"
                        .into(),
                );
            }
            match typing {
                Typing::Categorical => Self::categorical_bit(dtype, any),
                // smclarify casts the predictions to the label's type first.
                Typing::Continuous if label.dtype == Dtype::Int && dtype == Dtype::Float => {
                    GT_TRUNC
                }
                Typing::Continuous => GT,
            }
        };
        if !any(bit) {
            return Err("No Label values are present in the predicted Label Column,Positive Predicted Index Series contains all False values".into());
        }
        Ok(bit)
    }

    /// The facet's selections of *d*: (value_or_threshold, whether a facet key is in *d*).
    fn facet_selections(&self, i: usize) -> Result<Vec<(String, Vec<bool>)>, String> {
        let facet = &self.spec.facets[i];
        let state = &self.facets[i];
        let kind = self.column(&facet.name);
        let dtype = kind.dtype(self.rows);
        let typing = kind.typing(self.rows, facet.values.len());
        let Some(matcher) = &state.matcher else {
            if typing == Typing::Continuous {
                return Err("Threshold values must be provided for continuous features".into());
            }
            // One-vs-rest per distinct value, in order of first appearance; texts that pandas
            // reads as the same number are one value.
            let mut by_value: IndexMap<String, Vec<bool>> = IndexMap::new();
            for (key, value) in state.values.iter().enumerate() {
                let shown = match value {
                    None => "nan".to_string(),
                    Some(text) => typed_text(text, dtype),
                };
                let in_d = by_value
                    .entry(shown)
                    .or_insert_with(|| vec![false; state.values.len()]);
                // A missing value never equals itself: its selection stays empty.
                in_d[key] = value.is_some();
            }
            return Ok(by_value.into_iter().collect());
        };
        let any = |bit: u8| state.counts.keys().any(|&(k, ..)| k as u8 & bit != 0);
        let (bit, shown) = match typing {
            Typing::Categorical => (Self::categorical_bit(dtype, any), join(&facet.values)),
            Typing::Continuous => {
                let threshold = matcher.threshold.ok_or_else(threshold_error)?;
                (GT, interval(threshold, kind.max, dtype))
            }
        };
        let in_d = (0..CODES).map(|code| code as u8 & bit != 0).collect();
        Ok(vec![(shown, in_d)])
    }

    /// A facet's groups in the intersectional tables — "sex = 0" and "sex ≠ 0" for configured
    /// values, "race = a" per value otherwise — and the group of each facet key (`None`: a
    /// missing value, in no group).
    fn pair_groups(&self, i: usize) -> Result<(Vec<String>, Vec<Option<usize>>), String> {
        let name = &self.spec.facets[i].name;
        let selections = self.facet_selections(i)?;
        if self.facets[i].matcher.is_some() {
            let (shown, in_d) = &selections[0];
            let names = vec![format!("{name} = {shown}"), format!("{name} ≠ {shown}")];
            let keys = in_d.iter().map(|&d| Some(usize::from(!d))).collect();
            return Ok((names, keys));
        }
        let mut keys = vec![None; self.facets[i].values.len()];
        let mut names = Vec::new();
        for (shown, in_d) in selections {
            if !in_d.contains(&true) {
                continue;
            }
            for (key, _) in in_d.iter().enumerate().filter(|(_, d)| **d) {
                keys[key] = Some(names.len());
            }
            names.push(format!("{name} = {shown}"));
        }
        Ok((names, keys))
    }

    /// Each pair of facets' counts collapsed to binary label × prediction per cell.
    fn pair_evaluations(
        &self,
        pairs: &PairCounts,
        label: &Result<Rule, String>,
        prediction: Option<&u8>,
    ) -> Vec<PairEvaluation> {
        let facets = &self.spec.facets;
        facet_pairs(facets.len())
            .zip(pairs.counts.iter().zip(&pairs.refused))
            .map(|((i, j), (counts, &refused))| {
                let table = || -> Result<PairTable, String> {
                    let label = label.as_ref().map_err(Clone::clone)?;
                    let (first_names, first) = self.pair_groups(i)?;
                    let (second_names, second) = self.pair_groups(j)?;
                    let mut cells: BTreeMap<(usize, usize), [[u64; 2]; 2]> = BTreeMap::new();
                    let mut unknown = 0;
                    for (&(a, b, l, p), &n) in counts {
                        let l = usize::from(l & label.bit != 0);
                        let p = usize::from(prediction.is_some_and(|bit| p & bit != 0));
                        match (first[a as usize], second[b as usize]) {
                            (Some(x), Some(y)) => cells.entry((x, y)).or_default()[l][p] += n,
                            _ => unknown += n,
                        }
                    }
                    let cells = cells
                        .into_iter()
                        .map(|((x, y), counts)| PairCell {
                            groups: [first_names[x].clone(), second_names[y].clone()],
                            counts,
                        })
                        .collect();
                    Ok(PairTable { cells, unknown })
                };
                PairEvaluation {
                    facets: [facets[i].name.clone(), facets[j].name.clone()],
                    table: table(),
                    refused,
                }
            })
            .collect()
    }

    fn counts(
        &self,
        i: usize,
        in_d: &[bool],
        label: &Rule,
        prediction: Option<&u8>,
    ) -> FacetCounts {
        let group_keys: Option<Vec<Option<GroupKey>>> =
            self.spec.group_variable.as_ref().map(|name| {
                let dtype = self.column(name).dtype(self.rows);
                self.groups
                    .iter()
                    .map(|text| group_key(text, dtype))
                    .collect()
            });
        let mut all: Confusion = Default::default();
        let mut groups: BTreeMap<GroupKey, Confusion> = BTreeMap::new();
        for (&(f, l, p, g), &n) in &self.facets[i].counts {
            let d = usize::from(in_d[f as usize]);
            let l = usize::from(l & label.bit != 0);
            let p = usize::from(prediction.is_some_and(|bit| p & bit != 0));
            all[d][l][p] += n;
            if let Some(keys) = &group_keys
                && g != NO_GROUP
                && let Some(key) = &keys[g as usize]
            {
                groups.entry(key.clone()).or_default()[d][l][p] += n;
            }
        }
        FacetCounts {
            all,
            groups: group_keys.map(|_| groups),
        }
    }

    fn flip_test(
        &self,
        i: usize,
        in_d: &[bool],
        prediction_bit: &u8,
    ) -> Result<FlipCounts, String> {
        let spec = &self.spec;
        let facet = &spec.facets[i].name;
        let features: Vec<usize> = self
            .columns
            .keys()
            .enumerate()
            .filter(|(_, name)| {
                *name != facet
                    && **name != spec.label
                    && spec.predicted_label.as_ref() != Some(name)
                    && !spec.excluded.contains(name)
            })
            .map(|(c, _)| c)
            .collect();
        if features
            .iter()
            .any(|&c| self.columns[c].dtype(self.rows) == Dtype::Text)
        {
            return Err("FlipTest does not support non-numeric columns".into());
        }
        let values: Vec<Vec<f64>> = self
            .sample
            .rows
            .iter()
            .map(|row| {
                features
                    .iter()
                    .map(|&c| row.features.get(c).copied().unwrap_or(f64::NAN))
                    .collect()
            })
            .collect();
        let rows: Vec<FlipRow> = self
            .sample
            .rows
            .iter()
            .zip(&values)
            .map(|(row, features)| FlipRow {
                features,
                in_d: in_d[row.facet_keys[i] as usize],
                predicted: row.prediction & prediction_bit != 0,
            })
            .collect();
        flip_test(&rows)
    }
}

/// How a column's codes collapse to binary.
#[derive(Debug, Clone)]
struct Rule {
    bit: u8,
    typing: Typing,
    dtype: Dtype,
    /// `label_value_or_threshold` as Clarify prints it.
    description: String,
}

fn threshold_error() -> String {
    "Facet/label value provided must be a single numeric threshold for continuous data".into()
}

fn any_code(histogram: &[u64], bit: u8) -> bool {
    histogram
        .iter()
        .enumerate()
        .any(|(code, &n)| n > 0 && code as u8 & bit != 0)
}

/// Configured values joined as Python prints them (`",".join(map(str, values))`).
fn join(values: &[Value]) -> String {
    values.iter().map(python_str).collect::<Vec<_>>().join(",")
}

/// Clarify's interval for a numeric threshold: pandas' `IntervalIndex.from_breaks` over the
/// threshold and the column's maximum (left-open), e.g. `(40, 90]` or `(0.5, 0.99]`. The maximum
/// is not added when its absolute value equals the threshold (smclarify's check), which leaves no
/// interval at all.
fn interval(threshold: Threshold, max: f64, dtype: Dtype) -> String {
    let integers = threshold.integer && dtype == Dtype::Int;
    let show = |x: f64| {
        if integers {
            format!("{}", x as i64)
        } else {
            python_float(x)
        }
    };
    let mut breaks = vec![threshold.value];
    if max.abs() != threshold.value {
        breaks.push(max);
    }
    breaks.sort_by(f64::total_cmp);
    breaks
        .windows(2)
        .map(|w| format!("({}, {}]", show(w[0]), show(w[1])))
        .collect::<Vec<_>>()
        .join(",")
}

/// A facet value as pandas prints it once the column has its type.
fn typed_text(text: &str, dtype: Dtype) -> String {
    let parsed = Cell::parse(Some(text));
    match (dtype, parsed.int, parsed.number) {
        (Dtype::Int, Some(i), _) => i.to_string(),
        (Dtype::Float, _, Some(x)) => python_float(x),
        _ => text.to_string(),
    }
}

fn group_key(text: &str, dtype: Dtype) -> Option<GroupKey> {
    let cell = Cell::parse(Some(text));
    cell.text?;
    Some(match (dtype, cell.int, cell.number) {
        (Dtype::Int, Some(i), _) => GroupKey::Int(i),
        (Dtype::Float, _, Some(x)) if x.is_nan() => return None,
        (Dtype::Float, _, Some(x)) => GroupKey::float(x),
        _ => GroupKey::Text(text.to_string()),
    })
}

/// Everything the report needs: collapsed counts per facet selection, and the errors that stop
/// a whole stage (Clarify fails the job where driftd reports every metric with the error).
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub label: String,
    pub label_value_or_threshold: String,
    /// The labels cannot be collapsed to binary: every metric fails with this.
    pub label_error: Option<String>,
    /// The predictions cannot be collapsed to binary: every post-training metric fails.
    pub prediction_error: Option<String>,
    pub facets: Vec<FacetEvaluation>,
    /// One per pair of facets; `None` when the state kept no pair counts (read from
    /// window-state format version 1).
    pub pairs: Option<Vec<PairEvaluation>>,
    pub sample: FlipSample,
}

/// The counts of one pair of facets, for the intersectional tables.
#[derive(Debug, Clone)]
pub struct PairEvaluation {
    pub facets: [String; 2],
    /// `Err`: a facet cannot be split, or the labels cannot be read.
    pub table: Result<PairTable, String>,
    /// Rows not counted: the state had reached [`PAIR_CELLS`] cells.
    pub refused: u64,
}

#[derive(Debug, Clone)]
pub struct PairTable {
    /// Cells with rows, in the order of the first facet's groups, then the second's.
    pub cells: Vec<PairCell>,
    /// Rows with a missing value of an enumerated facet (in no cell).
    pub unknown: u64,
}

#[derive(Debug, Clone)]
pub struct PairCell {
    /// The cell's group of each facet, e.g. ["sex = 0", "race = b"].
    pub groups: [String; 2],
    /// Rows by binary label, then binary prediction.
    pub counts: [[u64; 2]; 2],
}

#[derive(Debug, Clone)]
pub struct FacetEvaluation {
    pub name: String,
    /// `Err`: the facet cannot be split (every metric of the facet fails with it).
    pub selections: Result<Vec<Selection>, String>,
}

#[derive(Debug, Clone)]
pub struct Selection {
    pub value_or_threshold: String,
    pub counts: FacetCounts,
    /// Computed when FT is asked for and the predictions are usable.
    pub flip_test: Option<Result<FlipCounts, String>>,
}

/// Rows the Flip Test saw, of how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlipSample {
    pub rows: usize,
    pub of: u64,
}

impl FlipSample {
    pub fn is_partial(&self) -> bool {
        (self.rows as u64) < self.of
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use arrow::array::StringArray;
    use arrow::datatypes::{DataType, Field, Schema};
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    use super::*;
    use crate::bias::report::analysis;

    fn spec() -> Arc<BiasSpec> {
        Arc::new(
            BiasSpec::from_json(
                r#"{"label": "label", "label_values_or_threshold": [1], "predicted_label": "pred",
                    "facet": [{"name_or_index": "sex", "value_or_threshold": [0]},
                              {"name_or_index": "race"}],
                    "group_variable": "zone",
                    "methods": {"pre_training_bias": {"methods": "all"},
                                "post_training_bias": {"methods": "all"}}}"#,
                "test",
            )
            .unwrap(),
        )
    }

    /// `n` rows of sex, race (text, one-vs-rest), zone, a feature, label and prediction.
    fn batch(rng: &mut StdRng, n: usize) -> RecordBatch {
        let names = ["sex", "race", "zone", "x1", "label", "pred"];
        let mut columns: Vec<Vec<String>> = vec![Vec::with_capacity(n); names.len()];
        for _ in 0..n {
            let sex = u32::from(rng.random::<f64>() < 0.4);
            let label = u32::from(rng.random::<f64>() < 0.3 + 0.2 * f64::from(sex));
            let pred = if rng.random::<f64>() < 0.8 {
                label
            } else {
                1 - label
            };
            let row = [
                sex.to_string(),
                ["a", "b", "c"][rng.random_range(0..3)].to_string(),
                rng.random_range(0..4u32).to_string(),
                format!("{:.6}", rng.random::<f64>()),
                label.to_string(),
                pred.to_string(),
            ];
            for (column, value) in columns.iter_mut().zip(row) {
                column.push(value);
            }
        }
        let schema = Schema::new(
            names
                .iter()
                .map(|n| Field::new(*n, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        );
        let arrays: Vec<ArrayRef> = columns
            .into_iter()
            .map(|c| Arc::new(StringArray::from(c)) as ArrayRef)
            .collect();
        RecordBatch::try_new(Arc::new(schema), arrays).unwrap()
    }

    #[test]
    fn merged_windows_give_the_metrics_of_the_whole_data() {
        let spec = spec();
        let mut rng = StdRng::seed_from_u64(1);
        let parts: Vec<RecordBatch> = [700, 1, 1300, 2000].map(|n| batch(&mut rng, n)).into();
        let mut whole = BiasState::new(spec.clone());
        parts.iter().for_each(|b| whole.add_batch(b));
        let mut merged = BiasState::new(spec.clone());
        for part in &parts {
            let mut window = BiasState::new(spec.clone());
            window.add_batch(part);
            merged.merge(window);
        }
        let expected = analysis(&spec, &whole.evaluate());
        assert_eq!(analysis(&spec, &merged.evaluate()), expected);
        // Sanity: FT is exact here (every row sampled) and has a value for the text facet (for
        // `sex`, the text column `race` is a feature, which Clarify's FT refuses).
        let ft = &expected.post_training_bias_metrics.as_ref().unwrap().facets["race"][0].metrics;
        let ft = ft.iter().find(|m| m.name == "FT").unwrap();
        assert!(ft.value.is_some() && ft.note.is_none(), "{ft:?}");
    }

    #[test]
    fn the_flip_test_sample_stays_bounded_and_says_so() {
        let spec = spec();
        let mut rng = StdRng::seed_from_u64(2);
        let mut first = BiasState::new(spec.clone());
        first.add_batch(&batch(&mut rng, 8_000));
        let mut second = BiasState::new(spec.clone());
        second.add_batch(&batch(&mut rng, 9_000));
        first.merge(second);
        assert_eq!(first.sample.rows.len(), SAMPLE_ROWS);
        assert_eq!(first.sample.seen, 17_000);
        let report = analysis(&spec, &first.evaluate());
        let metrics = &report.post_training_bias_metrics.unwrap().facets["sex"][0].metrics;
        let ft = metrics.iter().find(|m| m.name == "FT").unwrap();
        assert_eq!(
            ft.note.as_deref(),
            Some("computed on a uniform sample of 10000 of 17000 rows")
        );
    }

    /// `batch` with a numeric column `name` put in at `at` (so the columns after it move).
    fn with_column(batch: &RecordBatch, at: usize, name: &str, rng: &mut StdRng) -> RecordBatch {
        let values: Vec<String> = (0..batch.num_rows())
            .map(|_| format!("{:.3}", 1000.0 * rng.random::<f64>()))
            .collect();
        let mut columns: Vec<(String, ArrayRef)> = batch
            .schema()
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(field, array)| (field.name().clone(), array.clone()))
            .collect();
        columns.insert(at, (name.into(), Arc::new(StringArray::from(values))));
        RecordBatch::try_from_iter(columns).unwrap()
    }

    fn flip_tests(state: &BiasState) -> Vec<Option<Result<FlipCounts, String>>> {
        state
            .evaluate()
            .facets
            .into_iter()
            .flat_map(|facet| facet.selections.unwrap())
            .map(|selection| selection.flip_test)
            .collect()
    }

    /// A column left out at `limits.max_columns` is left out of the Flip Test's sampled rows
    /// too, and the rows' other values stay in their columns: the window's analysis is the one
    /// of data that never had the column. (Kept, it would be missing from the earlier rows,
    /// and FT would fail on their NaN as Clarify does.) The extra column comes in the middle
    /// of the part's columns, with values far larger than the rest, so a value moved to the
    /// wrong column, or the column kept, would change the neighbours.
    #[test]
    fn a_column_left_out_at_max_columns_is_left_out_of_the_flip_test_rows() {
        let spec = spec();
        let mut rng = StdRng::seed_from_u64(5);
        let (first, second) = (batch(&mut rng, 300), batch(&mut rng, 300));
        let widened = with_column(&second, 2, "x2", &mut rng);
        let state = |batch: &RecordBatch| {
            let mut state = BiasState::new(spec.clone());
            state.add_batch(batch);
            state
        };

        let mut capped = state(&first);
        assert_eq!(capped.merge_within(state(&widened), 6), 1);
        let mut never_had = state(&first);
        never_had.merge(state(&second));
        assert_eq!(
            capped.columns.keys().collect::<Vec<_>>(),
            ["sex", "race", "zone", "x1", "label", "pred"]
        );
        assert_eq!(capped.evaluate().sample, FlipSample { rows: 600, of: 600 });
        let ft = flip_tests(&capped);
        assert_eq!(ft, flip_tests(&never_had));
        // The Flip Test of `race` (its features sex, zone and x1 are numbers) has a value.
        assert!(ft.iter().any(|f| matches!(f, Some(Ok(_)))), "{ft:?}");
        assert_eq!(
            analysis(&spec, &capped.evaluate()),
            analysis(&spec, &never_had.evaluate())
        );

        let mut kept = state(&first);
        kept.merge(state(&widened));
        assert!(
            flip_tests(&kept)
                .iter()
                .any(|f| f == &Some(Err("Input X contains NaN.".into()))),
            "{:?}",
            flip_tests(&kept)
        );
    }

    /// A batch of text columns.
    fn text_batch(columns: &[(&str, Vec<Option<String>>)]) -> RecordBatch {
        RecordBatch::try_from_iter(columns.iter().map(|(name, values)| {
            let array: ArrayRef = Arc::new(StringArray::from(values.clone()));
            (*name, array)
        }))
        .unwrap()
    }

    fn pair(state: &BiasState) -> PairEvaluation {
        let mut pairs = state.evaluate().pairs.expect("pair counts kept");
        assert_eq!(pairs.len(), 1);
        pairs.remove(0)
    }

    /// Each cell of sex (configured 0 against the rest) × race (each value) holds the rows
    /// counted here directly; rows with no race are the unknown category.
    #[test]
    fn pair_cells_count_the_rows_of_each_combination() {
        let spec = spec();
        let rows = 2_000;
        let mut rng = StdRng::seed_from_u64(4);
        let mut expected: BTreeMap<(String, String), [[u64; 2]; 2]> = BTreeMap::new();
        let mut unknown = 0;
        let mut columns: Vec<(&str, Vec<Option<String>>)> = ["sex", "race", "label", "pred"]
            .into_iter()
            .map(|name| (name, Vec::new()))
            .collect();
        for _ in 0..rows {
            let sex = rng.random_range(0..3u32);
            let race =
                (rng.random::<f64>() < 0.95).then(|| ["a", "b", "c"][rng.random_range(0..3)]);
            let (label, pred) = (rng.random_range(0..2usize), rng.random_range(0..2usize));
            match race {
                Some(race) => {
                    let sex = if sex == 0 { "sex = 0" } else { "sex ≠ 0" };
                    let cell = expected.entry((sex.into(), format!("race = {race}")));
                    cell.or_default()[label][pred] += 1;
                }
                None => unknown += 1,
            }
            let row = [Some(sex.to_string()), race.map(str::to_string)];
            let row = row
                .into_iter()
                .chain([label, pred].map(|v| Some(v.to_string())));
            for ((_, column), value) in columns.iter_mut().zip(row) {
                column.push(value);
            }
        }
        let mut state = BiasState::new(spec);
        state.add_batch(&text_batch(&columns[..]));
        let pair = pair(&state);
        assert_eq!(pair.facets, ["sex".to_string(), "race".to_string()]);
        assert_eq!(pair.refused, 0);
        let table = pair.table.unwrap();
        assert_eq!(table.unknown, unknown);
        let found: BTreeMap<(String, String), [[u64; 2]; 2]> = table
            .cells
            .into_iter()
            .map(|c| {
                let [a, b] = c.groups;
                ((a, b), c.counts)
            })
            .collect();
        assert_eq!(found, expected);
    }

    /// Two facets of 300 values each, every combination present: more cells than
    /// [`PAIR_CELLS`]. The state keeps at most that many; the other rows are counted as
    /// refused, in one state and when two states merge.
    #[test]
    fn pair_cells_stay_bounded_and_refused_rows_are_counted() {
        let spec = Arc::new(
            BiasSpec::from_json(
                r#"{"label": "label", "label_values_or_threshold": [1],
                    "facet": [{"name_or_index": "a"}, {"name_or_index": "b"}],
                    "methods": {"pre_training_bias": {"methods": ["CI"]}}}"#,
                "test",
            )
            .unwrap(),
        );
        let part = |offset: usize| {
            let rows = 300 * 300 / 2;
            let value = |f: &dyn Fn(usize) -> usize| -> Vec<Option<String>> {
                (offset..offset + rows)
                    .map(|i| Some(format!("v{}", f(i))))
                    .collect()
            };
            text_batch(&[
                ("a", value(&|i| i % 300)),
                ("b", value(&|i| i / 300)),
                ("label", value(&|i| i % 2)),
            ])
        };
        let cells = |pair: &PairEvaluation| -> (usize, u64) {
            let table = pair.table.as_ref().unwrap();
            let rows = table.cells.iter().flat_map(|c| c.counts.iter().flatten());
            (table.cells.len(), rows.sum())
        };
        let mut first = BiasState::new(spec.clone());
        first.add_batch(&part(0));
        let counted = pair(&first);
        assert_eq!(cells(&counted), (PAIR_CELLS, PAIR_CELLS as u64));
        assert_eq!(counted.refused, 45_000 - PAIR_CELLS as u64);

        let mut second = BiasState::new(spec);
        second.add_batch(&part(45_000));
        first.merge(second);
        let merged = pair(&first);
        let (kept, rows) = cells(&merged);
        assert!(kept <= PAIR_CELLS, "{kept} cells");
        assert_eq!(rows + merged.refused, 90_000);
        assert_eq!(merged.table.unwrap().unknown, 0);
    }

    /// The number the issue asks for: every metric for 1,000,000 rows and two facets. Run with
    /// `cargo test --release --lib million_rows -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn million_rows_two_facets_timing() {
        let spec = spec();
        let mut rng = StdRng::seed_from_u64(3);
        let batches: Vec<RecordBatch> = (0..64).map(|_| batch(&mut rng, 15_625)).collect();
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let start = Instant::now();
        let mut state = BiasState::new(spec.clone());
        batches.iter().for_each(|b| state.add_batch(b));
        let added = start.elapsed();
        let report = analysis(&spec, &state.evaluate());
        let total = start.elapsed();
        assert!(report.pre_training_bias_metrics.is_some());
        println!(
            "{rows} rows, 2 facets (4 facet values), 21 metrics: state {:.2?}, metrics {:.2?}, total {:.2?}",
            added,
            total - added,
            total
        );
    }

    /// A decoded bias state's counts: past its rows, or wrapping u64, refused on reading; two
    /// states whose rows together pass what a window may hold refuse to merge (an error, the
    /// window unchanged), never wrap.
    #[test]
    fn forged_counts_are_refused_and_a_merge_past_the_bound_is_an_error() {
        use crate::window::{MAX_STATE_ROWS, StateKind, WindowState, codec};
        let spec = spec();
        let kind = StateKind::Bias(spec.clone());
        let mut state = BiasState::new(spec.clone());
        state.add_batch(&batch(&mut StdRng::seed_from_u64(3), 50));
        assert_eq!(state.validate_counts(MAX_STATE_ROWS), Ok(()));

        let mut wrapping = state.clone();
        wrapping.label_codes[0] = u64::MAX;
        let bytes = codec::encode(&WindowState::Bias(Box::new(wrapping)));
        let error = codec::decode(&bytes, &kind).unwrap_err().to_string();
        assert!(
            error.contains("its counts pass the state's 50 rows"),
            "{error}"
        );
        let mut facet = state.clone();
        let (_, count) = facet.facets[0].counts.iter_mut().next().unwrap();
        *count = 51;
        assert!(facet.validate_counts(MAX_STATE_ROWS).is_err());

        // Rows scaled up with the sample's count, every other count within them.
        let mut big = state;
        big.rows = MAX_STATE_ROWS / 2 + 1;
        big.sample.seen = big.rows;
        let bytes = codec::encode(&WindowState::Bias(Box::new(big)));
        let mut window = codec::decode(&bytes, &kind).unwrap();
        let part = codec::decode(&bytes, &kind).unwrap();
        assert!(window.merge(part).is_err());
        assert_eq!(window.row_count(), MAX_STATE_ROWS / 2 + 1);
    }
}
