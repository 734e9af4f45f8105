//! AWS mode end to end: the real `driftd` binary, as a separate process, against moto (the AWS
//! emulator, FORMATS.md "Testing against AWS"). Each test starts its own moto server, so tests
//! share no state. Objects go into S3, S3 notifies SQS, driftd reads, and the test reads what
//! came out: CloudWatch metrics, the SNS alert (through an SQS queue subscribed to the topic)
//! and the report objects in S3.

use crate::common;

use std::io::Write;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, Utc};
use common::aws::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_objects_become_metrics_an_alert_and_a_report() {
    let stack = Stack::new("main-loop", 30, Delivery::Direct).await;
    let config = stack.config(30, 1, CAPTURE_PATTERN);
    let mut driftd = stack.start_polling(&config, "driftd.log").await;
    // moto sends s3:TestEvent when the notification is configured; driftd skips it.
    driftd
        .wait_for_log("s3:TestEvent", Duration::from_secs(30))
        .await;

    // Two objects in one window; ages shifted by 30 so that the window drifts from the baseline.
    let start = upcoming_window();
    let uploaded = Instant::now();
    stack
        .put(
            &stack.capture_key(start, "part 1.jsonl"),
            capture_lines(60, start, 30, "a").into_bytes(),
        )
        .await;
    stack
        .put(
            &stack.capture_key(start, "part-2.jsonl"),
            capture_lines(40, start, 30, "b").into_bytes(),
        )
        .await;

    let count = eventually("metrics in CloudWatch", Duration::from_secs(60), || async {
        stack.sample_count("age").await.filter(|&n| n >= 100.0)
    })
    .await;
    let to_metric = uploaded.elapsed();
    let window_end = start + chrono::Duration::seconds(WINDOW_S);
    eprintln!(
        "upload → metric readable: {:.1} s; window end → metric readable: {:.1} s",
        to_metric.as_secs_f64(),
        (Utc::now() - window_end).num_milliseconds() as f64 / 1000.0
    );
    assert_eq!(count, 100.0, "both objects, each counted once");
    let names = stack.metric_names().await;
    for expected in [
        "feature_baseline_drift_age",
        "feature_data_age",
        "feature_non_null_age",
        "feature_non_null_state",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }

    // The alert, through the queue subscribed to the topic (SNS envelope).
    let alert = eventually("the alert", Duration::from_secs(30), || async {
        stack
            .receive(&stack.alert_queue_url)
            .await
            .into_iter()
            .next()
    })
    .await;
    let envelope: Value = serde_json::from_str(alert.body().unwrap()).unwrap();
    let subject = envelope["Subject"].as_str().unwrap();
    // Within SNS's 100 characters: the names are shortened, never the window's time.
    let window_start = start.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    assert!(
        subject.starts_with("driftd firing (warning) any-")
            && subject.contains(": churn")
            && subject.contains(" on main")
            && subject.contains(", 1 violation")
            && subject.ends_with(&format!(", window {window_start}"))
            && subject.len() <= 100,
        "{subject}"
    );
    let dedup_key = format!("any-violation/{MONITOR}/main-loop-endpoint");
    for (name, value) in [
        ("severity", "warning"),
        ("kind", "firing"),
        ("rule", "any-violation"),
        ("dedup_key", dedup_key.as_str()),
        ("monitor", MONITOR),
        ("endpoint", "main-loop-endpoint"),
    ] {
        assert_eq!(
            envelope["MessageAttributes"][name]["Type"], "String",
            "{name}"
        );
        assert_eq!(
            envelope["MessageAttributes"][name]["Value"], value,
            "{name}"
        );
    }
    let body: Value = serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
    assert_eq!(body["monitor"], MONITOR);
    assert_eq!(body["endpoint"], "main-loop-endpoint");
    assert_eq!(body["rows"], 100);
    assert_eq!(
        body["window"]["start"],
        start.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    );
    let drift = body["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"] == "age" && f["check"] == "baseline_drift_check")
        .unwrap_or_else(|| panic!("no drift finding for age in {body}"));
    assert_eq!(drift["statistic"], "linf_robust");
    assert!(drift["value"].as_f64().unwrap() > drift["threshold"].as_f64().unwrap());
    // Windows shorter than a minute add minute and second folders.
    let dir = format!(
        "monitoring/main-loop-endpoint/{MONITOR}/{}",
        start.format("%Y/%m/%d/%H/%M/%S")
    );
    assert_eq!(
        body["report"]["constraint_violations"],
        format!(
            "s3://{}/{dir}/constraint_violations.json",
            stack.report_bucket
        )
    );

    // The report in Model Monitor's layout.
    let keys = stack.report_keys().await;
    assert_eq!(
        keys,
        [
            "cloudwatch_metrics.jsonl",
            "constraint_violations.json",
            "constraints.json",
            "drift.json",
            "statistics.json"
        ]
        .map(|f| format!("{dir}/{f}"))
    );
    let statistics = stack.read_report(&format!("{dir}/statistics.json")).await;
    assert_eq!(statistics["dataset"]["item_count"], 100);
    let violations = stack
        .read_report(&format!("{dir}/constraint_violations.json"))
        .await;
    assert!(
        violations["violations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["feature_name"] == "age")
    );

    // Every message was deleted once its window was written.
    eventually("an empty queue", Duration::from_secs(30), || async {
        (stack.queue_depth(&stack.queue_url).await == 0).then_some(())
    })
    .await;

    let (status, took) = driftd.terminate();
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    let _ = std::io::stderr().flush();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_wrapped_and_eventbridge_events_are_read_and_forged_ones_refused() {
    // S3 → SNS → SQS: the queue gets SNS envelopes (including the test event's).
    let stack = Stack::new("shapes", 30, Delivery::ViaSns).await;
    let config = stack.config(
        30,
        3,
        "*/{endpoint}/{variant}/{yyyy}/{mm}/{dd}/{hh}/*.jsonl",
    );
    let driftd = stack.start_polling(&config, "driftd.log").await;

    let start = upcoming_window();
    // Through SNS, with a key that needs URL-decoding.
    stack
        .put(
            &stack.capture_key(start, "a b+c.jsonl"),
            capture_lines(30, start, 0, "a").into_bytes(),
        )
        .await;
    // EventBridge's shape, sent by hand (no S3 notification covers eventbridge/).
    let eb_key = stack.key_under("eventbridge", start, "b.jsonl");
    stack
        .put(&eb_key, capture_lines(20, start, 0, "b").into_bytes())
        .await;
    let eventbridge = serde_json::json!({
        "version": "0", "id": "b5d2", "detail-type": "Object Created", "source": "aws.s3",
        "account": "123456789012", "time": Utc::now().to_rfc3339(), "region": "us-east-1",
        "resources": [format!("arn:aws:s3:::{}", stack.bucket)],
        "detail": {"version": "0", "bucket": {"name": stack.bucket}, "object": {"key": eb_key, "size": 1},
                   "reason": "PutObject"}
    });
    stack.send(&eventbridge.to_string()).await;
    // Forged: another bucket (it exists and holds capture data), and a prefix not allowed.
    let other = format!("{}-other", stack.bucket);
    stack
        .s3
        .create_bucket()
        .bucket(&other)
        .send()
        .await
        .unwrap();
    let forged_key = stack.capture_key(start, "forged.jsonl");
    stack
        .put_in(
            &other,
            &forged_key,
            capture_lines(500, start, 0, "f").into_bytes(),
        )
        .await;
    stack.send(&s3_event(&other, &forged_key)).await;
    let private_key = stack.key_under("private", start, "p.jsonl");
    stack
        .put(&private_key, capture_lines(500, start, 0, "p").into_bytes())
        .await;
    stack.send(&s3_event(&stack.bucket, &private_key)).await;

    let count = eventually("metrics in CloudWatch", Duration::from_secs(60), || async {
        stack.sample_count("age").await
    })
    .await;
    assert_eq!(count, 50.0, "the SNS-wrapped and EventBridge objects only");
    let log = driftd.log();
    assert!(log.contains(r#"reason="s3:TestEvent""#), "{log}");
    assert!(log.contains("a b+c.jsonl"), "the key is URL-decoded: {log}");
    assert!(
        log.contains(&format!(
            r#"bucket \"{other}\" is not in input.allowed_buckets"#
        )),
        "{log}"
    );
    assert!(
        log.contains("is under none of input.allowed_prefixes"),
        "{log}"
    );
    for refused in [&forged_key, &private_key] {
        assert!(
            !log.contains(&format!(
                "reading object bucket=\"{other}\" key=\"{refused}\""
            )) && !log.contains(&format!("key=\"{private_key}\" monitor")),
            "a refused object was fetched: {log}"
        );
    }
    // Refused messages are deleted, not left for the dead-letter queue.
    eventually("an empty queue", Duration::from_secs(30), || async {
        (stack.queue_depth(&stack.queue_url).await == 0).then_some(())
    })
    .await;
    assert_eq!(stack.queue_depth(&stack.dlq_url).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_object_ends_in_the_dead_letter_queue_while_others_flow() {
    // Visibility 2 s and two receives before the dead-letter queue: a poison object gets there
    // in seconds.
    let stack = Stack::new("poison", 2, Delivery::Direct).await;
    let config = stack.config(2, 8, CAPTURE_PATTERN);
    let mut driftd = stack.start_polling(&config, "driftd.log").await;

    let start = upcoming_window();
    // gzip's magic, then bytes that are no deflate stream.
    let mut poison = vec![0x1f, 0x8b, 0x08, 0x00];
    poison.extend((0..4096u32).map(|i| (i * 7919 % 251) as u8));
    let poison_key = stack.capture_key(start, "poison.jsonl");
    stack.put(&poison_key, poison).await;
    stack
        .put(
            &stack.capture_key(start, "good.jsonl"),
            capture_lines(40, start, 0, "g").into_bytes(),
        )
        .await;

    let count = eventually(
        "metrics of the good object",
        Duration::from_secs(60),
        || async { stack.sample_count("age").await },
    )
    .await;
    assert_eq!(count, 40.0);
    // A message of an S3 event version driftd does not know goes the same way, unread.
    let unknown_version = s3_event(&stack.bucket, &stack.capture_key(start, "v3.jsonl"))
        .replace(r#""eventVersion":"2.1""#, r#""eventVersion":"3.0""#);
    stack.send(&unknown_version).await;
    let mut dead: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(dead.iter().any(|b| b.contains("poison.jsonl"))
        && dead.iter().any(|b| b.contains(r#""eventVersion":"3.0""#)))
    {
        assert!(
            Instant::now() < deadline,
            "the poison and unknown-version messages did not reach the DLQ: {dead:?}"
        );
        for m in stack.receive(&stack.dlq_url).await {
            dead.push(m.body().unwrap().to_string());
        }
    }
    let log = driftd.log();
    assert!(log.contains("left for redelivery"), "{log}");
    assert!(
        // Escaped in the log, like every value from outside.
        log.contains(r#"unsupported S3 event version \"3.0\" (driftd reads 2.x)"#),
        "{log}"
    );
    assert!(
        !log.contains("v3.jsonl"),
        "an unknown version is not read: {log}"
    );
    let dead_letters =
        std::fs::read_to_string(stack.dir.path().join("out").join("dead_letter.jsonl")).unwrap();
    assert!(dead_letters.contains(&poison_key), "{dead_letters}");
    // Two messages failed, each received twice: counted as two.
    let (status, _) = driftd.terminate();
    assert!(status.success());
    let summary = std::fs::read_to_string(driftd.log.with_extension("stdout")).unwrap();
    assert!(summary.contains("1 objects read, 2 failed"), "{summary}");
}

/// Issue 6's redelivery contract: a message whose visibility expires mid-processing (its
/// replica frozen with SIGSTOP, so no heartbeat) is read by another replica, and when the first
/// wakes up and finishes, the object still counts once; an event sent again later, after a
/// crash and a restart, is recognised from the durable ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_counts_once_across_visibility_expiry_and_a_crash() {
    let stack = Stack::new("redelivery", 2, Delivery::Direct).await;
    let config = stack.config(2, 0, CAPTURE_PATTERN);
    // Event times in 2030: the window closes when the test sends a later object, not on the
    // clock, so slow reads make no row late.
    let start = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let key = stack.capture_key(start, "twice.jsonl");
    // Big enough (~28 MB) that reading it takes a while, so the freeze lands mid-read.
    const ROWS: usize = 80_000;
    stack
        .put(&key, capture_lines(ROWS, start, 0, "h").into_bytes())
        .await;
    let mut first = stack.start_driftd(&config, "first.log");
    first
        .wait_for_log("reading object", Duration::from_secs(120))
        .await;
    let pid = first.child.as_ref().unwrap().id().to_string();
    signal("-STOP", &pid);
    assert!(
        !first.log().contains("object recorded"),
        "the first replica finished before it was frozen: {}",
        first.log()
    );
    // Frozen past its visibility timeout: the message comes back and a second replica reads it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let second = stack.start_driftd(&config, "second.log");
    second
        .wait_for_metric(
            r#"driftd_objects_total{event="recorded"}"#,
            1.0,
            Duration::from_secs(120),
        )
        .await;
    // The first wakes up, finishes its read and finds the object counted.
    signal("-CONT", &pid);
    first
        .wait_for_metric(
            r#"driftd_objects_total{event="duplicate"}"#,
            1.0,
            Duration::from_secs(120),
        )
        .await;

    // A crash of the first, then the same event again: the ledger knows the object.
    let mut child = first.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let third = stack.start_driftd(&config, "third.log");
    stack.send(&s3_event(&stack.bucket, &key)).await;
    // Either running replica may take it; the ledger is what both consult.
    eventually("the repeat recognised", Duration::from_secs(30), || {
        let logs = second.log() + &third.log();
        async move {
            logs.contains("object already counted; not counted again")
                .then_some(())
        }
    })
    .await;

    // A later object moves the watermark past the window: it holds every row exactly once.
    let later = start + chrono::Duration::hours(1);
    stack
        .put(
            &stack.capture_key(later, "later.jsonl"),
            capture_lines(1, later, 0, "l").into_bytes(),
        )
        .await;
    let stats = stack.dir.path().join(format!(
        "out/{}/{MONITOR}/2030/01/01/00/00/00/statistics.json",
        stack.endpoint
    ));
    let doc: Value = eventually("the window's statistics", Duration::from_secs(60), || {
        let text = std::fs::read_to_string(&stats).ok();
        async move { text.and_then(|t| serde_json::from_str(&t).ok()) }
    })
    .await;
    assert_eq!(doc["dataset"]["item_count"], ROWS as u64);
}

/// Peak resident memory of a running process (Linux), in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib / 1024.0
}

/// Uploads `body` in parts of 8 MiB with a multipart upload.
async fn put_multipart(stack: &Stack, key: &str, body: &[u8]) {
    let upload = stack
        .s3
        .create_multipart_upload()
        .bucket(&stack.bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap();
    let mut parts = Vec::new();
    for (i, part) in body.chunks(8 << 20).enumerate() {
        let number = i as i32 + 1;
        let out = stack
            .s3
            .upload_part()
            .bucket(&stack.bucket)
            .key(key)
            .upload_id(id)
            .part_number(number)
            .body(ByteStream::from(part.to_vec()))
            .send()
            .await
            .unwrap();
        parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(number)
                .e_tag(out.e_tag().unwrap())
                .build(),
        );
    }
    stack
        .s3
        .complete_multipart_upload()
        .bucket(&stack.bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_object_releases_it_and_a_large_multipart_object_is_read_in_bounded_memory() {
    let stack = Stack::new("large", 60, Delivery::Direct).await;
    // An hour-long window: this test reads the object, it does not wait for the window.
    let config = stack.config(60, 600, CAPTURE_PATTERN);
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace(&format!("size = \"{WINDOW_S}s\""), "size = \"1h\""),
    )
    .unwrap();
    let start = Utc::now();
    // ≥ 50 MB of capture records, made here.
    let mut body = String::with_capacity(56 << 20);
    let mut n = 0;
    while body.len() < 52 << 20 {
        body.push_str(&capture_lines(1000, start, 0, &format!("l{n}")));
        n += 1000;
    }
    let size_mb = body.len() as f64 / 1e6;
    let key = stack.capture_key(start, "large.jsonl");

    let mut first = stack.start_polling(&config, "first.log").await;
    put_multipart(&stack, &key, body.as_bytes()).await;
    drop(body);

    // SIGTERM while the object is being read: driftd stops reading, makes the message visible
    // again at once (not after the 60 s visibility timeout) and exits 0.
    first
        .wait_for_log("reading object", Duration::from_secs(120))
        .await;
    let (status, took) = first.terminate();
    assert!(status.success(), "{status}\n{}", first.log());
    assert!(took < Duration::from_secs(10), "exit took {took:?}");
    let log = first.log();
    assert!(
        !log.contains("object read"),
        "the read should have been interrupted: {log}"
    );
    assert!(log.contains("message released"), "{log}");
    eprintln!("SIGTERM mid-object → exit 0 in {:.2} s", took.as_secs_f64());
    let visible = eventually("the released message", Duration::from_secs(10), || async {
        let depth = stack.queue_depth(&stack.queue_url).await;
        (depth >= 1).then_some(depth)
    })
    .await;
    assert!(visible >= 1);

    // A new driftd reads the whole object, in memory far below its size, and counts it once
    // although moto announces a multipart upload twice.
    let mut second = stack.start_driftd(&config, "second.log");
    let read_start = Instant::now();
    second
        .wait_for_metric(
            r#"driftd_objects_total{event="read"}"#,
            1.0,
            Duration::from_secs(300),
        )
        .await;
    let read_time = read_start.elapsed();
    let pid = second.child.as_ref().unwrap().id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let peak = peak_rss_mib(pid);
    let log = second.log();
    assert!(
        log.contains(&format!("rows={n}")),
        "{n} rows expected: {log}"
    );
    eprintln!(
        "{size_mb:.1} MB multipart object ({n} records) read in {:.1} s; driftd peak RSS {peak:.0} MiB",
        read_time.as_secs_f64()
    );
    assert!(
        peak < 150.0,
        "peak RSS {peak:.0} MiB for a {size_mb:.0} MB object"
    );

    // The object is recorded in the state store, so its message is gone although its window
    // is still open; shutdown is clean.
    eventually("an empty queue", Duration::from_secs(10), || async {
        (stack.queue_depth(&stack.queue_url).await == 0).then_some(())
    })
    .await;
    let (status, _) = second.terminate();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_transform_capture_manifest_is_followed_within_the_allow_list() {
    let stack = Stack::new("manifest", 2, Delivery::Direct).await;
    let config = stack.config(2, 8, "batch-capture/output/{yyyy}/{mm}/{dd}/{hh}/*.json");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(
            "format = \"capture\"",
            "format = \"jsonl\"\nmanifest = true",
        )
        .replace(
            r#"allowed_prefixes = ["capture/", "eventbridge/"]"#,
            r#"allowed_prefixes = ["batch-capture/", "transform-output/"]"#,
        );
    std::fs::write(&config, text).unwrap();
    let driftd = stack.start_polling(&config, "driftd.log").await;

    // Batch transform output (JSON Lines) and the manifest its data capture writes (FORMATS.md
    // §1.4), keys relative to the manifest's prefix.
    let rows = |n: usize| -> String {
        (0..n)
            .map(|i| format!("{{\"age\": {}, \"state\": \"CA\"}}\n", 30 + i % 20))
            .collect()
    };
    stack
        .put("transform-output/part-1.jsonl.out", rows(25).into_bytes())
        .await;
    stack
        .put(
            "transform-output/sub/part-2.jsonl.out",
            rows(15).into_bytes(),
        )
        .await;
    let hour = Utc::now().format("%Y/%m/%d/%H");
    let manifest_key = format!("batch-capture/output/{hour}/3f1c.json");
    let manifest = serde_json::json!([
        {"prefix": format!("s3://{}/transform-output/", stack.bucket)},
        "part-1.jsonl.out",
        "sub/part-2.jsonl.out"
    ]);
    stack
        .put(&manifest_key, manifest.to_string().into_bytes())
        .await;
    stack.send(&s3_event(&stack.bucket, &manifest_key)).await;
    driftd
        .wait_for_log(
            &format!(
                "event=\"object_read\" source=\"s3://{}/{manifest_key}\" monitor=\"{MONITOR}\" rows=40",
                stack.bucket
            ),
            Duration::from_secs(30),
        )
        .await;

    // A manifest pointing outside the allow-list is refused, not followed.
    let other = format!("{}-other", stack.bucket);
    stack
        .s3
        .create_bucket()
        .bucket(&other)
        .send()
        .await
        .unwrap();
    stack
        .put_in(
            &other,
            "transform-output/secret.jsonl.out",
            rows(5).into_bytes(),
        )
        .await;
    let forged_key = format!("batch-capture/output/{hour}/forged.json");
    let forged = serde_json::json!([{"prefix": format!("s3://{other}/transform-output/")}, "secret.jsonl.out"]);
    stack
        .put(&forged_key, forged.to_string().into_bytes())
        .await;
    stack.send(&s3_event(&stack.bucket, &forged_key)).await;
    driftd
        .wait_for_log(
            &format!("lists s3://{other}/transform-output/secret.jsonl.out: bucket"),
            Duration::from_secs(30),
        )
        .await;
    assert!(!driftd.log().contains(&format!(
        "event=\"object_read\" source=\"s3://{}/{forged_key}\"",
        stack.bucket
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_outage_loses_nothing_and_sends_once_and_logs_no_secret() {
    let stack = Stack::new("outage", 2, Delivery::Direct).await;
    let config = stack.config(2, 1, CAPTURE_PATTERN);
    let driftd = stack.start_polling(&config, "driftd.log").await;
    // The alert topic goes (after start-up, which would refuse a missing topic): Publish
    // fails until it is back.
    stack
        .sns
        .delete_topic()
        .topic_arn(&stack.topic_arn)
        .send()
        .await
        .unwrap();
    let start = upcoming_window();
    stack
        .put(
            &stack.capture_key(start, "drifted.jsonl"),
            capture_lines(30, start, 30, "d").into_bytes(),
        )
        .await;
    // The window closes on the clock some 10 s from now; a loaded CI machine may take longer.
    driftd
        .wait_for_metric(
            r#"driftd_deliveries_total{outcome="retrying",sink="messages"}"#,
            1.0,
            Duration::from_secs(90),
        )
        .await;
    let log = driftd.log();
    assert!(
        log.contains("SNS Publish: failed after 1 attempt: permanent error: NotFound"),
        "{log}"
    );
    // The object's message is long deleted: the alert waits in the durable outbox, with the
    // report and metrics already delivered.
    assert_eq!(stack.queue_depth(&stack.queue_url).await, 0);
    let outbox_dir = stack.dir.path().join("out/state/outbox");
    let outbox: Vec<Value> = walk(&outbox_dir)
        .iter()
        .map(|path| serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap())
        .collect();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0]["report_done"], true);
    assert_eq!(outbox[0]["metrics_done"], true);
    assert_eq!(outbox[0]["messages_sent"], 0);

    // The topic comes back (same ARN): the alert goes out once.
    let topic = stack
        .sns
        .create_topic()
        .name("outage-alerts")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    assert_eq!(topic, stack.topic_arn);
    stack
        .sns
        .subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(queue_arn(&stack.sqs, &stack.alert_queue_url).await)
        .send()
        .await
        .unwrap();
    driftd
        .wait_for_metric(
            r#"driftd_deliveries_total{outcome="delivered",sink="messages"}"#,
            1.0,
            Duration::from_secs(30),
        )
        .await;
    let mut alerts = Vec::new();
    for _ in 0..3 {
        alerts.extend(stack.receive(&stack.alert_queue_url).await);
    }
    assert_eq!(alerts.len(), 1, "exactly one alert");
    assert_eq!(stack.sample_count("age").await, Some(30.0));
    let log = driftd.log();
    assert!(
        !log.contains(common::MOTO_SECRET_KEY),
        "a secret in the log: {log}"
    );
}

/// A bias monitor in AWS mode: a batch CSV object whose model approves one group far less
/// often than the baseline's becomes `bias_metric_*` datums in Clarify's namespace, a bias
/// alert and a report with Clarify's files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bias_window_becomes_bias_metrics_an_alert_and_a_report() {
    let stack = Stack::new("bias", 30, Delivery::Direct).await;
    let dir = stack.dir.path();
    std::fs::write(
        dir.join("analysis_config.json"),
        common::loan_analysis_config().to_string(),
    )
    .unwrap();
    // The baseline is fair; the window's data approves sex 0 a tenth of the time.
    std::fs::write(dir.join("fair.csv"), common::loan_rows(1, 2000, 0.5)).unwrap();
    let unfair = common::loan_rows(2, 2000, 0.1);
    std::fs::write(dir.join("unfair.csv"), &unfair).unwrap();
    for (input, out) in [("fair.csv", "baseline"), ("unfair.csv", "reference")] {
        let status = common::driftd()
            .args(["bias", "--format", "csv", "--header", "--analysis-config"])
            .arg(dir.join("analysis_config.json"))
            .arg("--input")
            .arg(dir.join(input))
            .arg("--output")
            .arg(dir.join(out))
            .status()
            .unwrap();
        assert!(status.success());
    }
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("reference/analysis.json")).unwrap(),
    )
    .unwrap();
    let dppl = common::analysis_metric(&reference, "post_training_bias_metrics", "sex", "DPPL");

    // The key names no hour, so the object's rows take its S3 LastModified time.
    let config = stack.config_with_monitor(
        30,
        3,
        r#"name = "loans-bias"
path = "capture/{endpoint}/batch/*.csv"
format = "csv"
header = true
kind = "bias"
analysis_config = "analysis_config.json"
baseline = "baseline/analysis.json""#,
    );
    // And each window's period gets its compliance report ([report] every = one window).
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{text}\n[report]\nevery = \"{WINDOW_S}s\"\n"),
    )
    .unwrap();
    let driftd = stack.start_driftd(&config, "driftd.log");
    driftd
        .wait_for_log("s3:TestEvent", Duration::from_secs(30))
        .await;
    // Upload early in a window, so the object's window is still open when it is read.
    while WINDOW_S - Utc::now().timestamp().rem_euclid(WINDOW_S) < 5 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stack
        .put(
            &format!("capture/{}/batch/part-0.csv", stack.endpoint),
            unfair.into_bytes(),
        )
        .await;

    let value = eventually("bias_metric_DPPL", Duration::from_secs(60), || async {
        let now = Utc::now();
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
                3600,
                (
                    now - chrono::Duration::days(1),
                    now + chrono::Duration::hours(1),
                ),
            )
            .await
            .first()
            .map(|(_, v)| *v)
    })
    .await;
    assert!((value - dppl).abs() < 1e-9, "{value} vs {dppl}");

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
    assert_eq!(body["monitor"], "loans-bias");
    assert_eq!(body["severity"], "warning");
    assert_eq!(body["kind"], "firing");
    assert_eq!(body["rows"], 2000);
    let finding = body["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["statistic"] == "DPPL")
        .unwrap_or_else(|| panic!("no DPPL finding in {body}"));
    assert_eq!(finding["feature"], "sex");
    assert_eq!(finding["facet_value"], "0");
    assert_eq!(finding["check"], "bias_drift_check");
    assert!((finding["value"].as_f64().unwrap() - dppl).abs() < 1e-12);

    // The period's compliance report, under the S3 report prefix too: the biased window is a
    // breach of the four-fifths rule.
    let reports = format!("monitoring/reports/loans-bias/{}/", stack.endpoint);
    let report_key = eventually("the period's report", Duration::from_secs(60), || async {
        stack
            .report_keys()
            .await
            .into_iter()
            .find(|k| k.starts_with(&reports) && k.ends_with("/report.json"))
    })
    .await;
    let report = stack.read_report(&report_key).await;
    let four_fifths = report["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["scope"] == "period" && v["criterion"] == "four-fifths rule")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(four_fifths["verdict"], "breach", "{four_fifths}");

    // The report: Clarify's files in Model Monitor's layout, linked from the alert.
    let prefix = format!("monitoring/{}/loans-bias/", stack.endpoint);
    let keys: Vec<String> = stack
        .report_keys()
        .await
        .into_iter()
        .filter(|k| k.starts_with(&prefix))
        .collect();
    let names: Vec<&str> = keys
        .iter()
        .map(|k| k.strip_prefix(&prefix).unwrap().rsplit('/').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "analysis.json",
            "bias_groups.json",
            "cloudwatch_metrics.jsonl",
            "constraint_violations.json"
        ]
    );
    assert_eq!(
        body["report"]["analysis"],
        format!("s3://{}/{}", stack.report_bucket, keys[0])
    );
    assert_eq!(stack.read_report(&keys[0]).await, reference);
}

/// Issue 5's contract for rules in AWS mode: a drift that appears, persists and clears gives
/// exactly one firing alert, one retrain trigger (on an SQS queue, with the model's
/// identifiers) and one resolved alert, although driftd is restarted in the middle of the
/// episode. Event times are in 2030, so windows close on the data's watermark alone, one by one
/// as the next window's object arrives, whatever the test machine's speed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drift_episode_gives_one_alert_one_retrain_and_one_resolved_across_a_restart() {
    let stack = Stack::new("episode", 2, Delivery::Direct).await;
    let retrain_queue_url = stack
        .sqs
        .create_queue()
        .queue_name("episode-retrain")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let config = stack.config(2, 0, CAPTURE_PATTERN);
    let rules = stack.dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("drift.toml"),
        format!(
            r#"
[[rule]]
name = "age-drift"
severity = "critical"
resolve_after = 2
[rule.condition.drift]
features = ["age"]
statistic = "linf_robust"
above = 0.3
[rule.persistence]
windows = 2
[rule.alert]
[rule.retrain]
queue_url = "{retrain_queue_url}"
"#
        ),
    )
    .unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = text.replace(
        "baseline = \"baseline\"",
        "baseline = \"baseline\"\nmodel = { model_name = \"churn-xgb\", model_package_arn = \"arn:aws:sagemaker:us-east-1:123456789012:model-package/churn/7\" }",
    );
    text.push_str("\n[rules]\ndirectory = \"rules\"\n");
    std::fs::write(&config, text).unwrap();

    let base = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let window = |k: i64| base + chrono::Duration::seconds(k * WINDOW_S);
    // Windows 0–6: clean, drifted ×3, clean ×3. 40 clean rows match the baseline's ages
    // exactly; drifted ages are 30 higher, all outside the baseline's range.
    let drifted = |k: i64| (1..=3).contains(&k);
    let put_window = |k: i64| {
        let stack = &stack;
        async move {
            let shift = if drifted(k) { 30 } else { 0 };
            stack
                .put(
                    &stack.capture_key(window(k), &format!("w{k}.jsonl")),
                    capture_lines(40, window(k), shift, &format!("w{k}")).into_bytes(),
                )
                .await;
        }
    };

    let mut driftd = stack.start_polling(&config, "driftd-1.log").await;
    // Up to window 3: windows 0–2 close; window 2 completes two drifted windows in a row.
    for k in 0..=3 {
        put_window(k).await;
        driftd
            .wait_for_metric(
                r#"driftd_objects_total{event="read"}"#,
                (k + 1) as f64,
                Duration::from_secs(30),
            )
            .await;
    }
    driftd
        .wait_for_metric(
            r#"driftd_deliveries_total{outcome="delivered",sink="messages"}"#,
            2.0,
            Duration::from_secs(30),
        )
        .await;
    let (status, _) = driftd.terminate();
    assert!(status.success());

    // A new driftd finds window 3's part and the rules' state in the state store, and
    // carries on.
    let mut driftd = stack.start_polling(&config, "driftd-2.log").await;
    for k in 4..=6 {
        put_window(k).await;
        driftd
            .wait_for_metric(
                r#"driftd_objects_total{event="read"}"#,
                (k - 3) as f64,
                Duration::from_secs(30),
            )
            .await;
    }
    // Window 5 is the second clean one: the alert resolves when it closes.
    driftd
        .wait_for_metric(
            r#"driftd_deliveries_total{outcome="delivered",sink="messages"}"#,
            1.0,
            Duration::from_secs(30),
        )
        .await;
    // Time for anything extra to go out before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, _) = driftd.terminate();
    assert!(status.success());

    let mut alerts = Vec::new();
    let mut triggers = Vec::new();
    for _ in 0..3 {
        alerts.extend(stack.receive(&stack.alert_queue_url).await);
        triggers.extend(stack.receive(&retrain_queue_url).await);
    }
    let bodies = |messages: &[aws_sdk_sqs::types::Message], sns: bool| -> Vec<Value> {
        messages
            .iter()
            .map(|m| {
                let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
                if sns {
                    serde_json::from_str(body["Message"].as_str().unwrap()).unwrap()
                } else {
                    body
                }
            })
            .collect()
    };
    let mut alerts = bodies(&alerts, true);
    alerts.sort_by_key(|a| a["window"]["start"].as_str().unwrap().to_string());
    let kinds: Vec<(&str, &str)> = alerts
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap(),
                a["window"]["start"].as_str().unwrap(),
            )
        })
        .collect();
    let at = |k: i64| window(k).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    assert_eq!(
        kinds,
        [("firing", at(2).as_str()), ("resolved", at(5).as_str())]
    );
    let dedup = format!("age-drift/{MONITOR}/{}", stack.endpoint);
    for alert in &alerts {
        assert_eq!(alert["dedup_key"], dedup.as_str());
        assert_eq!(alert["severity"], "critical");
    }
    let firing = &alerts[0];
    assert!(
        firing["evidence"]["matches"][0]["value"].as_f64().unwrap() > 0.3,
        "{firing}"
    );

    let triggers = bodies(&triggers, false);
    assert_eq!(
        triggers.len(),
        1,
        "exactly one retrain trigger: {triggers:?}"
    );
    let trigger = &triggers[0];
    assert_eq!(
        trigger["idempotency_key"],
        format!("{dedup}/{}", at(2)).as_str()
    );
    assert_eq!(trigger["model"]["model_name"], "churn-xgb");
    assert_eq!(trigger["windows"]["start"], at(1).as_str());
    assert_eq!(trigger["windows"]["end"], at(3).as_str());
    assert_eq!(trigger["evidence"]["matches"][0]["subject"], "age");
    assert!(
        trigger["reason"]
            .as_str()
            .unwrap()
            .starts_with("rule age-drift: linf_robust of age"),
        "{trigger}"
    );
}
