//! `driftd run --once` with a bias monitor: batch CSV files (features, label, prediction) across
//! two hours, each hour a window checked against a baseline `analysis.json` under driftd's
//! opt-in bootstrap rule. The fair hour must pass; the hour where the model approves one group
//! far less often must be flagged.

use crate::common;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

fn write_rows(path: &Path, seed: u64, n: usize, approve_sex0: f64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, common::loan_rows(seed, n, approve_sex0)).unwrap();
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn write_analysis_config(dir: &Path) -> PathBuf {
    let path = dir.join("analysis_config.json");
    let mut config = common::loan_analysis_config();
    config["driftd_bias_drift_rule"] = json!("bootstrap");
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

/// `driftd bias` on `input` into `out`: the baseline, or the consistency reference.
fn driftd_bias(dir: &Path, input: &Path, out: &str) -> PathBuf {
    let out = dir.join(out);
    let status = common::driftd()
        .args(["bias", "--format", "csv", "--header", "--analysis-config"])
        .arg(dir.join("analysis_config.json"))
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(&out)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    out.join("analysis.json")
}

fn config(dir: &Path, bias_monitor: &str) -> PathBuf {
    let path = dir.join("driftd.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[input]
directory = "batch"

[output]
directory = "out"

[[monitor]]
name = "loans-bias"
path = "bias/{{endpoint}}/{{yyyy}}/{{mm}}/{{dd}}/{{hh}}/*.csv"
format = "csv"
header = true
{bias_monitor}

[[monitor]]
name = "loans-data-quality"
path = "quality/{{endpoint}}/{{yyyy}}/{{mm}}/{{dd}}/{{hh}}/*.csv"
format = "csv"
header = true
baseline = "dq-baseline"
"#
        ),
    )
    .unwrap();
    path
}

const BIAS_MONITOR: &str = r#"kind = "bias"
analysis_config = "analysis_config.json"
baseline = "baseline/analysis.json""#;

#[test]
fn a_bias_monitor_flags_the_unfair_hour_in_clarifys_formats() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_analysis_config(root);
    // Baseline: the model approves sex 0 about as often as sex 1 (half the time).
    write_rows(&root.join("baseline.csv"), 1, 2000, 0.5);
    driftd_bias(root, &root.join("baseline.csv"), "baseline");
    let status = common::driftd()
        .args(["baseline", "--format", "csv", "--header", "--input"])
        .arg(root.join("baseline.csv"))
        .arg("--output")
        .arg(root.join("dq-baseline"))
        .status()
        .unwrap();
    assert!(status.success());

    // Hour 00 is fair; in hour 01 sex 0 is approved 10 % of the time against 50 % for sex 1
    // (DPPL ≈ 0.4, DI ≈ 0.2). Each hour comes in two files, merged into one window. A
    // data-quality monitor runs beside the bias monitor.
    let hour = |h: u32| root.join(format!("batch/bias/loans/2026/11/01/{h:02}"));
    write_rows(&hour(0).join("part-0.csv"), 2, 1000, 0.5);
    write_rows(&hour(0).join("part-1.csv"), 3, 1000, 0.5);
    write_rows(&hour(1).join("part-0.csv"), 4, 1000, 0.1);
    write_rows(&hour(1).join("part-1.csv"), 5, 1000, 0.1);
    write_rows(
        &root.join("batch/quality/loans/2026/11/01/00/part-0.csv"),
        6,
        500,
        0.5,
    );

    let output = common::driftd()
        .args(["run", "--once", "--config"])
        .arg(config(root, BIAS_MONITOR))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("loans-bias loans [2026-11-01T00:00:00Z .. 2026-11-01T01:00:00Z): 2000 records, 0 bias violations"),
        "{stdout}"
    );

    let window = |h: u32| root.join(format!("out/loans/loans-bias/2026/11/01/{h:02}"));
    // Model Monitor's layout, Clarify's files and driftd's group counts (for the compliance
    // report); no data-quality files in a bias window.
    let mut files: Vec<String> = std::fs::read_dir(window(0))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "analysis.json",
            "bias_groups.json",
            "cloudwatch_metrics.jsonl",
            "constraint_violations.json"
        ]
    );
    assert_eq!(
        read(&window(0).join("constraint_violations.json")),
        json!({"version": "1.0", "violations": []})
    );
    let violations = read(&window(1).join("constraint_violations.json"));
    common::assert_only_approvals_flagged(&violations);
    let dppl = violations["violations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["metric_name"] == "DPPL")
        .unwrap();
    assert_eq!(dppl["facet"], "sex");
    assert_eq!(dppl["facet_value"], "0");
    assert_eq!(dppl["constraint_check_type"], "bias_drift_check");
    assert!(
        stdout.contains("bias   DPPL   sex=0: Metric value"),
        "{stdout}"
    );

    // Each window's analysis.json is what `driftd bias` gives on the same files (a consistency
    // check; the values themselves are checked against smclarify in tests/it/bias_oracle.rs).
    for h in [0, 1] {
        let reference = driftd_bias(root, &hour(h), &format!("reference-{h}"));
        assert_eq!(
            read(&window(h).join("analysis.json")),
            read(&reference),
            "hour {h}"
        );
    }

    // bias_metric_* with Clarify's dimensions, stamped with the window's end.
    let analysis = read(&window(1).join("analysis.json"));
    let dppl_value = analysis["post_training_bias_metrics"]["facets"]["sex"][0]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "DPPL")
        .unwrap()["value"]
        .clone();
    let metrics = std::fs::read_to_string(window(1).join("cloudwatch_metrics.jsonl")).unwrap();
    let datums: Vec<Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(datums.len(), 5);
    let datum = datums
        .iter()
        .find(|d| d["MetricName"] == "bias_metric_DPPL")
        .unwrap();
    assert_eq!(datum["Value"], dppl_value);
    assert_eq!(datum["Timestamp"], "2026-11-01T02:00:00Z");
    assert_eq!(
        datum["Dimensions"],
        json!([
            {"Name": "Endpoint", "Value": "loans"},
            {"Name": "MonitoringSchedule", "Value": "loans-bias"},
            {"Name": "BiasStage", "Value": "Post-Training"},
            {"Name": "Label", "Value": "label"},
            {"Name": "LabelValue", "Value": "1"},
            {"Name": "Facet", "Value": "sex"},
            {"Name": "FacetValue", "Value": "0"}
        ])
    );

    // The data-quality monitor beside it still writes Model Monitor's files.
    let quality = root.join("out/loans/loans-data-quality/2026/11/01/00");
    assert_eq!(
        read(&quality.join("statistics.json"))["dataset"]["item_count"],
        500
    );
    assert!(quality.join("drift.json").exists());
}

fn start_error(dir: &Path, bias_monitor: &str) -> String {
    let out = common::driftd()
        .args(["validate", "--config"])
        .arg(config(dir, bias_monitor))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn bias_monitor_config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("batch")).unwrap();
    std::fs::create_dir_all(root.join("baseline")).unwrap();

    let err = start_error(
        root,
        "kind = \"bias\"\nbaseline = \"baseline/analysis.json\"",
    );
    assert!(
        err.contains("monitor[0] (loans-bias).analysis_config"),
        "{err}"
    );
    assert!(
        err.contains("kind = \"bias\" needs analysis_config"),
        "{err}"
    );

    let err = start_error(root, "kind = \"bais\"\nbaseline = \"baseline\"");
    assert!(err.contains("unknown variant `bais`"), "{err}");

    let err = start_error(
        root,
        "baseline = \"baseline\"\nanalysis_config = \"analysis_config.json\"",
    );
    assert!(
        err.contains("monitor[0] (loans-bias).analysis_config: only used by bias monitors"),
        "{err}"
    );

    // A bias baseline is an analysis.json file, not a data-quality baseline directory.
    write_analysis_config(root);
    let err = start_error(
        root,
        "kind = \"bias\"\nanalysis_config = \"analysis_config.json\"\nbaseline = \"baseline\"",
    );
    assert!(
        err.contains("monitor[0] (loans-bias).baseline") && err.contains("is a directory"),
        "{err}"
    );
    assert!(err.contains("driftd bias"), "{err}");
}
