//! driftd's model-quality monitor against files SageMaker Model Monitor itself wrote
//! (tests/fixtures/sagemaker-real/; each case's SOURCE.md says where it comes from). The
//! expected values are SageMaker's, never driftd's own.

use crate::common;

use std::path::{Path, PathBuf};

use driftd::model_quality::{
    ComparisonOperator, Constraint, MetricValue, ModelQualityConstraints, ModelQualityStatistics,
    ProblemType, check, metric_values, suggest_constraints,
};
use serde_json::Value;

fn case(name: &str) -> PathBuf {
    common::repo_root()
        .join("tests/fixtures/sagemaker-real")
        .join(name)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The SDK's regression case. Its test names the columns the other way round: the model's
/// output is `Label` and the ground truth `Prediction` (SOURCE.md).
const SDK_REGRESSION: [&str; 6] = [
    "--problem-type",
    "Regression",
    "--inference-attribute",
    "Label",
    "--ground-truth-attribute",
    "Prediction",
];

#[test]
fn the_sdk_regression_baseline_is_reproduced_to_the_last_bit() {
    let case = case("sdk-pipeline-mq-regression");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("baseline");
    let input = case.join("baseline_dataset.csv");
    assert_eq!(
        common::model_quality("baseline", &SDK_REGRESSION, &input, None, &out),
        0
    );

    let ours = json(&out.join("statistics.json"));
    let theirs = json(&case.join("statistics.json"));
    assert_eq!(
        ours["dataset"]["item_count"],
        theirs["dataset"]["item_count"]
    );
    assert_eq!(ours["regression_metrics"], theirs["regression_metrics"]);
    // In SageMaker's order.
    let text = read(&out.join("statistics.json"));
    let at = |key: &str| text.find(&format!("\"{key}\"")).unwrap();
    assert!(at("item_count") < at("mae") && at("mae") < at("mse"));
    assert!(at("mse") < at("rmse") && at("rmse") < at("r2"));
    // The suggested constraints are SageMaker's suggestions, threshold for threshold.
    assert_eq!(
        json(&out.join("constraints.json")),
        json(&case.join("good_cases/constraints.json"))
    );
}

#[test]
fn the_sdk_constraints_give_sagemaker_s_verdicts() {
    let case = case("sdk-pipeline-mq-regression");
    let dir = tempfile::tempdir().unwrap();
    let input = case.join("baseline_dataset.csv");
    let good = dir.path().join("good");
    let code = common::model_quality(
        "check",
        &SDK_REGRESSION,
        &input,
        Some(&case.join("good_cases")),
        &good,
    );
    assert_eq!(code, 0);
    assert_eq!(
        json(&good.join("constraint_violations.json")),
        serde_json::json!({"violations": []})
    );
    // The hand-edited constraints lower the mse threshold tenfold.
    let bad = dir.path().join("bad");
    let code = common::model_quality(
        "check",
        &SDK_REGRESSION,
        &input,
        Some(&case.join("bad_cases")),
        &bad,
    );
    assert_eq!(code, 3);
    assert_eq!(
        json(&bad.join("constraint_violations.json")),
        serde_json::json!({"violations": [{
            "constraint_check_type": "GreaterThanThreshold",
            "description": "Metric mse with 0.33364933609800973 was GreaterThanThreshold '0.03364933609800973'",
            "metric_name": "mse",
        }]})
    );
    // CloudWatch datums named by the statistics keys.
    let metrics = read(&bad.join("cloudwatch_metrics.jsonl"));
    let names: Vec<String> = metrics
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["MetricName"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(names, ["mae", "mse", "rmse", "r2"]);
}

/// The twenty hourly executions of the NYC taxi monitor: each one's violations, computed from
/// its statistics.json and the baseline's constraints.json, are the file SageMaker wrote, byte
/// for byte once parsed (wording, number printing, order, the empty list); and each one's
/// constraints.json is what driftd suggests from its statistics.
#[test]
fn twenty_real_executions_get_sagemaker_s_violations() {
    let samples = case("awsmljp-nyctaxi-monitor-samples/model_quality_samples");
    let constraints: ModelQualityConstraints =
        serde_json::from_str(&read(&samples.join("baseline/constraints.json"))).unwrap();
    let mut reports = Vec::new();
    for month in std::fs::read_dir(samples.join("reports/2020")).unwrap() {
        for day in std::fs::read_dir(month.unwrap().path()).unwrap() {
            reports.push(day.unwrap().path().join("01"));
        }
    }
    reports.sort();
    assert_eq!(reports.len(), 20);
    let mut with_violations = 0;
    for report in &reports {
        let (problem_type, metrics) =
            metric_values(&read(&report.join("statistics.json"))).unwrap();
        assert_eq!(problem_type, ProblemType::Regression);
        let ours = serde_json::to_value(check(&constraints, &metrics)).unwrap();
        let theirs = json(&report.join("constraint_violations.json"));
        assert_eq!(ours, theirs, "{}", report.display());
        with_violations += usize::from(!theirs["violations"].as_array().unwrap().is_empty());

        let statistics = ModelQualityStatistics {
            problem_type,
            item_count: 0,
            metrics,
            confusion_matrix: None,
            roc: None,
            precision_recall: None,
            score_rows_refused: 0,
        };
        assert_eq!(
            serde_json::to_value(suggest_constraints(&statistics)).unwrap(),
            json(&report.join("constraints.json")),
            "{}",
            report.display()
        );
    }
    // Both outcomes occur.
    assert!(
        with_violations > 0 && with_violations < 20,
        "{with_violations}"
    );
}

/// A baseline of 299 rows, printed by its notebook with six decimals (so compared to them);
/// the standard deviations are SageMaker's random subsamples, so only their size is comparable.
#[test]
fn the_weather_baseline_matches_the_printed_values() {
    let case = case("bp-weather-model-quality-regression");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("baseline");
    let flags = [
        "--problem-type",
        "Regression",
        "--inference-attribute",
        "prediction",
        "--probability-attribute",
        "probability",
        "--ground-truth-attribute",
        "label",
    ];
    let input = case.join("data/model-quality-baseline-data.csv");
    assert_eq!(
        common::model_quality("baseline", &flags, &input, None, &out),
        0
    );
    let ours = json(&out.join("statistics.json"));
    let printed = json(&case.join("baseline_regression_metrics_printed.json"));
    assert_eq!(ours["dataset"]["item_count"], 299);
    for name in ["mae", "mse", "rmse", "r2"] {
        let value = ours["regression_metrics"][name]["value"].as_f64().unwrap();
        let want: f64 = printed["regression_metrics"][name]["value"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (value - want).abs() <= 5e-7,
            "{name}: {value} vs printed {want}"
        );
        let sd = ours["regression_metrics"][name]["standard_deviation"]
            .as_f64()
            .unwrap();
        let theirs: f64 = printed["regression_metrics"][name]["standard_deviation"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            sd > theirs / 3.0 && sd < theirs * 3.0,
            "{name}: sd {sd} vs SageMaker's {theirs}"
        );
    }
}

/// The weather monitor's real violation, which carries a standard deviation: the same metric,
/// spread and threshold give SageMaker's sentence.
#[test]
fn a_violation_with_a_spread_is_worded_as_sagemaker_words_it() {
    let case = case("bp-weather-model-quality-regression");
    let printed = json(&case.join("violations_table_printed.json"));
    let constraints = ModelQualityConstraints {
        problem_type: ProblemType::Regression,
        constraints: [(
            "r2".to_string(),
            Constraint {
                threshold: -7.7419149776821,
                comparison_operator: ComparisonOperator::LessThanThreshold,
            },
        )]
        .into(),
    };
    let metrics = [(
        "r2".to_string(),
        MetricValue {
            value: -53.790146743270654,
            standard_deviation: Some(4.829550001308316),
        },
    )];
    let ours = serde_json::to_value(check(&constraints, &metrics).violations).unwrap();
    assert_eq!(ours, printed["rows"]);
}
