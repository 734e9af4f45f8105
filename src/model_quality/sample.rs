//! Deterministic 80 % subsamples: a row belongs to subsample `i` when a hash of its key and `i`
//! falls in the lower 80 % of the 64-bit range. Membership depends on the key alone, so it is
//! the same in every replica, after every restart and in every merge order.

use serde::{Deserialize, Serialize};

/// How many subsamples the standard deviations come from (Model Monitor: "5 times").
pub const SUBSAMPLES: usize = 5;

/// Accumulators per state: the whole window first, then the subsamples.
pub(crate) const SAMPLES: usize = SUBSAMPLES + 1;

/// A hash at or below this is inside a subsample: 80 % of the 64-bit range.
const INSIDE: u64 = u64::MAX / 5 * 4;

/// The 64-bit hash of a record's key (the join key: `inferenceId`, else `eventId`) that
/// [`Membership::of_hash`] takes. xxHash64 with seed 0: stable across platforms and releases.
pub fn key_hash(key: &[u8]) -> u64 {
    twox_hash::XxHash64::oneshot(0, key)
}

/// Which accumulators a row is added to: bit 0 (the whole window) always, bit `i` for
/// subsample `i` in 1..=5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Membership(u8);

impl Membership {
    /// In the window and in no subsample: a monitor that wants no standard deviations (they
    /// are then `"NaN"`) saves the five subsample updates per row.
    pub const WINDOW_ONLY: Membership = Membership(1);

    /// The membership of the row whose key hashes to `hash` (see [`key_hash`]).
    pub fn of_hash(hash: u64) -> Self {
        let mut bits = 1u8;
        for i in 1..=SUBSAMPLES as u64 {
            if splitmix64(hash ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15)) <= INSIDE {
                bits |= 1 << i;
            }
        }
        Membership(bits)
    }

    /// The membership of the row with this key.
    pub fn of_key(key: &[u8]) -> Self {
        Self::of_hash(key_hash(key))
    }

    /// The accumulators (0 = whole, 1..=5 = subsamples) this row is added to.
    pub(crate) fn samples(self) -> impl Iterator<Item = usize> {
        (0..SAMPLES).filter(move |i| self.0 & (1 << i) != 0)
    }

    pub(crate) fn bits(self) -> u8 {
        self.0
    }

    /// The membership whose [`Membership::bits`] these are; `None` unless bit 0 is set and no
    /// bit above the last subsample is (a corrupt stored state).
    pub(crate) fn from_bits(bits: u8) -> Option<Self> {
        (bits & 1 == 1 && bits >> SAMPLES == 0).then_some(Membership(bits))
    }
}

/// A strong 64-bit mixer (Steele et al., SplitMix64's finaliser): each subsample's bit is
/// independent of the others' for practical purposes.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The sample standard deviation (n − 1) of the subsample values; NaN when one is not finite.
pub(crate) fn standard_deviation(values: &[f64]) -> f64 {
    if values.iter().any(|v| !v.is_finite()) || values.len() < 2 {
        return f64::NAN;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let squares: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    (squares / (n - 1.0)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_80_percent_of_keys_are_in_each_subsample_independently() {
        let n = 100_000;
        let mut inside = [0usize; SAMPLES];
        let mut all_five = 0;
        for i in 0..n {
            let membership = Membership::of_key(format!("inference-{i}").as_bytes());
            for s in membership.samples() {
                inside[s] += 1;
            }
            all_five += usize::from(membership.bits() == 0b11_1111);
        }
        assert_eq!(inside[0], n);
        for count in &inside[1..] {
            let share = *count as f64 / n as f64;
            assert!((share - 0.8).abs() < 0.005, "{share}");
        }
        // Independent subsamples: all five hold a row 0.8^5 of the time.
        let share = all_five as f64 / n as f64;
        assert!((share - 0.32768).abs() < 0.006, "{share}");
    }

    #[test]
    fn membership_depends_on_the_key_only() {
        assert_eq!(Membership::of_key(b"abc"), Membership::of_key(b"abc"));
        assert_eq!(
            Membership::of_key(b"abc"),
            Membership::of_hash(key_hash(b"abc"))
        );
        assert_eq!(Membership::from_bits(0b10), None);
        assert_eq!(Membership::from_bits(0b100_0001), None);
    }

    #[test]
    fn standard_deviation_is_the_sample_one() {
        // numpy.std([1, 2, 3, 4, 5], ddof=1) = sqrt(2.5)
        assert_eq!(
            standard_deviation(&[1.0, 2.0, 3.0, 4.0, 5.0]),
            2.5f64.sqrt()
        );
        assert!(standard_deviation(&[1.0, f64::NAN, 3.0, 4.0, 5.0]).is_nan());
    }
}
