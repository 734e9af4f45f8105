//! driftd against files in SageMaker's own shape: a baseline written the way Model Monitor
//! writes it (Jackson's `" : "`, integer counts, doubles for the rest) and capture files.
//! Expected values are worked out by hand in each test.

use crate::common;

use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use serde_json::Value;

fn fixture() -> PathBuf {
    common::repo_root().join("tests/fixtures/sagemaker")
}

/// Capture records with CSV payloads: output `_c0` (a score), inputs `_c1` (age), `_c2` (state).
fn write_capture(path: &Path, rows: &[(&str, &str, &str)], bad_line_at: Option<usize>) {
    let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let mut lines: Vec<String> = rows
        .iter()
        .enumerate()
        .map(|(i, (score, age, state))| {
            let inputs = vec![age.to_string(), state.to_string()];
            common::capture_record(
                &inputs,
                Some(score),
                &format!("event-{i}"),
                start + chrono::Duration::seconds(i as i64),
            )
            .to_string()
        })
        .collect();
    if let Some(at) = bad_line_at {
        lines.insert(at - 1, r#"{"captureData": {"endpointInput": "#.to_string());
    }
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn check(baseline: &Path, input: &Path, out: &Path) -> i32 {
    common::driftd()
        .args(["check", "--format", "capture", "--baseline"])
        .arg(baseline)
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(out)
        .status()
        .unwrap()
        .code()
        .unwrap()
}

fn violations(out: &Path) -> Vec<(String, String, String)> {
    common::violation_triples(&out.join("constraint_violations.json"))
}

/// A SageMaker baseline read as is; 20 capture records with one fractional age, one missing
/// state and one unknown state, plus a malformed line that is quarantined with its number.
#[test]
fn sagemaker_baseline_and_capture_give_model_monitors_violations() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows: Vec<(&str, &str, &str)> = Vec::new();
    let scores = ["0.15", "0.35", "0.55", "0.75", "0.95"];
    let ages = ["22", "31", "44", "58", "63"];
    for i in 0..20 {
        rows.push((
            scores[i % 5],
            ages[i % 5],
            if i % 2 == 0 { "CA" } else { "NY" },
        ));
    }
    rows[3].1 = "33.5";
    rows[5].2 = "";
    rows[8].2 = "TX";
    let capture = dir.path().join("capture.jsonl");
    write_capture(&capture, &rows, Some(7));
    let out = dir.path().join("out");

    assert_eq!(check(&fixture(), &capture, &out), 3);

    let found = violations(&out);
    let expect = |feature: &str, check: &str, description: String| {
        assert!(
            found.contains(&(feature.to_string(), check.to_string(), description.clone())),
            "missing {feature} {check} {description:?} in {found:#?}"
        );
    };
    // 19 of 20 ages are integers.
    expect(
        "_c1",
        "data_type_check",
        "Data type match requirement is not met. Expected data type: Integral, Expected match: 100.0%. Observed: Only 95.0% of data is Integral.".into(),
    );
    // 19 of 20 states present.
    expect(
        "_c2",
        "completeness_check",
        "Data completeness requirement is not met. Expected: 100.0%. Observed: Only 95.0%.".into(),
    );
    // 18 of the 19 present states are in the domain {CA, NY}.
    expect(
        "_c2",
        "categorical_values_check",
        format!(
            "Value: {} does not meet the constraint requirement! ",
            18.0 / 19.0
        ),
    );
    assert_eq!(found.len(), 3, "{found:#?}");

    let quarantine = std::fs::read_to_string(out.join("quarantine.jsonl")).unwrap();
    let rejected: Vec<Value> = quarantine
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["line"], 7);
    assert_eq!(rejected[0]["reason"], "bad_json");
    assert!(
        rejected[0]["source"]
            .as_str()
            .unwrap()
            .ends_with("capture.jsonl")
    );

    let stats: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("statistics.json")).unwrap())
            .unwrap();
    assert_eq!(stats["dataset"]["item_count"], 20);
}

/// Headerless capture columns take the baseline's names by position; a column the baseline does
/// not have is reported as extra, one it has and the data lacks as missing.
#[test]
fn capture_columns_take_baseline_names_by_position() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("baseline.csv");
    std::fs::write(
        &csv,
        "score,age,state,income\n0.2,30,CA,10\n0.4,40,NY,20\n0.6,50,CA,30\n",
    )
    .unwrap();
    let baseline = dir.path().join("baseline");
    let status = common::driftd()
        .args(["baseline", "--format", "csv", "--header", "--input"])
        .arg(&csv)
        .arg("--output")
        .arg(&baseline)
        .status()
        .unwrap();
    assert!(status.success());

    let capture = dir.path().join("capture.jsonl");
    write_capture(&capture, &[("0.3", "35", "CA"), ("0.5", "45", "NY")], None);
    let out = dir.path().join("out");
    check(&baseline, &capture, &out);
    let stats: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("statistics.json")).unwrap())
            .unwrap();
    let names: Vec<&str> = stats["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["score", "age", "state"]);
    let found = violations(&out);
    assert!(
        found
            .iter()
            .any(|(f, c, _)| f == "income" && c == "missing_column_check"),
        "{found:#?}"
    );
    assert!(
        !found
            .iter()
            .any(|(f, _, _)| f == "age" || f == "score" || f == "state"),
        "{found:#?}"
    );
}

/// Reading a SageMaker baseline and writing it back loses nothing: every field and number of
/// both files survives (compared as JSON values, so only formatting may differ).
#[test]
fn sagemaker_baseline_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = driftd::baseline::Baseline::load(&fixture()).unwrap();
    baseline.write(dir.path()).unwrap();
    for file in ["statistics.json", "constraints.json"] {
        let read = |p: PathBuf| -> Value {
            serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
        };
        assert_eq!(
            read(dir.path().join(file)),
            read(fixture().join(file)),
            "{file}"
        );
    }
}
