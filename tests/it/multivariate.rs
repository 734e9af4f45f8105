//! `driftd baseline|check --kind multivariate-drift` (PCA reconstruction error, as NannyML
//! 0.13.1's DataReconstructionDriftCalculator) checked two ways:
//! - on generated data with continuous and categorical features, missing values and an unseen
//!   category, against an independent pandas/scikit-learn implementation
//!   (tests/it/multivariate_oracle.py): components kept, every reference chunk's error, the
//!   thresholds, every input chunk's error, sampling error and alert;
//! - the case: a stream whose correlation between two features breaks while each
//!   marginal stays the same is flagged by this check and not by the per-feature data-quality
//!   check; a stream without change is flagged by neither.

use crate::common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// A standard normal draw (Box–Muller).
pub fn normal(rng: &mut fastrand::Rng) -> f64 {
    let u = 1.0 - rng.f64();
    let v = rng.f64();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

fn write_csv(path: &Path, header: &str, rows: &[Vec<String>]) {
    let mut text = format!("{header}\n");
    for row in rows {
        writeln!(text, "{}", row.join(",")).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

fn driftd_run(args: &[&str], paths: &[(&str, &Path)]) -> i32 {
    let mut command = common::driftd();
    command.args(args);
    for (flag, path) in paths {
        command.arg(flag).arg(path);
    }
    let output = command.output().unwrap();
    let code = output.status.code().unwrap();
    assert!(
        code == 0 || code == 3,
        "driftd {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    code
}

fn baseline(reference: &Path, out: &Path, chunk_size: usize) {
    let size = chunk_size.to_string();
    let code = driftd_run(
        &[
            "baseline",
            "--kind",
            "multivariate-drift",
            "--format",
            "csv",
            "--header",
            "--chunk-size",
            &size,
        ],
        &[("--input", reference), ("--output", out)],
    );
    assert_eq!(code, 0);
}

fn check(baseline: &Path, input: &Path, out: &Path) -> (Value, i32) {
    let code = driftd_run(
        &[
            "check",
            "--kind",
            "multivariate-drift",
            "--format",
            "csv",
            "--header",
        ],
        &[
            ("--baseline", baseline),
            ("--input", input),
            ("--output", out),
        ],
    );
    let text = std::fs::read_to_string(out.join("multivariate_drift.json")).unwrap();
    (serde_json::from_str(&text).unwrap(), code)
}

#[track_caller]
pub fn assert_close(what: &str, ours: f64, theirs: f64) {
    assert!(
        (ours - theirs).abs() <= 1e-9 * theirs.abs().max(1.0),
        "{what}: driftd {ours} vs scikit-learn {theirs}"
    );
}

/// Rows of a, b (correlated with a), c (continuous, scaled), colour (categorical, tied to a),
/// n (small integers); some values missing. `shift` moves b's relation to a.
fn mixed_rows(rng: &mut fastrand::Rng, n: usize, shift: f64, unseen: bool) -> Vec<Vec<String>> {
    (0..n)
        .map(|_| {
            let a = normal(rng);
            let b = (0.8 - shift) * a + 0.6 * normal(rng);
            let c = 5.0 + 2.0 * normal(rng);
            let colour = if unseen && rng.f64() < 0.05 {
                "purple"
            } else if a + 0.5 * normal(rng) > 0.4 {
                "red"
            } else if rng.bool() {
                "green"
            } else {
                "blue"
            };
            let count = rng.u32(0..6);
            let missing = |rng: &mut fastrand::Rng, text: String| {
                if rng.f64() < 0.03 {
                    String::new()
                } else {
                    text
                }
            };
            vec![
                format!("{a}"),
                missing(rng, format!("{b}")),
                format!("{c}"),
                missing(rng, colour.to_string()),
                format!("{count}"),
            ]
        })
        .collect()
}

#[test]
fn errors_and_thresholds_match_scikit_learn() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = fastrand::Rng::with_seed(17);
    let header = "a,b,c,colour,n";
    let reference = dir.path().join("reference.csv");
    write_csv(&reference, header, &mixed_rows(&mut rng, 2400, 0.0, false));
    let input = dir.path().join("input.csv");
    // 1300 rows: six chunks of 200, the last holding the 100 left over; from row 600 on, b's
    // relation to a changes and an unseen colour appears.
    let mut rows = mixed_rows(&mut rng, 600, 0.0, false);
    rows.extend(mixed_rows(&mut rng, 700, 1.2, true));
    write_csv(&input, header, &rows);

    let base = dir.path().join("baseline");
    baseline(&reference, &base, 200);
    let (ours, _) = check(&base, &input, &dir.path().join("check"));
    let saved: Value = serde_json::from_str(
        &std::fs::read_to_string(base.join("multivariate_baseline.json")).unwrap(),
    )
    .unwrap();
    let oracle = common::run_python(
        include_str!("multivariate_oracle.py"),
        &json!({
            "reference": reference,
            "analysis": input,
            "features": ["a", "b", "c", "colour", "n"],
            "chunk_size": 200,
        }),
    );
    assert_eq!(ours["components"], oracle["components"]);
    let reference_errors = saved["reference_chunk_errors"].as_array().unwrap();
    let oracle_errors = oracle["reference_chunk_errors"].as_array().unwrap();
    assert_eq!(reference_errors.len(), 12);
    assert_eq!(reference_errors.len(), oracle_errors.len());
    for (i, (a, b)) in reference_errors.iter().zip(oracle_errors).enumerate() {
        assert_close(
            &format!("reference chunk {i}"),
            a.as_f64().unwrap(),
            b.as_f64().unwrap(),
        );
    }
    for bound in ["lower_threshold", "upper_threshold"] {
        match (ours[bound].as_f64(), oracle[bound].as_f64()) {
            (Some(a), Some(b)) => assert_close(bound, a, b),
            (None, None) => {}
            (a, b) => panic!("{bound}: driftd {a:?} vs scikit-learn {b:?}"),
        }
    }
    let chunks = ours["chunks"].as_array().unwrap();
    let expected = oracle["chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), 6);
    assert_eq!(chunks.len(), expected.len());
    for (i, (c, e)) in chunks.iter().zip(expected).enumerate() {
        assert_eq!(c["start_row"], e["start_row"], "chunk {i}");
        assert_eq!(c["end_row"], e["end_row"], "chunk {i}");
        for field in ["reconstruction_error", "sampling_error"] {
            assert_close(
                &format!("chunk {i} {field}"),
                c[field].as_f64().unwrap(),
                e[field].as_f64().unwrap(),
            );
        }
        assert_eq!(c["alert"], e["alert"], "chunk {i} alert");
    }
    // The case is not vacuous: the drifted chunks alert, the first ones do not.
    let alerts: Vec<bool> = chunks
        .iter()
        .map(|c| c["alert"].as_bool().unwrap())
        .collect();
    assert_eq!(&alerts[..3], [false, false, false]);
    assert!(alerts[3..].iter().all(|&a| a), "{alerts:?}");
}

/// a and b standard normal with correlation `rho`, c independent: each marginal is N(0, 1)
/// whatever `rho` is.
pub fn correlated_rows(rng: &mut fastrand::Rng, n: usize, rho: f64) -> Vec<Vec<String>> {
    (0..n)
        .map(|_| {
            let a = normal(rng);
            let b = rho * a + (1.0 - rho * rho).sqrt() * normal(rng);
            let c = normal(rng);
            vec![format!("{a}"), format!("{b}"), format!("{c}")]
        })
        .collect()
}

/// The per-feature data-quality `driftd check` (default kind): its exit code.
fn data_quality_check(reference: &Path, input: &Path, dir: &Path) -> i32 {
    let base = dir.join("dq-baseline");
    let code = driftd_run(
        &["baseline", "--format", "csv", "--header"],
        &[("--input", reference), ("--output", &base)],
    );
    assert_eq!(code, 0);
    driftd_run(
        &["check", "--format", "csv", "--header"],
        &[
            ("--baseline", &base),
            ("--input", input),
            ("--output", &dir.join("dq-check")),
        ],
    )
}

#[test]
fn a_broken_correlation_is_flagged_here_and_not_by_the_per_feature_check() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = fastrand::Rng::with_seed(3);
    let header = "a,b,c";
    let reference = dir.path().join("reference.csv");
    write_csv(&reference, header, &correlated_rows(&mut rng, 5000, 0.9));
    let base = dir.path().join("baseline");
    baseline(&reference, &base, 500);

    let streams: [(&str, f64); 2] = [("steady", 0.9), ("broken", -0.9)];
    for (name, rho) in streams {
        let stream_dir: PathBuf = dir.path().join(name);
        std::fs::create_dir_all(&stream_dir).unwrap();
        let input = stream_dir.join("input.csv");
        write_csv(&input, header, &correlated_rows(&mut rng, 3000, rho));
        let (result, code) = check(&base, &input, &stream_dir.join("mv"));
        let chunks = result["chunks"].as_array().unwrap();
        assert_eq!(chunks.len(), 6);
        let alerts = chunks.iter().filter(|c| c["alert"] == true).count();
        let dq = data_quality_check(&reference, &input, &stream_dir);
        assert_eq!(dq, 0, "{name}: the per-feature check sees no change");
        if name == "steady" {
            assert_eq!((code, alerts), (0, 0), "{name}: {result}");
        } else {
            assert_eq!((code, alerts), (3, 6), "{name}: {result}");
            // The features whose relation broke carry the error.
            for chunk in chunks {
                let mut top: Vec<&str> = chunk["top_features"].as_array().unwrap()[..2]
                    .iter()
                    .map(|f| f["feature"].as_str().unwrap())
                    .collect();
                top.sort();
                assert_eq!(top, ["a", "b"], "{chunk}");
            }
        }
    }
}

#[test]
fn unreadable_rows_are_quarantined_and_another_chunk_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = fastrand::Rng::with_seed(5);
    let header = "a,b,c";
    let reference = dir.path().join("reference.csv");
    write_csv(&reference, header, &correlated_rows(&mut rng, 1000, 0.9));
    let base = dir.path().join("baseline");
    baseline(&reference, &base, 100);
    let mut rows = correlated_rows(&mut rng, 300, 0.9);
    rows[7][1] = "abc".into();
    rows[250][2] = String::new(); // missing: imputed, not refused
    let input = dir.path().join("input.csv");
    write_csv(&input, header, &rows);
    let out = dir.path().join("check");
    let (result, _) = check(&base, &input, &out);
    assert_eq!(result["rows_refused"], 1);
    assert_eq!(result["input_rows"], 299);
    let quarantine = std::fs::read_to_string(out.join("quarantine.jsonl")).unwrap();
    assert!(
        quarantine.contains("record 8") && quarantine.contains("\\\"abc\\\""),
        "{quarantine}"
    );

    let output = common::driftd()
        .args([
            "check",
            "--kind",
            "multivariate-drift",
            "--format",
            "csv",
            "--header",
        ])
        .args(["--chunk-size", "50", "--baseline"])
        .arg(&base)
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(dir.path().join("other"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("chunks of 100 rows"), "{stderr}");
}
