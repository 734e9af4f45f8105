//! Deequ's KLL quantile sketch (`QuantileNonSample` + `NonSampleCompactor`), reproduced so that
//! a sketch written by driftd reads like one written by Model Monitor and the other way round.
//!
//! The sketch is a stack of compactors. Level `h` holds items of weight 2^h and has capacity
//! `2 * (ceil(k * c^h / 2) + 1)`, so level 0 is the largest (2050 for k = 2048, c = 0.64) and
//! the capacity depends only on the level, not on how many levels exist. New items go to level
//! 0; whenever the sketch holds more items than the sum of its levels' capacities, the lowest
//! full level is compacted: its items (all but an odd last one) are sorted and every second one
//! moves up a level. Deequ draws no random numbers: which half moves up alternates on a fixed
//! schedule, so the same input in the same order always gives the same sketch.
//!
//! `levels()` is exactly what statistics.json stores as `sketch.data`.

use serde::{Deserialize, Serialize};

/// Deequ's KLL sketch with sketch size `k` and shrinking factor `c`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KllSketch {
    k: usize,
    c: f64,
    /// Never empty: Deequ starts with one level.
    compactors: Vec<Compactor>,
    /// Items held over all levels (Deequ's `compactorActualSize`).
    size: usize,
    /// Sum of the capacities of the existing levels (Deequ's `compactorTotalSize`).
    capacity: usize,
}

/// One equal-width histogram bucket as statistics.json writes it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub lower_bound: f64,
    pub upper_bound: f64,
    pub count: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Compactor {
    buffer: Vec<f64>,
    /// Compactions done so far; decides when `offset` flips.
    num_compress: u32,
    /// 0 or 1: which of the sorted items (even or odd positions) move up.
    offset: usize,
}

impl Default for KllSketch {
    fn default() -> Self {
        Self::new()
    }
}

impl KllSketch {
    pub const DEFAULT_K: usize = 2048;
    pub const DEFAULT_C: f64 = 0.64;

    /// Model Monitor's parameters: k = 2048, c = 0.64.
    pub fn new() -> Self {
        Self::with_params(Self::DEFAULT_K, Self::DEFAULT_C)
    }

    pub fn with_params(k: usize, c: f64) -> Self {
        Self::from_levels(vec![Vec::new()], k, c)
    }

    /// A sketch holding `levels` (level h = items of weight 2^h), e.g. `sketch.data` read from a
    /// statistics.json. Like Deequ's `reconstruct`, every level starts with a fresh compaction
    /// schedule, as the file does not record it.
    pub fn from_levels(mut levels: Vec<Vec<f64>>, k: usize, c: f64) -> Self {
        if levels.is_empty() {
            levels.push(Vec::new());
        }
        let compactors: Vec<Compactor> = levels
            .into_iter()
            .map(|buffer| Compactor {
                buffer,
                ..Compactor::default()
            })
            .collect();
        let mut sketch = Self {
            k,
            c,
            size: compactors.iter().map(|l| l.buffer.len()).sum(),
            capacity: 0,
            compactors,
        };
        sketch.capacity = (0..sketch.compactors.len())
            .map(|h| sketch.level_capacity(h))
            .sum();
        sketch
    }

    pub fn k(&self) -> usize {
        self.k
    }

    pub fn c(&self) -> f64 {
        self.c
    }

    /// Adds one value. The caller keeps NaN out: it has no place in an ordering.
    pub fn update(&mut self, x: f64) {
        self.compactors[0].buffer.push(x);
        self.size += 1;
        if self.size > self.capacity {
            self.condense();
        }
    }

    /// Deequ's merge: append `other`'s levels to ours level by level, then compact while the
    /// sketch holds at least its capacity. Our own compaction schedule is kept. Note the `>=`
    /// where `update` has `>`: merging a sketch that sits exactly at capacity into an empty one
    /// compacts it, as Spark's final aggregation does.
    pub fn merge(&mut self, other: &KllSketch) {
        while self.compactors.len() < other.compactors.len() {
            self.add_level();
        }
        for (mine, theirs) in self.compactors.iter_mut().zip(&other.compactors) {
            mine.buffer.extend_from_slice(&theirs.buffer);
        }
        self.size = self.count_items();
        while self.size >= self.capacity {
            self.condense();
        }
    }

    /// What a decoded sketch must satisfy to be merged and read without a panic or a hang:
    /// the parameters `k` and Deequ's `c` that driftd builds it with, at most 64 levels (an item
    /// of level h weighs 2^h), a total weight of at most `max_weight` (its values), its item
    /// count and capacity as its levels make them (merging compacts until the items fit the
    /// capacity) and compaction offsets of 0 or 1.
    pub fn validate(&self, k: usize, max_weight: u64) -> Result<(), String> {
        if self.k != k || self.c.to_bits() != Self::DEFAULT_C.to_bits() {
            return Err(format!(
                "sketch parameters k = {}, c = {}, not {k} and {}",
                self.k,
                self.c,
                Self::DEFAULT_C
            ));
        }
        if self.compactors.is_empty() || self.compactors.len() > 64 {
            return Err(format!("a sketch of {} levels", self.compactors.len()));
        }
        if self.compactors.iter().any(|level| level.offset > 1) {
            return Err("a sketch level with a compaction offset past 1".into());
        }
        let weight = (self.compactors.iter().enumerate())
            .try_fold(0u64, |sum, (h, level)| {
                (level.buffer.len() as u64)
                    .checked_mul(1 << h)
                    .and_then(|w| sum.checked_add(w))
            })
            .filter(|&weight| weight <= max_weight);
        if weight.is_none() {
            return Err(format!(
                "a sketch weighing more than its {max_weight} values"
            ));
        }
        let capacity: usize = (0..self.compactors.len())
            .map(|h| self.level_capacity(h))
            .sum();
        if self.size != self.count_items() || self.capacity != capacity {
            return Err("a sketch whose sizes disagree with its levels".into());
        }
        Ok(())
    }

    /// The buffer of every level, lowest first; items of level h weigh 2^h.
    pub fn levels(&self) -> Vec<Vec<f64>> {
        self.compactors.iter().map(|l| l.buffer.clone()).collect()
    }

    /// How many values the sketch stands for.
    pub fn total_weight(&self) -> u64 {
        self.weighted().map(|(_, w)| w).sum()
    }

    /// Deequ's `getRank`: the total weight of items ≤ `x`.
    pub fn rank(&self, x: f64) -> u64 {
        self.weighted()
            .filter(|&(v, _)| v <= x)
            .map(|(_, w)| w)
            .sum()
    }

    /// Deequ's `getRankExclusive`: the total weight of items < `x`.
    pub fn rank_exclusive(&self, x: f64) -> u64 {
        self.weighted()
            .filter(|&(v, _)| v < x)
            .map(|(_, w)| w)
            .sum()
    }

    /// Every item with its weight, ascending by value (equal values are not combined).
    pub fn weighted_items(&self) -> Vec<(f64, u64)> {
        let mut items: Vec<(f64, u64)> = self.weighted().collect();
        items.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        items
    }

    /// Deequ's `KLLSketch.computeMetricFrom`: `n` equal-width buckets from `min` to `max`.
    /// Bucket i counts items in [low, high) except the last, which counts [low, high], so a
    /// value on an inner boundary belongs to the upper bucket. With `min == max` every bucket
    /// is [min, min] and only the last one counts anything.
    pub fn equal_width_buckets(&self, min: f64, max: f64, n: usize) -> Vec<Bucket> {
        let width = max - min;
        let n_f64 = n as f64;
        (0..n)
            .map(|i| {
                // Same operation order as Deequ, so the bounds match it bit for bit.
                let lower_bound = min + width * i as f64 / n_f64;
                let upper_bound = min + width * (i + 1) as f64 / n_f64;
                let upper_rank = if i == n - 1 {
                    self.rank(upper_bound)
                } else {
                    self.rank_exclusive(upper_bound)
                };
                Bucket {
                    lower_bound,
                    upper_bound,
                    count: (upper_rank - self.rank_exclusive(lower_bound)) as f64,
                }
            })
            .collect()
    }

    fn weighted(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.compactors
            .iter()
            .enumerate()
            .flat_map(|(h, level)| level.buffer.iter().map(move |&v| (v, 1u64 << h)))
    }

    fn level_capacity(&self, height: usize) -> usize {
        let half = (self.k as f64 * self.c.powf(height as f64) / 2.0).ceil() as usize;
        2 * (half + 1)
    }

    fn add_level(&mut self) {
        self.compactors.push(Compactor::default());
        self.capacity += self.level_capacity(self.compactors.len() - 1);
    }

    fn count_items(&self) -> usize {
        self.compactors.iter().map(|l| l.buffer.len()).sum()
    }

    /// Compacts the lowest level that is at or over its capacity, once.
    fn condense(&mut self) {
        let Some(height) = (0..self.compactors.len())
            .find(|&h| self.compactors[h].buffer.len() >= self.level_capacity(h))
        else {
            return;
        };
        if height + 1 == self.compactors.len() {
            self.add_level();
        }
        let (lower, upper) = self.compactors.split_at_mut(height + 1);
        lower[height].compact_into(height == 0, &mut upper[0].buffer);
        self.size = self.count_items();
    }
}

impl Compactor {
    /// Deequ's `NonSampleCompactor.compact`: sorts all items but an odd last one, appends every
    /// second sorted item to `out`, and keeps only that odd last item (unsorted, as it came).
    fn compact_into(&mut self, is_level_zero: bool, out: &mut Vec<f64>) {
        let items = self.buffer.len();
        let even = items - items % 2;
        // Flipping after every odd-numbered compaction gives offsets 0, 1, 1, 0, 0, 1, 1, …
        if self.num_compress % 2 == 1 {
            self.offset = 1 - self.offset;
        }
        let odd_last = (items % 2 == 1).then(|| self.buffer[items - 1]);
        // Sorting is most of the profile's time. Integer keys in `f64::total_cmp` order sort
        // about twice as fast as floats. Level 0 holds input order, where pattern-defeating
        // quicksort is fastest; upper levels are concatenations of sorted outputs, which the
        // stable sort merges in linear time. Equal keys are identical values, so every choice
        // gives the order of Deequ's sort (Java's `Double.compare`, the same total order).
        let mut keys: Vec<i64> = self.buffer[..even]
            .iter()
            .map(|&v| total_order_key(v))
            .collect();
        if is_level_zero {
            keys.sort_unstable();
        } else {
            keys.sort();
        }
        out.extend(
            keys.iter()
                .skip(self.offset)
                .step_by(2)
                .map(|&k| from_total_order_key(k)),
        );
        self.buffer.clear();
        self.buffer.extend(odd_last);
        self.num_compress += 1;
    }
}

/// The integer whose order is `f64::total_cmp`'s: negative values get their magnitude bits
/// flipped. The map is its own inverse.
fn total_order_key(x: f64) -> i64 {
    let bits = x.to_bits() as i64;
    bits ^ (((bits >> 63) as u64) >> 1) as i64
}

fn from_total_order_key(key: i64) -> f64 {
    f64::from_bits((key ^ (((key >> 63) as u64) >> 1) as i64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_capacities_follow_deequ() {
        let sketch = KllSketch::new();
        let capacities: Vec<usize> = (0..20).map(|h| sketch.level_capacity(h)).collect();
        // 2 * (ceil(1024 * 0.64^h) + 1): 1024, 655.36, 419.43, 268.44, 171.80, …
        assert_eq!(&capacities[..6], &[2050, 1314, 842, 540, 346, 222]);
        assert_eq!(capacities[19], 4);
        let small = KllSketch::with_params(8, 0.5);
        let small: Vec<usize> = (0..4).map(|h| small.level_capacity(h)).collect();
        assert_eq!(small, [10, 6, 4, 4]);
    }

    #[test]
    fn small_stream_stays_raw_in_insertion_order() {
        let values: Vec<f64> = (0..2050).map(|i| ((i * 7919) % 2050) as f64).collect();
        let mut sketch = KllSketch::new();
        for &v in &values {
            sketch.update(v);
        }
        assert_eq!(sketch.levels(), vec![values]);
        assert_eq!(sketch.total_weight(), 2050);
    }

    #[test]
    fn first_compaction_by_hand() {
        // k = 8, c = 0.5: level capacities 10, 6, 4, …; the 11th item overflows level 0.
        let mut sketch = KllSketch::with_params(8, 0.5);
        for v in [9.0, 3.0, 7.0, 1.0, 5.0, 10.0, 2.0, 8.0, 4.0, 6.0] {
            sketch.update(v);
        }
        assert_eq!(sketch.levels().len(), 1);
        sketch.update(0.5);
        // First compaction, offset 0: sorted first ten are 1..=10, even positions move up;
        // the odd 11th item (0.5) stays.
        assert_eq!(
            sketch.levels(),
            vec![vec![0.5], vec![1.0, 3.0, 5.0, 7.0, 9.0]]
        );
        assert_eq!(sketch.total_weight(), 11);
    }

    #[test]
    fn compaction_offsets_alternate_in_pairs() {
        let mut compactor = Compactor::default();
        let mut offsets = Vec::new();
        for _ in 0..8 {
            compactor.buffer = vec![4.0, 3.0, 2.0, 1.0];
            let mut out = Vec::new();
            compactor.compact_into(true, &mut out);
            offsets.push(if out == [1.0, 3.0] { 0 } else { 1 });
            assert!(compactor.buffer.is_empty());
        }
        assert_eq!(offsets, [0, 1, 1, 0, 0, 1, 1, 0]);
    }

    #[test]
    fn later_compactions_by_hand() {
        // k = 8, c = 0.5: capacities 10, 6, 4. Items 0..=10 give [10], [0, 2, 4, 6, 8].
        let mut sketch = KllSketch::with_params(8, 0.5);
        (0..=10).for_each(|i| sketch.update(f64::from(i)));
        assert_eq!(
            sketch.levels(),
            vec![vec![10.0], vec![0.0, 2.0, 4.0, 6.0, 8.0]]
        );
        // Level 0 may pass its own capacity: only the total (16) triggers a compaction.
        (11..=20).for_each(|i| sketch.update(f64::from(i)));
        assert_eq!(
            sketch.levels()[0],
            (10..=20).map(f64::from).collect::<Vec<_>>()
        );
        // Item 21 makes 17 > 16. Level 0's second compaction flips the offset to 1: the odd
        // positions of sorted 10..=21 move up and, with an even count, nothing stays.
        sketch.update(21.0);
        let level1 = vec![0.0, 2.0, 4.0, 6.0, 8.0, 11.0, 13.0, 15.0, 17.0, 19.0, 21.0];
        assert_eq!(sketch.levels(), vec![vec![], level1]);
        // Six more items overflow again; now level 1 is the lowest full level (11 ≥ 6). Its
        // first compaction uses offset 0 and keeps its last-inserted item, 21.
        (22..=27).for_each(|i| sketch.update(f64::from(i)));
        assert_eq!(
            sketch.levels(),
            vec![
                (22..=27).map(f64::from).collect::<Vec<_>>(),
                vec![21.0],
                vec![0.0, 4.0, 8.0, 13.0, 17.0],
            ]
        );
        assert_eq!(sketch.total_weight(), 28);
    }

    #[test]
    fn total_order_keys_sort_like_total_cmp() {
        let mut values = vec![
            3.5,
            -0.0,
            0.0,
            -2.0,
            f64::INFINITY,
            1e-310,
            -1e300,
            f64::NEG_INFINITY,
            2.0,
        ];
        let mut keys: Vec<i64> = values.iter().map(|&v| total_order_key(v)).collect();
        keys.sort();
        values.sort_unstable_by(f64::total_cmp);
        let back: Vec<u64> = keys
            .into_iter()
            .map(|k| from_total_order_key(k).to_bits())
            .collect();
        assert_eq!(back, values.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    }

    #[test]
    fn ranks_and_weighted_items() {
        let sketch = KllSketch::from_levels(vec![vec![3.0, 1.0], vec![2.0, 5.0]], 2048, 0.64);
        assert_eq!(sketch.total_weight(), 6);
        assert_eq!(sketch.rank(2.0), 3);
        assert_eq!(sketch.rank_exclusive(2.0), 1);
        assert_eq!(sketch.rank(100.0), 6);
        assert_eq!(sketch.rank_exclusive(1.0), 0);
        assert_eq!(
            sketch.weighted_items(),
            vec![(1.0, 1), (2.0, 2), (3.0, 1), (5.0, 2)]
        );
    }

    #[test]
    fn buckets_counted_by_hand() {
        // Like the SDK fixture of FORMATS.md §2.2: values 1.0, 2.0, 3.0 with 24 ones, 21 twos
        // and 55 threes (and 1.5 and 2.2 to land in inner buckets and on a boundary).
        let mut sketch = KllSketch::new();
        for (value, times) in [(1.0, 24), (2.0, 21), (3.0, 53), (1.5, 1), (2.2, 1)] {
            for _ in 0..times {
                sketch.update(value);
            }
        }
        let buckets = sketch.equal_width_buckets(1.0, 3.0, 10);
        let counts: Vec<f64> = buckets.iter().map(|b| b.count).collect();
        // Bounds 1.0, 1.2, 1.4, 1.6, …: 1.5 is in [1.4, 1.6); 2.0 opens [2.0, 2.2) because an
        // inner boundary value goes up; 2.2 computed as 1 + 2*6/10 = 2.2 exactly equals the
        // literal, so it opens [2.2, 2.4); 3.0 is in the closed last bucket.
        assert_eq!(
            counts,
            [24.0, 0.0, 1.0, 0.0, 0.0, 21.0, 1.0, 0.0, 0.0, 53.0]
        );
        assert_eq!(buckets[0].lower_bound, 1.0);
        assert_eq!(buckets[9].upper_bound, 3.0);
        assert_eq!(buckets[1].lower_bound, 1.0 + 2.0 * 1.0 / 10.0);
        assert_eq!(counts.iter().sum::<f64>(), 100.0);
    }

    #[test]
    fn buckets_of_a_constant_column() {
        let mut sketch = KllSketch::new();
        for _ in 0..5 {
            sketch.update(4.0);
        }
        let buckets = sketch.equal_width_buckets(4.0, 4.0, 10);
        assert!(
            buckets
                .iter()
                .all(|b| b.lower_bound == 4.0 && b.upper_bound == 4.0)
        );
        let counts: Vec<f64> = buckets.iter().map(|b| b.count).collect();
        assert_eq!(counts, [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 5.0]);
    }

    /// A shuffled 0..n, deterministic.
    fn permutation(n: u64) -> impl Iterator<Item = f64> {
        // 1_000_003 is prime and n < it, so i ↦ i * 7_777 mod p visits distinct values.
        (0..n).map(|i| ((i * 7_777) % 1_000_003) as f64)
    }

    #[test]
    fn large_stream_rank_error_within_bound() {
        let n = 1_000_000u64;
        let mut sketch = KllSketch::new();
        for v in permutation(n) {
            sketch.update(v);
        }
        assert_eq!(sketch.total_weight(), n);
        let mut sorted: Vec<f64> = permutation(n).collect();
        sorted.sort_unstable_by(f64::total_cmp);
        // KLL's rank error is O(n / k); 1 % of n is a generous bound for k = 2048 and the
        // observed error is far smaller.
        let bound = n / 100;
        let mut worst = 0;
        for q in 1..100u64 {
            let x = sorted[(q * n / 100) as usize];
            let exact = sorted.partition_point(|&v| v <= x) as u64;
            worst = worst.max(sketch.rank(x).abs_diff(exact));
        }
        assert!(worst <= bound, "rank error {worst} > {bound}");
        let retained: usize = sketch.levels().iter().map(Vec::len).sum();
        assert!(
            retained < 8 * KllSketch::DEFAULT_K,
            "sketch keeps {retained} items"
        );
    }

    #[test]
    fn merged_sketches_answer_like_one() {
        let n = 200_000u64;
        let values: Vec<f64> = permutation(n).collect();
        let mut whole = KllSketch::new();
        values.iter().for_each(|&v| whole.update(v));
        let (left, right) = values.split_at(values.len() / 3);
        let mut a = KllSketch::new();
        left.iter().for_each(|&v| a.update(v));
        let mut b = KllSketch::new();
        right.iter().for_each(|&v| b.update(v));
        a.merge(&b);
        assert_eq!(a.total_weight(), n);
        let mut sorted = values.clone();
        sorted.sort_unstable_by(f64::total_cmp);
        for q in 1..20u64 {
            let x = sorted[(q * n / 20) as usize];
            let exact = (q * n / 20 + 1) as i64;
            for sketch in [&a, &whole] {
                let error = (sketch.rank(x) as i64 - exact).unsigned_abs();
                assert!(error <= n / 100, "rank({x}) off by {error}");
            }
        }
    }

    #[test]
    fn merge_of_small_sketches_concatenates() {
        let mut a = KllSketch::new();
        [1.0, 2.0].iter().for_each(|&v| a.update(v));
        let mut b = KllSketch::new();
        [0.5, 3.0].iter().for_each(|&v| b.update(v));
        a.merge(&b);
        assert_eq!(a.levels(), vec![vec![1.0, 2.0, 0.5, 3.0]]);
    }

    #[test]
    fn merge_at_exact_capacity_compacts() {
        let mut full = KllSketch::with_params(8, 0.5);
        (0..10).for_each(|i| full.update(i as f64));
        assert_eq!(full.levels().len(), 1);
        let mut empty = KllSketch::with_params(8, 0.5);
        empty.merge(&full);
        assert_eq!(empty.levels(), vec![vec![], vec![0.0, 2.0, 4.0, 6.0, 8.0]]);
    }

    #[test]
    fn from_levels_round_trips_and_keeps_working() {
        let levels = vec![vec![5.0, 1.0], vec![], vec![3.0]];
        let mut sketch = KllSketch::from_levels(levels.clone(), 2048, 0.64);
        assert_eq!(sketch.levels(), levels);
        assert_eq!(sketch.total_weight(), 2 + 4);
        sketch.update(2.0);
        assert_eq!(sketch.levels()[0], vec![5.0, 1.0, 2.0]);
        assert_eq!((sketch.k(), sketch.c()), (2048, 0.64));
        assert_eq!(
            KllSketch::from_levels(Vec::new(), 8, 0.5).levels(),
            vec![Vec::<f64>::new()]
        );
    }

    /// Forged sketches that would hang a merge (sizes that disagree with the levels), overflow
    /// a weight (more than 64 levels, or more weight than values) or underflow a compaction
    /// offset are refused; a real one passes.
    #[test]
    fn forged_sketches_are_refused_and_real_ones_pass() {
        let mut sketch = KllSketch::new();
        (0..5000).for_each(|i| sketch.update(f64::from(i)));
        assert_eq!(sketch.validate(KllSketch::DEFAULT_K, 5000), Ok(()));
        let error = sketch.validate(KllSketch::DEFAULT_K, 4999).unwrap_err();
        assert!(
            error.contains("weighing more than its 4999 values"),
            "{error}"
        );
        assert!(sketch.validate(256, 5000).unwrap_err().contains("k = 2048"));

        let mut sizes = sketch.clone();
        sizes.capacity = 0;
        assert!(sizes.validate(KllSketch::DEFAULT_K, 5000).is_err());
        let mut offset = sketch.clone();
        offset.compactors[0].offset = 2;
        assert!(offset.validate(KllSketch::DEFAULT_K, 5000).is_err());
        let mut tall = KllSketch::from_levels(vec![Vec::new(); 65], KllSketch::DEFAULT_K, 0.64);
        assert!(
            tall.validate(KllSketch::DEFAULT_K, 0)
                .unwrap_err()
                .contains("65 levels")
        );
        tall.compactors.truncate(64);
        tall.compactors[63].buffer.push(1.0);
        tall.size = 1;
        tall.capacity = (0..64).map(|h| tall.level_capacity(h)).sum();
        // One item of weight 2^63: more than u64::MAX / 2 values.
        let error = tall
            .validate(KllSketch::DEFAULT_K, u64::MAX / 2)
            .unwrap_err();
        assert!(error.contains("weighing more"), "{error}");
    }
}
