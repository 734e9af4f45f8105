//! The label join in `driftd run`: capture files give a model-quality monitor its
//! predictions, ground-truth files (SageMaker's format, in hour folders of when they were
//! collected) their labels, joined by event id. Every expected number is worked by hand from
//! the records written here.

use crate::common;

use std::path::Path;

use serde_json::{Value, json};

fn json_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Capture records with CSV output `label,score`: `(event id, second of the hour, label, score)`.
fn write_capture(path: &Path, hour: &str, records: &[(&str, u32, u8, f64)]) {
    let mut text = String::new();
    for (id, second, label, score) in records {
        let record = json!({
            "captureData": {
                "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": "5,3.5", "encoding": "CSV"},
                "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT", "data": format!("{label},{score}"), "encoding": "CSV"}
            },
            "eventMetadata": {"eventId": id, "inferenceTime": format!("2026-11-01T{hour}:00:{second:02}Z")},
            "eventVersion": "0"
        });
        text.push_str(&record.to_string());
        text.push('\n');
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Ground-truth records: `(event id, label)`.
fn write_labels(path: &Path, labels: &[(&str, u8)]) {
    let mut text = String::new();
    for (id, label) in labels {
        let record = json!({
            "groundTruthData": {"data": label.to_string(), "encoding": "CSV"},
            "eventMetadata": {"eventId": id},
            "eventVersion": "0"
        });
        text.push_str(&record.to_string());
        text.push('\n');
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

const CONFIG: &str = r#"
[input]
directory = "in"

[output]
directory = "out"

[window]
size = "1h"
allowed_lateness = "5m"

[[monitor]]
name = "quality"
path = "capture/{endpoint}/AllTraffic/{yyyy}/{mm}/{dd}/{hh}/*.jsonl"
ground_truth_path = "labels/{endpoint}/{yyyy}/{mm}/{dd}/{hh}/*.jsonl"
format = "capture"
kind = "model_quality"
baseline = "baseline"
problem_type = "BinaryClassification"
inference_attribute = "_c0"
probability_attribute = "_c1"
ground_truth_attribute = "label"
label_lateness = "2h"
orphan_ttl = "90m"
"#;

/// Writes the baseline (every prediction right: accuracy 1) and the config.
fn setup(root: &Path) {
    let mut csv = String::from("prediction,label\n");
    for i in 0..20 {
        csv.push_str(&format!("{},{}\n", i % 2, i % 2));
    }
    std::fs::write(root.join("baseline.csv"), csv).unwrap();
    let code = common::model_quality(
        "baseline",
        &[
            "--problem-type",
            "BinaryClassification",
            "--inference-attribute",
            "prediction",
            "--ground-truth-attribute",
            "label",
        ],
        &root.join("baseline.csv"),
        None,
        &root.join("baseline"),
    );
    assert_eq!(code, 0);
    std::fs::write(root.join("driftd.toml"), CONFIG).unwrap();
}

fn run_once(root: &Path) -> String {
    let output = common::driftd()
        .args(["run", "--once", "--config"])
        .arg(root.join("driftd.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn capture_and_ground_truth_join_into_model_quality_windows_with_their_counts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    setup(root);
    // Window 00:00–01:00: ten predictions p0..p9, label 1 with score 0.9 for even i, label 0
    // with score 0.2 for odd i; p3 predicted twice (the second record is a duplicate).
    let mut records: Vec<(String, u32, u8, f64)> = (0..10)
        .map(|i| {
            let even = i % 2 == 0;
            (
                format!("p{i}"),
                i,
                u8::from(even),
                if even { 0.9 } else { 0.2 },
            )
        })
        .collect();
    records.push(("p3".into(), 30, 1, 0.95));
    let records: Vec<(&str, u32, u8, f64)> = records
        .iter()
        .map(|(id, s, l, p)| (id.as_str(), *s, *l, *p))
        .collect();
    write_capture(
        &root.join("in/capture/ep/AllTraffic/2026/11/01/00/a.jsonl"),
        "00",
        &records,
    );
    // Collected at 01:00, before the window closes for labels (01:00 + 5 min + 2 h): labels
    // of p0..p7, a second label for p0 (the first wins), and one for an unknown id.
    // p0 1/1 TP, p1 0/0 TN, p2 1/0 FP, p3 0/1 FN, p4 1/1 TP, p5 0/0 TN, p6 1/1 TP, p7 0/0 TN.
    write_labels(
        &root.join("in/labels/ep/2026/11/01/01/a.jsonl"),
        &[
            ("p0", 1),
            ("p1", 0),
            ("p2", 0),
            ("p3", 1),
            ("p4", 1),
            ("p5", 0),
            ("p6", 1),
            ("p7", 0),
            ("p0", 0),
            ("unknown", 1),
        ],
    );
    // Collected at 04:00, after the window closed: p8's label is late. p9 never gets one.
    write_labels(
        &root.join("in/labels/ep/2026/11/01/04/b.jsonl"),
        &[("p8", 1)],
    );
    let stdout = run_once(root);

    let hour = root.join("out/ep/quality/2026/11/01/00");
    let statistics = json_file(&hour.join("statistics.json"));
    let metrics = &statistics["binary_classification_metrics"];
    assert_eq!(statistics["dataset"]["item_count"], 8, "{statistics}");
    let confusion = &metrics["confusion_matrix"];
    assert_eq!(confusion["1"]["1"], 3, "{confusion}");
    assert_eq!(confusion["0"]["0"], 3, "{confusion}");
    assert_eq!(confusion["0"]["1"], 1, "{confusion}");
    assert_eq!(confusion["1"]["0"], 1, "{confusion}");
    assert_eq!(metrics["accuracy"]["value"], 0.75);
    // Fewer than 200 rows: no standard deviation.
    assert_eq!(metrics["accuracy"]["standard_deviation"], "NaN");
    // The baseline was always right: accuracy 0.75 breaks its constraint.
    let violations = json_file(&hour.join("constraint_violations.json"));
    assert!(
        violations["violations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["metric_name"] == "accuracy"),
        "{violations}"
    );
    // Ten predictions (the repeat of p3 dropped and counted), eight labelled when the window
    // closed; p8's label came late; the unknown id waited 90 minutes (01:00 → 02:30, before
    // the window closed at 03:05) and is an orphan; p0's second label a duplicate.
    let counts = json_file(&hour.join("label_join.json"));
    assert_eq!(
        counts,
        json!({
            "predictions": 10,
            "labelled": 8,
            "unlabelled": 2,
            "late_labels": 1,
            "orphan_labels": 1,
            "duplicate_labels": 1,
            "duplicate_predictions": 1,
            "skipped_rows": 0,
            "label_coverage": 0.8
        })
    );
    assert!(stdout.contains("8 labelled records"), "{stdout}");
}

#[test]
fn a_second_run_over_the_same_files_counts_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    setup(root);
    write_capture(
        &root.join("in/capture/ep/AllTraffic/2026/11/01/00/a.jsonl"),
        "00",
        &[("a", 1, 1, 0.9), ("b", 2, 0, 0.1)],
    );
    write_labels(
        &root.join("in/labels/ep/2026/11/01/01/a.jsonl"),
        &[("a", 1), ("b", 1)],
    );
    run_once(root);
    let hour = root.join("out/ep/quality/2026/11/01/00");
    let first = json_file(&hour.join("label_join.json"));
    assert_eq!(first["labelled"], 2);
    std::fs::remove_dir_all(&hour).unwrap();
    // Nothing new: the ledger knows both files, so no window is written again.
    run_once(root);
    assert!(!hour.exists(), "a window was finalised twice");
    // A new label file for a window already closed: late, counted with the next window.
    write_labels(
        &root.join("in/labels/ep/2026/11/01/05/c.jsonl"),
        &[("a", 0)],
    );
    write_capture(
        &root.join("in/capture/ep/AllTraffic/2026/11/01/06/b.jsonl"),
        "06",
        &[("c", 1, 1, 0.9)],
    );
    run_once(root);
    let next = json_file(&root.join("out/ep/quality/2026/11/01/06/label_join.json"));
    assert_eq!(next["predictions"], 1);
    assert_eq!(next["labelled"], 0);
    // "a" was labelled already: its second label is a duplicate, not a late one.
    assert_eq!(next["duplicate_labels"], 1, "{next}");
    assert_eq!(next["late_labels"], 0, "{next}");
}
