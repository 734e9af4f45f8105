//! A feature-attribution monitor in AWS mode against moto: capture with Clarify online
//! explanations goes into S3, S3 notifies SQS, driftd reads it and publishes the NDCG and
//! Clarify's `feature_<name>` datums to the explainability namespace, and the window whose
//! ranking flipped raises an alert on SNS (the shipped default rules: an alert per episode of
//! violations).

use crate::common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::aws::*;
use serde_json::{Value, json};

const ATTRIBUTION_MONITOR: &str = "churn-attribution";
const EXPLAINABILITY_NAMESPACE: &str = "aws/sagemaker/Endpoints/explainability-metrics";

/// `n` capture records in the window from `start`, each explaining its record with the same
/// attributions a, b, c.
fn explained_lines(n: usize, start: DateTime<Utc>, (a, b, c): (f64, f64, f64)) -> String {
    (0..n)
        .map(|i| {
            let response = json!({
                "version": "1.0",
                "predictions": {"content_type": "text/csv; charset=utf-8", "data": "0.5\n"},
                "explanations": {"kernel_shap": [[
                    {"feature_header": "a", "attributions": [{"attribution": [a]}]},
                    {"feature_header": "b", "attributions": [{"attribution": [-b]}]},
                    {"feature_header": "c", "attributions": [{"attribution": [c]}]}
                ]]}
            });
            let time = start + chrono::Duration::seconds(i as i64 % WINDOW_S);
            json!({
                "captureData": {
                    "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                      "data": "1,2,3", "encoding": "CSV"},
                    "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                       "data": response.to_string(), "encoding": "JSON"}
                },
                "eventMetadata": {"eventId": format!("x-{i}"),
                                  "inferenceTime": time.format("%Y-%m-%dT%H:%M:%SZ").to_string()},
                "eventVersion": "0"
            })
            .to_string()
                + "\n"
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_ranking_becomes_an_ndcg_metric_and_an_alert() {
    let stack = Stack::new("attribution", 30, Delivery::Direct).await;
    // A Clarify explainability baseline: a 2.0, b 0.5, c 0.1.
    std::fs::write(
        stack.dir.path().join("attribution-baseline.json"),
        json!({"version": "1.0", "explanations": {"kernel_shap": {"label0": {
            "global_shap_values": {"a": 2.0, "b": 0.5, "c": 0.1},
            "expected_value": 0.25}}}})
        .to_string(),
    )
    .unwrap();
    let config = stack.config_with_monitor(
        30,
        1,
        &format!(
            r#"name = "{ATTRIBUTION_MONITOR}"
path = "{CAPTURE_PATTERN}"
format = "capture"
kind = "feature_attribution"
baseline = "attribution-baseline.json""#
        ),
    );
    let mut driftd = stack.start_polling(&config, "driftd.log").await;
    driftd
        .wait_for_log("s3:TestEvent", Duration::from_secs(30))
        .await;

    // The window's attributions reverse the ranking: a 0.1, b 0.5, c 2.0 in every record.
    let start = upcoming_window();
    stack
        .put(
            &stack.capture_key(start, "explained.jsonl"),
            explained_lines(30, start, (0.1, 0.5, 2.0)).into_bytes(),
        )
        .await;

    let dimensions = |value_type| {
        [
            ("MonitoringSchedule", ATTRIBUTION_MONITOR),
            ("ExplainabilityMethod", "KernelShap"),
            ("Label", "label0"),
            ("ValueType", value_type),
        ]
    };
    let range = (
        Utc::now() - chrono::Duration::days(1),
        Utc::now() + chrono::Duration::hours(1),
    );
    let ndcg = eventually(
        "the NDCG in CloudWatch",
        Duration::from_secs(60),
        || async {
            stack
                .metric_points(
                    EXPLAINABILITY_NAMESPACE,
                    "feature_attribution_ndcg",
                    &dimensions("NDCG"),
                    "Average",
                    60,
                    range,
                )
                .await
                .first()
                .map(|(_, v)| *v)
        },
    )
    .await;
    // Live order c, b, a scored with the baseline's values (FORMATS.md §8), by hand:
    // DCG = 0.1/log2(2) + 0.5/log2(3) + 2.0/log2(4); iDCG = 2.0/log2(2) + 0.5/log2(3) + 0.1/log2(4).
    let l3 = 3f64.log2();
    let expected = (0.1 + 0.5 / l3 + 1.0) / (2.0 + 0.5 / l3 + 0.05);
    assert!((ndcg - expected).abs() < 1e-9, "{ndcg} vs {expected}");
    let feature_c = stack
        .metric_points(
            EXPLAINABILITY_NAMESPACE,
            "feature_c",
            &dimensions("GlobalShapValues"),
            "Average",
            60,
            range,
        )
        .await;
    assert_eq!(
        feature_c.first().map(|(_, v)| *v),
        Some(2.0),
        "{feature_c:?}"
    );

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
    assert_eq!(body["monitor"], ATTRIBUTION_MONITOR);
    assert_eq!(body["rows"], 30);
    let finding = &body["findings"][0];
    assert_eq!(finding["feature"], "label0");
    assert_eq!(finding["check"], "feature_attribution_drift_check");
    assert!((finding["value"].as_f64().unwrap() - expected).abs() < 1e-9);
    assert_eq!(
        finding["description"],
        format!("Feature attribution drift {ndcg} exceeds threshold 0.9")
    );

    let (status, _) = driftd.terminate();
    assert!(status.success(), "{}", driftd.log());
}
