//! `driftd estimate` (CBPE) checked two ways:
//! - on NannyML's synthetic binary and multiclass datasets (from the nannyml 0.13.1 wheel,
//!   extracted into .tools/nannyml-data by scripts/test.sh) against the expected values of
//!   NannyML's own test suite (tests/performance_estimation/CBPE/test_cbpe_metrics.py) and the
//!   thresholds and sampling errors NannyML 0.13.1 computes for them;
//! - on generated data against an independent numpy/scikit-learn implementation
//!   (tests/it/cbpe_oracle.py): the calibration decision, every estimate, sampling error,
//!   band, threshold, alert and realized value.

use crate::common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

fn nannyml_data(name: &str) -> PathBuf {
    let path = common::repo_root().join(".tools/nannyml-data").join(name);
    assert!(
        path.exists(),
        "{} is missing: scripts/test.sh extracts NannyML's datasets from the pinned nannyml wheel",
        path.display()
    );
    path
}

/// Runs `driftd estimate` on CSV files with a header; returns estimated_performance.json and
/// the exit code.
fn estimate(reference: &Path, input: &Path, flags: &[&str], out: &Path) -> (Value, i32) {
    let output = common::driftd()
        .args(["estimate", "--format", "csv", "--header"])
        .args(flags)
        .arg("--reference")
        .arg(reference)
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(out)
        .output()
        .unwrap();
    let code = output.status.code().unwrap();
    assert!(
        code == 0 || code == 3,
        "driftd estimate failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(out.join("estimated_performance.json")).unwrap();
    (serde_json::from_str(&text).unwrap(), code)
}

fn metric(result: &Value, chunk: usize, name: &str, field: &str) -> f64 {
    result["chunks"][chunk]["metrics"][name][field]
        .as_f64()
        .unwrap_or_else(|| panic!("chunk {chunk} {name}.{field} is not a number"))
}

#[track_caller]
fn assert_relative(what: &str, ours: f64, theirs: f64, tolerance: f64) {
    assert!(
        (ours - theirs).abs() <= tolerance * theirs.abs().max(1e-300),
        "{what}: driftd {ours:.17} expected {theirs:.17} (relative tolerance {tolerance:e})"
    );
}

/// The analysis file with its ground truth (a separate file joined on `id`) appended.
fn with_ground_truth(analysis: &Path, truth: &Path, dir: &Path) -> PathBuf {
    let analysis = std::fs::read_to_string(analysis).unwrap();
    let truth = std::fs::read_to_string(truth).unwrap();
    let mut joined = String::new();
    for (row, label) in analysis.lines().zip(truth.lines()) {
        let (id, value) = label.split_once(',').unwrap();
        assert!(
            row.starts_with(&format!("{id},")),
            "rows out of order at id {id}"
        );
        writeln!(joined, "{row},{value}").unwrap();
    }
    let path = dir.join("analysis_with_truth.csv");
    std::fs::write(&path, joined).unwrap();
    path
}

#[test]
fn binary_estimates_match_nannyml_on_its_synthetic_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let input = with_ground_truth(
        &nannyml_data("synthetic_sample_analysis.csv"),
        &nannyml_data("synthetic_sample_analysis_gt.csv"),
        dir.path(),
    );
    let (result, _) = estimate(
        &nannyml_data("synthetic_sample_reference.csv"),
        &input,
        &[
            "--problem-type",
            "BinaryClassification",
            "--inference-attribute",
            "y_pred",
            "--probability-attribute",
            "y_pred_proba",
            "--ground-truth-attribute",
            "work_home_actual",
            "--chunk-size",
            "20000",
        ],
        &dir.path().join("out"),
    );
    let chunks = result["chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), 2);
    assert_eq!(
        (
            chunks[0]["start_row"].as_u64(),
            chunks[0]["end_row"].as_u64()
        ),
        (Some(0), Some(19_999))
    );
    assert_eq!(
        (
            chunks[1]["start_row"].as_u64(),
            chunks[1]["end_row"].as_u64()
        ),
        (Some(20_000), Some(49_999))
    );
    // NannyML calibrates these scores: the estimates below (to the last bit) come only from the
    // isotonic calibrator; the raw scores give an accuracy estimate of 0.9313, not 0.9479.
    assert_eq!(result["calibration"][0]["calibrated"], json!(true));
    // test_cbpe_for_binary_classification_with_timestamps, SizeBasedChunker(20000, "append").
    let expected: [(&str, [f64; 2]); 10] = [
        ("f1", [0.9479079222515973, 0.9278089207836576]),
        ("precision", [0.9436121782324026, 0.9197836255005452]),
        ("recall", [0.9522429574319092, 0.9359754933378336]),
        ("specificity", [0.9434949869571513, 0.9123732942949082]),
        ("accuracy", [0.9478536003143163, 0.9245926106862006]),
        ("true_positive", [9488.96406430504, 14537.180201036117]),
        ("true_negative", [9468.107941981285, 13200.5981195499]),
        ("false_positive", [567.0359356949585, 1267.8197989638852]),
        ("false_negative", [475.8920580187156, 994.4018804500995]),
        ("roc_auc", [0.9711057564966745, 0.9636286015592977]),
    ];
    for (name, values) in expected {
        let tolerance = if name == "roc_auc" { 1e-5 } else { 1e-9 };
        for (chunk, value) in values.iter().enumerate() {
            assert_relative(
                name,
                metric(&result, chunk, name, "value"),
                *value,
                tolerance,
            );
        }
    }
    // Thresholds (mean ± 3 std of the realized metric over the reference's 2 chunks of 25000)
    // and accuracy sampling errors, as NannyML 0.13.1 computes them on these data.
    for (name, lower, upper) in [
        ("roc_auc", 0.968172571642, 0.974183646498),
        ("f1", 0.946191781996, 0.950244269865),
    ] {
        assert!(
            (metric(&result, 0, name, "lower_threshold") - lower).abs() < 1e-11,
            "{name}"
        );
        assert!(
            (metric(&result, 0, name, "upper_threshold") - upper).abs() < 1e-11,
            "{name}"
        );
    }
    for (chunk, se) in [0.001572248937, 0.001283735881].iter().enumerate() {
        let ours = metric(&result, chunk, "accuracy", "sampling_error");
        assert!(
            (ours - se).abs() < 1e-12,
            "accuracy sampling error {ours} vs {se}"
        );
        let value = metric(&result, chunk, "accuracy", "value");
        assert_relative(
            "accuracy band",
            metric(&result, chunk, "accuracy", "upper_confidence_boundary"),
            value + 3.0 * ours,
            1e-15,
        );
    }
    // Realized accuracy from the analysis ground truth: 18963/20000 and 27588/30000.
    assert_relative(
        "realized accuracy",
        metric(&result, 0, "accuracy", "realized"),
        0.94815,
        1e-12,
    );
    assert_relative(
        "realized accuracy",
        metric(&result, 1, "accuracy", "realized"),
        0.9196,
        1e-12,
    );
}

#[test]
fn multiclass_estimates_match_nannyml_on_its_synthetic_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let (result, _) = estimate(
        &nannyml_data("mc_reference.csv"),
        &nannyml_data("mc_analysis.csv"),
        &[
            "--problem-type",
            "MulticlassClassification",
            "--inference-attribute",
            "y_pred",
            "--probability-attribute",
            "upmarket_card=y_pred_proba_upmarket_card,highstreet_card=y_pred_proba_highstreet_card,prepaid_card=y_pred_proba_prepaid_card",
            "--ground-truth-attribute",
            "y_true",
            "--chunk-size",
            "20000",
        ],
        &dir.path().join("out"),
    );
    assert_eq!(result["chunks"].as_array().unwrap().len(), 3);
    assert_eq!(
        result["classes"],
        json!(["highstreet_card", "prepaid_card", "upmarket_card"])
    );
    // NannyML calibrates all three classes (the estimates below depend on it).
    for class in 0..3 {
        assert_eq!(result["calibration"][class]["calibrated"], json!(true));
    }
    // test_cbpe_for_multiclass_classification_with_timestamps, {"chunk_size": 20000}.
    let expected: Vec<(&str, [f64; 3])> = vec![
        (
            "roc_auc",
            [0.909165141524145, 0.8682789924547322, 0.8203173643497594],
        ),
        (
            "f1",
            [0.756401608336434, 0.6937135623882767, 0.632386421613214],
        ),
        (
            "precision",
            [0.7564437378390059, 0.694174192229447, 0.6336288859123612],
        ),
        (
            "recall",
            [0.7564129287764665, 0.6934788458355289, 0.6319310599943714],
        ),
        (
            "specificity",
            [0.8782068281303994, 0.8469556750949159, 0.8172644220189141],
        ),
        (
            "accuracy",
            [0.7564451493123628, 0.6946947603445697, 0.6378557309960986],
        ),
        (
            "true_highstreet_card_pred_highstreet_card",
            [4976.829215997277, 5148.649186425118, 5412.348045797111],
        ),
        (
            "true_highstreet_card_pred_prepaid_card",
            [878.1877379091701, 1038.3533241561252, 1250.9260097761653],
        ),
        (
            "true_highstreet_card_pred_upmarket_card",
            [831.7702766018707, 993.7691398029524, 1109.9706655490413],
        ),
        (
            "true_prepaid_card_pred_highstreet_card",
            [806.1451187447954, 1140.1932616586546, 1451.431964364007],
        ),
        (
            "true_prepaid_card_pred_prepaid_card",
            [5180.838942632071, 4134.524656135082, 3326.8467648553315],
        ),
        (
            "true_prepaid_card_pred_upmarket_card",
            [755.9948957802203, 998.509495865855, 1200.1095251814281],
        ),
        (
            "true_upmarket_card_pred_highstreet_card",
            [812.0256652579275, 1062.1575519162266, 1263.219989838882],
        ),
        (
            "true_upmarket_card_pred_prepaid_card",
            [786.9733194587595, 873.1220197087925, 967.2272253685034],
        ),
        (
            "true_upmarket_card_pred_upmarket_card",
            [4971.234827617909, 4610.7213643311925, 4017.9198092695306],
        ),
    ];
    for (name, values) in expected {
        let tolerance = if name == "roc_auc" { 1e-5 } else { 1e-9 };
        for (chunk, value) in values.iter().enumerate() {
            assert_relative(
                name,
                metric(&result, chunk, name, "value"),
                *value,
                tolerance,
            );
        }
    }
    // No labels in the input: no realized values.
    assert_eq!(result["realized"], json!(false));
    assert!(
        result["chunks"][0]["metrics"]["f1"]
            .get("realized")
            .is_none()
    );
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn normal(rng: &mut StdRng) -> f64 {
    // Box–Muller; continuous scores keep ties (whose order numpy does not fix) out.
    let (u, v): (f64, f64) = (rng.random(), rng.random());
    (-2.0 * (1.0 - u).ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// Binary rows: feature x ~ N(shift, 1), P(y = 1) = sigmoid(1.5 x), the model's score
/// sigmoid(sharpness · 1.5 x) (sharpness ≠ 1: miscalibrated), predicted 1 above 0.5.
fn binary_csv(path: &Path, n: usize, seed: u64, shift: f64, sharpness: f64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut text = String::from("score,prediction,label\n");
    for _ in 0..n {
        let x = normal(&mut rng) + shift;
        let truth = rng.random::<f64>() < sigmoid(1.5 * x);
        let score = sigmoid(sharpness * 1.5 * x);
        writeln!(
            text,
            "{score},{},{}",
            u8::from(score > 0.5),
            u8::from(truth)
        )
        .unwrap();
    }
    std::fs::write(path, text).unwrap();
}

/// Multiclass rows over classes a, b, c: logits w_k·x for a 2-d feature, true probabilities
/// their softmax, the model's the softmax of `sharpness`× the logits, predicted its argmax.
fn multiclass_csv(path: &Path, n: usize, seed: u64, shift: f64, sharpness: f64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let weights = [(1.2, 0.0), (-0.6, 1.0), (-0.6, -1.0)];
    let mut text = String::from("p_a,p_b,p_c,prediction,label\n");
    let softmax = |logits: [f64; 3]| {
        let total: f64 = logits.iter().map(|l| l.exp()).sum();
        logits.map(|l| l.exp() / total)
    };
    for _ in 0..n {
        let x = (normal(&mut rng) + shift, normal(&mut rng));
        let logits = weights.map(|(a, b)| a * x.0 + b * x.1);
        let truth = softmax(logits);
        let model = softmax(logits.map(|l| l * sharpness));
        let u: f64 = rng.random();
        let label = if u < truth[0] {
            "a"
        } else if u < truth[0] + truth[1] {
            "b"
        } else {
            "c"
        };
        let best = (0..3)
            .max_by(|&i, &j| model[i].total_cmp(&model[j]))
            .unwrap();
        writeln!(
            text,
            "{},{},{},{},{label}",
            model[0],
            model[1],
            model[2],
            ["a", "b", "c"][best]
        )
        .unwrap();
    }
    std::fs::write(path, text).unwrap();
}

/// Every field of every metric of every chunk agrees with the oracle (1e-9 relative, or
/// absolute below 1); returns the number of alerts.
pub(crate) fn compare_with_oracle(ours: &Value, oracle: &Value) -> usize {
    assert_eq!(
        ours["calibration"].as_array().unwrap().len(),
        oracle["calibration"].as_array().unwrap().len()
    );
    for (a, b) in ours["calibration"]
        .as_array()
        .unwrap()
        .iter()
        .zip(oracle["calibration"].as_array().unwrap())
    {
        assert_eq!(
            a["calibrated"], b["calibrated"],
            "calibration decision: driftd {a} oracle {b}"
        );
        for field in ["ece_before", "ece_after"] {
            match (a[field].as_f64(), b[field].as_f64()) {
                (Some(x), Some(y)) => assert!((x - y).abs() < 1e-12, "{field}: {x} vs {y}"),
                (x, y) => assert_eq!(x, y, "{field}"),
            }
        }
    }
    let chunks = ours["chunks"].as_array().unwrap();
    let theirs = oracle["chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), theirs.len());
    let mut alerts = 0;
    for (c, (ours, theirs)) in chunks.iter().zip(theirs).enumerate() {
        assert_eq!(ours["start_row"], theirs["start_row"]);
        assert_eq!(ours["end_row"], theirs["end_row"]);
        let names: Vec<&String> = theirs["metrics"].as_object().unwrap().keys().collect();
        assert_eq!(ours["metrics"].as_object().unwrap().len(), names.len());
        for name in names {
            let (a, b) = (&ours["metrics"][name], &theirs["metrics"][name]);
            for field in [
                "value",
                "sampling_error",
                "lower_confidence_boundary",
                "upper_confidence_boundary",
                "lower_threshold",
                "upper_threshold",
                "realized",
            ] {
                match (a[field].as_f64(), b[field].as_f64()) {
                    (Some(x), Some(y)) => assert!(
                        (x - y).abs() <= 1e-9 * y.abs().max(1.0),
                        "chunk {c} {name}.{field}: driftd {x} oracle {y}"
                    ),
                    (x, y) => assert_eq!(x, y, "chunk {c} {name}.{field}"),
                }
            }
            assert_eq!(a["alert"], b["alert"], "chunk {c} {name}.alert");
            alerts += usize::from(a["alert"] == json!(true));
        }
    }
    alerts
}

pub(crate) fn oracle(
    reference: &Path,
    input: &Path,
    kind: &str,
    classes: &[&str],
    columns: &[&str],
    chunk_size: usize,
) -> Value {
    common::run_python(
        include_str!("cbpe_oracle.py"),
        &json!({
            "reference": reference,
            "analysis": input,
            "kind": kind,
            "classes": classes,
            "columns": columns,
            "predicted": "prediction",
            "truth": "label",
            "chunk_size": chunk_size,
        }),
    )
}

const BINARY_FLAGS: [&str; 10] = [
    "--problem-type",
    "BinaryClassification",
    "--inference-attribute",
    "prediction",
    "--probability-attribute",
    "score",
    "--ground-truth-attribute",
    "label",
    "--chunk-size",
    "1000",
];

#[test]
fn binary_estimates_match_a_numpy_implementation_on_generated_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut alerts = Vec::new();
    // An overconfident model (calibration helps), a calibrated one, an underconfident one.
    for (case, sharpness) in [(0u64, 2.5), (1, 1.0), (2, 0.4)] {
        let reference = dir.path().join(format!("reference{case}.csv"));
        let input = dir.path().join(format!("input{case}.csv"));
        binary_csv(&reference, 6_000, 10 + case, 0.0, sharpness);
        // Covariate shift: positives grow more common and the estimates move.
        binary_csv(&input, 7_500, 20 + case, 0.8, sharpness);
        let (ours, code) = estimate(
            &reference,
            &input,
            &BINARY_FLAGS,
            &dir.path().join(format!("out{case}")),
        );
        let theirs = oracle(&reference, &input, "binary", &["0", "1"], &["score"], 1000);
        let n = compare_with_oracle(&ours, &theirs);
        assert_eq!(
            code == 3,
            n > 0,
            "exit code 3 exactly when an estimate alerts"
        );
        if case == 0 {
            assert_eq!(ours["calibration"][0]["calibrated"], json!(true));
        }
        alerts.push(n);
    }
    // The shift is large enough that some estimate leaves its thresholds.
    assert!(alerts.iter().any(|&n| n > 0), "alerts per case: {alerts:?}");
}

#[test]
fn multiclass_estimates_match_a_numpy_implementation_on_generated_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut decisions = Vec::new();
    for (case, sharpness) in [(0u64, 2.0), (1, 1.0)] {
        let reference = dir.path().join(format!("reference{case}.csv"));
        let input = dir.path().join(format!("input{case}.csv"));
        multiclass_csv(&reference, 6_000, 30 + case, 0.0, sharpness);
        multiclass_csv(&input, 5_500, 40 + case, 0.7, sharpness);
        let (ours, _) = estimate(
            &reference,
            &input,
            &[
                "--problem-type",
                "MulticlassClassification",
                "--inference-attribute",
                "prediction",
                "--probability-attribute",
                "p_a,p_b,p_c",
                "--classes",
                "a,b,c",
                "--ground-truth-attribute",
                "label",
                "--chunk-size",
                "1000",
            ],
            &dir.path().join(format!("out{case}")),
        );
        let theirs = oracle(
            &reference,
            &input,
            "multiclass",
            &["a", "b", "c"],
            &["p_a", "p_b", "p_c"],
            1000,
        );
        compare_with_oracle(&ours, &theirs);
        decisions.extend(
            ours["calibration"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["calibrated"] == json!(true)),
        );
    }
    // Both outcomes of the calibration rule occur (the calibrated model leaves some classes
    // uncalibrated) and agree with the oracle's.
    assert!(
        decisions.contains(&true) && decisions.contains(&false),
        "{decisions:?}"
    );
}

#[test]
fn a_reference_without_the_ground_truth_column_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rows.csv");
    std::fs::write(&file, "score,prediction\n0.2,0\n0.7,1\n").unwrap();
    let output = common::driftd()
        .args(["estimate", "--format", "csv", "--header"])
        .args(BINARY_FLAGS)
        .arg("--reference")
        .arg(&file)
        .arg("--input")
        .arg(&file)
        .arg("--output")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("\"label\""), "{stderr}");
}

#[test]
fn unreadable_rows_are_quarantined_and_partial_labels_give_no_realized_values() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference.csv");
    binary_csv(&reference, 3_000, 50, 0.0, 2.0);
    // Input: generated rows, then one with a score that is not a number, one with an unknown
    // predicted class, and one without a label.
    let input = dir.path().join("input.csv");
    binary_csv(&input, 2_000, 51, 0.5, 2.0);
    let mut text = std::fs::read_to_string(&input).unwrap();
    text.push_str("high,1,1\n0.4,7,0\n0.3,0,\n");
    std::fs::write(&input, text).unwrap();
    let out = dir.path().join("out");
    let (result, _) = estimate(&reference, &input, &BINARY_FLAGS, &out);
    assert_eq!(result["input_rows"], json!(2_001));
    assert_eq!(result["rows_skipped"], json!(2));
    assert_eq!(result["realized"], json!(false));
    let quarantine = std::fs::read_to_string(out.join("quarantine.jsonl")).unwrap();
    let lines: Vec<&str> = quarantine.lines().collect();
    assert_eq!(lines.len(), 2, "{quarantine}");
    assert!(
        lines[0].contains("record 2001: score") && lines[0].contains("not a finite number"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("record 2002: prediction") && lines[1].contains("not one of the classes"),
        "{}",
        lines[1]
    );
    assert!(lines[0].contains("input.csv"), "{}", lines[0]);
}
