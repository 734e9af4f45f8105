//! Real SageMaker Clarify output (tests/fixtures/sagemaker-real/, each case's SOURCE.md says
//! where it comes from): `driftd bias` on the input a real job read must write the values of its
//! real `analysis.json`, and on a real monitored window the real bias-drift
//! `constraint_violations.json` (same facets, metrics, check type and description text).
//!
//! Values are compared exactly. The only tolerance is for JS, which two real runs of Clarify on
//! the same data write differently in the last digits (SOURCE.md of ase-clarify-adult-offline-2022
//! and ase-bias-monitor-batch-json-adult): 4 units in the last place.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use driftd::bias::config::DriftRule;
use driftd::bias::drift;
use driftd::bias::{Analysis, BiasSpec, BiasState};
use serde_json::{Value, json};

const JS_ULPS: u64 = 4;

fn case(path: &str) -> PathBuf {
    common::repo_root()
        .join("tests/fixtures/sagemaker-real")
        .join(path)
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The adult census columns of the ase-bias-monitor cases (SOURCE.md, "Configuration").
const ADULT_HEADERS: [&str; 14] = [
    "Age",
    "Workclass",
    "fnlwgt",
    "Education",
    "Education-Num",
    "Marital Status",
    "Occupation",
    "Relationship",
    "Ethnic group",
    "Sex",
    "Capital Gain",
    "Capital Loss",
    "Hours per week",
    "Country",
];

/// The monitors' BiasConfig: facet Sex = 0, group Age, label 1; pre-training metrics, and with
/// `monitor` the post-training ones of the model's predictions too. (Whether a real monitor
/// execution computes pre-training metrics is not shown; the real windows' are all nearer zero
/// than the baseline's — their labels are random — so they raise nothing either way.)
fn adult_config(monitor: bool) -> Value {
    let mut config = json!({
        "label": "Target", "label_values_or_threshold": [1],
        "facet": [{"name_or_index": "Sex", "value_or_threshold": [0]}],
        "group_variable": "Age",
        "methods": {"pre_training_bias": {"methods": "all"}},
    });
    if monitor {
        config["methods"]["post_training_bias"] = json!({"methods": "all"});
        config["predicted_label"] = json!("pred");
    }
    config
}

/// A CSV with a header line from rows of numbers.
fn write_csv(path: &Path, header: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    let mut text = header.join(",");
    text.push('\n');
    for row in rows {
        text.push_str(&row.join(","));
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

fn numbers(values: &Value) -> Vec<String> {
    values
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect()
}

/// The adult baseline dataset (`{"features": [...], "label": l}` records) as CSV.
fn adult_baseline_csv(records: impl Iterator<Item = Value>, path: &Path) {
    let mut header: Vec<&str> = ADULT_HEADERS.to_vec();
    header.push("Target");
    write_csv(
        path,
        &header,
        records.map(|r| {
            let mut row = numbers(&r["features"]);
            row.push(r["label"].to_string());
            row
        }),
    );
}

struct BiasOutput {
    code: Option<i32>,
    analysis: Value,
    violations: Option<Value>,
}

fn run_bias(dir: &Path, csv: &Path, config: &Value, baseline: Option<&Path>) -> BiasOutput {
    let config_path = dir.join("analysis_config.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let out = dir.join("out");
    let mut command = common::driftd();
    command
        .args(["bias", "--format", "csv", "--header", "--analysis-config"])
        .arg(&config_path)
        .arg("--input")
        .arg(csv)
        .arg("--output")
        .arg(&out);
    if let Some(baseline) = baseline {
        command.arg("--baseline").arg(baseline);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.code().is_some_and(|c| c == 0 || c == 3),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let violations = out.join("constraint_violations.json");
    BiasOutput {
        code: output.status.code(),
        analysis: read(&out.join("analysis.json")),
        violations: violations.exists().then(|| read(&violations)),
    }
}

/// (stage, facet, facet value, metric) → value, for every metric with a number.
fn metric_values(analysis: &Value) -> Vec<((String, String, String, String), f64)> {
    let mut out = Vec::new();
    for stage in ["pre_training_bias_metrics", "post_training_bias_metrics"] {
        let Some(facets) = analysis[stage]["facets"].as_object() else {
            continue;
        };
        for (facet, reports) in facets {
            for report in reports.as_array().unwrap() {
                let value_or_threshold = report["value_or_threshold"].as_str().unwrap();
                for metric in report["metrics"].as_array().unwrap() {
                    let value = match &metric["value"] {
                        Value::Number(n) => n.as_f64().unwrap(),
                        Value::String(s) if s == "Infinity" => f64::INFINITY,
                        Value::String(s) if s == "-Infinity" => f64::NEG_INFINITY,
                        _ => continue,
                    };
                    let key = (
                        stage.to_string(),
                        facet.clone(),
                        value_or_threshold.to_string(),
                        metric["name"].as_str().unwrap().to_string(),
                    );
                    out.push((key, value));
                }
            }
        }
    }
    out
}

fn ulps(a: f64, b: f64) -> u64 {
    (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
}

/// Every value of `stage` in the real file is in driftd's, equal (JS: within [`JS_ULPS`]).
fn assert_stage_reproduced(driftd: &Value, real: &Value, stage: &str) {
    let ours: std::collections::BTreeMap<_, _> = metric_values(driftd).into_iter().collect();
    let theirs: Vec<_> = metric_values(real)
        .into_iter()
        .filter(|(k, _)| k.0 == stage)
        .collect();
    assert!(!theirs.is_empty(), "no {stage} values in the real file");
    for (key, expected) in theirs {
        let got = *ours
            .get(&key)
            .unwrap_or_else(|| panic!("{key:?}: no value from driftd"));
        let close = if key.3 == "JS" {
            ulps(got, expected) <= JS_ULPS
        } else {
            got == expected
        };
        assert!(close, "{key:?}: driftd {got:?}, real {expected:?}");
    }
    assert_eq!(
        driftd[stage]["label_value_or_threshold"], real[stage]["label_value_or_threshold"],
        "{stage}"
    );
}

/// A violations file as a set of (facet, facet value, metric, check type, description).
fn violation_set(file: &Value) -> BTreeSet<[String; 5]> {
    file["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            [
                "facet",
                "facet_value",
                "metric_name",
                "constraint_check_type",
                "description",
            ]
            .map(|k| v[k].as_str().unwrap().to_string())
        })
        .collect()
}

#[test]
fn adult_monitor_baseline_pre_training_metrics_are_the_real_ones() {
    let dir = tempfile::tempdir().unwrap();
    let json_case = case("ase-bias-monitor-batch-json-adult");
    let dataset = read(&json_case.join("test_data/validation-dataset.json"));
    let csv = dir.path().join("validation.csv");
    adult_baseline_csv(
        dataset["instances"].as_array().unwrap().iter().cloned(),
        &csv,
    );
    let driftd = run_bias(dir.path(), &csv, &adult_config(false), None).analysis;
    let real = read(&json_case.join("baselining-output/analysis.json"));
    assert_stage_reproduced(&driftd, &real, "pre_training_bias_metrics");

    // The JSON Lines copy of the same dataset, baselined a year earlier (endpoint and batch):
    // the same values.
    let lines_case = case("ase-bias-monitor-jsonlines-adult-2023");
    let text =
        std::fs::read_to_string(lines_case.join("test_data/validation-dataset.jsonl")).unwrap();
    let csv = dir.path().join("validation-lines.csv");
    adult_baseline_csv(text.lines().map(|l| serde_json::from_str(l).unwrap()), &csv);
    let dir = tempfile::tempdir().unwrap();
    let driftd = run_bias(dir.path(), &csv, &adult_config(false), None).analysis;
    for run in ["batch", "endpoint"] {
        let real = read(&lines_case.join(run).join("baselining-output/analysis.json"));
        assert_stage_reproduced(&driftd, &real, "pre_training_bias_metrics");
    }
}

/// The batch-transform output (features and predictions) joined with the ground truth the
/// merge job read: the complete monitored window of 334 rows.
fn adult_monitored_csv(path: &Path) {
    let json_case = case("ase-bias-monitor-batch-json-adult");
    let output = read(&json_case.join("test-dataset.json.out"));
    let merged = read(&json_case.join("merged_record.json"));
    let truth: Value =
        serde_json::from_str(merged["groundTruthData"]["data"].as_str().unwrap()).unwrap();
    let instances = output["instances"].as_array().unwrap();
    let predictions = output["SageMakerOutput"]["predictions"].as_array().unwrap();
    let labels = truth["instances"].as_array().unwrap();
    assert_eq!(
        (instances.len(), predictions.len(), labels.len()),
        (334, 334, 334)
    );
    let mut header: Vec<&str> = ADULT_HEADERS.to_vec();
    header.extend(["Target", "pred"]);
    write_csv(
        path,
        &header,
        instances
            .iter()
            .zip(predictions)
            .zip(labels)
            .map(|((x, p), l)| {
                let mut row = numbers(&x["features"]);
                row.push(l["label"].to_string());
                row.push(p["predicted_label"].to_string());
                row
            }),
    );
}

#[test]
fn adult_batch_monitor_writes_the_real_bias_drift_violations() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("monitored.csv");
    adult_monitored_csv(&csv);
    let json_case = case("ase-bias-monitor-batch-json-adult");
    let output = run_bias(
        dir.path(),
        &csv,
        &adult_config(true),
        Some(&json_case.join("baselining-output/analysis.json")),
    );
    let real = read(&json_case.join("constraint_violations_from_pprint.json"));
    assert_eq!(output.code, Some(3));
    let violations = output.violations.unwrap();
    assert_eq!(violations["version"], real["version"]);
    assert_eq!(violation_set(&violations), violation_set(&real));
}

#[test]
fn the_sdk_data_bias_check_reproduces_its_baseline_and_fails_the_tightened_one() {
    let dir = tempfile::tempdir().unwrap();
    let sdk_case = case("sdk-pipeline-clarify-databias");
    let csv = dir.path().join("dataset.csv");
    let data = std::fs::read_to_string(sdk_case.join("dataset.csv")).unwrap();
    std::fs::write(&csv, format!("Label,F1,F2,F3,F4\n{data}")).unwrap();
    // tests/integ/sagemaker/workflow/test_clarify_check_steps.py of the SDK.
    let config = json!({
        "label": "Label", "label_values_or_threshold": [1],
        "facet": [{"name_or_index": "F1", "value_or_threshold": [0.5]}], "group_variable": "F2",
        "methods": {"pre_training_bias": {"methods": "all"}}
    });
    let good = sdk_case.join("good_cases/analysis.json");
    let output = run_bias(dir.path(), &csv, &config, Some(&good));
    assert_stage_reproduced(&output.analysis, &read(&good), "pre_training_bias_metrics");
    // The SDK's happy case: its own baseline raises no violation.
    assert_eq!(output.code, Some(0), "{:?}", output.violations);
    assert_eq!(output.violations.unwrap()["violations"], json!([]));

    // bad_cases: KS hand-lowered to 0.000007906602254496; the SDK expects the check to fail.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dataset.csv"), std::fs::read(&csv).unwrap()).unwrap();
    let output = run_bias(
        dir.path(),
        &dir.path().join("dataset.csv"),
        &config,
        Some(&sdk_case.join("bad_cases/analysis.json")),
    );
    assert_eq!(output.code, Some(3));
    let ks = output.analysis["pre_training_bias_metrics"]["facets"]["F1"][0]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "KS")
        .unwrap()["value"]
        .as_f64()
        .unwrap();
    assert_eq!(ks, 0.015297906602254496);
    let expected: BTreeSet<[String; 5]> = [[
        "F1",
        "(0.5, 0.9936148802477393]",
        "KS",
        "bias_drift_check",
        "Metric value 0.015297906602254496 doesn't meet the baseline constraint requirement 7.906602254496e-06",
    ]
    .map(String::from)]
    .into();
    assert_eq!(violation_set(&output.violations.unwrap()), expected);
}

#[test]
fn clarify_jobs_on_real_datasets_are_reproduced() {
    // South German Credit: facet age > 40, group personal_status_sex (SOURCE.md, cells 95–97);
    // the German column names of the file are the notebook's English ones.
    let dir = tempfile::tempdir().unwrap();
    let german = case("ase-clarify-german-credit-2021");
    let text = std::fs::read_to_string(german.join("data/SouthGermanCredit.txt")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(' ').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let wanted = [column("famges"), column("alter"), column("kredit")];
    let csv = dir.path().join("credit.csv");
    write_csv(
        &csv,
        &["personal_status_sex", "age", "credit_risk"],
        lines.map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            wanted.iter().map(|&i| fields[i].to_string()).collect()
        }),
    );
    let config = json!({
        "label": "credit_risk", "label_values_or_threshold": [1],
        "facet": [{"name_or_index": "age", "value_or_threshold": [40]}],
        "group_variable": "personal_status_sex",
        "methods": {"pre_training_bias": {"methods": "all"}}
    });
    let driftd = run_bias(dir.path(), &csv, &config, None).analysis;
    let real = read(&german.join("clarify-bias/analysis.json"));
    assert_stage_reproduced(&driftd, &real, "pre_training_bias_metrics");

    // UCI Adult with the NA rows dropped (30162 rows, a third-party copy of the job's input):
    // the notebook's LabelEncoder makes Female 0 and ">50K" 1.
    let dir = tempfile::tempdir().unwrap();
    let adult = case("ase-clarify-adult-offline-2022");
    let text = std::fs::read_to_string(adult.join("input_mirror_pjreddie_Logistic-SGD/adult.data"))
        .unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (age, sex, income) = (column("age"), column("sex"), column("income"));
    let csv = dir.path().join("adult.csv");
    write_csv(
        &csv,
        &["Age", "Sex", "Target"],
        lines.filter(|l| !l.trim().is_empty()).map(|l| {
            let fields: Vec<&str> = l.split(',').map(str::trim).collect();
            vec![
                fields[age].to_string(),
                u8::from(fields[sex] != "Female").to_string(),
                u8::from(fields[income] == ">50K").to_string(),
            ]
        }),
    );
    let driftd = run_bias(dir.path(), &csv, &adult_config(false), None).analysis;
    let real = read(&adult.join("clarify-bias/analysis.json"));
    assert_stage_reproduced(&driftd, &real, "pre_training_bias_metrics");
}

/// The 2023 runs' monitored data is not published, only their violations: a window with the
/// printed values of the flagged metrics must give exactly those violations under Clarify's
/// rule — its comparison, and its number formatting (Infinity, FT, …).
#[test]
fn the_2023_monitors_violations_follow_from_their_printed_values() {
    let lines_case = case("ase-bias-monitor-jsonlines-adult-2023");
    let spec =
        BiasSpec::from_json(&adult_config(true).to_string(), "analysis_config.json").unwrap();
    let evaluation = BiasState::new(Arc::new(spec)).evaluate();
    for run in ["batch", "endpoint"] {
        let baseline_path = lines_case.join(run).join("baselining-output/analysis.json");
        let baseline: Analysis = serde_json::from_value(read(&baseline_path)).unwrap();
        let real = read(
            &lines_case
                .join(run)
                .join("constraint_violations_from_pprint.json"),
        );
        let mut window = read(&baseline_path);
        let post = &mut window["post_training_bias_metrics"]["facets"]["Sex"][0]["metrics"];
        let printed: Vec<(String, String)> = real["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let value = v["description"]
                    .as_str()
                    .unwrap()
                    .strip_prefix("Metric value ")
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap()
                    .to_string();
                (v["metric_name"].as_str().unwrap().to_string(), value)
            })
            .collect();
        let metrics: Vec<Value> = post
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| {
                let (_, value) = printed.iter().find(|(name, _)| m["name"] == *name)?;
                let mut m = m.clone();
                m["value"] = match value.parse::<f64>() {
                    Ok(x) if x.is_finite() => json!(x),
                    _ => json!(value),
                };
                Some(m)
            })
            .collect();
        assert_eq!(metrics.len(), printed.len(), "{run}");
        *post = Value::Array(metrics);
        window
            .as_object_mut()
            .unwrap()
            .remove("pre_training_bias_metrics");
        let window: Analysis = serde_json::from_value(window).unwrap();
        let violations = drift::check(&baseline, &window, &evaluation, DriftRule::Clarify);
        let ours = serde_json::to_value(&violations).unwrap();
        assert_eq!(violation_set(&ours), violation_set(&real), "{run}");
    }
}
