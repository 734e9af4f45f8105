//! Numbers as the services print them, so driftd's files read exactly like theirs: Model
//! Monitor (Scala) prints doubles as Java's `Double.toString`, Clarify (Python) as `repr`.

use serde_json::Value;

/// A double as Java's `Double.toString` writes it, which is how Model Monitor's messages show
/// numbers: `100.0`, `0.95`, `1.0E-4`, `1.2345678E7`.
pub fn java_double(x: f64) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "NaN".into()
        } else if x > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let magnitude = x.abs();
    if x == 0.0 || (1e-3..1e7).contains(&magnitude) {
        let text = format!("{x}");
        if text.contains('.') {
            text
        } else {
            format!("{text}.0")
        }
    } else {
        let text = format!("{x:e}");
        let (mantissa, exponent) = text.split_once('e').expect("{:e} always has an exponent");
        let mantissa = if mantissa.contains('.') {
            mantissa.to_string()
        } else {
            format!("{mantissa}.0")
        };
        format!("{mantissa}E{exponent}")
    }
}

/// Python's `str()` of a JSON value from the config (what Clarify joins into its strings).
pub fn python_str(value: &Value) -> String {
    match value {
        Value::Number(n) if n.is_f64() => python_float(n.as_f64().unwrap_or(f64::NAN)),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

/// Python's `repr` of a float: the shortest digits that round-trip, positional for decimal
/// exponents −4 … 15 (always with a fraction, `40.0`), scientific otherwise (`1e-05`, `1.5e+16`).
pub fn python_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    // Rust's `{:e}` gives the same shortest round-trip digits, as `d.ddde±x`.
    let scientific = format!("{x:e}");
    let (mantissa, exponent) = scientific.split_once('e').expect("{:e} has an exponent");
    let exponent: i32 = exponent.parse().expect("integer exponent");
    let (sign, mantissa) = mantissa
        .strip_prefix('-')
        .map_or(("", mantissa), |m| ("-", m));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if !(-4..16).contains(&exponent) {
        let sign_e = if exponent < 0 { '-' } else { '+' };
        return format!("{sign}{mantissa}e{sign_e}{:02}", exponent.abs());
    }
    let point = exponent + 1; // digits before the decimal point
    if point <= 0 {
        format!("{sign}0.{}{digits}", "0".repeat((-point) as usize))
    } else if point as usize >= digits.len() {
        format!(
            "{sign}{digits}{}.0",
            "0".repeat(point as usize - digits.len())
        )
    } else {
        let (int, frac) = digits.split_at(point as usize);
        format!("{sign}{int}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_as_java_prints_them() {
        assert_eq!(java_double(100.0), "100.0");
        assert_eq!(java_double(0.95), "0.95");
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(99.64592817400101), "99.64592817400101");
        assert_eq!(java_double(1e-4), "1.0E-4");
        assert_eq!(java_double(-2.5e-5), "-2.5E-5");
        assert_eq!(java_double(12345678.0), "1.2345678E7");
        assert_eq!(java_double(f64::INFINITY), "Infinity");
    }

    #[test]
    fn floats_print_as_python_does() {
        for (x, want) in [
            (0.5, "0.5"),
            (40.0, "40.0"),
            (-3.25, "-3.25"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1.5e16, "1.5e+16"),
            (1e15, "1000000000000000.0"),
            (0.9936148802477393, "0.9936148802477393"),
            (123456.789, "123456.789"),
            (0.0, "0.0"),
        ] {
            assert_eq!(python_float(x), want, "{x}");
        }
        assert_eq!(python_str(&serde_json::json!(1)), "1");
        assert_eq!(python_str(&serde_json::json!(1.0)), "1.0");
        assert_eq!(python_str(&serde_json::json!("yes")), "yes");
    }
}
