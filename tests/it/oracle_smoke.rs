//! Proves the Python test oracles work, so a broken or missing venv fails here, loudly and first,
//! rather than as a confusing mismatch inside a statistics test. The expected values are worked
//! out by hand below, not computed by driftd.

use crate::common;

use serde_json::json;

const KS_2SAMP: &str = r#"
import json, sys
import numpy, scipy, pandas
from scipy.stats import ks_2samp
inp = json.load(sys.stdin)
out = []
for x, y in inp["pairs"]:
    r = ks_2samp(x, y, method="exact")
    out.append({"statistic": float(r.statistic), "pvalue": float(r.pvalue)})
json.dump({"results": out, "versions": {"numpy": numpy.__version__, "scipy": scipy.__version__,
           "pandas": pandas.__version__}}, sys.stdout)
"#;

#[test]
fn scipy_ks_2samp_matches_hand_computed_values() {
    let out = common::run_python(
        KS_2SAMP,
        &json!({"pairs": [
            [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]],
            [[0.1, 0.4, 0.7], [0.2, 0.5, 0.9, 1.3]],
        ]}),
    );
    let results = out["results"].as_array().expect("results array");

    // Completely separated samples: D = 1. Under H0 each of the C(6,3) = 20 orderings of the
    // ranks is equally likely and only 2 (all x below all y, or all above) reach D = 1, so the
    // exact two-sided p-value is 2/20.
    assert_eq!(results[0]["statistic"].as_f64().unwrap(), 1.0);
    assert!(
        (results[0]["pvalue"].as_f64().unwrap() - 0.1).abs() < 1e-12,
        "{out}"
    );

    // Pooled order x y x y x y y: ECDF gaps after each point are
    // 1/3, 1/12, 5/12, 1/6, 1/2, 1/4, 0, so D = 1/2 (after the third x at 0.7).
    assert!(
        (results[1]["statistic"].as_f64().unwrap() - 0.5).abs() < 1e-12,
        "{out}"
    );

    // The pins in scripts/requirements-test.txt are what is installed.
    let pins =
        std::fs::read_to_string(common::repo_root().join("scripts/requirements-test.txt")).unwrap();
    for (name, version) in out["versions"].as_object().unwrap() {
        let pin = format!("{name}=={}", version.as_str().unwrap());
        assert!(
            pins.lines().any(|l| l.trim() == pin),
            "installed {pin} is not pinned in scripts/requirements-test.txt; rerun scripts/test.sh"
        );
    }
}

#[test]
fn run_python_reports_the_scripts_error() {
    let err = std::panic::catch_unwind(|| {
        common::run_python("import sys; sys.exit('oracle says no')", &json!({}))
    })
    .expect_err("a failing script must panic");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("oracle says no"),
        "panic message lacks stderr: {msg}"
    );
}
