//! A multivariate-drift monitor in AWS mode against moto: capture whose two features lost their
//! correlation goes into S3, S3 notifies SQS, driftd reads it; the window's reconstruction error
//! goes to driftd's CloudWatch namespace, `multivariate_drift.json` to the S3 report folder, and
//! the alert to SNS (the shipped default rules: an alert per episode of violations). The
//! window's event and metric are on `/metrics` like any other window's.

use crate::common;
use crate::multivariate::correlated_rows;

use std::time::Duration;

use chrono::Utc;
use common::aws::*;
use serde_json::Value;

const MONITOR: &str = "churn-joint";
const NAMESPACE: &str = "driftd/Endpoints/multivariate-drift-metrics";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_correlation_becomes_a_metric_a_report_and_an_alert() {
    let stack = Stack::new("multivariate", 30, Delivery::Direct).await;
    let mut rng = fastrand::Rng::with_seed(23);
    let reference = correlated_rows(&mut rng, 1000, 0.9);
    let mut csv = String::from("_c0,_c1,_c2\n");
    for row in &reference {
        csv.push_str(&row.join(","));
        csv.push('\n');
    }
    let dir = stack.dir.path();
    std::fs::write(dir.join("reference.csv"), csv).unwrap();
    let status = common::driftd()
        .args([
            "baseline",
            "--kind",
            "multivariate-drift",
            "--format",
            "csv",
            "--header",
        ])
        .args(["--chunk-size", "100", "--input"])
        .arg(dir.join("reference.csv"))
        .arg("--output")
        .arg(dir.join("mv-baseline"))
        .status()
        .unwrap();
    assert!(status.success());
    let config = stack.config_with_monitor(
        30,
        1,
        &format!(
            r#"name = "{MONITOR}"
path = "{CAPTURE_PATTERN}"
format = "capture"
kind = "multivariate_drift"
baseline = "mv-baseline""#
        ),
    );
    let mut driftd = stack.start_polling(&config, "driftd.log").await;
    driftd
        .wait_for_log("s3:TestEvent", Duration::from_secs(30))
        .await;

    // One window of 100 records (the baseline's chunk size) whose a and b correlate −0.9.
    let start = upcoming_window();
    let lines: String = correlated_rows(&mut rng, 100, -0.9)
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let time = start + chrono::Duration::seconds(i as i64 % WINDOW_S);
            common::capture_record(row, None, &format!("mv-{i}"), time).to_string() + "\n"
        })
        .collect();
    stack
        .put(&stack.capture_key(start, "joint.jsonl"), lines.into_bytes())
        .await;

    let range = (
        Utc::now() - chrono::Duration::days(1),
        Utc::now() + chrono::Duration::hours(1),
    );
    let point = |name: &'static str| {
        let stack = &stack;
        async move {
            stack
                .metric_points(
                    NAMESPACE,
                    name,
                    &[("MonitoringSchedule", MONITOR)],
                    "Average",
                    60,
                    range,
                )
                .await
                .first()
                .map(|(_, v)| *v)
        }
    };
    let error = eventually("the error in CloudWatch", Duration::from_secs(60), || {
        point("multivariate_reconstruction_error")
    })
    .await;
    assert_eq!(point("multivariate_drift_alert").await, Some(1.0));

    // The report folder holds the window's multivariate_drift.json with the same error.
    let key = eventually("the S3 report", Duration::from_secs(30), || async {
        (stack.report_keys().await)
            .into_iter()
            .find(|k| k.ends_with("/multivariate_drift.json"))
    })
    .await;
    assert!(
        key.starts_with(&format!("monitoring/{}/{MONITOR}/", stack.endpoint)),
        "{key}"
    );
    let report = stack.read_report(&key).await;
    assert_eq!(report["input_rows"], 100);
    assert_eq!(report["chunk_size"], 100);
    let chunk = &report["chunks"][0];
    assert_eq!(chunk["alert"], true);
    assert_eq!(chunk["reconstruction_error"].as_f64(), Some(error));
    let upper = report["upper_threshold"].as_f64().unwrap();
    assert!(error > upper, "{error} vs {upper}");

    // The alert: the error and the threshold it crossed.
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
    assert_eq!(body["monitor"], MONITOR);
    assert_eq!(body["rows"], 100);
    let finding = &body["findings"][0];
    assert_eq!(finding["check"], "multivariate_drift_check");
    assert_eq!(finding["statistic"], "reconstruction_error");
    assert_eq!(finding["value"].as_f64(), Some(error));
    assert_eq!(finding["threshold"].as_f64(), Some(upper));
    assert!(
        body["report"]["multivariate_drift"]
            .as_str()
            .is_some_and(|uri| uri.ends_with(&key)),
        "{body}"
    );

    // The generic path's event and metric for the window and its deliveries.
    let series = format!("driftd_windows_finalised_total{{monitor=\"{MONITOR}\"");
    driftd
        .wait_for_metric(&series, 1.0, Duration::from_secs(10))
        .await;
    let series = format!("driftd_windows_with_violations_total{{monitor=\"{MONITOR}\"");
    driftd
        .wait_for_metric(&series, 1.0, Duration::from_secs(10))
        .await;
    for sink in ["cloudwatch", "s3_report"] {
        let series = format!("driftd_deliveries_total{{outcome=\"delivered\",sink=\"{sink}\"");
        driftd
            .wait_for_metric(&series, 1.0, Duration::from_secs(10))
            .await;
    }

    let (status, _) = driftd.terminate();
    assert!(status.success(), "{}", driftd.log());
}
