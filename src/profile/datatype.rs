//! Deequ's data type classification of text values (`StatefulDataType`, `DataTypeHistogram`).
//!
//! Deequ tests every non-null value against three Java regexes, in this order:
//!
//! ```text
//! FRACTIONAL  ^(-|\+)? ?\d+((\.\d+)|((?:\.\d+)?[Ee][-+]?\d+))$
//! INTEGRAL    ^(-|\+)? ?\d+$
//! BOOLEAN     ^(true|false)$
//! ```
//!
//! and calls everything else a String. Java's `\d` is ASCII `[0-9]` unless a flag says
//! otherwise, so Arabic-Indic or full-width digits make a String. Note the lone optional space
//! after the sign: `"- 5"` and `" 5"` are Integral.
//!
//! [`classify_and_parse`] recognises the same language with a hand-written scanner (regexes
//! cost far more than the rest of the per-value work) and, since it walks the digits anyway,
//! also computes the number.

use serde::{Deserialize, Serialize};

/// Deequ's inferred types, spelled as SageMaker writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataType {
    Unknown,
    Integral,
    Fractional,
    Boolean,
    String,
}

/// How many values of a column fell into each type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeCounts {
    pub unknown: u64,
    pub integral: u64,
    pub fractional: u64,
    pub boolean: u64,
    pub string: u64,
}

impl TypeCounts {
    pub fn add(&mut self, data_type: DataType) {
        self.add_n(data_type, 1);
    }

    pub fn add_n(&mut self, data_type: DataType, n: u64) {
        *self.slot(data_type) += n;
    }

    pub fn get(&self, data_type: DataType) -> u64 {
        match data_type {
            DataType::Unknown => self.unknown,
            DataType::Integral => self.integral,
            DataType::Fractional => self.fractional,
            DataType::Boolean => self.boolean,
            DataType::String => self.string,
        }
    }

    pub fn total(&self) -> u64 {
        self.unknown + self.integral + self.fractional + self.boolean + self.string
    }

    pub fn merge(&mut self, other: &TypeCounts) {
        self.unknown += other.unknown;
        self.integral += other.integral;
        self.fractional += other.fractional;
        self.boolean += other.boolean;
        self.string += other.string;
    }

    /// Deequ's `DataTypeHistogram.determineType`: only nulls → Unknown; any String, or Boolean
    /// mixed with numbers → String; only Booleans → Boolean; any Fractional → Fractional; else
    /// Integral.
    ///
    /// With no values at all Deequ's ratios are 0/0 = NaN, every test fails and it answers
    /// Integral; we answer Unknown, which is what "nothing seen" means.
    pub fn inferred(&self) -> DataType {
        let numbers = self.integral + self.fractional;
        if numbers + self.boolean + self.string == 0 {
            DataType::Unknown
        } else if self.string > 0 || (self.boolean > 0 && numbers > 0) {
            DataType::String
        } else if self.boolean > 0 {
            DataType::Boolean
        } else if self.fractional > 0 {
            DataType::Fractional
        } else {
            DataType::Integral
        }
    }

    fn slot(&mut self, data_type: DataType) -> &mut u64 {
        match data_type {
            DataType::Unknown => &mut self.unknown,
            DataType::Integral => &mut self.integral,
            DataType::Fractional => &mut self.fractional,
            DataType::Boolean => &mut self.boolean,
            DataType::String => &mut self.string,
        }
    }
}

/// The Deequ type of a non-null text value.
pub fn classify(text: &str) -> DataType {
    classify_and_parse(text).0
}

/// The Deequ type of a non-null text value and, if it is Integral or Fractional, its value
/// (correctly rounded, as Java's `Double.parseDouble` would give).
pub fn classify_and_parse(text: &str) -> (DataType, Option<f64>) {
    let bytes = text.as_bytes();
    let mut i = 0;
    let negative = bytes.first() == Some(&b'-');
    if matches!(bytes.first(), Some(b'-' | b'+')) {
        i += 1;
    }
    if bytes.get(i) == Some(&b' ') {
        i += 1;
    }
    let unsigned = &text[i..];

    let mut mantissa = Mantissa::default();
    if scan_digits(bytes, &mut i, &mut mantissa) == 0 {
        return (not_a_number(text), None);
    }
    if i == bytes.len() {
        let value = mantissa.to_f64(0, unsigned);
        return (DataType::Integral, Some(signed(negative, value)));
    }

    let mut exp10: i64 = 0;
    if bytes[i] == b'.' {
        i += 1;
        let fraction_digits = scan_digits(bytes, &mut i, &mut mantissa);
        if fraction_digits == 0 {
            return (DataType::String, None);
        }
        exp10 -= fraction_digits as i64;
        if i == bytes.len() {
            let value = mantissa.to_f64(exp10, unsigned);
            return (DataType::Fractional, Some(signed(negative, value)));
        }
    }

    if !matches!(bytes[i], b'e' | b'E') {
        return (DataType::String, None);
    }
    i += 1;
    let exp_negative = bytes.get(i) == Some(&b'-');
    if matches!(bytes.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    let exp_start = i;
    let mut exponent: i64 = 0;
    while let Some(digit) = bytes.get(i).filter(|b| b.is_ascii_digit()) {
        // Saturating: a huge exponent only has to be recognised as "not the fast path".
        exponent = exponent
            .saturating_mul(10)
            .saturating_add(i64::from(digit - b'0'));
        i += 1;
    }
    if i == exp_start || i != bytes.len() {
        return (DataType::String, None);
    }
    exp10 = if exp_negative {
        exp10.saturating_sub(exponent)
    } else {
        exp10.saturating_add(exponent)
    };
    let value = mantissa.to_f64(exp10, unsigned);
    (DataType::Fractional, Some(signed(negative, value)))
}

fn not_a_number(text: &str) -> DataType {
    if text == "true" || text == "false" {
        DataType::Boolean
    } else {
        DataType::String
    }
}

fn signed(negative: bool, magnitude: f64) -> f64 {
    if negative { -magnitude } else { magnitude }
}

/// Consumes ASCII digits from `bytes[*i..]` into `mantissa`; returns how many.
fn scan_digits(bytes: &[u8], i: &mut usize, mantissa: &mut Mantissa) -> usize {
    let start = *i;
    while let Some(&byte) = bytes.get(*i).filter(|b| b.is_ascii_digit()) {
        mantissa.push(byte - b'0');
        *i += 1;
    }
    *i - start
}

/// The decimal digits of a number read so far, as long as they fit an f64 exactly.
#[derive(Default)]
struct Mantissa {
    value: u64,
    too_long: bool,
}

/// Integers up to 2^53 and powers of ten up to 10^22 are exact f64s, so one multiplication or
/// division of the two is correctly rounded (Clinger's fast path).
const MAX_EXACT: u64 = 1 << 53;
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

impl Mantissa {
    fn push(&mut self, digit: u8) {
        self.value = self.value * 10 + u64::from(digit);
        if self.value > MAX_EXACT {
            // Stop before u64 overflows; the slow path will read the text instead.
            self.too_long = true;
            self.value = MAX_EXACT;
        }
    }

    /// The value `mantissa × 10^exp10`; `unsigned` is the same number as text, for the cases
    /// the fast path cannot do exactly.
    fn to_f64(&self, exp10: i64, unsigned: &str) -> f64 {
        if !self.too_long && exp10.unsigned_abs() < POW10.len() as u64 {
            let power = POW10[exp10.unsigned_abs() as usize];
            let value = self.value as f64;
            if exp10 >= 0 {
                value * power
            } else {
                value / power
            }
        } else {
            unsigned
                .parse()
                .expect("the scanner only accepts decimal numbers that Rust can parse")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use regex::{Regex, RegexBuilder};

    // Deequ's patterns verbatim; unicode(false) makes `\d` ASCII-only like Java's.
    const FRACTIONAL: &str = r"^(-|\+)? ?\d+((\.\d+)|((?:\.\d+)?[Ee][-+]?\d+))$";
    const INTEGRAL: &str = r"^(-|\+)? ?\d+$";
    const BOOLEAN: &str = r"^(true|false)$";

    struct Reference {
        fractional: Regex,
        integral: Regex,
        boolean: Regex,
    }

    impl Reference {
        fn new() -> Self {
            let java = |pattern| RegexBuilder::new(pattern).unicode(false).build().unwrap();
            Self {
                fractional: java(FRACTIONAL),
                integral: java(INTEGRAL),
                boolean: java(BOOLEAN),
            }
        }

        fn classify(&self, text: &str) -> DataType {
            if self.fractional.is_match(text) {
                DataType::Fractional
            } else if self.integral.is_match(text) {
                DataType::Integral
            } else if self.boolean.is_match(text) {
                DataType::Boolean
            } else {
                DataType::String
            }
        }
    }

    /// Checks type against the regexes and, for numbers, the value against Rust's parser on
    /// the text without its sign-space (bit for bit).
    fn check(reference: &Reference, text: &str) {
        let (data_type, value) = classify_and_parse(text);
        assert_eq!(data_type, reference.classify(text), "type of {text:?}");
        match data_type {
            DataType::Integral | DataType::Fractional => {
                let normalised = text.replacen("- ", "-", 1).replacen("+ ", "+", 1);
                let expected: f64 = normalised.trim_start_matches(' ').parse().unwrap();
                let value = value.unwrap();
                assert_eq!(value.to_bits(), expected.to_bits(), "value of {text:?}");
            }
            _ => assert_eq!(value, None, "value of {text:?}"),
        }
    }

    #[test]
    fn hand_picked_values() {
        let cases = [
            ("0", DataType::Integral),
            ("-12", DataType::Integral),
            ("+ 7", DataType::Integral),
            (" 7", DataType::Integral),
            ("  7", DataType::String),
            ("7 ", DataType::String),
            ("3.0", DataType::Fractional),
            ("-1.5e-3", DataType::Fractional),
            ("1E10", DataType::Fractional),
            ("1.", DataType::String),
            (".5", DataType::String),
            ("1e", DataType::String),
            ("1e+", DataType::String),
            ("NaN", DataType::String),
            ("Infinity", DataType::String),
            ("true", DataType::Boolean),
            ("false", DataType::Boolean),
            ("True", DataType::String),
            ("", DataType::String),
            ("١٢", DataType::String),
            ("12\n", DataType::String),
        ];
        let reference = Reference::new();
        for (text, expected) in cases {
            assert_eq!(classify(text), expected, "{text:?}");
            check(&reference, text);
        }
        assert_eq!(
            classify_and_parse("- 2.5"),
            (DataType::Fractional, Some(-2.5))
        );
        assert_eq!(
            classify_and_parse("-0").1.unwrap().to_bits(),
            (-0.0f64).to_bits()
        );
    }

    #[test]
    fn every_short_string_matches_the_regexes() {
        // All strings of up to 5 symbols over an alphabet that reaches every regex branch.
        let alphabet = ["-", "+", " ", "0", "7", ".", "e", "E", "x", "٣"];
        let reference = Reference::new();
        let mut current = vec![String::new()];
        for _ in 0..5 {
            let mut next = Vec::with_capacity(current.len() * alphabet.len());
            for prefix in &current {
                for symbol in alphabet {
                    let text = format!("{prefix}{symbol}");
                    check(&reference, &text);
                    next.push(text);
                }
            }
            current = next;
        }
    }

    #[test]
    fn random_strings_match_the_regexes() {
        let symbols = [
            "-", "+", " ", "\t", ".", "e", "E", "e-", "e+", "x", "１", "٣",
        ];
        let words = [
            "0", "1", "5", "9", "22", "23", "123", "e308", "e-400", "true", "false",
        ];
        let long = [
            "True",
            "9007199254740993",
            "4503599627370497",
            "00000000000000000000001",
        ];
        let pieces: Vec<&str> = symbols.iter().chain(&words).chain(&long).copied().collect();
        let reference = Reference::new();
        let mut rng = StdRng::seed_from_u64(42);
        for _ in 0..200_000 {
            let len = 1 + rng.random_range(0..6);
            let text: String = (0..len)
                .map(|_| pieces[rng.random_range(0..pieces.len())])
                .collect();
            check(&reference, &text);
        }
    }

    #[test]
    fn random_numbers_parse_like_rust() {
        // Well-formed numbers of every length and exponent, to hit both the fast and slow path.
        let reference = Reference::new();
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..200_000 {
            let sign = ["", "-", "+", "- "][rng.random_range(0..4)];
            let integer: String = (0..1 + rng.random_range(0..20))
                .map(|_| char::from(b'0' + rng.random_range(0..10) as u8))
                .collect();
            let fraction: String = (0..rng.random_range(0..20))
                .map(|_| char::from(b'0' + rng.random_range(0..10) as u8))
                .collect();
            let mut text = format!("{sign}{integer}");
            if !fraction.is_empty() {
                text.push('.');
                text.push_str(&fraction);
            }
            if rng.random_range(0..2) == 0 {
                let exponent = rng.random_range(0..700) as i64 - 350;
                text.push_str(&format!("e{exponent}"));
            }
            check(&reference, &text);
        }
    }

    #[test]
    fn inferred_type_follows_deequ() {
        let counts = |unknown, integral, fractional, boolean, string| TypeCounts {
            unknown,
            integral,
            fractional,
            boolean,
            string,
        };
        assert_eq!(counts(0, 0, 0, 0, 0).inferred(), DataType::Unknown);
        assert_eq!(counts(5, 0, 0, 0, 0).inferred(), DataType::Unknown);
        assert_eq!(counts(5, 3, 0, 0, 0).inferred(), DataType::Integral);
        assert_eq!(counts(0, 3, 1, 0, 0).inferred(), DataType::Fractional);
        assert_eq!(counts(0, 0, 0, 2, 0).inferred(), DataType::Boolean);
        assert_eq!(counts(0, 1, 0, 2, 0).inferred(), DataType::String);
        assert_eq!(counts(0, 0, 1, 2, 0).inferred(), DataType::String);
        assert_eq!(counts(0, 9, 9, 0, 1).inferred(), DataType::String);
    }

    #[test]
    fn counts_add_and_merge() {
        let mut a = TypeCounts::default();
        for text in ["1", "2.5", "x", "true"] {
            a.add(classify(text));
        }
        a.add(DataType::Unknown);
        let mut b = TypeCounts::default();
        b.add_n(DataType::Integral, 3);
        a.merge(&b);
        assert_eq!(
            a,
            TypeCounts {
                unknown: 1,
                integral: 4,
                fractional: 1,
                boolean: 1,
                string: 1
            }
        );
        assert_eq!(a.total(), 8);
        assert_eq!(a.get(DataType::Integral), 4);
    }
}
