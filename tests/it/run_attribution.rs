//! Feature-attribution monitors in `driftd run` (embedded mode): capture files of an endpoint
//! with Clarify online explainability become hourly windows with Clarify's explainability
//! `analysis.json`, Model Monitor's `feature_attribution_drift_check` violations, the
//! explainability metrics, and a rule on the NDCG that fires when the ranking flips. The NDCG
//! is checked against scikit-learn on the windows' and the baseline's global values.

use crate::common;

use std::path::Path;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

/// 60 capture records in hour `hour` of 2026-11-01 whose attributions rank a > b > c, or the
/// reverse when `flipped`.
fn capture_hour(path: &Path, hour: u32, flipped: bool, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let scales = if flipped {
        [0.1, 0.5, 2.0]
    } else {
        [2.0, 0.5, 0.1]
    };
    let mut text = String::new();
    for i in 0..60 {
        let features: Vec<Value> = ["a", "b", "c"]
            .iter()
            .zip(scales)
            .map(|(f, s)| {
                let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                let value = sign * s * (0.5 + rng.random::<f64>());
                json!({"feature_header": f, "attributions": [{"attribution": [value]}]})
            })
            .collect();
        let response = json!({
            "version": "1.0",
            "predictions": {"content_type": "text/csv; charset=utf-8", "data": "0.5\n"},
            "explanations": {"kernel_shap": [features]}
        });
        let line = json!({
            "captureData": {
                "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                  "data": "1,2,3", "encoding": "CSV"},
                "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                   "data": response.to_string(), "encoding": "JSON"}
            },
            "eventMetadata": {"eventId": format!("h{hour}-{i}"),
                              "inferenceTime": format!("2026-11-01T{hour:02}:{i:02}:00Z")},
            "eventVersion": "0"
        });
        text.push_str(&line.to_string());
        text.push('\n');
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn json_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn global(analysis: &Value) -> Value {
    analysis["explanations"]["kernel_shap"]["label0"]["global_shap_values"].clone()
}

#[test]
fn capture_with_attributions_becomes_windows_violations_metrics_and_an_alert() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    capture_hour(&root.join("baseline/capture.jsonl"), 0, false, 1);
    let status = common::driftd()
        .args(["baseline", "--kind", "feature-attribution", "--input"])
        .arg(root.join("baseline"))
        .arg("--output")
        .arg(root.join("baseline-out"))
        .status()
        .unwrap();
    assert!(status.success());
    let capture = |hour: u32| {
        root.join(format!(
            "in/churn/AllTraffic/2026/11/01/{hour:02}/capture.jsonl"
        ))
    };
    capture_hour(&capture(0), 0, false, 2);
    capture_hour(&capture(1), 1, true, 3);
    std::fs::create_dir_all(root.join("rules")).unwrap();
    std::fs::write(
        root.join("rules/attribution.toml"),
        "[[rule]]\nname = \"ranking-flipped\"\nseverity = \"warning\"\n[rule.condition.feature_attribution]\nbelow = 0.9\n[rule.alert]\n",
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
name = "churn-attribution"
path = "{endpoint}/{variant}/{yyyy}/{mm}/{dd}/{hh}/*.jsonl"
format = "capture"
kind = "feature_attribution"
baseline = "baseline-out/analysis.json"
agg_method = "mean_abs"
ndcg_threshold = 0.9
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
        stdout.contains("60 records with attributions, 1 feature attribution violation"),
        "{stdout}"
    );

    let hour = |h: &str| root.join(format!("out/churn/churn-attribution/2026/11/01/{h}"));
    let baseline = json_file(&root.join("baseline-out/analysis.json"));
    let calm = json_file(&hour("00").join("analysis.json"));
    let flipped = json_file(&hour("01").join("analysis.json"));
    assert_eq!(
        json_file(&hour("00").join("constraint_violations.json")),
        json!({"version": "1.0", "violations": []})
    );
    let violations = json_file(&hour("01").join("constraint_violations.json"));
    assert_eq!(violations["violations"][0]["label"], "label0");
    assert_eq!(
        violations["violations"][0]["constraint_check_type"],
        "feature_attribution_drift_check"
    );

    // Each window's NDCG datum against scikit-learn on the same global values.
    let oracle = common::run_python(
        include_str!("attribution_oracle.py"),
        &json!({"cases": [
            {"baseline": global(&baseline), "live": global(&calm)},
            {"baseline": global(&baseline), "live": global(&flipped)},
        ]}),
    );
    for (h, expected) in [("00", &oracle["ndcg"][0]), ("01", &oracle["ndcg"][1])] {
        let datums = std::fs::read_to_string(hour(h).join("cloudwatch_metrics.jsonl")).unwrap();
        let datums: Vec<Value> = datums
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let ndcg = datums
            .iter()
            .find(|d| d["MetricName"] == "feature_attribution_ndcg")
            .unwrap_or_else(|| panic!("{datums:?}"));
        let (ours, theirs) = (ndcg["Value"].as_f64().unwrap(), expected.as_f64().unwrap());
        assert!(
            (ours - theirs).abs() < 1e-12,
            "hour {h}: {ours} vs {theirs}"
        );
        assert_eq!(ours < 0.9, h == "01");
        let feature = datums
            .iter()
            .find(|d| d["MetricName"] == "feature_a")
            .unwrap();
        assert_eq!(
            feature["Dimensions"],
            json!([
                {"Name": "Endpoint", "Value": "churn"},
                {"Name": "MonitoringSchedule", "Value": "churn-attribution"},
                {"Name": "ExplainabilityMethod", "Value": "KernelShap"},
                {"Name": "Label", "Value": "label0"},
                {"Name": "ValueType", "Value": "GlobalShapValues"}
            ])
        );
    }

    // The rule fires on hour 01 only, naming the label and its NDCG.
    let evidence =
        common::the_one_firing(&root.join("out"), "ranking-flipped", "2026-11-01T01:00:00Z");
    assert_eq!(evidence["matches"][0]["subject"], "label0");
    assert_eq!(evidence["matches"][0]["what"], "ndcg");
}

#[test]
fn attribution_settings_belong_to_feature_attribution_monitors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("in")).unwrap();
    std::fs::write(
        root.join("driftd.toml"),
        r#"
[input]
directory = "in"

[output]
directory = "out"

[[monitor]]
name = "m"
path = "*.jsonl"
format = "capture"
baseline = "baseline"
ndcg_threshold = 0.8
"#,
    )
    .unwrap();
    let output = common::driftd()
        .args(["validate", "--config"])
        .arg(root.join("driftd.toml"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ndcg_threshold: only used by feature-attribution monitors"),
        "{stderr}"
    );
}

/// The feature-attribution example (examples/attribution/, data made by its generate.sh):
/// hour 01's flipped ranking is the only violation, and its rule fires and then resolves.
#[test]
fn the_attribution_example_flags_the_flipped_hour_only() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::repo_root();
    common::copy_dir(&repo.join("baselines"), &dir.path().join("baselines"));
    let example = dir.path().join("examples/attribution");
    for part in ["data", "rules"] {
        common::copy_dir(
            &repo.join("examples/attribution").join(part),
            &example.join(part),
        );
    }
    std::fs::copy(
        repo.join("examples/attribution/driftd.toml"),
        example.join("driftd.toml"),
    )
    .unwrap();
    let output = common::driftd()
        .args(["run", "--once", "--config"])
        .arg(example.join("driftd.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    for hour in ["00", "01", "02"] {
        let window = example.join(format!("out/churn/churn-attribution/2026/11/01/{hour}"));
        let violations = json_file(&window.join("constraint_violations.json"));
        let count = violations["violations"].as_array().unwrap().len();
        assert_eq!(count, usize::from(hour == "01"), "hour {hour}\n{stdout}");
    }
    let kinds: Vec<String> = (common::actions(&example.join("out")).iter())
        .map(|action| action["kind"].to_string())
        .collect();
    assert_eq!(kinds, ["\"firing\"", "\"resolved\""], "{stdout}");
}
