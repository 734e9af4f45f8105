//! `driftd bias --baseline`: bias drift against a baseline `analysis.json`, Clarify's violation
//! file and the `bias_metric_*` datums. The datasets are built so the answer is known: a window
//! drawn like the baseline must pass (chance alone), a window where the model approves one group
//! far less often must be flagged.

mod common;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

fn write_rows(path: &Path, seed: u64, n: usize, approve_sex0: f64) {
    std::fs::write(path, common::loan_rows(seed, n, approve_sex0)).unwrap();
}

fn bias(dir: &Path, data: &Path, baseline: Option<&Path>, out: &str) -> (Option<i32>, PathBuf) {
    let config = dir.join("analysis_config.json");
    std::fs::write(&config, common::loan_analysis_config().to_string()).unwrap();
    let out = dir.join(out);
    let mut command = common::driftd();
    command
        .args([
            "bias",
            "--format",
            "csv",
            "--header",
            "--endpoint",
            "loans",
            "--analysis-config",
        ])
        .arg(&config)
        .arg("--input")
        .arg(data)
        .arg("--output")
        .arg(&out);
    if let Some(baseline) = baseline {
        command.arg("--baseline").arg(baseline);
    }
    (command.status().unwrap().code(), out)
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn bias_drift_flags_a_real_shift_and_not_chance() {
    let dir = tempfile::tempdir().unwrap();
    let (baseline_csv, same_csv, shifted_csv) = (
        dir.path().join("b.csv"),
        dir.path().join("s.csv"),
        dir.path().join("d.csv"),
    );
    // Baseline and "same": the model approves sex 0 about as often as sex 1 (half the time).
    write_rows(&baseline_csv, 1, 2000, 0.5);
    write_rows(&same_csv, 2, 2000, 0.5);
    // Shifted: sex 0 approved 10 % of the time against 50 % for sex 1 — DPPL ≈ 0.4, DI ≈ 0.2.
    write_rows(&shifted_csv, 3, 2000, 0.1);

    let (code, baseline_out) = bias(dir.path(), &baseline_csv, None, "baseline");
    assert_eq!(code, Some(0));
    let baseline = baseline_out.join("analysis.json");

    let (code, same_out) = bias(dir.path(), &same_csv, Some(&baseline), "same");
    let same = read(&same_out.join("constraint_violations.json"));
    assert_eq!(code, Some(0), "{same}");
    assert_eq!(same, json!({"version": "1.0", "violations": []}));

    let (code, shifted_out) = bias(dir.path(), &shifted_csv, Some(&baseline), "shifted");
    assert_eq!(code, Some(3));
    let violations = read(&shifted_out.join("constraint_violations.json"));
    common::assert_only_approvals_flagged(&violations);

    let post = "post_training_bias_metrics";
    let dppl = common::analysis_metric(
        &read(&shifted_out.join("analysis.json")),
        post,
        "sex",
        "DPPL",
    );
    let base_dppl = common::analysis_metric(&read(&baseline), post, "sex", "DPPL");
    let violation = violations["violations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["metric_name"] == "DPPL")
        .unwrap();
    assert_eq!(violation["facet"], "sex");
    assert_eq!(violation["facet_value"], "0");
    assert_eq!(violation["constraint_check_type"], "bias_drift_check");
    let description = violation["description"].as_str().unwrap();
    let numbers: Vec<f64> = description
        .strip_prefix("Metric value ")
        .unwrap()
        .split(" doesn't meet the baseline constraint requirement ")
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(numbers, vec![dppl, base_dppl], "{description}");

    // One datum per metric, Clarify's dimensions.
    let metrics = std::fs::read_to_string(shifted_out.join("cloudwatch_metrics.jsonl")).unwrap();
    let datums: Vec<Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(datums.len(), 5);
    let datum = datums
        .iter()
        .find(|d| d["MetricName"] == "bias_metric_DPPL")
        .unwrap();
    assert_eq!(datum["Value"].as_f64(), Some(dppl));
    assert_eq!(
        datum["Dimensions"],
        json!([
            {"Name": "Endpoint", "Value": "loans"},
            {"Name": "MonitoringSchedule", "Value": "driftd-bias"},
            {"Name": "BiasStage", "Value": "Post-Training"},
            {"Name": "Label", "Value": "label"},
            {"Name": "LabelValue", "Value": "1"},
            {"Name": "Facet", "Value": "sex"},
            {"Name": "FacetValue", "Value": "0"}
        ])
    );
}
