//! `driftd bias --baseline`: bias drift against a baseline `analysis.json`, Clarify's violation
//! file and the `bias_metric_*` datums. The datasets are built so the answer is known: under
//! driftd's opt-in bootstrap rule a window drawn like the baseline must pass (chance alone), a
//! window where the model approves one group far less often must be flagged. Clarify's default
//! rule is checked against real files in tests/it/sagemaker_real_bias.rs; here, how often each rule
//! raises a false alarm.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use driftd::bias::config::DriftRule;
use driftd::bias::drift;
use driftd::bias::metrics::{Confusion, FacetCounts, GroupKey};
use driftd::bias::state::{Evaluation, FacetEvaluation, FlipSample, Selection};
use driftd::bias::{Analysis, BiasSpec, analysis};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

fn write_rows(path: &Path, seed: u64, n: usize, approve_sex0: f64) {
    std::fs::write(path, common::loan_rows(seed, n, approve_sex0)).unwrap();
}

fn bias(dir: &Path, data: &Path, baseline: Option<&Path>, out: &str) -> (Option<i32>, PathBuf) {
    let config = dir.join("analysis_config.json");
    let mut analysis_config = common::loan_analysis_config();
    analysis_config["driftd_bias_drift_rule"] = json!("bootstrap");
    std::fs::write(&config, analysis_config.to_string()).unwrap();
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
fn the_bootstrap_rule_flags_a_real_shift_and_not_chance() {
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

/// Windows of rows drawn from one population, like the baseline's rows: every flag is a false
/// alarm. Rows: sex 0 (facet d) 40 %, four age groups, label 1 half the time, and a model that
/// is right 80 % of the time but approves sex 0 less often. FT is left out (it needs features).
struct Population {
    rng: StdRng,
}

impl Population {
    fn window(&mut self, rows: usize) -> FacetCounts {
        let mut all = Confusion::default();
        let mut groups: BTreeMap<GroupKey, Confusion> = BTreeMap::new();
        for _ in 0..rows {
            let d = usize::from(self.rng.random::<f64>() < 0.4);
            let group = self.rng.random_range(0..4i64);
            let label = usize::from(self.rng.random::<f64>() < 0.5);
            let right = self.rng.random::<f64>() < 0.8;
            let mut prediction = if right { label } else { 1 - label };
            if d == 1 && prediction == 1 && self.rng.random::<f64>() < 0.2 {
                prediction = 0;
            }
            all[d][label][prediction] += 1;
            groups.entry(GroupKey::Int(group)).or_default()[d][label][prediction] += 1;
        }
        FacetCounts {
            all,
            groups: Some(groups),
        }
    }
}

fn evaluation(counts: FacetCounts) -> Evaluation {
    Evaluation {
        label: "label".into(),
        label_value_or_threshold: "1".into(),
        label_error: None,
        prediction_error: None,
        facets: vec![FacetEvaluation {
            name: "sex".into(),
            selections: Ok(vec![Selection {
                value_or_threshold: "0".into(),
                counts,
                flip_test: None,
            }]),
        }],
        pairs: None,
        sample: FlipSample { rows: 0, of: 0 },
    }
}

/// The README's false-alarm numbers ("Bias"): 100 windows of 1,000 rows drawn like a 2,000-row
/// baseline, 20 metrics each. Print them with
/// `cargo test --test bias_drift false_alarms -- --nocapture`.
#[test]
fn false_alarms_of_each_rule_on_windows_drawn_like_the_baseline() {
    const WINDOWS: usize = 100;
    let spec = BiasSpec::from_json(
        &json!({
            "label": "label", "label_values_or_threshold": [1], "predicted_label": "pred",
            "facet": [{"name_or_index": "sex", "value_or_threshold": [0]}], "group_variable": "age",
            "methods": {"pre_training_bias": {"methods": "all"},
                        "post_training_bias": {"methods": ["AD", "CDDPL", "DAR", "DCA", "DCR",
                            "DI", "DPPL", "DRR", "GE", "RD", "SD", "TE"]}}
        })
        .to_string(),
        "analysis_config.json",
    )
    .unwrap();
    let spec = Arc::new(spec);
    let mut population = Population {
        rng: StdRng::seed_from_u64(2026),
    };
    let baseline: Analysis = analysis(&spec, &evaluation(population.window(2000)));
    let (mut clarify, mut bootstrap, mut clarify_flags) = (0, 0, 0);
    for _ in 0..WINDOWS {
        let window = evaluation(population.window(1000));
        let current = analysis(&spec, &window);
        let flags = drift::check(&baseline, &current, &window, DriftRule::Clarify)
            .violations
            .len();
        clarify_flags += flags;
        clarify += usize::from(flags > 0);
        let flags = drift::check(&baseline, &current, &window, DriftRule::Bootstrap)
            .violations
            .len();
        bootstrap += usize::from(flags > 0);
    }
    println!(
        "{WINDOWS} windows drawn like the baseline: Clarify's rule flags {clarify} \
         ({clarify_flags} violations), the bootstrap rule {bootstrap}"
    );
    // Clarify's rule: each metric is worse than the baseline's by chance about half the time.
    assert!(clarify > WINDOWS * 9 / 10, "{clarify}");
    // The bootstrap rule promises at most 5 % of windows; 12 of 100 would be 3 standard
    // deviations above that.
    assert!(bootstrap <= 12, "{bootstrap}");
}
