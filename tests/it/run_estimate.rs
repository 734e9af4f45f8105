//! CBPE in `driftd run` (`[monitor.estimate]`): a label-joined binary or multiclass
//! model-quality monitor estimates each window's performance from its scores when the window
//! closes, before its labels. Every estimate is checked against the numpy implementation of
//! tests/it/cbpe_oracle.py, run on the window's rows as one chunk.

use std::fmt::Write as _;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

use crate::cbpe::{compare_with_oracle, oracle};
use crate::common;

/// One prediction: its score, the predicted label (score above 0.5) and the true label drawn
/// with the score's probability (a calibrated model).
struct Row {
    score: f64,
    predicted: u8,
    label: u8,
}

/// Rows whose logit is N(mean, spread²).
fn rows(n: usize, seed: u64, mean: f64, spread: f64) -> Vec<Row> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let (u, v): (f64, f64) = (rng.random(), rng.random());
            let z = (-2.0 * (1.0 - u).ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos();
            let score = 1.0 / (1.0 + (-(mean + spread * z)).exp());
            Row {
                score,
                predicted: u8::from(score > 0.5),
                label: u8::from(rng.random::<f64>() < score),
            }
        })
        .collect()
}

/// `rows` as CSV with the given header: `score`, `prediction` and (with `labels`) `label`
/// columns in that order.
fn csv(path: &Path, header: &str, rows: &[Row], labels: bool) {
    let mut text = format!("{header}\n");
    for row in rows {
        write!(text, "{},{}", row.score, row.predicted).unwrap();
        if labels {
            write!(text, ",{}", row.label).unwrap();
        }
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// Capture records of one hour (output `prediction,score`), event ids `{hour}-{i}`.
fn capture(root: &Path, hour: &str, rows: &[Row]) {
    let mut text = String::new();
    for (i, row) in rows.iter().enumerate() {
        let record = json!({
            "captureData": {
                "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": "1,2", "encoding": "CSV"},
                "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT", "data": format!("{},{}", row.predicted, row.score), "encoding": "CSV"}
            },
            "eventMetadata": {"eventId": format!("{hour}-{i}"), "inferenceTime": format!("2026-11-01T{hour}:{:02}:{:02}Z", i / 60 % 60, i % 60)},
            "eventVersion": "0"
        });
        writeln!(text, "{record}").unwrap();
    }
    let path = root.join(format!(
        "in/capture/ep/AllTraffic/2026/11/01/{hour}/a.jsonl"
    ));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Ground truth of one hour's records, collected in hour `collected`.
fn labels(root: &Path, hour: &str, collected: &str, rows: &[Row]) {
    let mut text = String::new();
    for (i, row) in rows.iter().enumerate() {
        let record = json!({
            "groundTruthData": {"data": row.label.to_string(), "encoding": "CSV"},
            "eventMetadata": {"eventId": format!("{hour}-{i}")},
            "eventVersion": "0"
        });
        writeln!(text, "{record}").unwrap();
    }
    let path = root.join(format!("in/labels/ep/2026/11/01/{collected}/a.jsonl"));
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

[monitor.estimate]
reference = "reference.csv"
chunk_size = 500

[rules]
directory = "rules"
"#;

const RULES: &str = r#"
[[rule]]
name = "estimated-accuracy-drop"
severity = "warning"

[rule.condition.estimated_performance]
metrics = ["accuracy"]

[rule.alert]
"#;

fn json_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn each_window_is_estimated_before_its_labels_as_the_numpy_implementation_does() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    common::always_right_baseline(root, "baseline");
    std::fs::write(root.join("driftd.toml"), CONFIG).unwrap();
    std::fs::create_dir_all(root.join("rules")).unwrap();
    std::fs::write(root.join("rules/estimate.toml"), RULES).unwrap();

    // The reference: 12 chunks of 500. Hour 00 is drawn from the same population and gets its
    // labels in time; in hour 01 the model is unsure (scores near 0.5) and no label has come.
    let reference = rows(6000, 1, -1.5, 1.5);
    csv(
        &root.join("reference.csv"),
        "_c1,_c0,label",
        &reference,
        true,
    );
    csv(
        &root.join("oracle_reference.csv"),
        "score,prediction,label",
        &reference,
        true,
    );
    let hours = [
        ("00", rows(500, 2, -1.5, 1.5)),
        ("01", rows(500, 3, 0.0, 0.4)),
    ];
    for (hour, rows) in &hours {
        capture(root, hour, rows);
        csv(
            &root.join(format!("window_{hour}.csv")),
            "score,prediction",
            rows,
            false,
        );
    }
    labels(root, "00", "01", &hours[0].1);

    run_once(root);

    let mut alerts = Vec::new();
    for (hour, _) in &hours {
        let window = root.join(format!("out/ep/quality/2026/11/01/{hour}"));
        let ours = json_file(&window.join("estimated_performance.json"));
        assert_eq!(ours["input_rows"], 500, "{ours}");
        assert_eq!(ours["reference_rows"], 6000, "{ours}");
        assert_eq!(ours["chunk_size"], 500, "{ours}");
        // A window of one reference chunk's rows (the thresholds of the counts hold for
        // that size).
        let theirs = oracle(
            &root.join("oracle_reference.csv"),
            &root.join(format!("window_{hour}.csv")),
            "binary",
            &["0", "1"],
            &["score"],
            500,
        );
        alerts.push(compare_with_oracle(&ours, &theirs));

        // Published beside the realized metrics, with the estimate's value.
        let metrics = std::fs::read_to_string(window.join("cloudwatch_metrics.jsonl")).unwrap();
        let accuracy: Vec<f64> = metrics
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .filter(|datum| datum["MetricName"] == "estimated_accuracy")
            .map(|datum| datum["Value"].as_f64().unwrap())
            .collect();
        assert_eq!(
            accuracy,
            [ours["chunks"][0]["metrics"]["accuracy"]["value"]
                .as_f64()
                .unwrap()],
            "{metrics}"
        );
    }
    assert_eq!(alerts[0], 0, "hour 00 is like the reference");
    assert!(alerts[1] > 0, "hour 01's scores are unsure");
    let unsure = json_file(&root.join("out/ep/quality/2026/11/01/01/estimated_performance.json"));
    let accuracy = &unsure["chunks"][0]["metrics"]["accuracy"];
    assert_eq!(accuracy["alert"], true, "{accuracy}");
    assert!(
        accuracy["value"].as_f64() < accuracy["lower_threshold"].as_f64(),
        "{accuracy}"
    );
    // Hour 01 has no label: its realized metrics are empty, the estimate stands alone.
    let statistics = json_file(&root.join("out/ep/quality/2026/11/01/01/statistics.json"));
    assert_eq!(statistics["dataset"]["item_count"], 0, "{statistics}");
    let labelled = json_file(&root.join("out/ep/quality/2026/11/01/00/statistics.json"));
    assert_eq!(labelled["dataset"]["item_count"], 500, "{labelled}");

    // The rule fires on hour 01's estimated accuracy only.
    let evidence = common::the_one_firing(
        &root.join("out"),
        "estimated-accuracy-drop",
        "2026-11-01T01:00:00Z",
    );
    assert_eq!(evidence["matches"][0]["what"], "estimated_accuracy");
    assert_eq!(evidence["matches"][0]["value"], accuracy["value"]);
}

/// One multiclass prediction over classes a, b, c: logits w_k·x for a 2-d feature x ~
/// N(0, spread²); the model's scores are their softmax, its prediction the argmax, and the true
/// class is drawn with the scores' probabilities (a calibrated model).
struct ClassRow {
    scores: [f64; 3],
    predicted: &'static str,
    label: &'static str,
}

const CLASSES: [&str; 3] = ["a", "b", "c"];

fn class_rows(n: usize, seed: u64, spread: f64) -> Vec<ClassRow> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut normal = || {
        let (u, v): (f64, f64) = (rng.random(), rng.random());
        (-2.0 * (1.0 - u).ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    };
    let weights = [(1.2, 0.0), (-0.6, 1.0), (-0.6, -1.0)];
    let draws: Vec<(f64, f64)> = (0..n).map(|_| (normal(), normal())).collect();
    let mut rng = StdRng::seed_from_u64(seed + 1000);
    draws
        .into_iter()
        .map(|(x0, x1)| {
            let logits = weights.map(|(a, b)| (a * x0 + b * x1) * spread);
            let total: f64 = logits.iter().map(|l| l.exp()).sum();
            let scores = logits.map(|l| l.exp() / total);
            let best = (0..3)
                .max_by(|&i, &j| scores[i].total_cmp(&scores[j]))
                .unwrap();
            let u: f64 = rng.random();
            let label = if u < scores[0] {
                0
            } else if u < scores[0] + scores[1] {
                1
            } else {
                2
            };
            ClassRow {
                scores,
                predicted: CLASSES[best],
                label: CLASSES[label],
            }
        })
        .collect()
}

/// `rows` as CSV under `header`: the three scores, the prediction and (with `labels`) the label.
fn class_csv(path: &Path, header: &str, rows: &[ClassRow], labels: bool) {
    let mut text = format!("{header}\n");
    for row in rows {
        let [a, b, c] = row.scores;
        write!(text, "{a},{b},{c},{}", row.predicted).unwrap();
        if labels {
            write!(text, ",{}", row.label).unwrap();
        }
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// Capture records of one hour, output `prediction,p_a,p_b,p_c`, event ids `{hour}-{i}`, and
/// (with `collected`) their ground truth, collected in that hour.
fn class_capture(root: &Path, hour: &str, rows: &[ClassRow], collected: Option<&str>) {
    let (mut capture, mut truth) = (String::new(), String::new());
    for (i, row) in rows.iter().enumerate() {
        let [a, b, c] = row.scores;
        let record = json!({
            "captureData": {
                "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": "1,2", "encoding": "CSV"},
                "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT", "data": format!("{},{a},{b},{c}", row.predicted), "encoding": "CSV"}
            },
            "eventMetadata": {"eventId": format!("{hour}-{i}"), "inferenceTime": format!("2026-11-01T{hour}:{:02}:{:02}Z", i / 60 % 60, i % 60)},
            "eventVersion": "0"
        });
        writeln!(capture, "{record}").unwrap();
        let label = json!({
            "groundTruthData": {"data": row.label, "encoding": "CSV"},
            "eventMetadata": {"eventId": format!("{hour}-{i}")},
            "eventVersion": "0"
        });
        writeln!(truth, "{label}").unwrap();
    }
    let path = root.join(format!(
        "in/capture/ep/AllTraffic/2026/11/01/{hour}/a.jsonl"
    ));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, capture).unwrap();
    if let Some(collected) = collected {
        let path = root.join(format!("in/labels/ep/2026/11/01/{collected}/a.jsonl"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, truth).unwrap();
    }
}

/// The binary config made a multiclass one: the prediction in `_c0`, each class's score in
/// `_c1`–`_c3`.
fn multiclass_config() -> String {
    CONFIG
        .replace(
            "problem_type = \"BinaryClassification\"",
            "problem_type = \"MulticlassClassification\"",
        )
        .replace("probability_attribute = \"_c1\"\n", "")
        .replace(
            "chunk_size = 500\n",
            "chunk_size = 500\nprobability_attributes = { a = \"_c1\", b = \"_c2\", c = \"_c3\" }\n",
        )
}

#[test]
fn a_multiclass_window_is_estimated_from_each_classs_score_as_the_numpy_implementation_does() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("driftd.toml"), multiclass_config()).unwrap();
    std::fs::create_dir_all(root.join("rules")).unwrap();
    std::fs::write(root.join("rules/estimate.toml"), RULES).unwrap();

    // The reference: 12 chunks of 500. Hour 00 is like it and labelled in time; in hour 01 the
    // features sit near the class boundaries, so the model is unsure, and no label has come.
    let reference = class_rows(6000, 1, 1.0);
    class_csv(
        &root.join("reference.csv"),
        "_c1,_c2,_c3,_c0,label",
        &reference,
        true,
    );
    let oracle_reference = root.join("oracle_reference.csv");
    class_csv(
        &oracle_reference,
        "p_a,p_b,p_c,prediction,label",
        &reference,
        true,
    );
    let flags = [
        "--problem-type",
        "MulticlassClassification",
        "--inference-attribute",
        "_c0",
        "--ground-truth-attribute",
        "label",
    ];
    let baseline = root.join("reference.csv");
    assert_eq!(
        common::model_quality("baseline", &flags, &baseline, None, &root.join("baseline")),
        0
    );
    let hours = [
        ("00", class_rows(500, 2, 1.0)),
        ("01", class_rows(500, 3, 0.15)),
    ];
    class_capture(root, "00", &hours[0].1, Some("01"));
    class_capture(root, "01", &hours[1].1, None);

    run_once(root);

    let mut alerts = Vec::new();
    for (hour, rows) in &hours {
        let window = root.join(format!("out/ep/quality/2026/11/01/{hour}"));
        let ours = json_file(&window.join("estimated_performance.json"));
        assert_eq!(ours["problem_type"], "MulticlassClassification", "{ours}");
        assert_eq!(ours["classes"], json!(CLASSES), "{ours}");
        assert_eq!(ours["input_rows"], 500, "{ours}");
        assert_eq!(ours["rows_skipped"], 0, "{ours}");
        let input = root.join(format!("window_{hour}.csv"));
        class_csv(&input, "p_a,p_b,p_c,prediction", rows, false);
        let theirs = oracle(
            &oracle_reference,
            &input,
            "multiclass",
            &CLASSES,
            &["p_a", "p_b", "p_c"],
            500,
        );
        alerts.push(compare_with_oracle(&ours, &theirs));
    }
    assert_eq!(alerts[0], 0, "hour 00 is like the reference");
    let unsure = json_file(&root.join("out/ep/quality/2026/11/01/01/estimated_performance.json"));
    let accuracy = &unsure["chunks"][0]["metrics"]["accuracy"];
    assert_eq!(accuracy["alert"], true, "{accuracy}");
    // Hour 00's labels came: its realized multiclass metrics are there beside the estimate.
    let labelled = json_file(&root.join("out/ep/quality/2026/11/01/00/statistics.json"));
    assert_eq!(labelled["dataset"]["item_count"], 500, "{labelled}");
    let evidence = common::the_one_firing(
        &root.join("out"),
        "estimated-accuracy-drop",
        "2026-11-01T01:00:00Z",
    );
    assert_eq!(evidence["matches"][0]["value"], accuracy["value"]);
}

#[test]
fn an_estimate_on_a_monitor_that_cannot_use_it_stops_start_up_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    common::always_right_baseline(root, "baseline");
    std::fs::create_dir_all(root.join("in")).unwrap();
    // Without the label join there is nothing to estimate ahead of.
    let config = CONFIG.replace(
        "ground_truth_path = \"labels/{endpoint}/{yyyy}/{mm}/{dd}/{hh}/*.jsonl\"\n",
        "",
    );
    let config = config.replace("label_lateness = \"2h\"\n", "");
    std::fs::write(root.join("driftd.toml"), config).unwrap();
    refused_with(
        root,
        "monitor[0] (quality).estimate: the estimate stands in for labels",
    );

    // A reference too short for its chunk size.
    std::fs::write(root.join("driftd.toml"), CONFIG).unwrap();
    csv(
        &root.join("reference.csv"),
        "_c1,_c0,label",
        &rows(700, 1, -1.5, 1.5),
        true,
    );
    refused_with(
        root,
        "monitor[0] (quality).estimate.reference: 700 usable rows make 1 chunk(s) of chunk_size 500",
    );

    // A multiclass monitor without a score column per class.
    let config = multiclass_config().replace(
        "probability_attributes = { a = \"_c1\", b = \"_c2\", c = \"_c3\" }\n",
        "",
    );
    std::fs::write(root.join("driftd.toml"), config).unwrap();
    refused_with(
        root,
        "monitor[0] (quality).estimate: a multiclass monitor's estimate needs each class's score column: probability_attributes",
    );
}

/// `driftd run --once` on `root/driftd.toml`, which must succeed.
fn run_once(root: &Path) {
    let output = common::driftd()
        .args(["run", "--once", "--config"])
        .arg(root.join("driftd.toml"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `driftd run` on `root/driftd.toml` stops at start-up with `message` on stderr.
fn refused_with(root: &Path, message: &str) {
    let output = common::driftd()
        .args(["run", "--once", "--config"])
        .arg(root.join("driftd.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains(message), "{stderr}");
}
