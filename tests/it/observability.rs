//! What an operator sees of a running daemon: `/metrics` after a known run holds exact counts
//! (and passes `promtool check metrics` where promtool is installed), `/healthz` and `/readyz`
//! answer, and `DRIFTD_LOG_FORMAT=json` gives one JSON object per log line.

use crate::common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn metrics_health_and_json_logs_of_a_known_run() {
    let repo = common::repo_root();
    let dir = tempfile::tempdir().unwrap();
    // The quickstart's capture: three hours of 400 records in two files each, drift in hour 01.
    let capture = dir.path().join("in/capture");
    copy_tree(&repo.join("examples/quickstart/data/capture"), &capture);
    let hour0 = capture.join("driftd-demo/AllTraffic/2026/11/01/00");
    // One more object with two good records and a malformed one, a corrupt gzip object, and a
    // file no monitor's pattern matches.
    let first = std::fs::read_dir(&hour0).unwrap().next().unwrap().unwrap();
    let good: Vec<String> = std::fs::read_to_string(first.path())
        .unwrap()
        .lines()
        .take(2)
        .map(String::from)
        .collect();
    std::fs::write(
        hour0.join("extra.jsonl"),
        format!("{}\n{{\"captureData\": \n{}\n", good[0], good[1]),
    )
    .unwrap();
    std::fs::write(hour0.join("broken.jsonl"), [0x1f, 0x8b, 0x08, 0x00, 0x01]).unwrap();
    std::fs::write(capture.join("README.txt"), "not data").unwrap();

    let port = common::free_port();
    let config = dir.path().join("driftd.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[input]
directory = "in"
poll_interval = "200ms"
settle_time = "0s"

[output]
directory = "out"

[observability]
listen = "127.0.0.1:{port}"

[[monitor]]
name = "demo"
path = "capture/{{endpoint}}/{{variant}}/{{yyyy}}/{{mm}}/{{dd}}/{{hh}}/*.jsonl"
format = "capture"
baseline = "{}"
"#,
            repo.join("baselines/driftd-demo-data-quality").display()
        ),
    )
    .unwrap();
    let log = dir.path().join("driftd.log");
    let mut child = common::driftd()
        .args(["run", "--config"])
        .arg(&config)
        .env("DRIFTD_LOG", "info")
        .env("DRIFTD_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    let metrics = loop {
        if let Some((200, metrics)) = common::http_get(port, "/metrics")
            && common::metric_sample(
                &metrics,
                "driftd_deliveries_total{outcome=\"delivered\",sink=\"files\"}",
            ) >= 3.0
        {
            break metrics;
        }
        assert!(
            Instant::now() < deadline,
            "no 3 windows within 60 s: {}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        common::http_get(port, "/healthz"),
        Some((200, "ok\n".into()))
    );
    assert_eq!(
        common::http_get(port, "/readyz"),
        Some((200, "ready\n".into()))
    );
    assert_eq!(
        common::http_get(port, "/nothing").map(|(status, _)| status),
        Some(404)
    );
    let _ = child.kill();
    let _ = child.wait();

    let expect = [
        ("driftd_objects_total{event=\"received\"}", 9.0),
        ("driftd_objects_total{event=\"read\"}", 7.0),
        ("driftd_objects_total{event=\"failed\"}", 1.0),
        ("driftd_objects_total{event=\"refused\"}", 1.0),
        ("driftd_objects_refused_total{reason=\"no_monitor\"}", 1.0),
        ("driftd_rows_total{monitor=\"demo\"}", 1202.0),
        ("driftd_records_quarantined_total{reason=\"bad_json\"}", 1.0),
        ("driftd_windows_finalised_total{monitor=\"demo\"}", 3.0),
        (
            "driftd_windows_with_violations_total{monitor=\"demo\"}",
            1.0,
        ),
        (
            "driftd_deliveries_total{outcome=\"delivered\",sink=\"files\"}",
            3.0,
        ),
        ("driftd_late_rows_total{monitor=\"demo\"}", 0.0),
        ("driftd_open_windows", 0.0),
        ("driftd_object_read_seconds_count", 7.0),
    ];
    for (series, value) in expect {
        assert_eq!(
            common::metric_sample(&metrics, series),
            value,
            "{series} in\n{metrics}"
        );
    }
    promtool_check(&metrics);
    // State-store operations per object (8 routed, 7 read into 3 windows): one ledger
    // lookup and one ledger write each (created once for a read object, written for the
    // failed one), and per read object one part written, one fence check and, at finalising,
    // one part read; parts are deleted once per window.
    let operations = |op: &str, area: &str| {
        common::metric_sample(
            &metrics,
            &format!("driftd_state_operations_total{{area=\"{area}\",op=\"{op}\"}}"),
        )
    };
    for (op, area, count) in [
        ("get", "ledger", 8.0),
        ("put_new", "ledger", 7.0),
        ("put", "ledger", 1.0),
        ("put", "parts", 7.0),
        ("get", "fence", 7.0),
        ("get", "parts", 7.0),
        ("delete_many", "parts", 3.0),
    ] {
        assert_eq!(operations(op, area), count, "{op} {area} in\n{metrics}");
    }
    // The watermark is written when an object moves it, at most once per object.
    assert!(operations("put", "watermark") <= 7.0, "{metrics}");

    // Every log line is one JSON object; the events carry their fields.
    let log = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let finalised: Vec<&Value> = lines
        .iter()
        .filter(|l| l["event"] == "window_finalised")
        .collect();
    assert_eq!(finalised.len(), 3, "{log}");
    assert!(finalised.iter().all(|l| l["monitor"] == "demo"), "{log}");
    assert_eq!(
        finalised
            .iter()
            .map(|l| l["rows"].as_u64().unwrap())
            .sum::<u64>(),
        1202
    );
}

/// Validates the exposition with Prometheus' own linter where it is installed (scripts/test.sh
/// installs Debian's `prometheus` package when it can).
fn promtool_check(metrics: &str) {
    let promtool = std::env::var("DRIFTD_PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let Ok(mut child) = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("SKIPPED promtool check: {promtool} is not installed");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}\n{metrics}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
