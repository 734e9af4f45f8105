//! Arrow → mergeable Profile: per column counts, Deequ type counts, moments, a Deequ-compatible
//! KLL sketch, categorical frequencies and an approximate distinct count.
//!
//! The contract every part keeps: `merge(profile(a), profile(b)) == profile(a ++ b)`, exactly
//! for counts and frequencies, up to floating-point rounding for moments, and within the
//! sketch's error bound for the KLL sketch and the distinct estimate.
//!
//! What each part sees, per present (non-null) value:
//! - type counts: the Deequ type of its text (numeric and boolean Arrow types are typed
//!   directly: integers Integral, floats Fractional, booleans Boolean);
//! - moments and KLL: its numeric value, if it has one and it is finite;
//! - frequencies and distinct count: its text (for numeric Arrow types, the number printed the
//!   way Rust prints it, e.g. `3` for an integer and `3.0` for a float).
//!
//! The per-value path does not allocate; only a value new to the frequency map and the
//! occasional sketch compaction do.

pub mod datatype;
pub mod kll;

use std::collections::HashMap;
use std::fmt::{Debug, Write as _};
use std::hash::{BuildHasher, Hasher};

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{
    ArrowPrimitiveType, DataType as ArrowType, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::record_batch::RecordBatch;
use compact_str::CompactString;
use hyperloglogplus::{HyperLogLog, HyperLogLogPF};
use indexmap::IndexMap;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use datatype::{DataType, TypeCounts, classify};
pub use kll::{Bucket, KllSketch};

/// Statistics of one column over any number of rows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ColumnProfile {
    pub num_present: u64,
    /// Nulls, plus rows of batches that lacked the column. Always equal to `types.unknown`.
    pub num_missing: u64,
    pub types: TypeCounts,
    /// Over the values that read as numbers (Integral or Fractional text, numeric Arrow types).
    pub moments: Moments,
    pub kll: KllSketch,
    pub frequencies: Frequencies,
    pub distinct: DistinctCount,
}

impl ColumnProfile {
    pub fn new() -> Self {
        Self::default()
    }

    /// Deequ's decision over the type counts (see [`TypeCounts::inferred`]).
    pub fn inferred_type(&self) -> DataType {
        self.types.inferred()
    }

    /// The type statistics.json reports: SageMaker documents only Integral, Fractional, String
    /// and Unknown, so a column of `true`/`false` text is String, which is what its values are
    /// to those tools.
    pub fn reported_type(&self) -> DataType {
        match self.inferred_type() {
            DataType::Boolean => DataType::String,
            other => other,
        }
    }

    /// Present / (present + missing); 0 when there are no rows at all.
    pub fn completeness(&self) -> f64 {
        let rows = self.num_present + self.num_missing;
        if rows == 0 {
            0.0
        } else {
            self.num_present as f64 / rows as f64
        }
    }

    /// Distinct present values: exact while the frequency map holds them all, else the
    /// HyperLogLog's estimate.
    pub fn distinct_estimate(&self) -> f64 {
        match self.frequencies.counts() {
            Some(counts) => counts.len() as f64,
            None => self.distinct.estimate(),
        }
    }

    /// Counts `n` rows without a value.
    pub fn add_missing(&mut self, n: u64) {
        self.num_missing += n;
        self.types.add_n(DataType::Unknown, n);
    }

    /// Adds one non-null text value, typed the way Deequ types text.
    pub fn add_text(&mut self, text: &str) {
        let (data_type, value) = datatype::classify_and_parse(text);
        self.add_present(data_type, value, text);
    }

    /// Adds every value of `array`; nulls count as missing.
    pub fn add_array(&mut self, array: &dyn Array) {
        match array.data_type() {
            ArrowType::Utf8 => self.add_texts(array.as_string::<i32>().iter()),
            ArrowType::LargeUtf8 => self.add_texts(array.as_string::<i64>().iter()),
            ArrowType::Utf8View => self.add_texts(array.as_string_view().iter()),
            ArrowType::Int8 => self.add_numbers::<Int8Type>(array, DataType::Integral),
            ArrowType::Int16 => self.add_numbers::<Int16Type>(array, DataType::Integral),
            ArrowType::Int32 => self.add_numbers::<Int32Type>(array, DataType::Integral),
            ArrowType::Int64 => self.add_numbers::<Int64Type>(array, DataType::Integral),
            ArrowType::UInt8 => self.add_numbers::<UInt8Type>(array, DataType::Integral),
            ArrowType::UInt16 => self.add_numbers::<UInt16Type>(array, DataType::Integral),
            ArrowType::UInt32 => self.add_numbers::<UInt32Type>(array, DataType::Integral),
            ArrowType::UInt64 => self.add_numbers::<UInt64Type>(array, DataType::Integral),
            ArrowType::Float32 => self.add_numbers::<Float32Type>(array, DataType::Fractional),
            ArrowType::Float64 => self.add_numbers::<Float64Type>(array, DataType::Fractional),
            ArrowType::Boolean => {
                for value in array.as_boolean().iter() {
                    match value {
                        Some(true) => self.add_present(DataType::Boolean, None, "true"),
                        Some(false) => self.add_present(DataType::Boolean, None, "false"),
                        None => self.add_missing(1),
                    }
                }
            }
            // Dates, decimals, timestamps, …: Deequ would type their text, so we do too.
            _ => match cast(array, &ArrowType::Utf8) {
                Ok(text) => self.add_texts(text.as_string::<i32>().iter()),
                Err(_) => self.add_untextual(array),
            },
        }
    }

    /// Merges `other` into `self`; see each part's `merge` for what is exact.
    pub fn merge(&mut self, other: &ColumnProfile) {
        self.num_present += other.num_present;
        self.num_missing += other.num_missing;
        self.types.merge(&other.types);
        self.moments.merge(&other.moments);
        self.kll.merge(&other.kll);
        self.frequencies.merge(&other.frequencies);
        self.distinct.merge(&other.distinct);
    }

    /// The hot path: one present value with its type, numeric value and text.
    fn add_present(&mut self, data_type: DataType, value: Option<f64>, text: &str) {
        self.num_present += 1;
        self.types.add(data_type);
        // NaN has no place in an order, and ±∞ (text like `1e400`) none in JSON or a mean.
        if let Some(x) = value.filter(|x| x.is_finite()) {
            self.moments.add(x);
            self.kll.update(x);
        }
        // The distinct sketch ignores repeats, so it only needs values the map has not seen
        // (which is why the two must always be fed together).
        if self.frequencies.insert(text) {
            self.distinct.add(text);
        }
    }

    fn add_texts<'a>(&mut self, values: impl Iterator<Item = Option<&'a str>>) {
        for value in values {
            match value {
                Some(text) => self.add_text(text),
                None => self.add_missing(1),
            }
        }
    }

    fn add_numbers<T>(&mut self, array: &dyn Array, data_type: DataType)
    where
        T: ArrowPrimitiveType,
        T::Native: AsF64,
    {
        // `Debug` prints floats with a `.0` (`3.0`), so their text reads as Fractional.
        let mut text = String::with_capacity(32);
        for value in array.as_primitive::<T>().iter() {
            match value {
                Some(v) => {
                    text.clear();
                    write!(text, "{v:?}").expect("writing to a String cannot fail");
                    self.add_present(data_type, Some(v.as_f64()), &text);
                }
                None => self.add_missing(1),
            }
        }
    }

    /// Types Arrow cannot print (nested types, mostly): counted as present Strings, with no text
    /// for frequencies or the distinct count.
    fn add_untextual(&mut self, array: &dyn Array) {
        let present = (array.len() - array.null_count()) as u64;
        self.num_present += present;
        self.types.add_n(DataType::String, present);
        self.add_missing(array.null_count() as u64);
    }
}

/// Arrow's native numbers as f64 (64-bit integers beyond 2^53 round to the nearest f64).
trait AsF64: Copy + Debug {
    fn as_f64(self) -> f64;
}

macro_rules! impl_as_f64 {
    ($($t:ty),*) => {
        $(impl AsF64 for $t {
            fn as_f64(self) -> f64 {
                self as f64
            }
        })*
    };
}

impl_as_f64!(i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);

/// Count, sum, mean, M2, min, max, updated and merged with the exact floating-point steps of
/// Spark's `CentralMomentAgg` (behind Deequ's `stddev_pop`), so `std_dev` equals Model Monitor's
/// to the last digit: Welford's textbook form rounds differently in 1–2 last places on about one
/// feature in seven. `min` and `max` are 0 while `count` is 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    pub count: u64,
    /// Summed in input order, like Spark's `sum`. Deequ's mean is `sum / count`; `mean` here is
    /// the running mean, equal to it up to rounding.
    pub sum: f64,
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
    pub min: f64,
    pub max: f64,
}

impl Moments {
    /// Spark's update: `δ = x − mean; δₙ = δ/n; mean += δₙ; M2 += δ(δ − δₙ)`.
    pub fn add(&mut self, x: f64) {
        if self.count == 0 {
            self.min = x;
            self.max = x;
        } else {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
        self.count += 1;
        self.sum += x;
        let delta = x - self.mean;
        let delta_n = delta / self.count as f64;
        self.mean += delta_n;
        self.m2 += delta * (delta - delta_n);
    }

    /// Spark's merge: `δ = mean_b − mean_a; δₙ = δ/(n_a+n_b); mean += δₙ·n_b; M2 += M2_b + δ·δₙ·n_a·n_b`.
    pub fn merge(&mut self, other: &Moments) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        let (n_a, n_b) = (self.count as f64, other.count as f64);
        let delta = other.mean - self.mean;
        let delta_n = delta / (n_a + n_b);
        self.mean += delta_n * n_b;
        self.m2 += other.m2 + delta * delta_n * n_a * n_b;
        self.sum += other.sum;
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// √(M2 / n), the population standard deviation Model Monitor reports; 0 when empty.
    pub fn std_dev_population(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            (self.m2 / self.count as f64).sqrt()
        }
    }
}

/// Exact value → count while there are at most [`Frequencies::CAP`] distinct values; beyond
/// that the map is dropped and only the distinct estimate remains (a high-cardinality column
/// such as an id has no useful categorical distribution).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Frequencies {
    counts: CountMap,
    overflowed: bool,
}

/// Value → count. The map sits on the per-value hot path: keys up to 24 bytes live inline
/// (no allocation per new value), and foldhash replaces SipHash (the map holds no secrets; a
/// fixed seed keeps runs reproducible).
pub type CountMap = HashMap<CompactString, u64, foldhash::fast::FixedState>;

impl Frequencies {
    pub const CAP: usize = 10_000;

    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, text: &str) {
        self.insert(text);
    }

    /// The counts, or `None` once more than [`Frequencies::CAP`] distinct values were seen.
    pub fn counts(&self) -> Option<&CountMap> {
        (!self.overflowed).then_some(&self.counts)
    }

    /// The counts as `(value, count)`, most frequent first (ties by value), or `None` once
    /// the map overflowed.
    pub fn most_frequent_first(&self) -> Option<Vec<(String, u64)>> {
        let mut counts: Vec<(String, u64)> = self
            .counts()?
            .iter()
            .map(|(value, &count)| (value.to_string(), count))
            .collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Some(counts)
    }

    pub fn is_overflowed(&self) -> bool {
        self.overflowed
    }

    /// Exact while the union stays within the cap; an overflowed side overflows the result.
    pub fn merge(&mut self, other: &Frequencies) {
        if self.overflowed {
            return;
        }
        if other.overflowed {
            self.overflow();
            return;
        }
        for (text, &count) in &other.counts {
            if let Some(mine) = self.counts.get_mut(text) {
                *mine += count;
            } else if self.counts.len() == Self::CAP {
                self.overflow();
                return;
            } else {
                self.counts.insert(text.clone(), count);
            }
        }
    }

    /// Counts `text`. True when the value is new, or can no longer be told apart from seen
    /// values because the map overflowed.
    fn insert(&mut self, text: &str) -> bool {
        if self.overflowed {
            return true;
        }
        if let Some(count) = self.counts.get_mut(text) {
            *count += 1;
            return false;
        }
        if self.counts.len() == Self::CAP {
            self.overflow();
        } else {
            self.counts.insert(CompactString::from(text), 1);
        }
        true
    }

    fn overflow(&mut self) {
        self.counts = CountMap::default();
        self.overflowed = true;
    }
}

/// Approximate distinct count: a dense HyperLogLog with 2^14 registers (standard error
/// ≈ 0.8 %). Dense rather than HLL++'s sparse mode, because merging sparse sketches dominated
/// the cost of profiling many objects; small cardinalities are exact anyway, counted from the
/// frequency map ([`ColumnProfile::distinct_estimate`]).
///
/// Values are hashed with xxHash64 (seed 42) of their UTF-8 bytes — the hash Deequ's own
/// HyperLogLog uses — because it is a fixed, published function: a sketch persisted today
/// still merges correctly with one built by a later driftd.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DistinctCount {
    hll: HyperLogLogPF<u64, PreHashed>,
}

const HLL_PRECISION: u8 = 14;
const HASH_SEED: u64 = 42;

impl Default for DistinctCount {
    fn default() -> Self {
        Self::new()
    }
}

impl DistinctCount {
    pub fn new() -> Self {
        let hll = HyperLogLogPF::new(HLL_PRECISION, PreHashed).expect("precision is in 4..=18");
        Self { hll }
    }

    pub fn add(&mut self, text: &str) {
        let hash = twox_hash::XxHash64::oneshot(HASH_SEED, text.as_bytes());
        self.hll.insert(&hash);
    }

    pub fn merge(&mut self, other: &DistinctCount) {
        self.hll
            .merge(&other.hll)
            .expect("every DistinctCount has the same precision");
    }

    pub fn estimate(&self) -> f64 {
        // `count` takes `&mut` (the trait allows caching); a copy keeps this `&self`.
        self.hll.clone().count()
    }

    /// What a decoded sketch must be to merge and count without panicking: our precision, its
    /// number of registers and words, and the zero-register count its registers give. The
    /// crate keeps these private, so they are read back through its serde form
    /// ([`SketchShape`], the same fields in the same order).
    pub fn validate(&self) -> Result<(), String> {
        let stored = postcard::to_stdvec(&self.hll).map_err(|e| e.to_string())?;
        let shape: SketchShape =
            postcard::from_bytes(&stored).map_err(|e| format!("distinct count: {e}"))?;
        let registers = 1usize << HLL_PRECISION;
        // Five-bit registers, six to a 32-bit word.
        let words = registers.div_ceil(6);
        let zeros = (0..registers)
            .filter(|i| {
                let word = shape.registers.buf.get(i / 6).copied().unwrap_or(0);
                (word >> (5 * (i % 6))) & 0x1f == 0
            })
            .count();
        let sound = shape.precision == HLL_PRECISION
            && shape.count == registers
            && shape.registers.count == registers
            && shape.registers.buf.len() == words
            && shape.registers.zeros == zeros;
        if sound {
            Ok(())
        } else {
            Err(format!(
                "distinct count: not a precision-{HLL_PRECISION} HyperLogLog as driftd writes it"
            ))
        }
    }
}

/// The serde form of `hyperloglogplus::HyperLogLogPF` (0.4) and its registers: the fields
/// [`DistinctCount::validate`] checks. A test reads a real sketch through it, so a crate
/// whose form changed fails there.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize, Clone))]
struct SketchShape {
    _builder: PreHashed,
    count: usize,
    precision: u8,
    registers: RegisterShape,
    _phantom: (),
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize, Clone))]
struct RegisterShape {
    buf: Vec<u32>,
    count: usize,
    zeros: usize,
}

/// The HyperLogLog is fed finished 64-bit hashes; its hasher passes them through.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct PreHashed;

struct PassThrough(u64);

impl BuildHasher for PreHashed {
    type Hasher = PassThrough;

    fn build_hasher(&self) -> PassThrough {
        PassThrough(0)
    }
}

impl Hasher for PassThrough {
    fn write(&mut self, _bytes: &[u8]) {
        unreachable!("DistinctCount only inserts u64 hashes")
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Profiles of every column seen, in first-seen order, plus the row count.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Profile {
    pub row_count: u64,
    pub columns: IndexMap<String, ColumnProfile>,
}

impl Profile {
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty profile with this one's columns, whose frequency maps start overflowed where
    /// this one's have. Merging it into `self` after adding data gives exactly what a fresh
    /// profile would, without counting values `self` can no longer keep — on a wide
    /// high-cardinality dataset read object by object, that counting was most of the work.
    pub fn empty_like(&self) -> Self {
        let columns = self
            .columns
            .iter()
            .map(|(name, column)| {
                let mut empty = ColumnProfile::new();
                if column.frequencies.is_overflowed() {
                    empty.frequencies.overflow();
                }
                (name.clone(), empty)
            })
            .collect();
        Self {
            row_count: 0,
            columns,
        }
    }

    /// The profile of one batch, columns profiled in parallel.
    pub fn from_batch(batch: &RecordBatch) -> Self {
        let mut profile = Self::new();
        profile.add_batch(batch);
        profile
    }

    /// Adds a batch. A column missing from the batch counts its rows as missing; a column new
    /// in the batch counts all earlier rows as missing. Unlike `merge(from_batch(..))` this
    /// continues each column's KLL stream, as within one Spark partition, so an object added
    /// batch by batch gets the same sketch as if it came in one batch. (If a batch repeats a
    /// column name, only the first such column is read.)
    pub fn add_batch(&mut self, batch: &RecordBatch) {
        let rows = batch.num_rows() as u64;
        let earlier_rows = self.row_count;
        for field in batch.schema().fields() {
            if !self.columns.contains_key(field.name()) {
                let mut column = ColumnProfile::new();
                column.add_missing(earlier_rows);
                self.columns.insert(field.name().clone(), column);
            }
        }
        let work: Vec<_> = self
            .columns
            .iter_mut()
            .map(|(name, column)| (column, batch.column_by_name(name)))
            .collect();
        work.into_par_iter()
            .for_each(|(column, array)| match array {
                Some(array) => column.add_array(array.as_ref()),
                None => column.add_missing(rows),
            });
        self.row_count += rows;
    }

    /// What a decoded profile must satisfy, so that merging it cannot overflow (release
    /// builds would wrap silently) and reading it cannot panic: at most `max_rows` rows, and no
    /// column counting more values than the profile has rows. Merges keep this: a merged count
    /// is at most the merged rows, which the caller keeps within `max_rows`
    /// ([`crate::window::WindowState::merge`]).
    pub fn validate(&self, max_rows: u64) -> Result<(), String> {
        let rows = self.row_count;
        if rows > max_rows {
            return Err(format!(
                "{rows} rows, more than a profile may hold ({max_rows})"
            ));
        }
        let within = |counts: &[u64]| counts_within(counts.iter().copied(), rows);
        for (name, column) in &self.columns {
            let types = &column.types;
            let ok = within(&[column.num_present, column.num_missing])
                && within(&[
                    types.unknown,
                    types.integral,
                    types.fractional,
                    types.boolean,
                    types.string,
                ])
                && column.moments.count <= rows
                && counts_within(column.frequencies.counts.values().copied(), rows)
                && column.frequencies.counts.len() <= Frequencies::CAP;
            if !ok {
                return Err(format!(
                    "column {name:?} counts more values than the profile's {rows} rows"
                ));
            }
            (column.kll)
                .validate(KllSketch::DEFAULT_K, rows)
                .map_err(|e| format!("column {name:?}: {e}"))?;
            (column.distinct)
                .validate()
                .map_err(|e| format!("column {name:?}: {e}"))?;
        }
        Ok(())
    }

    /// Merges `other` into `self`, with the same missing-column rule as [`Profile::add_batch`].
    pub fn merge(&mut self, other: Profile) {
        self.merge_within(other, usize::MAX);
    }

    /// [`Profile::merge`] keeping at most `max_columns` columns (`limits.max_columns`, which
    /// bounds each object, applied to the window too): a column of `other` new to `self` once
    /// `self` has that many is left out, its values unprofiled. Otherwise many objects, each
    /// within the limit but each with new names, would grow a window without bound. Returns the
    /// number of columns left out.
    pub fn merge_within(&mut self, other: Profile, max_columns: usize) -> u64 {
        let other_rows = other.row_count;
        let positions: Vec<Option<usize>> = (self.columns.keys())
            .map(|name| other.columns.get_index_of(name))
            .collect();
        let (names, columns): (Vec<String>, Vec<ColumnProfile>) = other.columns.into_iter().unzip();
        let mut theirs: Vec<Option<ColumnProfile>> = columns.into_iter().map(Some).collect();
        // Columns both have merge in parallel: on wide profiles the sketch merges are a
        // measurable share of reading many objects.
        let work: Vec<_> = (self.columns.values_mut())
            .zip(positions)
            .map(|(mine, position)| (mine, position.and_then(|p| theirs[p].take())))
            .collect();
        work.into_par_iter()
            .for_each(|(mine, theirs)| match theirs {
                Some(theirs) => mine.merge(&theirs),
                None => mine.add_missing(other_rows),
            });
        // The rest are new here, taken in `other`'s order while there is room.
        let mut refused = 0;
        for (name, column) in names.into_iter().zip(theirs) {
            let Some(mut column) = column else { continue };
            if self.columns.len() >= max_columns {
                refused += 1;
            } else {
                column.add_missing(self.row_count);
                self.columns.insert(name, column);
            }
        }
        self.row_count += other_rows;
        refused
    }
}

/// Whether `counts` sum to at most `limit` (false when the sum passes u64): what a decoded
/// state's counts must satisfy so that merging it cannot overflow.
pub(crate) fn counts_within(counts: impl IntoIterator<Item = u64>, limit: u64) -> bool {
    (counts.into_iter())
        .try_fold(0u64, u64::checked_add)
        .is_some_and(|sum| sum <= limit)
}

#[cfg(test)]
mod tests {
    // A forged sketch (another precision, too few registers, a wrong zero count) could panic
    // in the crate's merge or count; decoding refuses it.
    #[test]
    fn forged_distinct_sketches_are_refused_and_real_ones_pass() {
        let mut real = DistinctCount::new();
        for word in ["a", "b", "c", "a"] {
            real.add(word);
        }
        real.validate().unwrap();
        DistinctCount::new().validate().unwrap();
        let stored = postcard::to_stdvec(&real.hll).unwrap();
        let shape: SketchShape = postcard::from_bytes(&stored).unwrap();
        let forge = |change: &dyn Fn(&mut SketchShape)| {
            let mut forged = shape.clone();
            change(&mut forged);
            let bytes = postcard::to_stdvec(&forged).unwrap();
            DistinctCount {
                hll: postcard::from_bytes(&bytes).unwrap(),
            }
        };
        // The shape is the crate's: unchanged, it reads back as the same sketch.
        let same = forge(&|_| {});
        assert_eq!(same.estimate(), real.estimate());
        same.validate().unwrap();
        type Forgery<'a> = (&'a str, &'a dyn Fn(&mut SketchShape));
        let forged: [Forgery; 4] = [
            ("precision", &|s| s.precision = 12),
            ("registers", &|s| s.registers.count = 1 << 16),
            ("words", &|s| {
                s.registers.buf.pop();
            }),
            ("zeros", &|s| s.registers.zeros = 0),
        ];
        for (what, change) in forged {
            assert!(forge(change).validate().is_err(), "{what}");
        }
    }

    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, LargeStringArray,
        StringArray, StringViewArray, UInt64Array,
    };

    use super::*;

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(columns).unwrap()
    }

    fn text_column(values: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(values.to_vec()))
    }

    /// A mixed column: small integers, decimals, a few words and booleans, nulls.
    fn mixed_values(rng: &mut StdRng, n: usize) -> Vec<Option<String>> {
        (0..n)
            .map(|_| match rng.random_range(0..10) {
                0 => None,
                1 => Some(["red", "green", "blue"][rng.random_range(0..3) as usize].to_string()),
                2 => Some("true".to_string()),
                3..=5 => Some(format!("{}", rng.random_range(0..50) as i64 - 10)),
                _ => Some(format!(
                    "{:.3}",
                    rng.random_range(0..1_000_000) as f64 / 997.0 - 100.0
                )),
            })
            .collect()
    }

    fn mixed_batch(values: &[Option<String>]) -> RecordBatch {
        let text: Vec<Option<&str>> = values.iter().map(Option::as_deref).collect();
        batch(vec![("x", text_column(&text))])
    }

    fn assert_close(a: f64, b: f64, what: &str) {
        let scale = a.abs().max(b.abs()).max(1e-300);
        assert!((a - b).abs() / scale <= 1e-9, "{what}: {a} vs {b}");
    }

    fn assert_moments_close(a: &Moments, b: &Moments) {
        assert_eq!(a.count, b.count);
        assert_eq!((a.min, a.max), (b.min, b.max));
        assert_close(a.sum, b.sum, "sum");
        assert_close(a.mean, b.mean, "mean");
        assert_close(a.m2, b.m2, "m2");
    }

    #[test]
    fn moments_merge_matches_two_pass() {
        let mut rng = StdRng::seed_from_u64(1);
        let values: Vec<f64> = (0..10_000)
            .map(|_| 1e6 + rng.random_range(0..1_000_000) as f64 / 1000.0)
            .collect();
        let (left, right) = values.split_at(3_333);
        let mut a = Moments::default();
        left.iter().for_each(|&x| a.add(x));
        let mut b = Moments::default();
        right.iter().for_each(|&x| b.add(x));
        a.merge(&b);

        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let m2: f64 = values.iter().map(|x| (x - mean) * (x - mean)).sum();
        assert_eq!(a.count, 10_000);
        assert_close(a.mean, mean, "mean");
        assert_close(a.m2, m2, "m2");
        assert_close(a.std_dev_population(), (m2 / n).sqrt(), "std dev");
        assert_eq!(a.min, values.iter().copied().fold(f64::INFINITY, f64::min));
        assert_eq!(
            a.max,
            values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        );

        let mut empty = Moments::default();
        empty.merge(&a);
        assert_eq!(empty, a);
        assert_eq!(Moments::default().std_dev_population(), 0.0);
    }

    #[test]
    fn frequencies_count_until_the_cap() {
        let mut f = Frequencies::new();
        for text in ["a", "b", "a"] {
            f.add(text);
        }
        assert_eq!(
            f.counts().unwrap(),
            &CountMap::from_iter([("a".into(), 2), ("b".into(), 1)])
        );
        for i in 0..Frequencies::CAP - 2 {
            f.add(&i.to_string());
        }
        assert_eq!(f.counts().unwrap().len(), Frequencies::CAP);
        f.add("a");
        assert!(!f.is_overflowed());
        f.add("one too many");
        assert!(f.is_overflowed());
        assert_eq!(f.counts(), None);
    }

    #[test]
    fn frequencies_merge() {
        let mut a = Frequencies::new();
        ["x", "y", "x"].iter().for_each(|t| a.add(t));
        let mut b = Frequencies::new();
        ["y", "z"].iter().for_each(|t| b.add(t));
        a.merge(&b);
        let expected = CountMap::from_iter([("x".into(), 2), ("y".into(), 2), ("z".into(), 1)]);
        assert_eq!(a.counts().unwrap(), &expected);

        // Two halves within the cap whose union is over it.
        let mut low = Frequencies::new();
        let mut high = Frequencies::new();
        for i in 0..Frequencies::CAP {
            low.add(&i.to_string());
            high.add(&(i + 1).to_string());
        }
        low.merge(&high);
        assert!(low.is_overflowed());

        // An overflowed side poisons either way round.
        let mut small = a.clone();
        small.merge(&low);
        assert!(small.is_overflowed());
        low.merge(&a);
        assert!(low.is_overflowed());
    }

    #[test]
    fn distinct_count_within_a_few_percent() {
        let mut whole = DistinctCount::new();
        let mut a = DistinctCount::new();
        let mut b = DistinctCount::new();
        for i in 0..100_000u32 {
            let text = format!("user-{i}");
            whole.add(&text);
            // Repeats and an overlap between the halves must not count twice.
            whole.add(&text);
            if i < 60_000 {
                a.add(&text);
            }
            if i >= 40_000 {
                b.add(&text);
            }
        }
        a.merge(&b);
        for estimate in [whole.estimate(), a.estimate()] {
            assert!(
                (estimate / 100_000.0 - 1.0).abs() < 0.03,
                "estimate {estimate}"
            );
        }
        let mut few = DistinctCount::new();
        ["a", "b", "a", "c"].iter().for_each(|t| few.add(t));
        assert_eq!(few.estimate().round(), 3.0);
    }

    #[test]
    fn text_column_by_hand() {
        let profile = Profile::from_batch(&batch(vec![(
            "c",
            text_column(&[
                Some("1"),
                Some("2.5"),
                None,
                Some("x"),
                Some(" 3"),
                Some("1"),
            ]),
        )]));
        let c = &profile.columns["c"];
        assert_eq!(profile.row_count, 6);
        assert_eq!((c.num_present, c.num_missing), (5, 1));
        assert_eq!(
            c.types,
            TypeCounts {
                unknown: 1,
                integral: 3,
                fractional: 1,
                boolean: 0,
                string: 1
            }
        );
        assert_eq!(c.inferred_type(), DataType::String);
        assert_eq!(c.completeness(), 5.0 / 6.0);
        assert_eq!(c.kll.levels(), vec![vec![1.0, 2.5, 3.0, 1.0]]);
        assert_eq!(
            (c.moments.count, c.moments.sum, c.moments.min, c.moments.max),
            (4, 7.5, 1.0, 3.0)
        );
        let counts = c.frequencies.counts().unwrap();
        assert_eq!((counts["1"], counts[" 3"], counts.len()), (2, 1, 4));
        assert_eq!(c.distinct.estimate().round(), 4.0);
    }

    #[test]
    fn every_arrow_type() {
        let profile = Profile::from_batch(&batch(vec![
            (
                "large",
                Arc::new(LargeStringArray::from(vec![Some("1.5"), None, Some("2")])) as ArrayRef,
            ),
            (
                "view",
                Arc::new(StringViewArray::from(vec![
                    Some("true"),
                    Some("false"),
                    None,
                ])),
            ),
            (
                "int",
                Arc::new(Int32Array::from(vec![Some(-3), Some(7), None])),
            ),
            (
                "uint",
                Arc::new(UInt64Array::from(vec![Some(u64::MAX), Some(1), Some(1)])),
            ),
            (
                "float",
                Arc::new(Float64Array::from(vec![Some(3.0), Some(f64::NAN), None])),
            ),
            (
                "bool",
                Arc::new(BooleanArray::from(vec![Some(true), None, Some(true)])),
            ),
            (
                "date",
                Arc::new(Date32Array::from(vec![Some(0), None, Some(1)])),
            ),
        ]));
        let column = |name: &str| &profile.columns[name];
        let names: Vec<&str> = profile.columns.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["large", "view", "int", "uint", "float", "bool", "date"]
        );

        assert_eq!(column("large").inferred_type(), DataType::Fractional);
        assert_eq!(column("large").moments.sum, 3.5);
        assert_eq!(column("view").inferred_type(), DataType::Boolean);
        assert_eq!(column("view").num_missing, 1);

        let int = column("int");
        assert_eq!(
            (int.inferred_type(), int.moments.sum),
            (DataType::Integral, 4.0)
        );
        assert!(int.frequencies.counts().unwrap().contains_key("-3"));

        let uint = column("uint");
        assert_eq!(uint.types.integral, 3);
        assert_eq!(uint.moments.max, u64::MAX as f64);
        assert_eq!(uint.frequencies.counts().unwrap()["1"], 2);

        // NaN is present and Fractional but stays out of moments and the sketch.
        let float = column("float");
        assert_eq!((float.num_present, float.num_missing), (2, 1));
        assert_eq!(float.types.fractional, 2);
        assert_eq!(float.moments.count, 1);
        assert_eq!(float.kll.levels(), vec![vec![3.0]]);
        let float_texts = float.frequencies.counts().unwrap();
        assert!(float_texts.contains_key("3.0") && float_texts.contains_key("NaN"));

        let boolean = column("bool");
        assert_eq!(
            (boolean.inferred_type(), boolean.types.boolean),
            (DataType::Boolean, 2)
        );
        assert_eq!(boolean.frequencies.counts().unwrap()["true"], 2);

        // Dates go through Arrow's cast to text, which Deequ would call String.
        let date = column("date");
        assert_eq!(
            (date.inferred_type(), date.num_missing),
            (DataType::String, 1)
        );
        assert!(
            date.frequencies
                .counts()
                .unwrap()
                .contains_key("1970-01-02")
        );
    }

    #[test]
    fn missing_columns_count_as_missing() {
        let first = batch(vec![
            ("a", text_column(&[Some("1"), Some("2")])),
            ("b", text_column(&[Some("x"), None])),
        ]);
        let second = batch(vec![
            ("b", text_column(&[Some("y"), Some("z"), Some("w")])),
            ("c", text_column(&[Some("1.5"), None, Some("2.5")])),
        ]);
        let mut added = Profile::from_batch(&first);
        added.add_batch(&second);
        let mut merged = Profile::from_batch(&first);
        merged.merge(Profile::from_batch(&second));

        for profile in [&added, &merged] {
            let names: Vec<&str> = profile.columns.keys().map(String::as_str).collect();
            assert_eq!(names, ["a", "b", "c"]);
            assert_eq!(profile.row_count, 5);
            let counts = |name: &str| {
                let c = &profile.columns[name];
                assert_eq!(c.types.unknown, c.num_missing);
                (c.num_present, c.num_missing)
            };
            assert_eq!(counts("a"), (2, 3));
            assert_eq!(counts("b"), (4, 1));
            assert_eq!(counts("c"), (2, 3));
        }
    }

    #[test]
    fn merging_through_empty_like_equals_merging_a_fresh_profile() {
        // Column "id" overflows its frequency map in the first part; "cat" does not.
        let ids: Vec<String> = (0..=Frequencies::CAP).map(|i| i.to_string()).collect();
        let first = batch(vec![
            (
                "id",
                text_column(&ids.iter().map(|s| Some(s.as_str())).collect::<Vec<_>>()),
            ),
            ("cat", text_column(&vec![Some("x"); ids.len()])),
        ]);
        let second = batch(vec![("cat", text_column(&[Some("y"), None]))]);
        let total = Profile::from_batch(&first);

        let mut fresh = total.clone();
        fresh.merge(Profile::from_batch(&second));
        let mut like = total.empty_like();
        assert!(like.columns["id"].frequencies.is_overflowed());
        assert!(!like.columns["cat"].frequencies.is_overflowed());
        like.add_batch(&second);
        let mut through_like = total.clone();
        through_like.merge(like);

        assert_eq!(through_like.row_count, fresh.row_count);
        for name in ["id", "cat"] {
            let (a, b) = (&through_like.columns[name], &fresh.columns[name]);
            assert_eq!(
                (a.num_present, a.num_missing),
                (b.num_present, b.num_missing),
                "{name}"
            );
            assert_eq!(a.types, b.types, "{name}");
            assert_eq!(a.frequencies, b.frequencies, "{name}");
            assert_eq!(a.distinct_estimate(), b.distinct_estimate(), "{name}");
        }
    }

    #[test]
    fn add_batch_continues_one_stream() {
        let values = mixed_values(&mut StdRng::seed_from_u64(8), 20_000);
        let whole = Profile::from_batch(&mixed_batch(&values));
        let mut added = Profile::new();
        for chunk in values.chunks(3_000) {
            added.add_batch(&mixed_batch(chunk));
        }
        let (w, a) = (&whole.columns["x"], &added.columns["x"]);
        assert!(w.kll.levels().len() > 2);
        assert_eq!(w.kll, a.kll);
        assert_eq!(w.moments, a.moments);
        assert_eq!((w.types, &w.frequencies), (a.types, &a.frequencies));
        assert_eq!(w.distinct.estimate(), a.distinct.estimate());
    }

    /// profile(a ++ b) against merge(profile(a), profile(b)) on one mixed column.
    fn check_merge_property(
        seed: u64,
        rows: usize,
        split: usize,
    ) -> (ColumnProfile, ColumnProfile) {
        let values = mixed_values(&mut StdRng::seed_from_u64(seed), rows);
        let whole = Profile::from_batch(&mixed_batch(&values));
        let mut merged = Profile::from_batch(&mixed_batch(&values[..split]));
        merged.merge(Profile::from_batch(&mixed_batch(&values[split..])));
        assert_eq!(whole.row_count, merged.row_count);
        let (w, m) = (whole.columns["x"].clone(), merged.columns["x"].clone());
        assert_eq!(
            (w.num_present, w.num_missing),
            (m.num_present, m.num_missing)
        );
        assert_eq!(w.types, m.types);
        assert_eq!(w.frequencies, m.frequencies);
        assert_moments_close(&w.moments, &m.moments);
        assert_eq!(w.kll.total_weight(), m.kll.total_weight());
        let (dw, dm) = (w.distinct.estimate(), m.distinct.estimate());
        assert!((dw - dm).abs() <= 0.02 * dw, "distinct {dw} vs {dm}");
        (w, m)
    }

    #[test]
    fn merge_equals_whole_when_the_sketch_holds_everything() {
        for (seed, split) in [(3, 0), (4, 700), (5, 1_999), (6, 2_000)] {
            let (whole, merged) = check_merge_property(seed, 2_000, split);
            assert_eq!(whole.kll.levels().len(), 1);
            assert_eq!(whole.kll, merged.kll);
        }
    }

    #[test]
    fn merge_matches_whole_on_a_larger_column() {
        let (whole, merged) = check_merge_property(7, 100_000, 37_000);
        assert!(whole.frequencies.is_overflowed());
        let n = whole.kll.total_weight();
        for x in [-50.0, -10.0, 0.0, 100.0, 500.0, 900.0] {
            let error = whole.kll.rank(x).abs_diff(merged.kll.rank(x));
            assert!(error <= n / 50, "rank({x}) differs by {error}");
        }
    }

    #[test]
    fn serde_round_trip() {
        let values = mixed_values(&mut StdRng::seed_from_u64(9), 5_000);
        let profile = Profile::from_batch(&mixed_batch(&values));
        let json = serde_json::to_string(&profile).unwrap();
        let back: Profile = serde_json::from_str(&json).unwrap();
        let (a, b) = (&profile.columns["x"], &back.columns["x"]);
        assert_eq!(back.row_count, profile.row_count);
        assert_eq!(
            (a.num_present, a.num_missing, a.types),
            (b.num_present, b.num_missing, b.types)
        );
        // serde_json parses floats to within an ulp unless its `float_roundtrip` feature is on.
        assert_moments_close(&a.moments, &b.moments);
        let (kll_a, kll_b) = (a.kll.weighted_items(), b.kll.weighted_items());
        assert_eq!(kll_a.len(), kll_b.len());
        for ((x, w), (y, v)) in kll_a.into_iter().zip(kll_b) {
            assert_eq!(w, v);
            assert_close(x, y, "sketch item");
        }
        assert_eq!(a.frequencies, b.frequencies);
        assert_eq!(a.distinct.estimate(), b.distinct.estimate());
    }

    /// `cargo test --release --lib profile:: -- --ignored --nocapture`
    #[test]
    #[ignore = "timing; run in release"]
    fn time_one_million_rows_twenty_numeric_text_columns() {
        let rows = 1_000_000;
        let mut rng = StdRng::seed_from_u64(11);
        let columns: Vec<(String, ArrayRef)> = (0..20)
            .map(|c| {
                let values: Vec<String> = (0..rows)
                    .map(|_| match c % 2 {
                        0 => (rng.random_range(0..100_000) as i64 - 50_000).to_string(),
                        _ => format!(
                            "{}.{:04}",
                            rng.random_range(0..1_000),
                            rng.random_range(0..10_000)
                        ),
                    })
                    .collect();
                (
                    format!("c{c}"),
                    Arc::new(StringArray::from(values)) as ArrayRef,
                )
            })
            .collect();
        let input = RecordBatch::try_from_iter(columns).unwrap();
        for _ in 0..3 {
            let start = std::time::Instant::now();
            let profile = Profile::from_batch(&input);
            let elapsed = start.elapsed();
            assert_eq!(profile.columns["c0"].num_present, rows as u64);
            println!("Profile::from_batch, {rows} rows × 20 columns: {elapsed:?}");
        }
    }
}
