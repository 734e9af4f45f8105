//! Model-quality monitors in `driftd run`: labelled files (predictions and ground truth in
//! each row) become hourly windows with Model Monitor's model-quality files, checked against
//! a baseline made by `driftd baseline --kind model-quality`, and rules on their metrics. The
//! expected numbers are worked by hand from the confusion counts each hour is built with.

use crate::common;

use std::path::Path;

use serde_json::Value;

/// 300 binary rows: label `i % 2`, the prediction right except where `wrong(i)`.
fn labelled(wrong: impl Fn(usize) -> bool) -> String {
    let mut csv = String::from("prediction,label\n");
    for i in 0..300 {
        let label = i % 2;
        let prediction = if wrong(i) { 1 - label } else { label };
        csv.push_str(&format!("{prediction},{label}\n"));
    }
    csv
}

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn metric(statistics: &Value, name: &str) -> Value {
    statistics["binary_classification_metrics"][name].clone()
}

#[test]
fn labelled_files_become_model_quality_windows_violations_and_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Hour 00: the 30 rows with i % 10 == 0 (label 0) are predicted 1: TP 150, TN 120, FP 30.
    let good = labelled(|i| i % 10 == 0);
    // Hour 01: i % 10 in {0, 6} (label 0) and {1, 5} (label 1) are wrong: TP 90, TN 90, FP 60,
    // FN 60; and one row without a ground truth.
    let bad = labelled(|i| [0, 1, 5, 6].contains(&(i % 10))) + "1,\n";
    std::fs::write(root.join("baseline.csv"), &good).unwrap();
    for (hour, body) in [("00", &good), ("01", &bad)] {
        let folder = root.join(format!("in/batch/2026/11/01/{hour}"));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("part.csv"), body).unwrap();
    }
    let attributes = [
        "--kind",
        "model-quality",
        "--problem-type",
        "BinaryClassification",
        "--inference-attribute",
        "prediction",
        "--ground-truth-attribute",
        "label",
    ];
    let status = common::driftd()
        .arg("baseline")
        .args(attributes)
        .args(["--format", "csv", "--header", "--input"])
        .arg(root.join("baseline.csv"))
        .arg("--output")
        .arg(root.join("baseline"))
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::create_dir_all(root.join("rules")).unwrap();
    std::fs::write(
        root.join("rules/quality.toml"),
        "[[rule]]\nname = \"accuracy-low\"\nseverity = \"critical\"\n[rule.condition.model_quality]\nmetrics = [\"accuracy\"]\nbelow = 0.8\n[rule.alert]\n",
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
name = "loans-quality"
path = "batch/{yyyy}/{mm}/{dd}/{hh}/*.csv"
format = "csv"
header = true
kind = "model_quality"
baseline = "baseline"
problem_type = "BinaryClassification"
inference_attribute = "prediction"
ground_truth_attribute = "label"
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
        // accuracy, precision, recall, f0.5, f1, f2 and the four rates all got worse.
        stdout.contains(
            "300 labelled records (1 without a usable value), 10 model-quality violations"
        ),
        "{stdout}"
    );

    let hour = |h: &str| root.join(format!("out/loans-quality/2026/11/01/{h}"));
    let calm = json(&hour("00").join("statistics.json"));
    assert_eq!(calm["dataset"]["item_count"], 300);
    assert_eq!(metric(&calm, "accuracy")["value"], 0.9);
    assert_eq!(metric(&calm, "precision")["value"], 150.0 / 180.0);
    assert_eq!(metric(&calm, "recall")["value"], 1.0);
    // At least 200 rows: a standard deviation from the five subsamples.
    assert!(metric(&calm, "accuracy")["standard_deviation"].is_f64());
    assert_eq!(
        json(&hour("00").join("constraint_violations.json"))["violations"],
        serde_json::json!([])
    );

    let worse = json(&hour("01").join("statistics.json"));
    assert_eq!(worse["dataset"]["item_count"], 300);
    assert_eq!(metric(&worse, "accuracy")["value"], 0.6);
    assert_eq!(metric(&worse, "precision")["value"], 0.6);
    assert_eq!(metric(&worse, "recall")["value"], 0.6);
    let violations = json(&hour("01").join("constraint_violations.json"));
    let accuracy = violations["violations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["metric_name"] == "accuracy")
        .unwrap_or_else(|| panic!("{violations}"));
    assert_eq!(accuracy["constraint_check_type"], "LessThanThreshold");
    let description = accuracy["description"].as_str().unwrap();
    assert!(
        description.starts_with("Metric accuracy with 0.6 +/- ")
            && description.ends_with(" was LessThanThreshold '0.9'"),
        "{description}"
    );
    let datums = std::fs::read_to_string(hour("01").join("cloudwatch_metrics.jsonl")).unwrap();
    let accuracy_datum = datums
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|d| d["MetricName"] == "accuracy")
        .unwrap_or_else(|| panic!("{datums}"));
    assert_eq!(accuracy_datum["Value"], 0.6);
    assert_eq!(
        accuracy_datum["Dimensions"],
        serde_json::json!([{"Name": "MonitoringSchedule", "Value": "loans-quality"}])
    );

    // The rule fires on hour 01 only.
    common::the_one_firing(&root.join("out"), "accuracy-low", "2026-11-01T01:00:00Z");
}
