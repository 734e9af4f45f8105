//! Embedded mode keeps issue 6's promise too: the same files, read by a calm driftd and by one
//! killed with SIGKILL at random moments and restarted, give identical windows, file for file.
//! Every file is in the ledger exactly once (a corrupt one with why it failed, and in the
//! dead-letter file), and every row is in its window. The files get a fixed modification time,
//! so that both runs name them alike and merge partial windows in the same order.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use common::aws::{
    MONITOR, WINDOW_S, capture_lines, local_ledger, make_baseline, rows_in_windows, signal, walk,
};

const WINDOWS: i64 = 5;
const GOOD: usize = 240;
const POISON: usize = 3;
const ENDPOINT: &str = "ep";

fn window_start(k: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
        + chrono::Duration::seconds(k * WINDOW_S)
}

/// Writes a capture file where SageMaker would, with a fixed modification time.
fn put(dir: &Path, start: DateTime<Utc>, name: &str, body: &[u8]) {
    let path = dir
        .join("capture")
        .join(ENDPOINT)
        .join("AllTraffic")
        .join(start.format("%Y/%m/%d/%H").to_string())
        .join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, body).unwrap();
    let fixed = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(fixed)
        .unwrap();
}

fn write_load(dir: &Path) {
    for i in 0..GOOD {
        let start = window_start(i as i64 % WINDOWS);
        let body = capture_lines(20, start, (i % 7) as i64, &format!("o{i}"));
        put(dir, start, &format!("o{i:04}.jsonl"), body.as_bytes());
    }
    for i in 0..POISON {
        let mut poison = vec![0x1f, 0x8b, 0x08, 0x00];
        poison.extend((0..512u32).map(|j| ((i as u32 + j) * 7919 % 251) as u8));
        put(dir, window_start(0), &format!("poison{i}.jsonl"), &poison);
    }
}

fn config(dir: &Path) -> PathBuf {
    let path = dir.join("driftd.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[input]
directory = "capture"
poll_interval = "100ms"
settle_time = "0s"

[output]
directory = "out"

[window]
size = "{WINDOW_S}s"
allowed_lateness = "600s"

[state]
lease_timeout = "2s"

[daemon]
shutdown_timeout = "10s"

[[monitor]]
name = "{MONITOR}"
path = "{{endpoint}}/{{variant}}/{{yyyy}}/{{mm}}/{{dd}}/{{hh}}/*.jsonl"
format = "capture"
baseline = "baseline"
"#
        ),
    )
    .unwrap();
    path
}

fn start(dir: &Path, config: &Path, log: &str) -> Child {
    let log = std::fs::File::create(dir.join(log)).unwrap();
    common::driftd()
        .args(["run", "--config"])
        .arg(config)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn window_dir(out: &Path, k: i64) -> PathBuf {
    out.join(ENDPOINT)
        .join(MONITOR)
        .join(window_start(k).format("%Y/%m/%d/%H/%M/%S").to_string())
}

/// Runs driftd over the load, killed `kills` times; the window files it wrote.
fn run(kills: usize) -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    make_baseline(dir.path());
    write_load(dir.path());
    let config = config(dir.path());
    let state = dir.path().join("out/state");
    let mut rng = fastrand::Rng::with_seed(6);
    let mut child = start(dir.path(), &config, "driftd-0.log");
    for i in 1..=kills {
        std::thread::sleep(Duration::from_millis(rng.u64(200..1500)));
        child.kill().unwrap();
        child.wait().unwrap();
        child = start(dir.path(), &config, &format!("driftd-{i}.log"));
    }
    common::wait_for("every file in the ledger", Duration::from_secs(180), || {
        walk(&state.join("ledger")).len() == GOOD + POISON
    });
    // A later file moves the watermark past every window; then all are written.
    let later = window_start(WINDOWS + 360);
    put(
        dir.path(),
        later,
        "later.jsonl",
        capture_lines(1, later, 0, "later").as_bytes(),
    );
    let out = dir.path().join("out");
    common::wait_for("every window written", Duration::from_secs(60), || {
        (0..WINDOWS).all(|k| window_dir(&out, k).join("statistics.json").exists())
            && walk(&state.join("outbox")).is_empty()
    });
    // SIGTERM: a clean stop.
    signal("-TERM", &child.id().to_string());
    assert!(child.wait().unwrap().success());

    let ledger = local_ledger(&state);
    assert_eq!(ledger.len(), GOOD + POISON + 1, "each file once");
    let failed: Vec<&str> = ledger
        .iter()
        .filter(|e| e["failed"].is_string())
        .map(|e| e["source"].as_str().unwrap())
        .collect();
    assert_eq!(failed.len(), POISON, "{failed:?}");
    assert!(failed.iter().all(|s| s.contains("/poison")), "{failed:?}");
    let dead = std::fs::read_to_string(out.join("dead_letter.jsonl")).unwrap();
    for i in 0..POISON {
        assert!(dead.contains(&format!("poison{i}.jsonl")), "{dead}");
    }
    let rows: u64 = ledger
        .iter()
        .filter(|e| !e["source"].as_str().unwrap().ends_with("later.jsonl"))
        .map(|e| e["rows"].as_u64().unwrap())
        .sum();
    assert_eq!(rows, GOOD as u64 * 20, "rows read");
    assert_eq!(rows_in_windows(&out), rows, "every row in its window");
    let mut windows = BTreeMap::new();
    for k in 0..WINDOWS {
        for file in walk(&window_dir(&out, k)) {
            let name = file.strip_prefix(&out).unwrap().display().to_string();
            windows.insert(name, std::fs::read_to_string(&file).unwrap());
        }
    }
    windows
}

#[test]
fn killed_eight_times_the_windows_equal_a_calm_runs() {
    let calm = run(0);
    assert_eq!(calm.len(), WINDOWS as usize * 5, "{:?}", calm.keys());
    let killed = run(8);
    assert_eq!(
        calm.keys().collect::<Vec<_>>(),
        killed.keys().collect::<Vec<_>>()
    );
    for (name, content) in &calm {
        assert_eq!(content, &killed[name], "{name} differs after kills");
    }
}
