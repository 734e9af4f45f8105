//! `driftd baseline` and `driftd check` end to end on generated files, every number compared
//! with numpy/scipy computing the same quantity from the same raw values.

use crate::common;

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::Normal;
use serde_json::{Value, json};

/// Rows of three columns: a normal float, an integer 0..50 (5 % missing) and a category.
fn rows(seed: u64, n: usize, shift: f64, categories: &[(&str, f64)]) -> Vec<[String; 3]> {
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(10.0 + shift, 2.0).unwrap();
    (0..n)
        .map(|_| {
            let x: f64 = rng.sample(normal);
            let k = if rng.random::<f64>() < 0.05 {
                String::new()
            } else {
                rng.random_range(0..50).to_string()
            };
            let mut u: f64 = rng.random();
            let category = categories
                .iter()
                .find(|(_, p)| {
                    u -= p;
                    u < 0.0
                })
                .map_or(categories[0].0, |(c, _)| c);
            [format!("{x:.6}"), k, category.to_string()]
        })
        .collect()
}

fn write_csv(path: &Path, header: Option<&str>, rows: &[[String; 3]]) {
    let mut text = header.map(|h| format!("{h}\n")).unwrap_or_default();
    for row in rows {
        text.push_str(&row.join(","));
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn feature<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("feature {name} missing in {doc}"))
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance * (1.0 + b.abs())
}

fn assert_close(what: &str, ours: &Value, oracle: &Value, tolerance: f64) {
    let (a, b) = (ours.as_f64().unwrap(), oracle.as_f64().unwrap());
    assert!(close(a, b, tolerance), "{what}: driftd {a} vs oracle {b}");
}

const BASE_CATEGORIES: &[(&str, f64)] = &[("a", 0.4), ("b", 0.3), ("c", 0.2), ("d", 0.1)];

fn baseline(dir: &Path, rows: &[[String; 3]]) -> PathBuf {
    let csv = dir.join("baseline.csv");
    write_csv(&csv, Some("x,k,cat"), rows);
    let out = dir.join("baseline");
    let status = common::driftd()
        .args(["baseline", "--format", "csv", "--header", "--input"])
        .arg(&csv)
        .arg("--output")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    out
}

/// `driftd check` of `current` against a baseline made from `base`, both as CSV with a header;
/// returns the exit code and the output directory.
fn check(dir: &Path, base: &[[String; 3]], current: &[[String; 3]]) -> (Option<i32>, PathBuf) {
    let baseline_dir = baseline(dir, base);
    let current_csv = dir.join("current.csv");
    write_csv(&current_csv, Some("x,k,cat"), current);
    let out = dir.join("check");
    let status = common::driftd()
        .args(["check", "--format", "csv", "--header", "--baseline"])
        .arg(&baseline_dir)
        .arg("--input")
        .arg(&current_csv)
        .arg("--output")
        .arg(&out)
        .status()
        .unwrap();
    (status.code(), out)
}

/// Statistics of a small baseline (every value fits the sketch's first level, so everything is
/// exact): moments, population std, Deequ's bucket rule, missing counts, categories, sketch
/// data, and the suggested constraints.
#[test]
fn baseline_statistics_match_numpy() {
    let dir = tempfile::tempdir().unwrap();
    let data = rows(1, 1000, 0.0, BASE_CATEGORIES);
    let out = baseline(dir.path(), &data);
    let stats = read_json(&out.join("statistics.json"));
    let constraints = read_json(&out.join("constraints.json"));

    let oracle = common::run_python(
        r#"
import json, sys, collections
import numpy as np
rows = json.load(sys.stdin)
def numeric(values):
    a = np.array([float(v) for v in values if v != ""])
    inner = [a.min() + (a.max() - a.min()) * i / 10 for i in range(1, 10)]
    # Deequ: a value on an inner edge belongs to the upper bucket; the maximum to the last.
    buckets = np.bincount(np.searchsorted(inner, a, side="right"), minlength=10)
    return {"mean": a.mean(), "sum": a.sum(), "std": a.std(ddof=0), "min": a.min(), "max": a.max(),
            "present": int(a.size), "missing": len(values) - int(a.size),
            "buckets": buckets.tolist(), "values": a.tolist()}
x = numeric([r[0] for r in rows])
k = numeric([r[1] for r in rows])
cats = collections.Counter(r[2] for r in rows)
# Model Monitor suggests the observed share of present values, unrounded.
json.dump({"x": x, "k": k, "cats": dict(cats), "k_completeness": k["present"] / len(rows)}, sys.stdout)
"#,
        &json!(data),
    );

    assert_eq!(stats["dataset"]["item_count"], 1000);
    for name in ["x", "k"] {
        let ours = &feature(&stats, name)["numerical_statistics"];
        let want = &oracle[name];
        for (field, key) in [
            ("mean", "mean"),
            ("sum", "sum"),
            ("std_dev", "std"),
            ("min", "min"),
            ("max", "max"),
        ] {
            assert_close(&format!("{name}.{field}"), &ours[field], &want[key], 1e-12);
        }
        assert_eq!(ours["common"]["num_present"], want["present"], "{name}");
        assert_eq!(ours["common"]["num_missing"], want["missing"], "{name}");
        let counts: Vec<f64> = ours["distribution"]["kll"]["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["count"].as_f64().unwrap())
            .collect();
        let want_counts: Vec<f64> = want["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_f64().unwrap())
            .collect();
        assert_eq!(counts, want_counts, "{name} buckets");
        // Fewer values than level 0 holds: the sketch is the raw column in row order.
        assert_eq!(
            ours["distribution"]["kll"]["sketch"]["data"][0], want["values"],
            "{name} sketch"
        );
        assert_eq!(
            ours["distribution"]["kll"]["sketch"]["parameters"],
            json!({"c": 0.64, "k": 2048.0})
        );
    }
    assert_eq!(feature(&stats, "x")["inferred_type"], "Fractional");
    assert_eq!(feature(&stats, "k")["inferred_type"], "Integral");
    let cat = &feature(&stats, "cat")["string_statistics"];
    assert_eq!(feature(&stats, "cat")["inferred_type"], "String");
    assert_eq!(cat["distinct_count"], 4.0);
    for bucket in cat["distribution"]["categorical"]["buckets"]
        .as_array()
        .unwrap()
    {
        assert_eq!(
            bucket["count"],
            oracle["cats"][bucket["value"].as_str().unwrap()]
        );
    }

    assert_eq!(feature(&constraints, "x")["completeness"], 1.0);
    assert_close(
        "k.completeness",
        &feature(&constraints, "k")["completeness"],
        &oracle["k_completeness"],
        0.0,
    );
    assert_eq!(
        feature(&constraints, "k")["num_constraints"]["is_non_negative"],
        true
    );
    assert_eq!(
        feature(&constraints, "cat")["string_constraints"]["domains"],
        json!(["a", "b", "c", "d"])
    );
    assert_eq!(
        constraints["monitoring_config"],
        json!({
            "evaluate_constraints": "Enabled",
            "emit_metrics": "Enabled",
            "datatype_check_threshold": 1.0,
            "domain_content_threshold": 1.0,
            "distribution_constraints": {
                "perform_comparison": "Enabled",
                "comparison_threshold": 0.1,
                "comparison_method": "Robust"
            }
        })
    );
}

const DRIFT_ORACLE: &str = r#"
import json, sys
import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon
d = json.load(sys.stdin)
def col(rows, i):
    return np.array([float(r[i]) for r in rows if r[i] != ""])
def shares(a, lo, hi):
    inner = [lo + (hi - lo) * i / 10 for i in range(1, 10)]
    return np.bincount(np.searchsorted(inner, a, side="right"), minlength=10) / a.size
def psi(p, q):
    p, q = np.maximum(p, 1e-4), np.maximum(q, 1e-4)
    return float(np.sum((q - p) * np.log(q / p)))
out = {}
for i, name in [(0, "x"), (1, "k")]:
    b, c = col(d["base"], i), col(d["cur"], i)
    ks = stats.ks_2samp(b, c).statistic
    n, m = b.size, c.size
    pb, pc = shares(b, b.min(), b.max()), shares(c, b.min(), b.max())
    out[name] = {"ks": ks, "linf_robust": max(0.0, ks - 1.8 * np.sqrt((n + m) / (n * m))),
                 "wasserstein_normed": stats.wasserstein_distance(b, c) / max(b.std(), 1e-3),
                 "psi": psi(pb, pc), "js": float(jensenshannon(pb, pc, base=2)), "n": n, "m": m}
cats = sorted({r[2] for r in d["base"]} | {r[2] for r in d["cur"]})
fb = np.array([sum(r[2] == k for r in d["base"]) for k in cats], float)
fc = np.array([sum(r[2] == k for r in d["cur"]) for k in cats], float)
pb, pc = fb / fb.sum(), fc / fc.sum()
chi = stats.chisquare(fc, pb * fc.sum())
out["cat"] = {"linf": float(np.max(np.abs(pb - pc))), "psi": psi(pb, pc),
              "js": float(jensenshannon(pb, pc, base=2)),
              "chi2": chi.statistic, "p": chi.pvalue}
json.dump(out, sys.stdout)
"#;

/// Drift between a baseline and a shifted window: KS, Deequ's robust L∞, normalised
/// Wasserstein, PSI and JS over the baseline's buckets, and for the category its L∞, PSI, JS and
/// χ² — each against scipy on the raw values (exact: both samples fit the sketch's level 0).
#[test]
fn drift_matches_scipy() {
    let dir = tempfile::tempdir().unwrap();
    let base = rows(2, 1500, 0.0, BASE_CATEGORIES);
    let current = rows(
        3,
        1200,
        1.0,
        &[("a", 0.25), ("b", 0.3), ("c", 0.25), ("d", 0.2)],
    );
    let (exit_code, out) = check(dir.path(), &base, &current);
    assert_eq!(exit_code, Some(3), "violations found → exit code 3");

    let drift = read_json(&out.join("drift.json"));
    let oracle = common::run_python(DRIFT_ORACLE, &json!({"base": base, "cur": current}));
    for name in ["x", "k"] {
        let ours = feature(&drift, name);
        let want = &oracle[name];
        assert_eq!(ours["n_baseline"].as_f64(), want["n"].as_f64(), "{name}");
        assert_eq!(ours["n_current"].as_f64(), want["m"].as_f64(), "{name}");
        assert_close(&format!("{name}.ks"), &ours["ks"], &want["ks"], 1e-12);
        assert_close(
            &format!("{name}.linf_simple"),
            &ours["linf_simple"],
            &want["ks"],
            1e-12,
        );
        assert_close(
            &format!("{name}.linf_robust"),
            &ours["linf_robust"],
            &want["linf_robust"],
            1e-12,
        );
        for field in ["wasserstein_normed", "psi", "js"] {
            assert_close(&format!("{name}.{field}"), &ours[field], &want[field], 1e-9);
        }
    }
    let cat = feature(&drift, "cat");
    let want = &oracle["cat"];
    assert_close("cat.linf_simple", &cat["linf_simple"], &want["linf"], 1e-12);
    assert_close("cat.psi", &cat["psi"], &want["psi"], 1e-9);
    assert_close("cat.js", &cat["js"], &want["js"], 1e-9);
    assert_close(
        "cat.chi2_statistic",
        &cat["chi2_statistic"],
        &want["chi2"],
        1e-9,
    );
    assert_close("cat.chi2_p_value", &cat["chi2_p_value"], &want["p"], 1e-6);

    // x moved by half a standard deviation: drifted by Model Monitor's robust distance; k did not
    // move: its robust distance is exactly 0 after the small-sample correction.
    assert_eq!(feature(&drift, "x")["drifted"], true);
    assert_eq!(feature(&drift, "k")["drifted"], false);
    assert_eq!(feature(&drift, "k")["linf_robust"], 0.0);
    let violations = read_json(&out.join("constraint_violations.json"));
    let drift_flags: Vec<&Value> = violations["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["constraint_check_type"] == "baseline_drift_check")
        .collect();
    assert!(drift_flags.iter().any(|v| v["feature_name"] == "x"));
    assert!(drift_flags.iter().all(|v| v["feature_name"] != "k"));
    let x_flag = drift_flags
        .iter()
        .find(|v| v["feature_name"] == "x")
        .unwrap();
    // Model Monitor's wording; the number is the robust distance (compared as a number: two
    // shortest-digit printers may pick different digits for the same double).
    let description = x_flag["description"].as_str().unwrap();
    let distance: f64 = description
        .strip_prefix("Baseline drift distance: ")
        .and_then(|rest| rest.strip_suffix(" exceeds threshold: 0.1"))
        .unwrap_or_else(|| panic!("unexpected wording: {description}"))
        .parse()
        .unwrap();
    assert_eq!(
        distance,
        feature(&drift, "x")["linf_robust"].as_f64().unwrap()
    );

    // The metrics file: one datum per line, Model Monitor's names and dimensions.
    let metrics = std::fs::read_to_string(out.join("cloudwatch_metrics.jsonl")).unwrap();
    let datums: Vec<Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let named = |n: &str| {
        datums
            .iter()
            .find(|d| d["MetricName"] == n)
            .unwrap_or_else(|| panic!("{n}"))
    };
    assert_eq!(
        named("feature_baseline_drift_x")["Value"],
        feature(&drift, "x")["linf_robust"]
    );
    assert_eq!(
        named("feature_data_x")["StatisticValues"]["SampleCount"],
        1200.0
    );
    assert!(named("feature_non_null_k")["Value"].as_f64().unwrap() < 1.0);
    assert_eq!(
        named("feature_non_null_x")["Dimensions"][0],
        json!({"Name": "MonitoringSchedule", "Value": "driftd-check"})
    );
}

/// Far more values than the sketch keeps exactly: the KS distance stays within the sketch's
/// error of scipy's exact one.
#[test]
fn large_samples_stay_within_the_sketch_bound() {
    let dir = tempfile::tempdir().unwrap();
    let base = rows(4, 60_000, 0.0, BASE_CATEGORIES);
    let current = rows(5, 60_000, 0.3, BASE_CATEGORIES);
    let (_, out) = check(dir.path(), &base, &current);
    let drift = read_json(&out.join("drift.json"));
    let oracle = common::run_python(DRIFT_ORACLE, &json!({"base": base, "cur": current}));
    let ours = feature(&drift, "x")["ks"].as_f64().unwrap();
    let exact = oracle["x"]["ks"].as_f64().unwrap();
    // Two sketches of k = 2048 each: rank error well under 1 % of n each.
    assert!((ours - exact).abs() < 0.02, "ks {ours} vs scipy {exact}");
    assert_eq!(feature(&drift, "x")["n_current"], 60_000.0);
}
