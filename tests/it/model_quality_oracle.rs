//! `driftd baseline --kind model-quality` on generated CSV files, every metric and every
//! standard deviation compared with scikit-learn (tests/it/model_quality_oracle.py) to 1e-9:
//! the metric on the whole file, and the sample standard deviation of the metric on the five
//! subsamples, whose membership the oracle recomputes from its definition.

use crate::common;

use std::path::Path;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

const TOLERANCE: f64 = 1e-9;

/// Binary classification of the columns `binary_rows` writes, with the scores.
const BINARY_WITH_SCORES: [&str; 8] = [
    "--problem-type",
    "BinaryClassification",
    "--inference-attribute",
    "prediction",
    "--probability-attribute",
    "probability",
    "--ground-truth-attribute",
    "label",
];

fn agree(ours: f64, theirs: f64) -> bool {
    (ours - theirs).abs() <= TOLERANCE * theirs.abs().max(1.0)
}

/// Runs `driftd baseline --kind model-quality` with `flags` on `csv`; returns the metrics object
/// of its statistics.json.
fn baseline(csv: &Path, flags: &[&str]) -> Value {
    let out = csv.parent().unwrap().join("out");
    assert_eq!(common::model_quality("baseline", flags, csv, None, &out), 0);
    let text = std::fs::read_to_string(out.join("statistics.json")).unwrap();
    let statistics: Value = serde_json::from_str(&text).unwrap();
    statistics
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.ends_with("_metrics"))
        .unwrap()
        .1
        .clone()
}

fn flag(flags: &[&str], name: &str) -> Value {
    flags
        .iter()
        .position(|f| *f == name)
        .map_or(Value::Null, |i| json!(flags[i + 1]))
}

/// Compares every metric of driftd's statistics.json with the oracle's, in order; returns the
/// oracle's answer for further checks.
fn compare(csv: &Path, flags: &[&str]) -> (Value, Value) {
    let ours = baseline(csv, flags);
    let threshold = flag(flags, "--probability-threshold")
        .as_str()
        .map_or(Value::Null, |t| json!(t.parse::<f64>().unwrap()));
    let oracle = common::run_python(
        include_str!("model_quality_oracle.py"),
        &json!({
            "csv": csv,
            "problem_type": flag(flags, "--problem-type"),
            "inference": flag(flags, "--inference-attribute"),
            "probability": flag(flags, "--probability-attribute"),
            "threshold": threshold,
            "truth": flag(flags, "--ground-truth-attribute"),
        }),
    );
    let theirs = oracle["metrics"].as_object().unwrap();
    let scalar: Vec<&String> = ours
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| v.get("value").is_some())
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        scalar,
        theirs.keys().collect::<Vec<_>>(),
        "the same metrics, in the same order"
    );
    for (name, values) in theirs {
        let value = ours[name]["value"].as_f64().unwrap();
        let want = values[0].as_f64().unwrap();
        assert!(agree(value, want), "{name}: driftd {value}, sklearn {want}");
        let sd = &ours[name]["standard_deviation"];
        match oracle["std"][name].as_f64() {
            Some(want) => {
                let sd = sd.as_f64().unwrap_or_else(|| panic!("{name}: sd {sd}"));
                assert!(agree(sd, want), "{name} sd: driftd {sd}, sklearn {want}");
            }
            None => assert_eq!(sd, "NaN", "{name}"),
        }
    }
    (ours, oracle)
}

fn write_csv(dir: &Path, header: &str, rows: &[String]) -> std::path::PathBuf {
    let path = dir.join("data.csv");
    std::fs::write(&path, format!("{header}\n{}\n", rows.join("\n"))).unwrap();
    path
}

/// Scores with three decimals (ties across rows), labels drawn with the score as probability.
fn binary_rows(seed: u64, n: usize) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let score = (rng.random::<f64>() * 1000.0).round() / 1000.0;
            let label = u8::from(rng.random::<f64>() < score);
            let predicted = u8::from(score > 0.5);
            format!("{score},{predicted},{label}")
        })
        .collect()
}

fn pairs(x: &Value, y: &Value) -> Vec<(f64, f64)> {
    let x = x.as_array().unwrap();
    let y = y.as_array().unwrap();
    assert_eq!(x.len(), y.len());
    x.iter()
        .zip(y)
        .map(|(a, b)| (a.as_f64().unwrap(), b.as_f64().unwrap()))
        .collect()
}

fn assert_curves_agree(ours: &[(f64, f64)], theirs: &[(f64, f64)], what: &str) {
    assert_eq!(ours.len(), theirs.len(), "{what} points");
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        assert!(
            agree(a.0, b.0) && agree(a.1, b.1),
            "{what}[{i}]: {a:?} vs {b:?}"
        );
    }
}

#[test]
fn binary_metrics_curves_and_spreads_agree_with_scikit_learn() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write_csv(
        dir.path(),
        "probability,prediction,label",
        &binary_rows(11, 1500),
    );
    let flags = BINARY_WITH_SCORES;
    let (ours, oracle) = compare(&csv, &flags);
    // ROC: sklearn's points (from (0, 0), one per distinct score), then Spark's closing (1, 1).
    let roc = &ours["receiver_operating_characteristic_curve"];
    let roc = pairs(&roc["false_positive_rates"], &roc["true_positive_rates"]);
    let (last, points) = roc.split_last().unwrap();
    assert_eq!(*last, (1.0, 1.0));
    assert_curves_agree(points, &pairs(&oracle["roc"][0], &oracle["roc"][1]), "roc");
    assert!(points.len() > 500, "ties make fewer points than rows");
    // Precision-recall: the same points; the first is Spark's (0, first precision) where
    // sklearn puts (0, 1).
    let pr = &ours["precision_recall_curve"];
    let pr = pairs(&pr["recalls"], &pr["precisions"]);
    let theirs = pairs(&oracle["pr"][0], &oracle["pr"][1]);
    assert_eq!(pr[0], (0.0, pr[1].1));
    assert_curves_agree(&pr[1..], &theirs[1..], "precision-recall");
}

#[test]
fn a_probability_threshold_decides_the_predicted_label() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write_csv(
        dir.path(),
        "probability,prediction,label",
        &binary_rows(12, 400),
    );
    compare(
        &csv,
        &[
            "--problem-type",
            "BinaryClassification",
            "--probability-attribute",
            "probability",
            "--probability-threshold",
            "0.3",
            "--ground-truth-attribute",
            "label",
        ],
    );
}

#[test]
fn a_small_binary_file_has_no_spreads_and_no_curves_without_scores() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write_csv(
        dir.path(),
        "probability,prediction,label",
        &binary_rows(13, 150),
    );
    let (ours, _) = compare(
        &csv,
        &[
            "--problem-type",
            "BinaryClassification",
            "--inference-attribute",
            "prediction",
            "--ground-truth-attribute",
            "label",
        ],
    );
    assert!(ours.get("auc").is_none() && ours.get("precision_recall_curve").is_none());
}

#[test]
fn multiclass_metrics_agree_with_scikit_learn() {
    const CLASSES: [&str; 4] = ["0", "1", "2", "bird"];
    let mut rng = StdRng::seed_from_u64(14);
    let rows: Vec<String> = (0..1200)
        .map(|_| {
            let actual = CLASSES[rng.random_range(0..4)];
            // Right 60 % of the time; "2" is never predicted, so its precision is 0.
            let predicted = if rng.random::<f64>() < 0.6 && actual != "2" {
                actual
            } else {
                ["0", "1", "bird"][rng.random_range(0..3)]
            };
            format!("{predicted},{actual}")
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let csv = write_csv(dir.path(), "predicted,actual", &rows);
    let (ours, _) = compare(
        &csv,
        &[
            "--problem-type",
            "MulticlassClassification",
            "--inference-attribute",
            "predicted",
            "--ground-truth-attribute",
            "actual",
        ],
    );
    let matrix = ours["confusion_matrix"].as_object().unwrap();
    assert_eq!(matrix.len(), 4);
    let total: u64 = matrix
        .values()
        .flat_map(|row| row.as_object().unwrap().values())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(total, 1200);
}

#[test]
fn regression_metrics_agree_with_scikit_learn() {
    let mut rng = StdRng::seed_from_u64(15);
    let rows: Vec<String> = (0..800)
        .map(|_| {
            // A fifth of the truths are 0, which Spark's summariser skips and corrects for.
            let actual = if rng.random::<f64>() < 0.2 {
                0.0
            } else {
                20.0 + 10.0 * (rng.random::<f64>() - 0.5)
            };
            let predicted = actual + 4.0 * (rng.random::<f64>() - 0.5);
            format!("{actual},{predicted}")
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let csv = write_csv(dir.path(), "y,yhat", &rows);
    compare(
        &csv,
        &[
            "--problem-type",
            "Regression",
            "--inference-attribute",
            "yhat",
            "--ground-truth-attribute",
            "y",
        ],
    );
}

#[test]
fn unreadable_values_are_skipped_counted_and_the_rest_agree() {
    let mut rows = binary_rows(16, 150);
    let dir = tempfile::tempdir().unwrap();
    let clean = write_csv(dir.path(), "probability,prediction,label", &rows);
    std::fs::rename(&clean, dir.path().join("clean.csv")).unwrap();
    let clean = dir.path().join("clean.csv");
    // A label that is not 0/1, a missing label, a score that is not a number.
    rows.insert(10, "0.5,1,2".into());
    rows.insert(20, "0.5,1,".into());
    rows.insert(30, "high,1,1".into());
    let dirty = write_csv(dir.path(), "probability,prediction,label", &rows);
    let flags = BINARY_WITH_SCORES;
    let (ours, oracle) = compare(&clean, &flags);
    let dirty_out = dir.path().join("dirty");
    assert_eq!(
        common::model_quality("baseline", &flags, &dirty, None, &dirty_out),
        0
    );
    let dirty_stats: Value =
        serde_json::from_str(&std::fs::read_to_string(dirty_out.join("statistics.json")).unwrap())
            .unwrap();
    assert_eq!(dirty_stats["dataset"]["item_count"], 150);
    for name in oracle["metrics"].as_object().unwrap().keys() {
        assert_eq!(
            dirty_stats["binary_classification_metrics"][name]["value"], ours[name]["value"],
            "{name}"
        );
    }
    let quarantine = std::fs::read_to_string(dirty_out.join("quarantine.jsonl")).unwrap();
    let details: Vec<String> = quarantine
        .lines()
        .map(|l| {
            let reject: Value = serde_json::from_str(l).unwrap();
            assert_eq!(reject["reason"], "bad_value");
            reject["detail"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        details,
        [
            "record 11: label: 2 is not a binary label (0 or 1)",
            "record 21: label: missing value",
            "record 31: probability: \"high\" is not a finite number",
        ]
    );
    // Scores read as binary labels: nothing usable, an error rather than metrics of zeros.
    let unusable = [
        "--problem-type",
        "BinaryClassification",
        "--inference-attribute",
        "prediction",
        "--ground-truth-attribute",
        "probability",
    ];
    assert_baseline_fails(
        &unusable,
        &dirty,
        "no record had a usable prediction and ground truth",
    );
    // Without the ground-truth column nothing can be read: an error naming the column.
    let no_truth = [&flags[..6], &["--ground-truth-attribute", "truth"]].concat();
    assert_baseline_fails(
        &no_truth,
        &dirty,
        "no column \"truth\" (the ground truth attribute)",
    );
}

/// `driftd baseline --kind model-quality` with `flags` on `csv` exits 1 saying `message`.
fn assert_baseline_fails(flags: &[&str], csv: &Path, message: &str) {
    let out = tempfile::tempdir().unwrap();
    let output = common::driftd()
        .args([
            "baseline",
            "--kind",
            "model-quality",
            "--format",
            "csv",
            "--header",
        ])
        .args(flags)
        .arg("--input")
        .arg(csv)
        .arg("--output")
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(message), "{stderr}");
}
