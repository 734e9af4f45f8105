//! Feature-attribution drift: NDCG against scikit-learn's `ndcg_score` (with ties and features
//! missing on one side), Clarify's aggregations against numpy, and `driftd baseline|check --kind
//! feature-attribution` end to end on capture files of Clarify online explainability responses,
//! a model's own contributions, and real Clarify explainability analysis.json files.

use crate::common;

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

fn agree(ours: f64, theirs: f64) -> bool {
    (ours - theirs).abs() <= 1e-12 * theirs.abs().max(1.0)
}

/// A Clarify online explainability response explaining one record.
fn online_response(values: &[(String, f64)]) -> Value {
    let features: Vec<Value> = values
        .iter()
        .map(|(f, v)| json!({"feature_header": f, "attributions": [{"attribution": [v]}]}))
        .collect();
    json!({
        "version": "1.0",
        "predictions": {"content_type": "text/csv; charset=utf-8", "data": "0.5\n"},
        "explanations": {"kernel_shap": [features]}
    })
}

/// A capture file whose record `i` carries `responses[i]` as its JSON output.
fn write_capture(path: &Path, responses: &[Value]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut text = String::new();
    for (i, response) in responses.iter().enumerate() {
        let line = json!({
            "captureData": {
                "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                  "data": "1,2,3", "encoding": "CSV"},
                "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                   "data": response.to_string(), "encoding": "JSON"}
            },
            "eventMetadata": {"eventId": format!("e-{i}"),
                              "inferenceTime": format!("2026-11-01T00:{:02}:{:02}Z", i / 60 % 60, i % 60)},
            "eventVersion": "0"
        });
        text.push_str(&line.to_string());
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// Per-record values of each feature → one capture record per index, with every feature that
/// has a value at that index.
fn capture_of(path: &Path, raw: &IndexMap<String, Vec<f64>>) {
    let records = raw.values().map(Vec::len).max().unwrap_or(0);
    let responses: Vec<Value> = (0..records)
        .map(|i| {
            let values: Vec<(String, f64)> = raw
                .iter()
                .filter_map(|(f, v)| v.get(i).map(|x| (f.clone(), *x)))
                .collect();
            online_response(&values)
        })
        .collect();
    write_capture(path, &responses);
}

fn run(args: &[&str]) -> (i32, String) {
    let out = common::driftd().args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code().unwrap();
    assert!(
        code == 0 || code == 3,
        "driftd {args:?} exited {code}:\n{stdout}\n{stderr}"
    );
    (code, stdout)
}

fn baseline(input: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec![
        "baseline",
        "--kind",
        "feature-attribution",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    assert_eq!(run(&args).0, 0);
}

fn check(baseline: &Path, input: &Path, out: &Path, extra: &[&str]) -> i32 {
    let mut args = vec![
        "check",
        "--kind",
        "feature-attribution",
        "--baseline",
        baseline.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--endpoint",
        "ep",
    ];
    args.extend_from_slice(extra);
    run(&args).0
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn global_values(analysis: &Value) -> IndexMap<String, f64> {
    analysis["explanations"]["kernel_shap"]["label0"]["global_shap_values"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
        .collect()
}

/// The NDCG datum of label0 in a check's metrics file.
fn ndcg_datum(out: &Path) -> f64 {
    let text = std::fs::read_to_string(out.join("cloudwatch_metrics.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|d| d["MetricName"] == driftd::attribution::NDCG_METRIC)
        .expect("an NDCG datum")["Value"]
        .as_f64()
        .unwrap()
}

#[test]
fn ndcg_agrees_with_scikit_learn_with_ties_and_missing_features() {
    let mut rng = StdRng::seed_from_u64(16);
    let mut cases = Vec::new();
    for _ in 0..200 {
        let n = rng.random_range(2..12);
        let mut baseline = IndexMap::new();
        let mut live = IndexMap::new();
        for f in 0..n {
            // Quarter steps from 0 to 2 make ties on both sides common.
            if rng.random_bool(0.85) {
                baseline.insert(format!("f{f}"), f64::from(rng.random_range(0..9u8)) / 4.0);
            }
            if rng.random_bool(0.85) {
                live.insert(format!("f{f}"), f64::from(rng.random_range(0..9u8)) / 4.0);
            }
        }
        cases.push((baseline, live));
    }
    let request: Vec<Value> = cases
        .iter()
        .map(|(b, l)| json!({"baseline": b, "live": l}))
        .collect();
    let oracle = common::run_python(
        include_str!("attribution_oracle.py"),
        &json!({ "cases": request }),
    );
    let theirs = oracle["ndcg"].as_array().unwrap();
    let mut compared = 0;
    for ((baseline, live), theirs) in cases.iter().zip(theirs) {
        let ours = driftd::attribution::ndcg(baseline, live);
        match (ours, theirs.as_f64()) {
            (Some(ours), Some(theirs)) => {
                assert!(
                    agree(ours, theirs),
                    "{baseline:?} {live:?}: {ours} vs {theirs}"
                );
                compared += 1;
            }
            (None, None) => {}
            other => panic!("{baseline:?} {live:?}: {other:?}"),
        }
    }
    assert!(compared > 150, "{compared}");
}

#[test]
fn baseline_and_check_agree_with_numpy_and_scikit_learn() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let mut values = |n: usize, scale: f64| -> Vec<f64> {
        (0..n)
            .map(|_| scale * (rng.random::<f64>() * 2.0 - 1.0))
            .collect()
    };
    // Baseline: a > b > c > gone. Live: c rises, `gone` vanishes, `new` appears, and t1/t2 have
    // the very same values (a tie).
    let base: IndexMap<String, Vec<f64>> = [
        ("a", values(150, 4.0)),
        ("b", values(150, 2.0)),
        ("c", values(150, 1.0)),
        ("gone", values(150, 0.5)),
        ("t1", values(150, 1.5)),
        ("t2", values(150, 1.2)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let tied = values(120, 1.0);
    let live: IndexMap<String, Vec<f64>> = [
        ("a", values(120, 1.0)),
        ("b", values(120, 2.0)),
        ("c", values(120, 5.0)),
        ("new", values(120, 3.0)),
        ("t1", tied.clone()),
        ("t2", tied),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let base_capture = dir.path().join("base/capture.jsonl");
    let live_capture = dir.path().join("live/capture.jsonl");
    capture_of(&base_capture, &base);
    capture_of(&live_capture, &live);

    for agg in ["mean_abs", "mean_sq", "median"] {
        let base_out = dir.path().join(format!("base-{agg}"));
        let live_out = dir.path().join(format!("live-{agg}"));
        baseline(&base_capture, &base_out, &["--agg-method", agg]);
        let baseline_file = base_out.join("analysis.json");
        let code = check(
            &baseline_file,
            &live_capture,
            &live_out,
            &["--agg-method", agg, "--ndcg-threshold", "0.5"],
        );
        let oracle = common::run_python(
            include_str!("attribution_oracle.py"),
            &json!({"windows": [{"agg": agg, "baseline": base, "live": live}]}),
        );
        let window = &oracle["windows"][0];
        for (side, file) in [
            ("baseline", baseline_file.clone()),
            ("live", live_out.join("analysis.json")),
        ] {
            let ours = global_values(&read(&file));
            let theirs = window[side].as_object().unwrap();
            assert_eq!(ours.len(), theirs.len(), "{agg} {side}");
            for (feature, value) in &ours {
                let expected = theirs[feature].as_f64().unwrap();
                assert!(
                    agree(*value, expected),
                    "{agg} {side} {feature}: {value} vs {expected}"
                );
            }
        }
        let ndcg = ndcg_datum(&live_out);
        let expected = window["ndcg"].as_f64().unwrap();
        assert!(agree(ndcg, expected), "{agg}: NDCG {ndcg} vs {expected}");
        assert_eq!(code, if ndcg < 0.5 { 3 } else { 0 }, "{agg}");
    }
}

/// Records whose attributions keep the order a > b > c (or the reverse, `flipped`).
fn ranked_capture(path: &Path, flipped: bool, records: usize) {
    let mut rng = StdRng::seed_from_u64(if flipped { 2 } else { 1 });
    let scales = if flipped {
        [0.1, 0.5, 2.0]
    } else {
        [2.0, 0.5, 0.1]
    };
    let responses: Vec<Value> = (0..records)
        .map(|_| {
            let values: Vec<(String, f64)> = ["a", "b", "c"]
                .iter()
                .zip(scales)
                .map(|(f, s)| (f.to_string(), s * (0.5 + rng.random::<f64>())))
                .collect();
            online_response(&values)
        })
        .collect();
    write_capture(path, &responses);
}

#[test]
fn a_ranking_flip_raises_the_violation_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.jsonl");
    let same = dir.path().join("same.jsonl");
    let flipped = dir.path().join("flipped.jsonl");
    ranked_capture(&base, false, 100);
    ranked_capture(&same, false, 50);
    ranked_capture(&flipped, true, 50);
    let base_out = dir.path().join("base-out");
    baseline(&base, &base_out, &[]);
    let baseline_file = base_out.join("analysis.json");

    let calm = dir.path().join("calm");
    assert_eq!(check(&baseline_file, &same, &calm, &[]), 0);
    assert_eq!(
        read(&calm.join("constraint_violations.json")),
        json!({"version": "1.0", "violations": []})
    );
    assert!(agree(ndcg_datum(&calm), 1.0));

    let drifted = dir.path().join("drifted");
    assert_eq!(check(&baseline_file, &flipped, &drifted, &[]), 3);
    let violations = read(&drifted.join("constraint_violations.json"));
    let violation = &violations["violations"][0];
    assert_eq!(violations["violations"].as_array().unwrap().len(), 1);
    assert_eq!(violation["label"], "label0");
    assert_eq!(violation["metric_name"], "shap");
    assert_eq!(
        violation["constraint_check_type"],
        "feature_attribution_drift_check"
    );
    let ndcg = ndcg_datum(&drifted);
    assert!(ndcg < 0.9);
    assert_eq!(
        violation["description"],
        format!("Feature attribution drift {ndcg} exceeds threshold 0.9")
    );
    // The metrics carry Clarify's names and dimensions.
    let text = std::fs::read_to_string(drifted.join("cloudwatch_metrics.jsonl")).unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["MetricName"], "feature_a");
    assert_eq!(
        first["Dimensions"],
        json!([
            {"Name": "Endpoint", "Value": "ep"},
            {"Name": "MonitoringSchedule", "Value": "driftd-check"},
            {"Name": "ExplainabilityMethod", "Value": "KernelShap"},
            {"Name": "Label", "Value": "label0"},
            {"Name": "ValueType", "Value": "GlobalShapValues"}
        ])
    );
    // A lower threshold lets the same window pass.
    let lenient = dir.path().join("lenient");
    assert_eq!(
        check(
            &baseline_file,
            &flipped,
            &lenient,
            &["--ndcg-threshold", "0.1"]
        ),
        0
    );
}

fn fixture(path: &str) -> PathBuf {
    common::repo_root()
        .join("tests/fixtures/sagemaker-real")
        .join(path)
}

#[test]
fn a_real_clarify_baseline_checks_a_window_given_as_analysis_json() {
    let dir = tempfile::tempdir().unwrap();
    let german = fixture("ase-clarify-german-credit-2021/clarify-explainability/analysis.json");
    // The job's own file as the window: nothing moved.
    let same = dir.path().join("same");
    assert_eq!(check(&german, &german, &same, &[]), 0);
    assert!(agree(ndcg_datum(&same), 1.0));
    // The ranking reversed: the largest attribution gets the smallest value and so on.
    let mut analysis = read(&german);
    let values = analysis["explanations"]["kernel_shap"]["label0"]["global_shap_values"]
        .as_object_mut()
        .unwrap();
    let mut sorted: Vec<f64> = values.values().map(|v| v.as_f64().unwrap()).collect();
    sorted.sort_by(f64::total_cmp);
    let mut order: Vec<String> = values.keys().cloned().collect();
    order.sort_by(|a, b| {
        values[b]
            .as_f64()
            .unwrap()
            .total_cmp(&values[a].as_f64().unwrap())
    });
    for (feature, value) in order.iter().zip(&sorted) {
        values[feature.as_str()] = json!(value);
    }
    let window = dir.path().join("window/analysis.json");
    std::fs::create_dir_all(window.parent().unwrap()).unwrap();
    std::fs::write(&window, analysis.to_string()).unwrap();
    let drifted = dir.path().join("drifted");
    assert_eq!(check(&german, &window, &drifted, &[]), 3);
    let violations = read(&drifted.join("constraint_violations.json"));
    assert_eq!(violations["violations"][0]["label"], "label0");
    // The window's analysis.json is the input's, and the metrics name the features.
    assert_eq!(read(&drifted.join("analysis.json")), analysis);
    let text = std::fs::read_to_string(drifted.join("cloudwatch_metrics.jsonl")).unwrap();
    assert!(text.contains("\"feature_status\""));
    assert!(text.contains("\"ExpectedValue\""));
}

#[test]
fn a_models_own_contributions_at_a_json_path() {
    let dir = tempfile::tempdir().unwrap();
    // XGBoost pred_contribs: a, b, then the bias.
    let responses: Vec<Value> = (0..10)
        .map(|i| json!({"prediction": 0.5, "contribs": [1.0 + f64::from(i), -0.5, 0.25]}))
        .collect();
    let capture = dir.path().join("contribs.jsonl");
    write_capture(&capture, &responses);
    let out = dir.path().join("out");
    baseline(
        &capture,
        &out,
        &[
            "--attributions-path",
            "contribs",
            "--feature-headers",
            "a,b",
        ],
    );
    let analysis = read(&out.join("analysis.json"));
    let label = &analysis["explanations"]["kernel_shap"]["label0"];
    // a: mean |1, 2, …, 10| = 5.5; b: |-0.5|.
    assert_eq!(label["global_shap_values"], json!({"a": 5.5, "b": 0.5}));
    assert_eq!(label["expected_value"], json!(0.25));
}

#[test]
fn clarifys_per_record_output_reads_as_a_table() {
    // explanations_shap/out.csv: one column per feature and label, `<feature>_label0`.
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("out.csv");
    std::fs::write(
        &csv,
        "Age_label0,Capital Gain_label0\n-0.5,0.25\n1.5,-0.75\n,1\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    baseline(&csv, &out, &["--format", "csv", "--header"]);
    let analysis = read(&out.join("analysis.json"));
    // Age: (0.5 + 1.5) / 2 (the empty cell is no value); Capital Gain: (0.25 + 0.75 + 1) / 3.
    assert_eq!(
        global_values(&analysis),
        [
            ("Age".to_string(), 1.0),
            ("Capital Gain".to_string(), 2.0 / 3.0)
        ]
        .into_iter()
        .collect::<IndexMap<_, _>>()
    );
}
