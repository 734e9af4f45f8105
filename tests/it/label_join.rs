//! The label join in `driftd run`: capture files give a model-quality monitor its
//! predictions, ground-truth files (SageMaker's format, in hour folders of when they were
//! collected) their labels, joined by event id. Every expected number is worked by hand from
//! the records written here.

use crate::common;

use std::path::Path;

use serde_json::{Value, json};

fn json_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Capture records with CSV output `label,score`: `(event id, second of the hour, label, score)`.
fn write_capture(path: &Path, hour: &str, records: &[(&str, u32, u8, f64)]) {
    let mut text = String::new();
    for (id, second, label, score) in records {
        let record = json!({
            "captureData": {
                "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": "5,3.5", "encoding": "CSV"},
                "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT", "data": format!("{label},{score}"), "encoding": "CSV"}
            },
            "eventMetadata": {"eventId": id, "inferenceTime": format!("2026-11-01T{hour}:00:{second:02}Z")},
            "eventVersion": "0"
        });
        text.push_str(&record.to_string());
        text.push('\n');
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Ground-truth records: `(event id, label)`.
fn write_labels(path: &Path, labels: &[(&str, u8)]) {
    let mut text = String::new();
    for (id, label) in labels {
        let record = json!({
            "groundTruthData": {"data": label.to_string(), "encoding": "CSV"},
            "eventMetadata": {"eventId": id},
            "eventVersion": "0"
        });
        text.push_str(&record.to_string());
        text.push('\n');
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

const CONFIG: &str = r#"
[input]
directory = "in"

[output]
directory = "out"

[window]
size = "1h"
allowed_lateness = "5m"

[[monitor]]
name = "quality"
path = "capture/{endpoint}/AllTraffic/{yyyy}/{mm}/{dd}/{hh}/*.jsonl"
ground_truth_path = "labels/{endpoint}/{yyyy}/{mm}/{dd}/{hh}/*.jsonl"
format = "capture"
kind = "model_quality"
baseline = "baseline"
problem_type = "BinaryClassification"
inference_attribute = "_c0"
probability_attribute = "_c1"
ground_truth_attribute = "label"
label_lateness = "2h"
orphan_ttl = "3h5m"
"#;

/// Writes the baseline (every prediction right: accuracy 1) and the config.
fn setup(root: &Path) {
    common::always_right_baseline(root, "baseline");
    std::fs::write(root.join("driftd.toml"), CONFIG).unwrap();
}

fn run_once(root: &Path) -> String {
    let output = common::driftd()
        .args(["run", "--once", "--config"])
        .arg(root.join("driftd.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// `report.json` of the compliance report over loans-bias's windows of 2026-11-01.
fn loans_bias_report(root: &Path) -> Value {
    let report_dir = root.join("report");
    let output = common::driftd()
        .args([
            "report",
            "bias",
            "--monitor",
            "loans-bias",
            "--format",
            "json",
        ])
        .args([
            "--from",
            "2026-11-01T00:00:00Z",
            "--to",
            "2026-11-02T00:00:00Z",
        ])
        .arg("--config")
        .arg(root.join("driftd.toml"))
        .arg("--output")
        .arg(&report_dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    json_file(&report_dir.join("report.json"))
}

#[test]
fn capture_and_ground_truth_join_into_model_quality_windows_with_their_counts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    setup(root);
    // Window 00:00–01:00: ten predictions p0..p9, label 1 with score 0.9 for even i, label 0
    // with score 0.2 for odd i; p3 predicted twice (the second record is a duplicate).
    let mut records: Vec<(String, u32, u8, f64)> = (0..10)
        .map(|i| {
            let even = i % 2 == 0;
            (
                format!("p{i}"),
                i,
                u8::from(even),
                if even { 0.9 } else { 0.2 },
            )
        })
        .collect();
    records.push(("p3".into(), 30, 1, 0.95));
    let records: Vec<(&str, u32, u8, f64)> = records
        .iter()
        .map(|(id, s, l, p)| (id.as_str(), *s, *l, *p))
        .collect();
    write_capture(
        &root.join("in/capture/ep/AllTraffic/2026/11/01/00/a.jsonl"),
        "00",
        &records,
    );
    // Collected at 01:00, before the window closes for labels (01:00 + 5 min + 2 h): labels
    // of p0..p7, a second label for p0 (the first wins), and one for an unknown id.
    // p0 1/1 TP, p1 0/0 TN, p2 1/0 FP, p3 0/1 FN, p4 1/1 TP, p5 0/0 TN, p6 1/1 TP, p7 0/0 TN.
    write_labels(
        &root.join("in/labels/ep/2026/11/01/01/a.jsonl"),
        &[
            ("p0", 1),
            ("p1", 0),
            ("p2", 0),
            ("p3", 1),
            ("p4", 1),
            ("p5", 0),
            ("p6", 1),
            ("p7", 0),
            ("p0", 0),
            ("unknown", 1),
        ],
    );
    // Collected at 04:00, after the window closed: p8's label is late. p9 never gets one.
    write_labels(
        &root.join("in/labels/ep/2026/11/01/04/b.jsonl"),
        &[("p8", 1)],
    );
    // A window at 06:00 with one prediction and no label.
    write_capture(
        &root.join("in/capture/ep/AllTraffic/2026/11/01/06/a.jsonl"),
        "06",
        &[("q0", 0, 1, 0.9)],
    );
    let stdout = run_once(root);

    let hour = root.join("out/ep/quality/2026/11/01/00");
    let statistics = json_file(&hour.join("statistics.json"));
    let metrics = &statistics["binary_classification_metrics"];
    assert_eq!(statistics["dataset"]["item_count"], 8, "{statistics}");
    let confusion = &metrics["confusion_matrix"];
    assert_eq!(confusion["1"]["1"], 3, "{confusion}");
    assert_eq!(confusion["0"]["0"], 3, "{confusion}");
    assert_eq!(confusion["0"]["1"], 1, "{confusion}");
    assert_eq!(confusion["1"]["0"], 1, "{confusion}");
    assert_eq!(metrics["accuracy"]["value"], 0.75);
    // Fewer than 200 rows: no standard deviation.
    assert_eq!(metrics["accuracy"]["standard_deviation"], "NaN");
    // The baseline was always right: accuracy 0.75 breaks its constraint.
    let violations = json_file(&hour.join("constraint_violations.json"));
    assert!(
        violations["violations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["metric_name"] == "accuracy"),
        "{violations}"
    );
    // Ten predictions (the repeat of p3 dropped and counted), eight labelled when the window
    // closed; p8's label came late; p0's second label a duplicate. The unknown id still waits
    // (it came at 01:00 and may wait 3 h 5 min).
    let counts = json_file(&hour.join("label_join.json"));
    assert_eq!(
        counts,
        json!({
            "predictions": 10,
            "labelled": 8,
            "unlabelled": 2,
            "late_labels": 1,
            "orphan_labels": 0,
            "duplicate_labels": 1,
            "duplicate_predictions": 1,
            "skipped_rows": 0,
            "label_coverage": 0.8
        })
    );
    // By the time the 06:00 window closes (09:05) the unknown id has waited past 04:05: it
    // is counted as an orphan there.
    let later = json_file(&root.join("out/ep/quality/2026/11/01/06/label_join.json"));
    assert_eq!(
        (
            &later["predictions"],
            &later["labelled"],
            &later["orphan_labels"]
        ),
        (&json!(1), &json!(0), &json!(1)),
        "{later}"
    );
    assert!(stdout.contains("8 labelled records"), "{stdout}");
}

#[test]
fn a_second_run_over_the_same_files_counts_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    setup(root);
    write_capture(
        &root.join("in/capture/ep/AllTraffic/2026/11/01/00/a.jsonl"),
        "00",
        &[("a", 1, 1, 0.9), ("b", 2, 0, 0.1)],
    );
    write_labels(
        &root.join("in/labels/ep/2026/11/01/01/a.jsonl"),
        &[("a", 1), ("b", 1)],
    );
    run_once(root);
    let hour = root.join("out/ep/quality/2026/11/01/00");
    let first = json_file(&hour.join("label_join.json"));
    assert_eq!(first["labelled"], 2);
    std::fs::remove_dir_all(&hour).unwrap();
    // Nothing new: the ledger knows both files, so no window is written again.
    run_once(root);
    assert!(!hour.exists(), "a window was finalised twice");
    // A new label file for a window already closed: late, counted with the next window.
    write_labels(
        &root.join("in/labels/ep/2026/11/01/05/c.jsonl"),
        &[("a", 0)],
    );
    write_capture(
        &root.join("in/capture/ep/AllTraffic/2026/11/01/06/b.jsonl"),
        "06",
        &[("c", 1, 1, 0.9)],
    );
    run_once(root);
    let next = json_file(&root.join("out/ep/quality/2026/11/01/06/label_join.json"));
    assert_eq!(next["predictions"], 1);
    assert_eq!(next["labelled"], 0);
    // "a" was labelled already: its second label is a duplicate, not a late one.
    assert_eq!(next["duplicate_labels"], 1, "{next}");
    assert_eq!(next["late_labels"], 0, "{next}");
}

#[test]
fn with_restate_a_late_label_gives_the_window_a_revision_and_leaves_the_first_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    setup(root);
    let config = format!("{CONFIG}restate = true\n");
    std::fs::write(root.join("driftd.toml"), config).unwrap();
    // p0..p3 predicted 1 with 0.9 (even) or 0 with 0.2 (odd).
    write_capture(
        &root.join("in/capture/ep/AllTraffic/2026/11/01/00/a.jsonl"),
        "00",
        &[
            ("p0", 0, 1, 0.9),
            ("p1", 1, 0, 0.2),
            ("p2", 2, 1, 0.9),
            ("p3", 3, 0, 0.2),
        ],
    );
    // In time (01:00): p0 1 (TP), p1 0 (TN). Collected at 04:00, after the window closed at
    // 03:05: p2 0 (FP).
    write_labels(
        &root.join("in/labels/ep/2026/11/01/01/a.jsonl"),
        &[("p0", 1), ("p1", 0)],
    );
    write_labels(
        &root.join("in/labels/ep/2026/11/01/04/b.jsonl"),
        &[("p2", 0)],
    );
    run_once(root);
    let hour = root.join("out/ep/quality/2026/11/01/00");
    let first = json_file(&hour.join("statistics.json"));
    assert_eq!(first["dataset"]["item_count"], 2, "{first}");
    let counts = json_file(&hour.join("label_join.json"));
    assert_eq!(
        (&counts["labelled"], &counts["late_labels"]),
        (&json!(2), &json!(1))
    );
    assert!(counts.get("revision").is_none(), "{counts}");

    // Revision 1: p2's late label folded in. Accuracy 2/3, one FP.
    let revision = hour.join("revision-1");
    let statistics = json_file(&revision.join("statistics.json"));
    let metrics = &statistics["binary_classification_metrics"];
    assert_eq!(statistics["dataset"]["item_count"], 3, "{statistics}");
    assert_eq!(metrics["confusion_matrix"]["0"]["1"], 1, "{metrics}");
    assert_eq!(metrics["accuracy"]["value"], 2.0 / 3.0);
    let counts = json_file(&revision.join("label_join.json"));
    assert_eq!(
        (
            &counts["labelled"],
            &counts["unlabelled"],
            &counts["revision"]
        ),
        (&json!(3), &json!(1), &json!(1)),
        "{counts}"
    );
    assert!(revision.join("constraint_violations.json").exists());

    // A later run: p3's label (0, TN), collected at 05:00, gives revision 2; the first
    // result and revision 1 stay as they were.
    let before = std::fs::read(revision.join("statistics.json")).unwrap();
    write_labels(
        &root.join("in/labels/ep/2026/11/01/05/c.jsonl"),
        &[("p3", 0)],
    );
    run_once(root);
    let second = json_file(&hour.join("revision-2/statistics.json"));
    assert_eq!(second["dataset"]["item_count"], 4, "{second}");
    assert_eq!(
        second["binary_classification_metrics"]["accuracy"]["value"],
        0.75
    );
    let counts = json_file(&hour.join("revision-2/label_join.json"));
    assert_eq!(
        (&counts["labelled"], &counts["revision"]),
        (&json!(4), &json!(2))
    );
    assert_eq!(
        std::fs::read(revision.join("statistics.json")).unwrap(),
        before
    );
    assert_eq!(json_file(&hour.join("statistics.json")), first);
}

mod durability {
    //! SIGKILL at random moments — while files are read, label files folded in and windows
    //! joined — then a restart: the windows equal a calm run's, file for file.

    use super::*;

    use std::collections::BTreeMap;
    use std::process::Child;
    use std::time::{Duration, SystemTime};

    use common::aws::{signal, walk};

    const WINDOWS: u32 = 5;
    const FILES_PER_WINDOW: u32 = 6;
    const RECORDS: u32 = 10;

    /// Writes `body` at `relative` below `in/` with a fixed modification time, so that both
    /// runs name (and order) the files alike.
    fn fix_time(path: &Path) {
        let fixed = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(fixed)
            .unwrap();
    }

    fn id(window: u32, file: u32, record: u32) -> String {
        format!("w{window}f{file}r{record}")
    }

    /// A deterministic number in 0..100 for an id.
    fn pick(id: &str) -> u64 {
        id.bytes()
            .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
            % 100
    }

    fn write_load(root: &Path) -> usize {
        let mut files = 0;
        // Predictions: window k spans 00:00:10k–00:00:10k+9 of 2030-01-01.
        for w in 0..WINDOWS {
            for f in 0..FILES_PER_WINDOW {
                let ids: Vec<String> = (0..RECORDS).map(|r| id(w, f, r)).collect();
                let records: Vec<(&str, u32, u8, f64)> = (ids.iter().enumerate())
                    .map(|(r, id)| {
                        let score = (pick(id) as f64 + 0.5) / 100.0;
                        (id.as_str(), w * 10 + r as u32, u8::from(score > 0.5), score)
                    })
                    .collect();
                let path = root.join(format!(
                    "in/capture/ep/AllTraffic/2030/01/01/00/w{w}f{f}.jsonl"
                ));
                write_capture_at(&path, &records);
                fix_time(&path);
                files += 1;
            }
        }
        // Labels: one file per capture file, collected in hour 00 (in time); 10 % of the
        // predictions get none, 5 % a second (different) label in the next file, 5 % come in
        // a file of hour 01 (late); and each file has an unknown id (an orphan).
        let mut late = Vec::new();
        for w in 0..WINDOWS {
            for f in 0..FILES_PER_WINDOW {
                let mut labels = Vec::new();
                for r in 0..RECORDS {
                    let id = id(w, f, r);
                    let p = pick(&id);
                    let truth = u8::from(!p.is_multiple_of(3));
                    match p % 20 {
                        0 | 1 => continue,
                        2 => {
                            late.push((id, truth));
                            continue;
                        }
                        _ => labels.push((id.clone(), truth)),
                    }
                    if p % 20 == 3 {
                        labels.push((id, 1 - truth));
                    }
                }
                labels.push((format!("unknown-{w}-{f}"), 1));
                let path = root.join(format!("in/labels/ep/2030/01/01/00/w{w}f{f}.jsonl"));
                let borrowed: Vec<(&str, u8)> =
                    labels.iter().map(|(i, t)| (i.as_str(), *t)).collect();
                write_labels(&path, &borrowed);
                fix_time(&path);
                files += 1;
            }
        }
        let path = root.join("in/labels/ep/2030/01/01/01/late.jsonl");
        let borrowed: Vec<(&str, u8)> = late.iter().map(|(i, t)| (i.as_str(), *t)).collect();
        write_labels(&path, &borrowed);
        fix_time(&path);
        files + 1
    }

    /// Capture records at `2030-01-01T00:00:{second}`.
    fn write_capture_at(path: &Path, records: &[(&str, u32, u8, f64)]) {
        write_capture(path, "00", records);
        let text = std::fs::read_to_string(path)
            .unwrap()
            .replace("2026-11-01T00:", "2030-01-01T00:");
        std::fs::write(path, text).unwrap();
    }

    const DAEMON_CONFIG: &str = r#"
[input]
directory = "in"
poll_interval = "100ms"
settle_time = "0s"

[output]
directory = "out"

[window]
size = "10s"
allowed_lateness = "600s"

[state]
lease_timeout = "2s"

[daemon]
shutdown_timeout = "10s"

[[monitor]]
name = "quality"
path = "capture/{endpoint}/AllTraffic/{yyyy}/{mm}/{dd}/{hh}/*.jsonl"
ground_truth_path = "labels/{endpoint}/{yyyy}/{mm}/{dd}/{hh}/*.jsonl"
format = "capture"
kind = "model_quality"
baseline = "baseline"
problem_type = "BinaryClassification"
inference_attribute = "_c0"
probability_attribute = "_c1"
ground_truth_attribute = "label"
label_lateness = "60s"
orphan_ttl = "20m"
"#;

    fn start(root: &Path, log: &str) -> Child {
        let log = std::fs::File::create(root.join(log)).unwrap();
        common::driftd()
            .args(["run", "--config"])
            .arg(root.join("driftd.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    /// Window `w` (the 03:00 window for `w == WINDOWS`).
    fn window_dir(out: &Path, w: u32) -> std::path::PathBuf {
        if w == WINDOWS {
            return out.join("ep/quality/2030/01/01/03/00/00");
        }
        out.join(format!("ep/quality/2030/01/01/00/00/{:02}", w * 10))
    }

    /// Runs driftd over the load, killed `kills` times while reading and `kills / 2` times
    /// once the windows may close; the window files it wrote.
    fn run(kills: usize) -> BTreeMap<String, String> {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        setup(root);
        let port = common::free_port();
        std::fs::write(
            root.join("driftd.toml"),
            format!("{DAEMON_CONFIG}\n[observability]\nlisten = \"127.0.0.1:{port}\"\n"),
        )
        .unwrap();
        let files = write_load(root);
        let state = root.join("out/state");
        let mut rng = fastrand::Rng::with_seed(13);
        let mut child = start(root, "driftd-0.log");
        let mut restarts = 0;
        let mut kill_and_restart = |child: &mut Child, pause: std::ops::Range<u64>| {
            std::thread::sleep(Duration::from_millis(rng.u64(pause)));
            child.kill().unwrap();
            child.wait().unwrap();
            restarts += 1;
            *child = start(root, &format!("driftd-{restarts}.log"));
        };
        for _ in 0..kills {
            kill_and_restart(&mut child, 100..800);
        }
        common::wait_for("every file in the ledger", Duration::from_secs(120), || {
            walk(&state.join("ledger")).len() == files
        });
        // Later predictions move the watermark past every window, and past the 03:00 one,
        // when the unknown ids (waiting since 00:00) have waited their 20 minutes.
        for hour in ["03", "05"] {
            let later = root.join(format!(
                "in/capture/ep/AllTraffic/2030/01/01/{hour}/later.jsonl"
            ));
            write_capture(&later, hour, &[("later", 0, 1, 0.9)]);
            let text = std::fs::read_to_string(&later)
                .unwrap()
                .replace("2026-11-01T", "2030-01-01T");
            std::fs::write(&later, text).unwrap();
        }
        for _ in 0..kills / 2 {
            kill_and_restart(&mut child, 50..400);
        }
        let out = root.join("out");
        common::wait_for("every window written", Duration::from_secs(120), || {
            (0..=WINDOWS).all(|w| window_dir(&out, w).join("label_join.json").exists())
                && walk(&state.join("outbox")).is_empty()
        });
        // A daemon just restarted is stopped only once it serves (its signal handlers are set).
        common::wait_for("the daemon to serve", Duration::from_secs(30), || {
            common::http_get(port, "/readyz").is_some_and(|(status, _)| status == 200)
        });
        signal("-TERM", &child.id().to_string());
        let status = child.wait().unwrap();
        let log = std::fs::read_to_string(root.join(format!("driftd-{restarts}.log"))).unwrap();
        assert!(status.success(), "{status}: {log}");
        let mut windows = BTreeMap::new();
        for w in 0..=WINDOWS {
            for file in walk(&window_dir(&out, w)) {
                let name = file.strip_prefix(&out).unwrap().display().to_string();
                windows.insert(name, std::fs::read_to_string(&file).unwrap());
            }
        }
        windows
    }

    #[test]
    fn killed_while_reading_and_joining_the_windows_equal_a_calm_runs() {
        let calm = run(0);
        // Each window: statistics, constraints, violations, metrics and label_join.json.
        assert_eq!(calm.len(), (WINDOWS as usize + 1) * 5, "{:?}", calm.keys());
        let totals = (0..=WINDOWS).fold(BTreeMap::<&str, u64>::new(), |mut totals, w| {
            let path = window_dir(Path::new(""), w).join("label_join.json");
            let counts: Value = serde_json::from_str(&calm[&path.display().to_string()]).unwrap();
            for key in ["predictions", "labelled", "late_labels", "orphan_labels"] {
                *totals.entry(key).or_default() += counts[key].as_u64().unwrap();
            }
            totals
        });
        // Every prediction and every unknown id is accounted for.
        let predictions = u64::from(WINDOWS * FILES_PER_WINDOW * RECORDS) + 1;
        assert_eq!(totals["predictions"], predictions);
        assert_eq!(
            totals["orphan_labels"],
            u64::from(WINDOWS * FILES_PER_WINDOW)
        );
        let (mut labelled, mut late) = (0, 0);
        for w in 0..WINDOWS {
            for f in 0..FILES_PER_WINDOW {
                for r in 0..RECORDS {
                    match pick(&id(w, f, r)) % 20 {
                        0 | 1 => {}
                        2 => late += 1,
                        _ => labelled += 1,
                    }
                }
            }
        }
        assert_eq!(totals["labelled"], labelled);
        assert_eq!(totals["late_labels"], late);
        let killed = run(6);
        assert_eq!(
            calm.keys().collect::<Vec<_>>(),
            killed.keys().collect::<Vec<_>>()
        );
        for (name, content) in &calm {
            assert_eq!(content, &killed[name], "{name} differs after kills");
        }
    }
}

/// A bias monitor on capture traffic: facets and predictions from the capture, labels from
/// the join. Its window's metrics equal `driftd bias` on the joined rows written as a file.
#[test]
fn a_bias_monitor_on_capture_gets_its_labels_from_the_join() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // 400 loan decisions (sex, label, pred, x); the model approves sex 0 a fifth of the time.
    // The join will label all but the last 40.
    let start = common::utc("2026-11-01T00:00:00Z");
    let common::LiveLoans {
        rows,
        capture,
        labels,
        expected,
    } = common::live_loans(root, 5, 400, 360, "r", |i| {
        start + chrono::Duration::seconds(i as i64)
    });
    let capture_dir = root.join("in/capture/ep/AllTraffic/2026/11/01/00");
    std::fs::create_dir_all(&capture_dir).unwrap();
    std::fs::write(capture_dir.join("a.jsonl"), capture).unwrap();
    let labels_dir = root.join("in/labels/ep/2026/11/01/01");
    std::fs::create_dir_all(&labels_dir).unwrap();
    std::fs::write(labels_dir.join("a.jsonl"), labels).unwrap();
    std::fs::write(
        root.join("driftd.toml"),
        r#"
[input]
directory = "in"

[output]
directory = "out"

[[monitor]]
name = "loans-bias"
path = "capture/{endpoint}/AllTraffic/{yyyy}/{mm}/{dd}/{hh}/*.jsonl"
ground_truth_path = "labels/{endpoint}/{yyyy}/{mm}/{dd}/{hh}/*.jsonl"
format = "capture"
kind = "bias"
analysis_config = "capture_config.json"
baseline = "baseline/analysis.json"
"#,
    )
    .unwrap();
    run_once(root);

    let hour = root.join("out/ep/loans-bias/2026/11/01/00");
    let analysis = json_file(&hour.join("analysis.json"));
    for (stage, metrics) in [
        ("pre_training_bias_metrics", ["CI", "DPL"].as_slice()),
        (
            "post_training_bias_metrics",
            ["DPPL", "DI", "AD"].as_slice(),
        ),
    ] {
        for metric in metrics {
            let live = common::analysis_metric(&analysis, stage, "sex", metric);
            let offline = common::analysis_metric(&expected, stage, "sex", metric);
            assert!(
                (live - offline).abs() < 1e-12,
                "{metric}: {live} vs {offline}"
            );
        }
    }
    let counts = json_file(&hour.join("label_join.json"));
    assert_eq!(
        (
            &counts["predictions"],
            &counts["labelled"],
            &counts["unlabelled"]
        ),
        (&json!(400), &json!(360), &json!(40)),
        "{counts}"
    );
    // The compliance report over the window has its per-group performance section now: the
    // confusion counts of each sex are those of the joined rows.
    let report = loans_bias_report(root);
    let performance = &report["performance"];
    assert_eq!(performance["available"], true, "{performance}");
    for (sex, group) in [("0", "sex = 0"), ("1", "sex ≠ 0")] {
        let (mut tp, mut fp, mut fn_, mut tn) = (0, 0, 0, 0);
        for row in rows[..360].iter().filter(|r| r[0] == sex) {
            match (row[1].as_str(), row[2].as_str()) {
                ("1", "1") => tp += 1,
                ("0", "1") => fp += 1,
                ("1", "0") => fn_ += 1,
                _ => tn += 1,
            }
        }
        let group = performance["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["attribute"] == "sex" && r["group"] == group)
            .unwrap_or_else(|| panic!("no {group} in {performance}"));
        assert_eq!(
            group["cells"],
            json!({"true_positive": tp, "false_positive": fp, "false_negative": fn_, "true_negative": tn}),
            "sex = {sex}"
        );
        let accuracy = group["rates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "accuracy")
            .unwrap();
        assert_eq!(
            accuracy["value"].as_f64().unwrap(),
            f64::from(tp + tn) / f64::from(tp + fp + fn_ + tn)
        );
    }

    // The model approves sex 0 far less than the fair baseline: DPPL is flagged.
    let violations = json_file(&hour.join("constraint_violations.json"));
    let dppl = common::analysis_metric(&expected, "post_training_bias_metrics", "sex", "DPPL");
    assert!(
        violations["violations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["metric_name"] == "DPPL"
                && v["description"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("Metric value {dppl} "))),
        "{violations}"
    );
}

#[test]
fn with_restate_a_bias_windows_revision_equals_driftd_bias_on_all_its_joined_rows() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // 400 loan decisions, all labelled in the end: the first 300 labels in time, the last
    // 100 collected at 05:00, after the 00:00 window closed for labels (02:00 by default).
    let start = common::utc("2026-11-01T00:00:00Z");
    let common::LiveLoans {
        capture,
        labels,
        expected,
        ..
    } = common::live_loans(root, 7, 400, 400, "r", |i| {
        start + chrono::Duration::seconds(i as i64)
    });
    let capture_dir = root.join("in/capture/ep/AllTraffic/2026/11/01/00");
    std::fs::create_dir_all(&capture_dir).unwrap();
    std::fs::write(capture_dir.join("a.jsonl"), capture).unwrap();
    let lines: Vec<&str> = labels.lines().collect();
    for (hour, part) in [("01", &lines[..300]), ("05", &lines[300..])] {
        let labels_dir = root.join(format!("in/labels/ep/2026/11/01/{hour}"));
        std::fs::create_dir_all(&labels_dir).unwrap();
        std::fs::write(labels_dir.join("a.jsonl"), part.join("\n") + "\n").unwrap();
    }
    std::fs::write(
        root.join("driftd.toml"),
        r#"
[input]
directory = "in"

[output]
directory = "out"

[[monitor]]
name = "loans-bias"
path = "capture/{endpoint}/AllTraffic/{yyyy}/{mm}/{dd}/{hh}/*.jsonl"
ground_truth_path = "labels/{endpoint}/{yyyy}/{mm}/{dd}/{hh}/*.jsonl"
format = "capture"
kind = "bias"
analysis_config = "capture_config.json"
baseline = "baseline/analysis.json"
restate = true
"#,
    )
    .unwrap();
    run_once(root);

    let hour = root.join("out/ep/loans-bias/2026/11/01/00");
    let first = json_file(&hour.join("label_join.json"));
    assert_eq!(
        (&first["labelled"], &first["late_labels"]),
        (&json!(300), &json!(100))
    );
    let revision = hour.join("revision-1");
    let analysis = json_file(&revision.join("analysis.json"));
    for (stage, metrics) in [
        ("pre_training_bias_metrics", ["CI", "DPL"].as_slice()),
        (
            "post_training_bias_metrics",
            ["DPPL", "DI", "AD"].as_slice(),
        ),
    ] {
        for metric in metrics {
            let live = common::analysis_metric(&analysis, stage, "sex", metric);
            let offline = common::analysis_metric(&expected, stage, "sex", metric);
            assert!(
                (live - offline).abs() < 1e-12,
                "{metric}: {live} vs {offline}"
            );
        }
    }
    let counts = json_file(&revision.join("label_join.json"));
    assert_eq!(
        (
            &counts["labelled"],
            &counts["unlabelled"],
            &counts["revision"]
        ),
        (&json!(400), &json!(0), &json!(1)),
        "{counts}"
    );

    // The compliance report reads the window's latest revision: its per-group performance
    // counts every one of the 400 labelled rows.
    let report = loans_bias_report(root);
    let windows = report["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 1, "{windows:?}");
    assert_eq!(
        (&windows[0]["dir"], &windows[0]["revision"]),
        (&json!("ep/loans-bias/2026/11/01/00/revision-1"), &json!(1))
    );
    let performance = &report["performance"];
    let labelled: u64 = (performance["rows"].as_array().unwrap().iter())
        .filter(|r| r["attribute"] == "sex")
        .flat_map(|r| r["cells"].as_object().unwrap().values())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(labelled, 400, "{performance}");
}

/// `limits.max_window_rows.predictions`: a window's objects of 4 predictions each under a limit
/// of 5. Whichever object comes first in the merge is held; the other would pass the limit and
/// is refused whole, its rows counted in `skipped_rows` and by the `window_limited` event.
#[test]
fn predictions_past_max_window_rows_are_refused_whole_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    common::always_right_baseline(root, "baseline");
    let config = format!("{CONFIG}\n[limits.max_window_rows]\npredictions = 5\n");
    std::fs::write(root.join("driftd.toml"), config).unwrap();
    let ids: Vec<String> = (0..8).map(|i| format!("p{i}")).collect();
    for (object, ids) in ["a", "b"].iter().zip(ids.chunks(4)) {
        // Every prediction 1 (score 0.9), every label 1: whichever object is held, 4 TP.
        let records: Vec<(&str, u32, u8, f64)> =
            ids.iter().map(|id| (id.as_str(), 1, 1, 0.9)).collect();
        write_capture(
            &root.join(format!(
                "in/capture/ep/AllTraffic/2026/11/01/00/{object}.jsonl"
            )),
            "00",
            &records,
        );
    }
    let labels: Vec<(&str, u8)> = ids.iter().map(|id| (id.as_str(), 1)).collect();
    write_labels(&root.join("in/labels/ep/2026/11/01/01/a.jsonl"), &labels);
    let output = common::driftd()
        .args(["run", "--once", "--config"])
        .arg(root.join("driftd.toml"))
        .env("DRIFTD_LOG", "info")
        .env("DRIFTD_LOG_FORMAT", "json")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "{log}");

    let hour = root.join("out/ep/quality/2026/11/01/00");
    let counts = json_file(&hour.join("label_join.json"));
    assert_eq!(
        (
            &counts["predictions"],
            &counts["labelled"],
            &counts["skipped_rows"]
        ),
        (&json!(4), &json!(4), &json!(4)),
        "{counts}"
    );
    let statistics = json_file(&hour.join("statistics.json"));
    let confusion = &statistics["binary_classification_metrics"]["confusion_matrix"];
    assert_eq!(confusion["1"]["1"], 4, "{confusion}");
    let event: Value = (log.lines())
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["event"] == "window_limited")
        .unwrap_or_else(|| panic!("no window_limited event in\n{log}"));
    assert_eq!(
        (&event["rows_refused"], &event["columns_refused"]),
        (&json!(4), &json!(0)),
        "{event}"
    );
}

/// One capture file feeds every monitor whose path matches it, as an endpoint's capture feeds
/// its data-quality and model-quality schedules in Model Monitor: each monitor reads it once.
#[test]
fn one_capture_feeds_a_data_quality_and_a_label_joined_monitor() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    setup(root);
    // A data-quality baseline of the capture's columns: output label, score, then the inputs.
    std::fs::write(
        root.join("dq.csv"),
        "1,0.9,5,3.5\n0,0.2,5,3.5\n1,0.8,5,3.5\n",
    )
    .unwrap();
    let status = common::driftd()
        .args(["baseline", "--format", "csv", "--input"])
        .arg(root.join("dq.csv"))
        .arg("--output")
        .arg(root.join("dq-baseline"))
        .status()
        .unwrap();
    assert!(status.success());
    let config = CONFIG.replace(
        "[[monitor]]\nname = \"quality\"",
        "[[monitor]]\nname = \"dq\"\npath = \"capture/{endpoint}/AllTraffic/{yyyy}/{mm}/{dd}/{hh}/*.jsonl\"\nformat = \"capture\"\nbaseline = \"dq-baseline\"\n\n[[monitor]]\nname = \"quality\"",
    );
    std::fs::write(root.join("driftd.toml"), config).unwrap();
    let records: Vec<(String, u32, u8, f64)> = (0..10)
        .map(|i| (format!("p{i}"), i, u8::from(i % 2 == 0), 0.7))
        .collect();
    let records: Vec<(&str, u32, u8, f64)> = (records.iter())
        .map(|(id, s, l, p)| (id.as_str(), *s, *l, *p))
        .collect();
    write_capture(
        &root.join("in/capture/ep/AllTraffic/2026/11/01/00/a.jsonl"),
        "00",
        &records,
    );
    // Labels for p0..p5, all as predicted.
    let labels: Vec<(String, u8)> = (0..6)
        .map(|i| (format!("p{i}"), u8::from(i % 2 == 0)))
        .collect();
    let labels: Vec<(&str, u8)> = labels.iter().map(|(id, l)| (id.as_str(), *l)).collect();
    write_labels(&root.join("in/labels/ep/2026/11/01/01/a.jsonl"), &labels);

    let stdout = run_once(root);
    assert!(stdout.contains("3 objects read"), "{stdout}");
    let hour = |monitor: &str| root.join(format!("out/ep/{monitor}/2026/11/01/00"));
    let profile = json_file(&hour("dq").join("statistics.json"));
    assert_eq!(profile["dataset"]["item_count"], 10, "{profile}");
    let statistics = json_file(&hour("quality").join("statistics.json"));
    assert_eq!(statistics["dataset"]["item_count"], 6, "{statistics}");
    let counts = json_file(&hour("quality").join("label_join.json"));
    assert_eq!(counts["predictions"], 10, "{counts}");

    // Each monitor's read is in the ledger: a second run reads nothing again.
    let again = run_once(root);
    assert!(again.contains("0 objects read"), "{again}");
}
