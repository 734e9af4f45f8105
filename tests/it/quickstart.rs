//! The README's first command: the quickstart runs and finds what generate.sh injected — drift
//! and a biased model in hour 01, nothing in hours 00 and 02 — and its rules alert once, trigger
//! one retraining and resolve, also across a restart. Run on a copy, so the repository stays
//! clean.

use crate::common;

use std::path::Path;

use serde_json::Value;

fn violations(path: &Path) -> usize {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["violations"].as_array().unwrap().len()
}

#[test]
fn the_quickstart_flags_the_injected_hour_only() {
    let (_dir, quickstart) = common::copy_quickstart();

    let output = common::driftd()
        .args(["run", "--once", "--config"])
        .arg(quickstart.join("driftd.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");

    let out = quickstart.join("out");
    for hour in ["00", "01", "02"] {
        let quality = out.join(format!(
            "driftd-demo/driftd-demo-data-quality/2026/11/01/{hour}"
        ));
        let bias = out.join(format!("loans-bias/2026/11/01/{hour}"));
        let (q, b) = (
            violations(&quality.join("constraint_violations.json")),
            violations(&bias.join("constraint_violations.json")),
        );
        if hour == "01" {
            assert!(
                q > 0 && b > 0,
                "hour {hour}: {q} quality, {b} bias violations\n{stdout}"
            );
        } else {
            assert_eq!((q, b), (0, 0), "hour {hour}\n{stdout}");
        }
    }
}

/// The actions of one monitor, in the order they were taken. Each monitor's windows are
/// finalised in time order; two monitors' are not ordered between them.
fn actions(out: &Path, monitor: &str) -> Vec<(String, String, String)> {
    (common::actions(out).into_iter())
        .filter(|a| a["monitor"] == monitor)
        .map(|a| {
            let kind = a["kind"].as_str().unwrap_or("-").to_string();
            (
                a["action"].as_str().unwrap().to_string(),
                a["rule"].as_str().unwrap().to_string(),
                kind,
            )
        })
        .collect()
}

#[test]
fn the_quickstart_rules_fire_once_and_resolve_across_a_restart() {
    let (_dir, quickstart) = common::copy_quickstart();
    let run = || {
        let status = common::driftd()
            .args(["run", "--once", "--config"])
            .arg(quickstart.join("driftd.toml"))
            .status()
            .unwrap();
        assert!(status.success());
    };
    run();
    let t = |a: &str, r: &str, k: &str| (a.to_string(), r.to_string(), k.to_string());
    // Hour 00: nothing. Hour 01: the data-quality monitor fires both rules and one retrain, the
    // bias monitor fires any-violation. Hour 02: all three episodes resolve.
    let quality = vec![
        t("alert", "any-violation", "firing"),
        t("alert", "retrain-on-drift", "firing"),
        t("retrain", "retrain-on-drift", "-"),
        t("alert", "any-violation", "resolved"),
        t("alert", "retrain-on-drift", "resolved"),
    ];
    let bias = vec![
        t("alert", "any-violation", "firing"),
        t("alert", "any-violation", "resolved"),
    ];
    let out = quickstart.join("out");
    assert_eq!(actions(&out, "driftd-demo-data-quality"), quality);
    assert_eq!(actions(&out, "loans-bias"), bias);
    // A restart finds every file in the ledger: nothing is read or fires twice.
    run();
    assert_eq!(actions(&out, "driftd-demo-data-quality"), quality);
    assert_eq!(actions(&out, "loans-bias"), bias);
}

/// The churn model's hour 01 is estimated to drop below its reference before any of its labels
/// exist; the clean hours 00 and 02 are not. Hour 00's labels give its realized metrics.
#[test]
fn the_quickstart_estimates_the_churn_models_drop_before_its_labels() {
    let (_dir, quickstart) = common::copy_quickstart();
    let output = common::driftd()
        .args(["run", "--once", "--config"])
        .arg(quickstart.join("driftd.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");

    let out = quickstart.join("out");
    let window =
        |hour: &str| out.join(format!("churn-model/churn-model-quality/2026/11/01/{hour}"));
    let read = |path: std::path::PathBuf| -> Value {
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    };
    for hour in ["00", "01", "02"] {
        let estimate = read(window(hour).join("estimated_performance.json"));
        let accuracy = &estimate["chunks"][0]["metrics"]["accuracy"];
        assert_eq!(accuracy["alert"], hour == "01", "hour {hour}: {accuracy}");
        let statistics = read(window(hour).join("statistics.json"));
        let labelled = if hour == "00" { 400 } else { 0 };
        assert_eq!(statistics["dataset"]["item_count"], labelled, "hour {hour}");
    }
    assert_eq!(
        actions(&out, "churn-model-quality"),
        [
            ("alert", "estimated-accuracy-drop", "firing"),
            ("alert", "estimated-accuracy-drop", "resolved"),
        ]
        .map(|(a, r, k)| (a.to_string(), r.to_string(), k.to_string()))
    );
}
