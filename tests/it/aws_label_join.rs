//! The label join in AWS mode, against the emulator: capture objects, then ground-truth
//! objects collected later, announced on SQS → model-quality metrics in CloudWatch, a
//! violation alert on SNS and the window's files (with `label_join.json`) in the S3 report.
//! Event times are in 2030, so windows close on the data's watermark alone.

use crate::common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::aws::*;
use serde_json::{Value, json};

/// `n` capture records with CSV output `label,score`: label 1 with score 0.9 for even `i`,
/// label 0 with score 0.1 for odd `i`; event ids `{prefix}-{i}`.
fn predictions(n: usize, start: DateTime<Utc>, prefix: &str) -> String {
    (0..n)
        .map(|i| {
            let (label, score) = if i % 2 == 0 { (1, 0.9) } else { (0, 0.1) };
            common::capture_record(
                &["5".to_string(), "3.5".to_string()],
                Some(&format!("{label},{score}")),
                &format!("{prefix}-{i}"),
                start + chrono::Duration::seconds(i as i64 % WINDOW_S),
            )
            .to_string()
                + "\n"
        })
        .collect()
}

/// Ground truth for `{prefix}-{i}`, `i < n`: the prediction's label, except for `i % 5 == 0`
/// (wrong).
fn labels(n: usize, prefix: &str) -> String {
    (0..n)
        .map(|i| {
            let predicted = u8::from(i % 2 == 0);
            let truth = if i % 5 == 0 { 1 - predicted } else { predicted };
            json!({
                "groundTruthData": {"data": truth.to_string(), "encoding": "CSV"},
                "eventMetadata": {"eventId": format!("{prefix}-{i}")},
                "eventVersion": "0"
            })
            .to_string()
                + "\n"
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captures_then_labels_through_sqs_become_model_quality_metrics_and_an_alert() {
    let stack = Stack::new("labels", 30, Delivery::Direct).await;
    let dir = stack.dir.path();
    // A baseline that was always right: accuracy 1.
    common::always_right_baseline(dir, "mq-baseline");
    // CBPE's reference: the window's two scores, each right 9 times in 10 (so calibrated or
    // not, a score of 0.9 means 0.9 and one of 0.1 means 0.1), in 4 chunks of 250.
    let reference: String = (0..1000)
        .map(|i| {
            let (predicted, score) = if i % 2 == 0 { (1, 0.9) } else { (0, 0.1) };
            let label = if (i / 2) % 10 == 0 {
                1 - predicted
            } else {
                predicted
            };
            format!("{predicted},{score},{label}\n")
        })
        .collect();
    std::fs::write(
        dir.join("reference.csv"),
        format!("_c0,_c1,label\n{reference}"),
    )
    .unwrap();
    // The same capture also feeds a data-quality monitor (its columns: label, score, inputs).
    std::fs::write(dir.join("dq.csv"), "1,0.9,5,3.5\n0,0.1,5,3.5\n").unwrap();
    let status = common::driftd()
        .args(["baseline", "--format", "csv", "--input"])
        .arg(dir.join("dq.csv"))
        .arg("--output")
        .arg(dir.join("dq-baseline"))
        .status()
        .unwrap();
    assert!(status.success());
    let config = stack.config_with_monitor(
        30,
        2,
        r#"name = "dq"
path = "capture/{endpoint}/AllTraffic/{yyyy}/{mm}/{dd}/{hh}/*.jsonl"
format = "capture"
baseline = "dq-baseline"

[[monitor]]
name = "quality"
path = "capture/{endpoint}/AllTraffic/{yyyy}/{mm}/{dd}/{hh}/*.jsonl"
ground_truth_path = "capture/{endpoint}/groundtruth/{yyyy}/{mm}/{dd}/{hh}/*.jsonl"
format = "capture"
kind = "model_quality"
baseline = "mq-baseline"
problem_type = "BinaryClassification"
inference_attribute = "_c0"
probability_attribute = "_c1"
ground_truth_attribute = "label"
label_lateness = "20m"

[monitor.estimate]
reference = "reference.csv"
chunk_size = 250"#,
    );
    let driftd = stack.start_polling(&config, "driftd.log").await;

    let start = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    // 250 predictions in the window from 00:00:00, in two objects.
    stack
        .put(
            &stack.capture_key(start, "a.jsonl"),
            predictions(250, start, "r").into_bytes(),
        )
        .await;
    // Labels for the first 240, collected 10 minutes later (before the window closes for
    // labels at 00:00:10 + 2 s + 20 min); every fifth is wrong: 48 of 240.
    let collected = start + chrono::Duration::minutes(10);
    stack
        .put(
            &stack
                .key_under("capture", collected, "gt.jsonl")
                .replace("/AllTraffic/", "/groundtruth/"),
            labels(240, "r").into_bytes(),
        )
        .await;
    driftd
        .wait_for_log("labels_absorbed", Duration::from_secs(60))
        .await;
    // A prediction an hour later moves the watermark past the window's close.
    let later = start + chrono::Duration::hours(1);
    stack
        .put(
            &stack.capture_key(later, "later.jsonl"),
            predictions(1, later, "later").into_bytes(),
        )
        .await;

    let expected_accuracy = 192.0 / 240.0;
    let accuracy = eventually("the accuracy datum", Duration::from_secs(60), || async {
        stack
            .metric_points(
                "aws/sagemaker/Endpoints/model-metrics",
                "accuracy",
                &[("MonitoringSchedule", "quality")],
                "Average",
                60,
                (start, start + chrono::Duration::hours(1)),
            )
            .await
            .first()
            .map(|(_, v)| *v)
    })
    .await;
    assert!((accuracy - expected_accuracy).abs() < 1e-12, "{accuracy}");
    // Estimated from the 250 scores alone: (125 · 0.9 + 125 · (1 − 0.1)) / 250.
    let estimated = stack
        .metric_points(
            "aws/sagemaker/Endpoints/model-metrics",
            "estimated_accuracy",
            &[("MonitoringSchedule", "quality")],
            "Average",
            60,
            (start, start + chrono::Duration::hours(1)),
        )
        .await;
    assert_eq!(estimated.len(), 1, "{estimated:?}");
    assert!((estimated[0].1 - 0.9).abs() < 1e-12, "{estimated:?}");

    let alert = eventually("the alert", Duration::from_secs(30), || async {
        stack
            .receive(&stack.alert_queue_url)
            .await
            .into_iter()
            .next()
    })
    .await;
    let envelope: Value = serde_json::from_str(alert.body().unwrap()).unwrap();
    let body: Value = serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
    assert_eq!(body["monitor"], "quality");
    // The alert links the window's estimate beside its statistics.
    let link = body["report"]["estimated_performance"]
        .as_str()
        .unwrap_or_default();
    assert!(link.ends_with("/estimated_performance.json"), "{body}");
    assert!(
        body["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["statistic"] == "accuracy" && f["value"] == expected_accuracy),
        "{body}"
    );

    // The window's files in the S3 report, with the join's counts.
    let prefix = format!("monitoring/{}/quality/2030/01/01/00/", stack.endpoint);
    let key = eventually("label_join.json", Duration::from_secs(30), || async {
        stack
            .report_keys()
            .await
            .into_iter()
            .find(|k| k.starts_with(&prefix) && k.ends_with("/label_join.json"))
    })
    .await;
    let counts = stack.read_report(&key).await;
    assert_eq!(counts["predictions"], 250, "{counts}");
    assert_eq!(counts["labelled"], 240, "{counts}");
    assert_eq!(counts["unlabelled"], 10, "{counts}");
    assert_eq!(counts["label_coverage"], 0.96, "{counts}");
    let statistics = stack
        .read_report(&key.replace("label_join.json", "statistics.json"))
        .await;
    assert_eq!(statistics["dataset"]["item_count"], 240);
    assert_eq!(
        statistics["binary_classification_metrics"]["accuracy"]["value"],
        expected_accuracy
    );
    // The data-quality monitor read the same 250 predictions.
    let dq = format!("monitoring/{}/dq/2030/01/01/00/", stack.endpoint);
    let dq_key = eventually("dq's statistics.json", Duration::from_secs(30), || async {
        (stack.report_keys().await.into_iter())
            .find(|k| k.starts_with(&dq) && k.ends_with("/statistics.json"))
    })
    .await;
    let profile = stack.read_report(&dq_key).await;
    assert_eq!(profile["dataset"]["item_count"], 250, "{profile}");
    let estimate = stack
        .read_report(&key.replace("label_join.json", "estimated_performance.json"))
        .await;
    assert_eq!(estimate["input_rows"], 250, "{estimate}");
    let accuracy = &estimate["chunks"][0]["metrics"]["accuracy"];
    assert!(
        (accuracy["value"].as_f64().unwrap() - 0.9).abs() < 1e-12,
        "{accuracy}"
    );
}

/// A bias monitor on capture traffic in AWS mode: facets and predictions from capture objects,
/// labels from ground-truth objects, both through SQS; the window's DPPL in CloudWatch equals
/// `driftd bias` on the joined rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bias_monitor_on_capture_gets_its_labels_through_sqs() {
    let stack = Stack::new("labels-bias", 30, Delivery::Direct).await;
    let dir = stack.dir.path();
    let start = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let common::LiveLoans {
        capture,
        labels,
        expected,
        ..
    } = common::live_loans(dir, 8, 300, 250, "b", |i| {
        start + chrono::Duration::seconds(i as i64 % WINDOW_S)
    });
    let dppl = common::analysis_metric(&expected, "post_training_bias_metrics", "sex", "DPPL");
    let config = stack.config_with_monitor(
        30,
        2,
        r#"name = "loans-bias"
path = "capture/{endpoint}/AllTraffic/{yyyy}/{mm}/{dd}/{hh}/*.jsonl"
ground_truth_path = "capture/{endpoint}/groundtruth/{yyyy}/{mm}/{dd}/{hh}/*.jsonl"
format = "capture"
kind = "bias"
analysis_config = "capture_config.json"
baseline = "baseline/analysis.json"
label_lateness = "20m""#,
    );
    let driftd = stack.start_polling(&config, "driftd.log").await;
    stack
        .put(&stack.capture_key(start, "a.jsonl"), capture.into_bytes())
        .await;
    let collected = start + chrono::Duration::minutes(5);
    stack
        .put(
            &stack
                .key_under("capture", collected, "gt.jsonl")
                .replace("/AllTraffic/", "/groundtruth/"),
            labels.into_bytes(),
        )
        .await;
    driftd
        .wait_for_log("labels_absorbed", Duration::from_secs(60))
        .await;
    let later = start + chrono::Duration::hours(1);
    let record = common::capture_record(
        &["1".to_string(), "0.5".to_string()],
        Some("1"),
        "later",
        later,
    );
    stack
        .put(
            &stack.capture_key(later, "later.jsonl"),
            format!("{record}\n").into_bytes(),
        )
        .await;
    let value = eventually("bias_metric_DPPL", Duration::from_secs(60), || async {
        stack
            .metric_points(
                "aws/sagemaker/Endpoints/bias-metrics",
                "bias_metric_DPPL",
                &[
                    ("MonitoringSchedule", "loans-bias"),
                    ("BiasStage", "Post-Training"),
                    ("Label", "label"),
                    ("LabelValue", "1"),
                    ("Facet", "sex"),
                    ("FacetValue", "0"),
                ],
                "Average",
                60,
                (start, start + chrono::Duration::hours(1)),
            )
            .await
            .first()
            .map(|(_, v)| *v)
    })
    .await;
    assert!((value - dppl).abs() < 1e-12, "{value} vs {dppl}");
}
