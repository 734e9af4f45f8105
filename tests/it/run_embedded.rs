//! `driftd run --once` on a directory laid out like SageMaker's capture destination, and the
//! config errors a user sees at start-up.

use crate::common;

use std::path::Path;

use chrono::{Duration, TimeZone, Utc};
use serde_json::Value;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `n` capture records with inputs (age, state) and a score, starting at `start`, one a minute.
fn capture_lines(n: usize, start: chrono::DateTime<Utc>, age_shift: i64) -> String {
    (0..n)
        .map(|i| {
            let inputs = vec![
                (30 + age_shift + (i % 20) as i64).to_string(),
                ["CA", "NY"][i % 2].to_string(),
            ];
            common::capture_record(
                &inputs,
                Some("0.5"),
                &format!("e{i}"),
                start + Duration::minutes(i as i64),
            )
            .to_string()
                + "\n"
        })
        .collect()
}

fn config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("driftd.toml");
    write(
        &path,
        &format!(
            r#"
[input]
directory = "capture"

[output]
directory = "out"

[window]
size = "1h"
allowed_lateness = "5m"

[[monitor]]
name = "churn-data-quality"
path = "{{endpoint}}/{{variant}}/{{yyyy}}/{{mm}}/{{dd}}/{{hh}}/*.jsonl"
format = "capture"
baseline = "baseline"
{extra}"#
        ),
    );
    path
}

fn make_baseline(dir: &Path) {
    let mut csv = String::from("score,age,state\n");
    for i in 0..200 {
        csv.push_str(&format!("0.5,{},{}\n", 30 + i % 20, ["CA", "NY"][i % 2]));
    }
    write(&dir.join("baseline.csv"), &csv);
    let status = common::driftd()
        .args(["baseline", "--format", "csv", "--header", "--input"])
        .arg(dir.join("baseline.csv"))
        .arg("--output")
        .arg(dir.join("baseline"))
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn windows_follow_event_time_and_land_in_model_monitors_layout() {
    let dir = tempfile::tempdir().unwrap();
    make_baseline(dir.path());
    let t0 = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let hour_dir = |h: u32| {
        dir.path()
            .join(format!("capture/churn/AllTraffic/2026/11/01/{h:02}"))
    };
    // Hour 00: 60 clean records. Hour 01: 60 records whose ages moved by +15, split over two
    // files; the second file also holds 10 records stamped in hour 02.
    write(&hour_dir(0).join("a.jsonl"), &capture_lines(60, t0, 0));
    write(
        &hour_dir(1).join("b.jsonl"),
        &capture_lines(30, t0 + Duration::hours(1), 15),
    );
    let mut late_file = capture_lines(30, t0 + Duration::minutes(90), 15);
    late_file.push_str(&capture_lines(10, t0 + Duration::hours(2), 0));
    write(&hour_dir(1).join("c.jsonl"), &late_file);
    // Not in the pattern: ignored. Corrupt gzip: dead-lettered, the rest still flows.
    write(&dir.path().join("capture/README.txt"), "not data");
    std::fs::write(
        hour_dir(0).join("broken.jsonl"),
        [0x1f, 0x8b, 0x08, 0x00, 0x01],
    )
    .unwrap();

    let output = common::driftd()
        .args(["run", "--once", "--config"])
        .arg(config(dir.path(), ""))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");

    let window = |h: u32| {
        dir.path()
            .join(format!("out/churn/churn-data-quality/2026/11/01/{h:02}"))
    };
    let read =
        |p: &Path| -> Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
    for (hour, records, drifted) in [(0, 60, false), (1, 60, true), (2, 10, false)] {
        let stats = read(&window(hour).join("statistics.json"));
        assert_eq!(stats["dataset"]["item_count"], records, "hour {hour}");
        let drift = read(&window(hour).join("drift.json"));
        let age = drift["features"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "age")
            .unwrap();
        assert_eq!(age["drifted"], drifted, "hour {hour}: {age}");
        assert!(window(hour).join("constraint_violations.json").exists());
        assert!(window(hour).join("cloudwatch_metrics.jsonl").exists());
    }
    let metrics = std::fs::read_to_string(window(1).join("cloudwatch_metrics.jsonl")).unwrap();
    let datum: Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    assert_eq!(
        datum["Dimensions"],
        serde_json::json!([{"Name": "Endpoint", "Value": "churn"}, {"Name": "MonitoringSchedule", "Value": "churn-data-quality"}])
    );
    assert_eq!(datum["Timestamp"], "2026-11-01T02:00:00Z");

    let dead = std::fs::read_to_string(dir.path().join("out/dead_letter.jsonl")).unwrap();
    assert_eq!(dead.lines().count(), 1);
    assert!(dead.contains("broken.jsonl"), "{dead}");
    assert!(stdout.contains("1 failed"), "{stdout}");
    assert!(stdout.contains("1 matched no monitor"), "{stdout}");
}

fn start_error(dir: &Path, toml_extra: &str) -> String {
    let out = common::driftd()
        .args(["validate", "--config"])
        .arg(config(dir, toml_extra))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn bad_configs_say_what_to_change() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("capture")).unwrap();
    // No baseline directory yet.
    let err = start_error(dir.path(), "");
    assert!(
        err.contains("monitor[0] (churn-data-quality).baseline"),
        "{err}"
    );
    assert!(err.contains("driftd baseline"), "{err}");

    make_baseline(dir.path());
    let err = start_error(dir.path(), "treshold = 0.2\n");
    assert!(err.contains("driftd.toml"), "{err}");
    assert!(err.contains("unknown field `treshold`"), "{err}");
    assert!(
        err.contains("line"),
        "the TOML error points at the line: {err}"
    );

    let err = start_error(dir.path(), "array_element_name = \"{key}\"\n");
    assert!(
        err.contains("array_element_name: must contain {index}"),
        "{err}"
    );

    let ok = common::driftd()
        .args(["validate", "--config"])
        .arg(config(dir.path(), ""))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

/// A baseline and the config of a daemon (no `--once`) scanning `capture/` every 100 ms with
/// one data-quality monitor, `live`; the config's path.
fn live_daemon(dir: &Path) -> std::path::PathBuf {
    make_baseline(dir);
    std::fs::create_dir_all(dir.join("capture")).unwrap();
    let path = dir.join("driftd.toml");
    write(
        &path,
        r#"
[input]
directory = "capture"
poll_interval = "100ms"
settle_time = "0s"

[output]
directory = "out"

[[monitor]]
name = "live"
path = "{endpoint}/{variant}/{yyyy}/{mm}/{dd}/{hh}/*.jsonl"
format = "capture"
baseline = "baseline"
"#,
    );
    path
}

/// Without `--once` the daemon keeps scanning: a file written after start-up is read, and its
/// window closes on the clock (its event times are long past) and is written.
#[test]
fn the_daemon_picks_up_files_written_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = live_daemon(dir.path());
    let mut daemon = common::driftd()
        .args(["run", "--config"])
        .arg(&path)
        .spawn()
        .unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 11, 1, 5, 0, 0).unwrap();
    // Written under a temporary name and renamed into place, as the daemon asks of writers.
    let file = dir
        .path()
        .join("capture/ep/AllTraffic/2026/11/01/05/a.jsonl");
    write(&file.with_extension("jsonl.tmp"), &capture_lines(25, t0, 0));
    std::fs::rename(file.with_extension("jsonl.tmp"), &file).unwrap();
    let stats = dir.path().join("out/ep/live/2026/11/01/05/statistics.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !stats.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(doc["dataset"]["item_count"], 25);
}

/// A window's local files are a delivery like any other: when they cannot be written (here
/// the window's folder is blocked by a file of that name) the daemon says so, keeps running,
/// and writes them once it can. Before, they were written once after the commit and lost on
/// any failure or crash in between.
#[test]
fn a_window_whose_files_cannot_be_written_is_written_once_they_can() {
    let dir = tempfile::tempdir().unwrap();
    let path = live_daemon(dir.path());
    // The day's folder is a file: the window's folder below it cannot be made.
    let blocker = dir.path().join("out/ep/live/2026/11/01");
    write(&blocker, "in the way");
    let t0 = Utc.with_ymd_and_hms(2026, 11, 1, 5, 0, 0).unwrap();
    write(
        &dir.path()
            .join("capture/ep/AllTraffic/2026/11/01/05/a.jsonl"),
        &capture_lines(25, t0, 0),
    );
    let log_path = dir.path().join("driftd.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut daemon = common::driftd()
        .args(["run", "--config"])
        .arg(&path)
        .env("DRIFTD_LOG", "info")
        .env("DRIFTD_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let retrying = |line: &str| {
        serde_json::from_str::<Value>(line)
            .is_ok_and(|v| v["event"] == "delivery_retrying" && v["sink"] == "files")
    };
    common::wait_for(
        "a failed write of the window's files",
        std::time::Duration::from_secs(30),
        || {
            (std::fs::read_to_string(&log_path).unwrap_or_default())
                .lines()
                .any(retrying)
        },
    );
    assert!(daemon.try_wait().unwrap().is_none(), "driftd stopped");
    std::fs::remove_file(&blocker).unwrap();
    let stats = dir.path().join("out/ep/live/2026/11/01/05/statistics.json");
    common::wait_for(
        "the window's files",
        std::time::Duration::from_secs(30),
        || stats.exists(),
    );
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(doc["dataset"]["item_count"], 25);
    for file in [
        "constraint_violations.json",
        "drift.json",
        "cloudwatch_metrics.jsonl",
    ] {
        assert!(stats.with_file_name(file).exists(), "{file}");
    }
}
