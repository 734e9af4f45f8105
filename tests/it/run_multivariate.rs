//! Multivariate-drift monitors in `driftd run` (embedded mode). Two hours of capture whose
//! features a, b, c are each N(0, 1) throughout; a and b are correlated +0.9 as in the reference
//! in hour 00 and −0.9 in hour 01. Each hourly window is one chunk: hour 01 alerts with a and b
//! carrying the error, hour 00 does not; a rule on the alert fires once. Each window's error and
//! sampling error are checked against the pandas/scikit-learn oracle on the window's rows
//! (tests/it/multivariate_oracle.py, the window as one chunk) and against `driftd check --kind
//! multivariate-drift` on the same capture files.

use crate::common;
use crate::multivariate::{assert_close, correlated_rows};

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

fn json_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The rows as a CSV with the capture's column names, for the oracle.
fn write_csv(path: &Path, rows: &[Vec<String>]) {
    let mut text = String::from("_c0,_c1,_c2\n");
    for row in rows {
        text.push_str(&row.join(","));
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_broken_correlation_alerts_in_its_window_only_with_the_same_error_as_check_and_the_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut rng = fastrand::Rng::with_seed(11);

    // The reference: 3,000 rows, thresholds learned on chunks of 500.
    let reference = correlated_rows(&mut rng, 3000, 0.9);
    let reference_capture = root.join("reference/capture.jsonl");
    common::write_capture_file(
        &reference_capture,
        &reference,
        &[],
        common::utc("2026-10-31T00:00:00Z"),
    );
    write_csv(&root.join("reference.csv"), &reference);
    let status = common::driftd()
        .args([
            "baseline",
            "--kind",
            "multivariate-drift",
            "--format",
            "capture",
        ])
        .args(["--chunk-size", "500", "--input"])
        .arg(&reference_capture)
        .arg("--output")
        .arg(root.join("mv-baseline"))
        .status()
        .unwrap();
    assert!(status.success());

    // Hour 00: 480 rows as in the reference, in two objects; hour 01: 520 rows, broken.
    let steady = correlated_rows(&mut rng, 480, 0.9);
    let broken = correlated_rows(&mut rng, 520, -0.9);
    let hour_dir = |h: u32| root.join(format!("in/churn/AllTraffic/2026/11/01/{h:02}"));
    let mut files: Vec<(Vec<PathBuf>, &[Vec<String>])> = Vec::new();
    let (first, second) = steady.split_at(240);
    let hour0 = [hour_dir(0).join("a.jsonl"), hour_dir(0).join("b.jsonl")];
    common::write_capture_file(&hour0[0], first, &[], common::utc("2026-11-01T00:00:00Z"));
    common::write_capture_file(&hour0[1], second, &[], common::utc("2026-11-01T00:30:00Z"));
    files.push((hour0.to_vec(), &steady));
    let hour1 = hour_dir(1).join("a.jsonl");
    common::write_capture_file(&hour1, &broken, &[], common::utc("2026-11-01T01:00:00Z"));
    files.push((vec![hour1], &broken));

    std::fs::create_dir_all(root.join("rules")).unwrap();
    std::fs::write(
        root.join("rules/multivariate.toml"),
        "[[rule]]\nname = \"joint-drift\"\nseverity = \"warning\"\n[rule.condition.multivariate_drift]\n[rule.alert]\n",
    )
    .unwrap();
    std::fs::write(
        root.join("driftd.toml"),
        r#"
[input]
directory = "in"

[output]
directory = "out"

[rules]
directory = "rules"

[[monitor]]
name = "churn-joint"
path = "{endpoint}/{variant}/{yyyy}/{mm}/{dd}/{hh}/*.jsonl"
format = "capture"
kind = "multivariate-drift"
baseline = "mv-baseline/multivariate_baseline.json"
"#,
    )
    .unwrap();
    let output = common::driftd()
        .args(["run", "--once", "--config"])
        .arg(root.join("driftd.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("520 rows (baseline chunks: 500 rows), reconstruction error")
            && stdout.contains("multivariate drift\n"),
        "{stdout}"
    );

    let baseline = json_file(&root.join("mv-baseline/multivariate_baseline.json"));
    for (h, (paths, rows)) in files.iter().enumerate() {
        let window = root.join(format!("out/churn/churn-joint/2026/11/01/{h:02}"));
        let file = json_file(&window.join("multivariate_drift.json"));
        let drifted = h == 1;
        // The window is one chunk; its row count and the baseline's chunk size side by side.
        assert_eq!(file["input_rows"], rows.len(), "{file}");
        assert_eq!(file["chunk_size"], 500);
        assert_eq!(file["rows_refused"], 0);
        assert_eq!(file["features"], json!(["_c0", "_c1", "_c2"]));
        assert_eq!(file["upper_threshold"], baseline["upper_threshold"]);
        let chunks = file["chunks"].as_array().unwrap();
        assert_eq!(chunks.len(), 1, "{file}");
        let chunk = &chunks[0];
        assert_eq!(
            (chunk["start_row"].clone(), chunk["end_row"].clone()),
            (json!(0), json!(rows.len() - 1))
        );
        assert_eq!(chunk["alert"], drifted, "hour {h}: {chunk}");
        let error = chunk["reconstruction_error"].as_f64().unwrap();
        if drifted {
            let mut top: Vec<&str> = chunk["top_features"].as_array().unwrap()[..2]
                .iter()
                .map(|f| f["feature"].as_str().unwrap())
                .collect();
            top.sort();
            assert_eq!(top, ["_c0", "_c1"], "{chunk}");
        }

        // The oracle on the window's rows as one chunk.
        let csv = root.join(format!("window-{h}.csv"));
        write_csv(&csv, rows);
        let oracle = common::run_python(
            include_str!("multivariate_oracle.py"),
            &json!({
                "reference": root.join("reference.csv"),
                "analysis": csv,
                "features": ["_c0", "_c1", "_c2"],
                "chunk_size": 500,
                "analysis_chunk_size": rows.len(),
            }),
        );
        let expected = &oracle["chunks"][0];
        assert_eq!(oracle["chunks"].as_array().unwrap().len(), 1);
        for field in ["reconstruction_error", "sampling_error"] {
            assert_close(
                &format!("hour {h} {field}"),
                chunk[field].as_f64().unwrap(),
                expected[field].as_f64().unwrap(),
            );
        }
        assert_close(
            "upper threshold",
            file["upper_threshold"].as_f64().unwrap(),
            oracle["upper_threshold"].as_f64().unwrap(),
        );
        assert_eq!(chunk["alert"], expected["alert"], "hour {h}");

        // `driftd check` on the window's capture files: one chunk (a window of fewer than twice
        // the chunk size is one chunk there too), the same numbers up to the merge's rounding.
        let check_dir = root.join(format!("check-{h}"));
        let mut command = common::driftd();
        command
            .args([
                "check",
                "--kind",
                "multivariate-drift",
                "--format",
                "capture",
            ])
            .arg("--baseline")
            .arg(root.join("mv-baseline"))
            .arg("--output")
            .arg(&check_dir);
        for path in paths {
            command.arg("--input").arg(path);
        }
        let status = command.status().unwrap();
        assert_eq!(status.code(), Some(if drifted { 3 } else { 0 }));
        let check = json_file(&check_dir.join("multivariate_drift.json"));
        let theirs = &check["chunks"][0];
        assert_eq!(check["chunks"].as_array().unwrap().len(), 1);
        for field in ["reconstruction_error", "sampling_error"] {
            let (a, b) = (
                chunk[field].as_f64().unwrap(),
                theirs[field].as_f64().unwrap(),
            );
            assert!(
                (a - b).abs() <= 1e-12 * b,
                "hour {h} {field}: run {a}, check {b}"
            );
        }
        assert_eq!(
            chunk["top_features"][0]["feature"],
            theirs["top_features"][0]["feature"]
        );

        // The datums and the violation.
        let datums: Vec<Value> = std::fs::read_to_string(window.join("cloudwatch_metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let value = |name: &str| {
            let datum = datums.iter().find(|d| d["MetricName"] == name);
            datum.unwrap_or_else(|| panic!("{name} in {datums:?}"))["Value"]
                .as_f64()
                .unwrap()
        };
        assert_eq!(value("multivariate_reconstruction_error"), error);
        assert_eq!(
            value("multivariate_drift_alert"),
            if drifted { 1.0 } else { 0.0 }
        );
        assert_eq!(
            datums[0]["Dimensions"],
            json!([
                {"Name": "Endpoint", "Value": "churn"},
                {"Name": "MonitoringSchedule", "Value": "churn-joint"}
            ])
        );
        let violations = json_file(&window.join("constraint_violations.json"));
        let violations = violations["violations"].as_array().unwrap();
        assert_eq!(violations.len(), usize::from(drifted), "{violations:?}");
        if drifted {
            assert_eq!(
                violations[0]["constraint_check_type"],
                "multivariate_drift_check"
            );
            assert_eq!(
                violations[0]["feature_name"],
                chunk["top_features"][0]["feature"]
            );
        }
    }

    // The rule fires on hour 01 only, with the window's error.
    let evidence = common::the_one_firing(&root.join("out"), "joint-drift", "2026-11-01T01:00:00Z");
    assert_eq!(evidence["matches"][0]["what"], "reconstruction_error");
    let hour1 =
        json_file(&root.join("out/churn/churn-joint/2026/11/01/01/multivariate_drift.json"));
    assert_eq!(
        evidence["matches"][0]["value"],
        hour1["chunks"][0]["reconstruction_error"]
    );
}

/// A multivariate-drift monitor's rows without a feature column, or with a value that is not
/// a number, are refused and counted under that feature; the window's other rows count.
#[test]
fn rows_without_a_feature_or_with_an_unreadable_value_are_refused_per_feature() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut rng = fastrand::Rng::with_seed(5);
    let reference = correlated_rows(&mut rng, 600, 0.9);
    let reference_csv = root.join("reference.csv");
    write_csv(&reference_csv, &reference);
    let status = common::driftd()
        .args([
            "baseline",
            "--kind",
            "multivariate-drift",
            "--format",
            "csv",
            "--header",
        ])
        .args(["--chunk-size", "100", "--input"])
        .arg(&reference_csv)
        .arg("--output")
        .arg(root.join("mv-baseline"))
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::create_dir_all(root.join("in")).unwrap();
    let mut rows = correlated_rows(&mut rng, 100, 0.9);
    rows[3][1] = "abc".into();
    write_csv(&root.join("in/good.csv"), &rows);
    // Two columns only: _c2 is missing from every row of this object.
    std::fs::write(root.join("in/narrow.csv"), "_c0,_c1\n0.1,0.2\n0.3,0.4\n").unwrap();
    std::fs::write(
        root.join("driftd.toml"),
        r#"
[input]
directory = "in"

[output]
directory = "out"

[[monitor]]
name = "joint"
path = "*.csv"
format = "csv"
header = true
kind = "multivariate_drift"
baseline = "mv-baseline"
"#,
    )
    .unwrap();
    let output = common::driftd()
        .args(["run", "--once", "--config"])
        .arg(root.join("driftd.toml"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let files: Vec<PathBuf> = common::aws::walk(&root.join("out"))
        .into_iter()
        .filter(|p| p.ends_with("multivariate_drift.json"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let file = json_file(&files[0]);
    assert_eq!(file["input_rows"], 99);
    assert_eq!(file["rows_refused"], 3);
    assert_eq!(file["rows_refused_by_feature"], json!({"_c1": 1, "_c2": 2}));
    assert_eq!(file["chunks"][0]["rows"], 99);
}

#[test]
fn a_multivariate_monitor_needs_a_multivariate_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("in")).unwrap();
    std::fs::create_dir_all(root.join("not-a-baseline")).unwrap();
    std::fs::write(
        root.join("driftd.toml"),
        r#"
[input]
directory = "in"

[output]
directory = "out"

[[monitor]]
name = "joint"
path = "*.csv"
format = "csv"
kind = "multivariate_drift"
baseline = "not-a-baseline"
"#,
    )
    .unwrap();
    let output = common::driftd()
        .args(["run", "--once", "--config"])
        .arg(root.join("driftd.toml"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("monitor[0] (joint).baseline")
            && stderr.contains("multivariate_baseline.json")
            && stderr.contains("driftd baseline --kind multivariate-drift"),
        "{stderr}"
    );
}
