//! The few numpy behaviours CBPE's numbers depend on, reproduced so that driftd's estimates
//! agree with NannyML's to the last few bits: `np.sum` (pairwise summation), `np.mean`,
//! `np.std`/`np.var` (ddof 0), `np.round(x, 5)`, `np.interp`, and the legacy
//! `np.random.RandomState` (MT19937 seeded with `init_genrand`) with its `permutation`, which
//! scikit-learn's `StratifiedShuffleSplit(random_state=42)` draws from.

/// `np.add.reduce` of a contiguous float64 array: numpy's pairwise summation (blocks of 128
/// summed with eight accumulators, halves added recursively), which is what makes `np.sum`
/// differ from a running sum in the last bits.
pub fn sum(values: &[f64]) -> f64 {
    0.0 + pairwise(values)
}

fn pairwise(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &x in a {
            res += x;
        }
        res
    } else if n <= 128 {
        let mut r = [a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]];
        let mut i = 8;
        while i < n - (n % 8) {
            for (j, acc) in r.iter_mut().enumerate() {
                *acc += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise(&a[..n2]) + pairwise(&a[n2..])
    }
}

/// `np.mean`: the pairwise sum divided by the count (NaN for no values).
pub fn mean(values: &[f64]) -> f64 {
    sum(values) / values.len() as f64
}

/// `np.var` with ddof 0: the mean of squared deviations from the (pairwise) mean.
pub fn var(values: &[f64]) -> f64 {
    let mean = mean(values);
    let squares: Vec<f64> = values.iter().map(|x| (x - mean) * (x - mean)).collect();
    sum(&squares) / values.len() as f64
}

/// `np.std` with ddof 0.
pub fn std(values: &[f64]) -> f64 {
    var(values).sqrt()
}

/// `np.std` of an array holding `ones` ones and `zeros` zeros, in that order (the indicator
/// arrays of NannyML's sampling-error components).
pub fn std_of_indicators(ones: usize, zeros: usize) -> f64 {
    let mut values = vec![1.0; ones];
    values.resize(ones + zeros, 0.0);
    std(&values)
}

/// `np.var` of the same.
pub fn var_of_indicators(ones: usize, zeros: usize) -> f64 {
    let mut values = vec![1.0; ones];
    values.resize(ones + zeros, 0.0);
    var(&values)
}

/// `np.round(x, 5)`: scale, round half to even, unscale.
pub fn round5(x: f64) -> f64 {
    (x * 1e5).round_ties_even() / 1e5
}

/// `np.interp(x, xp, fp)` for increasing `xp` with `x` inside `[xp[0], xp[last]]` (the
/// isotonic calibrator clips first): exact at the knots, `slope·(x − xp[j]) + fp[j]` between.
pub fn interp(x: f64, xp: &[f64], fp: &[f64]) -> f64 {
    let last = xp.len() - 1;
    if x >= xp[last] {
        return fp[last];
    }
    if x <= xp[0] {
        return fp[0];
    }
    // The j with xp[j] <= x < xp[j + 1].
    let j = xp.partition_point(|&knot| knot <= x) - 1;
    let slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
    let value = slope * (x - xp[j]) + fp[j];
    if value.is_nan() {
        slope * (x - xp[j + 1]) + fp[j + 1]
    } else {
        value
    }
}

/// `np.random.RandomState(seed)`: the MT19937 generator seeded with `init_genrand`, and the
/// draws `permutation` makes. Written here rather than taken from a crate because what matters
/// is numpy's legacy bounded-integer rejection sampling and shuffle order on top of the
/// generator, which no crate reproduces.
pub struct RandomState {
    state: [u32; 624],
    index: usize,
}

impl RandomState {
    pub fn new(seed: u32) -> Self {
        let mut state = [0u32; 624];
        state[0] = seed;
        for i in 1..624 {
            state[i] = 1_812_433_253u32
                .wrapping_mul(state[i - 1] ^ (state[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        Self { state, index: 624 }
    }

    fn generate(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        for i in 0..624 {
            let y = (self.state[i] & UPPER) | (self.state[(i + 1) % 624] & LOWER);
            let mut next = self.state[(i + 397) % 624] ^ (y >> 1);
            if y & 1 != 0 {
                next ^= 0x9908_b0df;
            }
            self.state[i] = next;
        }
        self.index = 0;
    }

    /// `genrand_int32`.
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            self.generate();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// numpy's `random_interval(max)`: a uniform integer in `0..=max` by masked rejection.
    fn interval(&mut self, max: u32) -> u32 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        mask |= mask >> 1;
        mask |= mask >> 2;
        mask |= mask >> 4;
        mask |= mask >> 8;
        mask |= mask >> 16;
        loop {
            let value = self.next_u32() & mask;
            if value <= max {
                return value;
            }
        }
    }

    /// Legacy `shuffle` of a one-dimensional array (Fisher–Yates from the end).
    pub fn shuffle<T>(&mut self, values: &mut [T]) {
        for i in (1..values.len()).rev() {
            let j = self.interval(i as u32) as usize;
            values.swap(i, j);
        }
    }

    /// `permutation(n)`: a shuffled `0..n`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut values: Vec<usize> = (0..n).collect();
        self.shuffle(&mut values);
        values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_seeded_42_gives_numpys_first_outputs() {
        // np.random.RandomState(42).randint(0, 2**32, size=3, dtype=np.uint64) draws raw
        // 32-bit outputs; the reference is the MT19937 reference implementation's
        // init_genrand(42) stream (1608637542, 3421126067, 4083286876).
        let mut rng = RandomState::new(42);
        assert_eq!(
            [rng.next_u32(), rng.next_u32(), rng.next_u32()],
            [1_608_637_542, 3_421_126_067, 4_083_286_876]
        );
    }

    #[test]
    fn pairwise_sum_of_small_and_large_arrays_is_the_exact_sum_of_integers() {
        let values: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(sum(&values), 500_500.0);
        assert_eq!(sum(&values[..5]), 15.0);
        assert!(mean(&[]).is_nan());
    }

    #[test]
    fn std_of_indicators_is_the_bernoulli_standard_deviation() {
        // 1 one and 3 zeros: p = 1/4, sqrt(p (1 - p)) = sqrt(3)/4.
        assert!((std_of_indicators(1, 3) - 3f64.sqrt() / 4.0).abs() < 1e-15);
    }

    #[test]
    fn interp_is_exact_at_knots_and_linear_between() {
        let xp = [0.0, 1.0, 3.0];
        let fp = [0.0, 0.5, 1.0];
        assert_eq!(interp(1.0, &xp, &fp), 0.5);
        assert_eq!(interp(2.0, &xp, &fp), 0.75);
        assert_eq!(interp(3.0, &xp, &fp), 1.0);
        assert_eq!(interp(-1.0, &xp, &fp), 0.0);
    }

    #[test]
    fn round5_rounds_half_to_even_like_numpy() {
        assert_eq!(round5(0.123_456), 0.12346);
        assert_eq!(round5(2.5e-5), 2e-5);
    }
}
