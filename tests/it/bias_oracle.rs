//! `driftd bias` end to end on generated CSV files, every metric compared with smclarify's
//! `bias_report` (Clarify's own code, tests/it/bias_oracle.py) on the same file, to 1e-9.
//!
//! The datasets cover categorical and numeric facets and labels, multi-valued facets and labels,
//! one-vs-rest facets, a group variable, an empty facet group, all-positive labels, predictions
//! equal to labels, values tied at a threshold, a frame small enough for smclarify to call 0/1
//! integers continuous, and scores with a probability threshold. Features are continuous random
//! numbers, so no two rows share a feature vector and the Flip Test's k-NN is unambiguous.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

const TOLERANCE: f64 = 1e-9;

/// A CSV table built column by column.
struct Table {
    names: Vec<&'static str>,
    columns: Vec<Vec<String>>,
}

impl Table {
    fn new() -> Self {
        Table {
            names: Vec::new(),
            columns: Vec::new(),
        }
    }

    fn column(mut self, name: &'static str, values: Vec<String>) -> Self {
        assert!(self.columns.first().is_none_or(|c| c.len() == values.len()));
        self.names.push(name);
        self.columns.push(values);
        self
    }

    fn write(&self, path: &Path) {
        let mut text = self.names.join(",");
        text.push('\n');
        for r in 0..self.columns[0].len() {
            let row: Vec<&str> = self.columns.iter().map(|c| c[r].as_str()).collect();
            text.push_str(&row.join(","));
            text.push('\n');
        }
        std::fs::write(path, text).unwrap();
    }
}

fn pick<'a>(rng: &mut StdRng, choices: &[&'a str]) -> &'a str {
    choices[rng.random_range(0..choices.len())]
}

/// Distinct continuous features (six decimals of a wide uniform: duplicates are vanishingly
/// unlikely, and pandas parses these exactly as Rust does).
fn feature(rng: &mut StdRng, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| format!("{:.6}", rng.random::<f64>() * 1000.0))
        .collect()
}

/// Runs `driftd bias` and smclarify on `table` with `config`, compares every number, and
/// returns the names of the metrics that had a numeric value (so a test can insist on some).
fn compare(table: &Table, config: Value) -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("data.csv");
    table.write(&csv);
    let config_path = dir.path().join("analysis_config.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let out = dir.path().join("out");
    let output = common::driftd()
        .args(["bias", "--format", "csv", "--header", "--analysis-config"])
        .arg(&config_path)
        .arg("--input")
        .arg(&csv)
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "driftd bias failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ours: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("analysis.json")).unwrap()).unwrap();
    let oracle = common::run_python(
        include_str!("bias_oracle.py"),
        &json!({"csv": csv, "config": config}),
    );

    let mut numeric = BTreeSet::new();
    for (stage, key) in [
        ("pre_training_bias_metrics", "pre"),
        ("post_training_bias_metrics", "post"),
    ] {
        let Some(want) = oracle.get(key) else {
            assert!(ours.get(stage).is_none(), "{stage} not asked for");
            continue;
        };
        let got = &ours[stage];
        assert_eq!(got["label"], config["label"]);
        if let Some(value) = oracle["label_value_or_threshold"].as_str() {
            assert_eq!(got["label_value_or_threshold"], value, "{stage}");
        }
        for facet in config["facet"].as_array().unwrap() {
            let name = facet["name_or_index"].as_str().unwrap();
            compare_facet(
                &format!("{stage}/{name}"),
                &got["facets"][name],
                &want[name],
                &mut numeric,
            );
        }
    }
    numeric
}

fn compare_facet(what: &str, got: &Value, want: &Value, numeric: &mut BTreeSet<String>) {
    let got = got
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no reports in {got}"));
    if let Some(error) = want.get("error") {
        // smclarify fails the whole report; driftd reports that error on every metric.
        for report in got {
            for metric in report["metrics"].as_array().unwrap() {
                assert_eq!(metric["value"], Value::Null, "{what}: {metric}");
                assert_eq!(&metric["error"], error, "{what}: {metric}");
            }
        }
        return;
    }
    let want = want.as_array().unwrap();
    assert_eq!(
        got.iter()
            .map(|r| &r["value_or_threshold"])
            .collect::<Vec<_>>(),
        want.iter()
            .map(|r| &r["value_or_threshold"])
            .collect::<Vec<_>>(),
        "{what}: facet values"
    );
    for (g, w) in got.iter().zip(want) {
        let at = format!("{what}={}", w["value_or_threshold"]);
        let (gm, wm) = (
            g["metrics"].as_array().unwrap(),
            w["metrics"].as_array().unwrap(),
        );
        let names = |m: &[Value]| m.iter().map(|x| x["name"].clone()).collect::<Vec<_>>();
        assert_eq!(names(gm), names(wm), "{at}: metric names and order");
        for (gx, wx) in gm.iter().zip(wm) {
            let metric = format!("{at} {}", wx["name"]);
            assert_eq!(gx["description"], wx["description"], "{metric}");
            match (&gx["value"], &wx["value"]) {
                (Value::Number(a), Value::Number(b)) => {
                    let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
                    assert!(
                        (a - b).abs() <= TOLERANCE * b.abs().max(1.0),
                        "{metric}: driftd {a} vs smclarify {b}"
                    );
                    numeric.insert(wx["name"].as_str().unwrap().to_string());
                }
                (Value::Null, Value::Null) => {
                    assert_eq!(gx["error"], wx["error"], "{metric}: error");
                }
                (a, b) => assert_eq!(a, b, "{metric}: value"),
            }
        }
    }
}

fn methods_all() -> Value {
    json!({"pre_training_bias": {"methods": "all"}, "post_training_bias": {"methods": "all"}})
}

/// Integer-coded categorical facets (one given value, and one-vs-rest over four values), 0/1
/// labels and predictions, an integer group variable; every column numeric, so FT has a value.
#[test]
fn integer_categories_one_vs_rest_and_group_variable() {
    let n = 3000;
    let mut rng = StdRng::seed_from_u64(41);
    let (mut sex, mut race, mut zone, mut label, mut pred) =
        (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        let s = u32::from(rng.random::<f64>() < 0.35);
        let r = rng.random_range(0..4u32);
        let z = rng.random_range(0..5u32);
        let p_label = 0.3 + 0.2 * f64::from(1 - s) + 0.05 * f64::from(z);
        let l = u32::from(rng.random::<f64>() < p_label);
        let p = if rng.random::<f64>() < 0.8 { l } else { 1 - l };
        sex.push(s.to_string());
        race.push(r.to_string());
        zone.push(z.to_string());
        label.push(l.to_string());
        pred.push(p.to_string());
    }
    let table = Table::new()
        .column("sex", sex)
        .column("race", race)
        .column("zone", zone)
        .column("x1", feature(&mut rng, n))
        .column("x2", feature(&mut rng, n))
        .column("label", label)
        .column("pred", pred);
    let numeric = compare(
        &table,
        json!({
            "label": "label", "label_values_or_threshold": [1], "predicted_label": "pred",
            "facet": [{"name_or_index": "sex", "value_or_threshold": [0]}, {"name_or_index": "race"}],
            "group_variable": "zone", "methods": methods_all()
        }),
    );
    assert_eq!(numeric.len(), 21, "every metric has a value: {numeric:?}");
}

/// Text facets (a multi-valued selection and one-vs-rest), a text label with two positive values
/// out of three, a text group variable. Text features make FT fail, as in Clarify.
#[test]
fn text_facets_and_multi_valued_labels() {
    let n = 2000;
    let mut rng = StdRng::seed_from_u64(7);
    let races = ["white", "black", "asian", "other"];
    let outcomes = ["approved", "rejected", "pending"];
    let (mut race, mut gender, mut region, mut label, mut pred) =
        (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        race.push(pick(&mut rng, &races).to_string());
        gender.push(pick(&mut rng, &["F", "M"]).to_string());
        region.push(pick(&mut rng, &["north", "south", "east"]).to_string());
        let l = pick(&mut rng, &outcomes);
        label.push(l.to_string());
        pred.push(
            if rng.random::<f64>() < 0.7 {
                l
            } else {
                pick(&mut rng, &outcomes)
            }
            .to_string(),
        );
    }
    let table = Table::new()
        .column("race", race)
        .column("gender", gender)
        .column("region", region)
        .column("x1", feature(&mut rng, n))
        .column("label", label)
        .column("pred", pred);
    let numeric = compare(
        &table,
        json!({
            "label": "label", "label_values_or_threshold": ["approved", "pending"],
            "predicted_label": "pred",
            "facet": [{"name_or_index": "race", "value_or_threshold": ["black", "asian"]},
                      {"name_or_index": "gender"}],
            "group_variable": "region", "methods": methods_all()
        }),
    );
    assert_eq!(
        numeric.len(),
        20,
        "every metric but FT has a value: {numeric:?}"
    );
}

/// Numeric facets with thresholds (a float facet with values tied at the threshold, a
/// high-cardinality integer facet), a float label and float predictions with a threshold.
#[test]
fn numeric_facets_and_labels_with_thresholds() {
    let n = 2500;
    let mut rng = StdRng::seed_from_u64(11);
    let (mut age, mut score, mut zone, mut y, mut yhat) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        let a = rng.random_range(18..90u32);
        // Two decimals: many rows sit exactly on the 0.6 threshold, which is not in (0.6, max].
        let s = (rng.random::<f64>() * 100.0).round() / 100.0;
        let target = 0.3 * s + 0.004 * f64::from(a) + 0.2 * rng.random::<f64>();
        age.push(a.to_string());
        score.push(format!("{s:.2}"));
        zone.push(rng.random_range(0..3u32).to_string());
        y.push(format!("{target:.6}"));
        yhat.push(format!("{:.6}", target + 0.1 * (rng.random::<f64>() - 0.5)));
    }
    let table = Table::new()
        .column("age", age)
        .column("score", score)
        .column("zone", zone)
        .column("x1", feature(&mut rng, n))
        .column("y", y)
        .column("yhat", yhat);
    let numeric = compare(
        &table,
        json!({
            "label": "y", "label_values_or_threshold": [0.5], "predicted_label": "yhat",
            "facet": [{"name_or_index": "age", "value_or_threshold": [40]},
                      {"name_or_index": "score", "value_or_threshold": [0.6]}],
            "group_variable": "zone", "methods": methods_all()
        }),
    );
    assert_eq!(numeric.len(), 21, "every metric has a value: {numeric:?}");
}

/// All labels positive, predictions equal to labels, and a facet value that no row has (an
/// empty disadvantaged group): the metrics that cannot be computed carry smclarify's errors.
#[test]
fn empty_group_all_positive_labels_and_perfect_predictions() {
    let n = 1000;
    let mut rng = StdRng::seed_from_u64(5);
    let sex: Vec<String> = (0..n)
        .map(|_| rng.random_range(0..2u32).to_string())
        .collect();
    let zone: Vec<String> = (0..n)
        .map(|_| rng.random_range(0..4u32).to_string())
        .collect();
    let ones = vec!["1".to_string(); n];
    let table = Table::new()
        .column("sex", sex)
        .column("zone", zone)
        .column("x1", feature(&mut rng, n))
        .column("label", ones.clone())
        .column("pred", ones);
    let numeric = compare(
        &table,
        json!({
            "label": "label", "label_values_or_threshold": [1], "predicted_label": "pred",
            "facet": [{"name_or_index": "sex", "value_or_threshold": [0]}],
            "group_variable": "zone", "methods": methods_all()
        }),
    );
    assert!(
        numeric.contains("GE") && numeric.contains("FT"),
        "{numeric:?}"
    );
    let table = Table::new()
        .column("sex", table.columns[0].clone())
        .column("zone", table.columns[1].clone())
        .column("x1", table.columns[2].clone())
        .column("label", vec!["0".to_string(); n])
        .column("pred", (0..n).map(|i| (i % 2).to_string()).collect());
    let numeric = compare(
        &table,
        json!({
            "label": "label", "label_values_or_threshold": [1], "predicted_label": "pred",
            "facet": [{"name_or_index": "sex", "value_or_threshold": [2]}],
            "group_variable": "zone", "methods": methods_all()
        }),
    );
    // With d empty only the metrics over all rows (or all groups) have values.
    assert_eq!(
        numeric,
        BTreeSet::from(["CDDPL".to_string(), "GE".to_string()])
    );
}

/// 30 rows: smclarify calls 0/1 integer columns continuous (2/30 distinct ≥ 5 %), so the facet
/// value 0 becomes the interval (0, 1] and the label threshold 1 selects no positives at all,
/// which fails the post-training report.
#[test]
fn a_small_frame_follows_clarifys_typing_rule() {
    let n = 30;
    let mut rng = StdRng::seed_from_u64(3);
    let bits = |rng: &mut StdRng| -> Vec<String> {
        (0..n)
            .map(|_| rng.random_range(0..2u32).to_string())
            .collect()
    };
    let table = Table::new()
        .column("sex", bits(&mut rng))
        .column("x1", feature(&mut rng, n))
        .column("label", bits(&mut rng))
        .column("pred", bits(&mut rng));
    let numeric = compare(
        &table,
        json!({
            "label": "label", "label_values_or_threshold": [1], "predicted_label": "pred",
            "facet": [{"name_or_index": "sex", "value_or_threshold": [0]}],
            "methods": methods_all()
        }),
    );
    assert!(
        numeric.contains("KL") && !numeric.contains("DPPL"),
        "{numeric:?}"
    );
}

/// 16 rows with text labels: the advantaged group has at most 9 rows, so FT uses 1 neighbour.
/// No group variable: CDDL and CDDPL fail as in Clarify.
#[test]
fn few_rows_use_one_neighbour_and_no_group_variable_fails_cdd() {
    let n = 16;
    let mut rng = StdRng::seed_from_u64(9);
    let facet: Vec<String> = (0..n)
        .map(|i| if i < 8 { "b" } else { "a" }.to_string())
        .collect();
    let yn = |rng: &mut StdRng| -> Vec<String> {
        (0..n).map(|_| pick(rng, &["y", "n"]).to_string()).collect()
    };
    let table = Table::new()
        .column("g", facet)
        .column("x1", feature(&mut rng, n))
        .column("x2", feature(&mut rng, n))
        .column("label", yn(&mut rng))
        .column("pred", yn(&mut rng));
    let numeric = compare(
        &table,
        json!({
            "label": "label", "label_values_or_threshold": ["y"], "predicted_label": "pred",
            "facet": [{"name_or_index": "g", "value_or_threshold": ["b"]}],
            "methods": methods_all()
        }),
    );
    assert_eq!(
        numeric.len(),
        19,
        "every metric but CDDL and CDDPL has a value: {numeric:?}"
    );
}

/// Scores with `probability_threshold`: a score above it is a positive prediction. A subset of
/// methods, listed out of order, comes back sorted.
#[test]
fn scores_with_a_probability_threshold_and_a_method_list() {
    let n = 1500;
    let mut rng = StdRng::seed_from_u64(17);
    let (mut sex, mut label, mut score) = (vec![], vec![], vec![]);
    for _ in 0..n {
        let s = rng.random_range(0..2u32);
        let l = u32::from(rng.random::<f64>() < 0.4 + 0.1 * f64::from(s));
        sex.push(s.to_string());
        label.push(l.to_string());
        score.push(format!(
            "{:.6}",
            (0.3 * f64::from(l) + 0.7 * rng.random::<f64>())
        ));
    }
    let table = Table::new()
        .column("sex", sex)
        .column("x1", feature(&mut rng, n))
        .column("label", label)
        .column("score", score);
    let numeric = compare(
        &table,
        json!({
            "label": "label", "label_values_or_threshold": [1], "predicted_label": "score",
            "probability_threshold": 0.6,
            "facet": [{"name_or_index": "sex", "value_or_threshold": [1]}],
            "methods": {"pre_training_bias": {"methods": ["KL", "CI", "DPL"]},
                        "post_training_bias": {"methods": ["TE", "DI", "FT", "GE", "DPPL"]}}
        }),
    );
    assert_eq!(numeric.len(), 8, "{numeric:?}");
}
