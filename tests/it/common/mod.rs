//! Helpers shared by the integration tests. Each test file that wants them says `mod common;`.
//!
//! Numbers are checked against independent implementations (numpy, scipy, later smclarify) that
//! `scripts/test.sh` installs into `.tools/venv`; [`run_python`] is the one way to call them.

// Every test file compiles its own copy of this module and uses only some of the helpers.
#![allow(dead_code)]

pub mod aws;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use chrono::{DateTime, Duration, SecondsFormat, Utc};

/// The repository root (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python interpreter that has the test oracles: `$DRIFTD_PYTHON` (set by scripts/test.sh),
/// else the venv that scripts/test.sh creates.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("DRIFTD_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let venv = repo_root().join(".tools/venv/bin/python");
    if venv.exists() {
        return venv;
    }
    panic!(
        "no Python with the test oracles: DRIFTD_PYTHON is unset and {} does not exist; \
         run scripts/test.sh once to install the test oracles",
        venv.display()
    );
}

/// Runs the Python source `script` with `input` as JSON on stdin and returns its stdout parsed as
/// JSON. Panics with the script's stderr if it fails or prints something that is not JSON.
///
/// A script reads `json.load(sys.stdin)` and ends with `json.dump(result, sys.stdout)`. Keep
/// oracle scripts small and in the test (or `include_str!` a `.py` beside it), so the reference
/// computation can be read next to the assertion.
pub fn run_python(script: &str, input: &serde_json::Value) -> serde_json::Value {
    let py = python();
    let mut child = Command::new(&py)
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", py.display()));
    // Write stdin from a thread: a script that prints a lot before reading everything would
    // otherwise deadlock against a full stdout pipe.
    let mut stdin = child.stdin.take().expect("piped stdin");
    let body = serde_json::to_vec(input).expect("input serializes");
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let out = child.wait_with_output().expect("wait for python");
    // A script may exit without reading its input; a broken pipe then is not the error to show.
    let write_result = writer.join().expect("stdin writer thread");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        panic!("python oracle failed ({}):\n{stderr}", out.status);
    }
    write_result.expect("write JSON to python's stdin");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "python oracle printed no JSON ({e}):\nstdout:\n{}\nstderr:\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The quickstart (config, rules, data) and the baselines it names, in a temporary directory
/// laid out as the repository is; the quickstart itself is in `examples/quickstart/` there.
pub fn copy_quickstart() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_root();
    copy_dir(&repo.join("baselines"), &dir.path().join("baselines"));
    let quickstart = dir.path().join("examples/quickstart");
    for part in ["data", "rules"] {
        copy_dir(
            &repo.join("examples/quickstart").join(part),
            &quickstart.join(part),
        );
    }
    std::fs::copy(
        repo.join("examples/quickstart/driftd.toml"),
        quickstart.join("driftd.toml"),
    )
    .unwrap();
    (dir, quickstart)
}

/// A `Command` for the `driftd` binary that cargo built for this test run.
///
/// `CARGO_BIN_EXE_driftd` exists only while cargo compiles an integration test or bench; this
/// module is compiled as part of each test crate (`mod common;`), so the `env!` works here.
pub fn driftd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_driftd"))
}

/// Runs `driftd <command> --kind model-quality` on a CSV with a header; returns the exit code.
pub fn model_quality(
    command: &str,
    flags: &[&str],
    input: &Path,
    baseline: Option<&Path>,
    out: &Path,
) -> i32 {
    let mut run = driftd();
    run.args([
        command,
        "--kind",
        "model-quality",
        "--format",
        "csv",
        "--header",
    ])
    .args(flags)
    .arg("--input")
    .arg(input)
    .arg("--output")
    .arg(out);
    if let Some(baseline) = baseline {
        run.arg("--baseline").arg(baseline);
    }
    let output = run.output().unwrap();
    let code = output.status.code().unwrap();
    assert!(
        code == 0 || code == 3,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    code
}

/// A free port on 127.0.0.1 (bound and released; a test passes it to driftd).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}

/// `GET path` over HTTP/1.0: the status code and the body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .ok()?;
    let mut response = String::new();
    use std::io::Read;
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// The value of the sample whose line starts with `series` (name and labels), 0 if absent.
pub fn metric_sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.parse().unwrap())
}

/// A data-quality `constraint_violations.json` as (feature, check type, description) triples.
pub fn violation_triples(path: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let field = |name: &str| v[name].as_str().unwrap().to_string();
            (
                field("feature_name"),
                field("constraint_check_type"),
                field("description"),
            )
        })
        .collect()
}

/// A loan dataset as CSV with a header: `n` rows of sex, label, pred, x. Labels are fair
/// coins for both groups; the model predicts the label, except that for sex 0 it approves only
/// with probability `approve_sex0`. Goes with [`loan_analysis_config`].
pub fn loan_rows(seed: u64, n: usize, approve_sex0: f64) -> String {
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    let mut rng = StdRng::seed_from_u64(seed);
    let mut text = String::from("sex,label,pred,x\n");
    for _ in 0..n {
        let sex = u32::from(rng.random::<f64>() < 0.5);
        let label = u32::from(rng.random::<f64>() < 0.5);
        let pred = if sex == 0 {
            u32::from(rng.random::<f64>() < approve_sex0)
        } else {
            label
        };
        text.push_str(&format!(
            "{sex},{label},{pred},{:.6}\n",
            rng.random::<f64>()
        ));
    }
    text
}

/// For a [`loan_rows`] window whose model approves sex 0 less often than the baseline's: the
/// bias violations flag the approval metrics (DPPL, DI) and not the label metrics (CI, DPL),
/// which did not move.
pub fn assert_only_approvals_flagged(violations: &serde_json::Value) {
    let flagged: Vec<&str> = violations["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["metric_name"].as_str().unwrap())
        .collect();
    assert!(
        flagged.contains(&"DPPL") && flagged.contains(&"DI"),
        "{violations}"
    );
    assert!(
        !flagged.contains(&"CI") && !flagged.contains(&"DPL"),
        "{violations}"
    );
}

/// Clarify's analysis config for [`loan_rows`]: label 1 is approval, facet sex = 0.
pub fn loan_analysis_config() -> serde_json::Value {
    serde_json::json!({
        "label": "label", "label_values_or_threshold": [1], "predicted_label": "pred",
        "facet": [{"name_or_index": "sex", "value_or_threshold": [0]}],
        "methods": {"pre_training_bias": {"methods": ["CI", "DPL"]},
                    "post_training_bias": {"methods": ["DPPL", "DI", "AD"]}}
    })
}

/// The value of `metric` for the first value of `facet` in one stage
/// (`pre_training_bias_metrics` or `post_training_bias_metrics`) of a Clarify `analysis.json`.
pub fn analysis_metric(
    analysis: &serde_json::Value,
    stage: &str,
    facet: &str,
    metric: &str,
) -> f64 {
    analysis[stage]["facets"][facet][0]["metrics"]
        .as_array()
        .unwrap_or_else(|| panic!("no {stage} metrics for {facet} in {analysis}"))
        .iter()
        .find(|m| m["name"] == metric)
        .and_then(|m| m["value"].as_f64())
        .unwrap_or_else(|| panic!("no value of {metric} in {analysis}"))
}

/// Quotes one CSV field the way SageMaker's clients (and RFC 4180) do: only when needed.
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// One capture record (FORMATS.md §1.3) with CSV payloads, as SageMaker writes it: `inputs`
/// become `endpointInput.data`, `output` (if any) `endpointOutput.data`.
pub fn capture_record(
    inputs: &[String],
    output: Option<&str>,
    event_id: &str,
    inference_time: DateTime<Utc>,
) -> serde_json::Value {
    let data: Vec<String> = inputs.iter().map(|v| csv_field(v)).collect();
    let mut capture = serde_json::json!({
        "endpointInput": {
            "observedContentType": "text/csv",
            "mode": "INPUT",
            "data": data.join(","),
            "encoding": "CSV"
        }
    });
    if let Some(output) = output {
        capture["endpointOutput"] = serde_json::json!({
            "observedContentType": "text/csv; charset=utf-8",
            "mode": "OUTPUT",
            "data": output,
            "encoding": "CSV"
        });
    }
    serde_json::json!({
        "captureData": capture,
        "eventMetadata": {
            "eventId": event_id,
            "inferenceTime": inference_time.to_rfc3339_opts(SecondsFormat::Secs, true)
        },
        "eventVersion": "0"
    })
}

/// Writes a capture JSONL file: record `i` has the features `rows[i]`, the model output
/// `outputs[i]` (pass no outputs for input-only capture), event id
/// `00000000-0000-4000-8000-<i as 12 digits>` and inference time `start_time + i seconds`.
/// Creates missing parent directories.
pub fn write_capture_file(
    path: &Path,
    rows: &[Vec<String>],
    outputs: &[String],
    start_time: DateTime<Utc>,
) {
    assert!(
        outputs.is_empty() || outputs.len() == rows.len(),
        "write_capture_file: {} rows but {} outputs",
        rows.len(),
        outputs.len()
    );
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    let mut text = String::new();
    for (i, row) in rows.iter().enumerate() {
        let record = capture_record(
            row,
            outputs.get(i).map(String::as_str),
            &format!("00000000-0000-4000-8000-{i:012}"),
            start_time + Duration::seconds(i as i64),
        );
        text.push_str(&serde_json::to_string(&record).unwrap());
        text.push('\n');
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Parses an RFC 3339 time such as `"2026-11-01T00:00:00Z"` (test inputs are literals).
pub fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("bad time {s:?}: {e}"))
        .with_timezone(&Utc)
}

/// The secret key `driftd` gets in tests: distinctive, so a test can check no log shows it.
pub const MOTO_SECRET_KEY: &str = "driftd-test-secret-9c41e7";

/// A moto server (the AWS emulator; FORMATS.md, "Testing against AWS") on a free local port,
/// killed when dropped. Each test starts its own, so tests share no AWS state.
pub struct MotoServer {
    child: std::process::Child,
    pub endpoint_url: String,
}

impl MotoServer {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// CPU seconds (user + system) a process has used so far (Linux).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

impl MotoServer {
    /// Starts `moto_server` from the test oracles' venv and waits until it answers.
    pub fn start() -> Self {
        let moto = python()
            .parent()
            .expect("the interpreter is in a bin directory")
            .join("moto_server");
        assert!(
            moto.exists(),
            "{} does not exist; run scripts/test.sh once to install moto[server]",
            moto.display()
        );
        let port = free_port();
        let child = Command::new(&moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", moto.display()));
        let server = Self {
            child,
            endpoint_url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "moto_server did not listen on port {port} within 60 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// SDK configuration for the emulator: us-east-1, static dummy credentials.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint_url)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "testing", "testing", None, None, "moto",
            ))
            .load()
            .await
    }

    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&self.sdk_config().await)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    pub async fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk_config().await)
    }

    pub async fn sns(&self) -> aws_sdk_sns::Client {
        aws_sdk_sns::Client::new(&self.sdk_config().await)
    }

    pub async fn cloudwatch(&self) -> aws_sdk_cloudwatch::Client {
        aws_sdk_cloudwatch::Client::new(&self.sdk_config().await)
    }

    /// Environment for a `driftd` process talking to this server: dummy credentials through
    /// the SDK's default chain, and no shared config files or instance metadata to consult.
    pub fn driftd_env(&self, command: &mut Command) {
        command
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", MOTO_SECRET_KEY)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `done` every 100 ms until it holds; fails the test naming `what` after `timeout`.
pub fn wait_for(what: &str, timeout: std::time::Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A model-quality baseline directory `dir/name` for binary predictions that were always
/// right (accuracy 1), made by `driftd baseline --kind model-quality`.
pub fn always_right_baseline(dir: &Path, name: &str) {
    let mut csv = String::from("prediction,label\n");
    for i in 0..20 {
        csv.push_str(&format!("{},{}\n", i % 2, i % 2));
    }
    let input = dir.join(format!("{name}.csv"));
    std::fs::write(&input, csv).unwrap();
    let flags = [
        "--problem-type",
        "BinaryClassification",
        "--inference-attribute",
        "prediction",
        "--ground-truth-attribute",
        "label",
    ];
    assert_eq!(
        model_quality("baseline", &flags, &input, None, &dir.join(name)),
        0
    );
}

/// A live bias case for the label join, written into `dir`: `n` loan decisions
/// ([`loan_rows`] with `seed`, sex 0 approved a fifth of the time) as capture records — output
/// `pred`, then inputs `sex` and `x`; event ids `{prefix}{i}` at `time(i)` — and the ground
/// truth of the first `labelled` as SageMaker's ground-truth lines. Also writes
/// `analysis_config.json`, `capture_config.json` (the same, with the capture's `headers`),
/// `baseline/analysis.json` (`driftd bias` on fair rows) and `expected/analysis.json`
/// (`driftd bias` on the labelled rows, as one file).
pub struct LiveLoans {
    /// sex, label, pred, x per decision.
    pub rows: Vec<Vec<String>>,
    pub capture: String,
    pub labels: String,
    pub expected: serde_json::Value,
}

pub fn live_loans(
    dir: &Path,
    seed: u64,
    n: usize,
    labelled: usize,
    prefix: &str,
    time: impl Fn(usize) -> DateTime<Utc>,
) -> LiveLoans {
    let rows: Vec<Vec<String>> = loan_rows(seed, n, 0.2)
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    let config = loan_analysis_config();
    std::fs::write(dir.join("analysis_config.json"), config.to_string()).unwrap();
    let mut capture_config = config.clone();
    capture_config["headers"] = serde_json::json!(["pred", "sex", "x"]);
    std::fs::write(dir.join("capture_config.json"), capture_config.to_string()).unwrap();
    std::fs::write(dir.join("fair.csv"), loan_rows(1, 2000, 0.5)).unwrap();
    let mut joined = String::from("sex,label,pred,x\n");
    for row in &rows[..labelled] {
        joined.push_str(&format!("{}\n", row.join(",")));
    }
    std::fs::write(dir.join("joined.csv"), joined).unwrap();
    for (input, out) in [("fair.csv", "baseline"), ("joined.csv", "expected")] {
        let status = driftd()
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
    let mut capture = String::new();
    let mut labels = String::new();
    for (i, row) in rows.iter().enumerate() {
        let inputs = [row[0].clone(), row[3].clone()];
        let record = capture_record(&inputs, Some(&row[2]), &format!("{prefix}{i}"), time(i));
        capture.push_str(&format!("{record}\n"));
        if i < labelled {
            let label = serde_json::json!({
                "groundTruthData": {"data": row[1], "encoding": "CSV"},
                "eventMetadata": {"eventId": format!("{prefix}{i}")},
                "eventVersion": "0"
            });
            labels.push_str(&format!("{label}\n"));
        }
    }
    let expected =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected/analysis.json")).unwrap())
            .unwrap();
    LiveLoans {
        rows,
        capture,
        labels,
        expected,
    }
}

/// The actions `driftd run` appended to `{out}/actions.jsonl`, in order.
pub fn actions(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("actions.jsonl"))
        .unwrap_or_else(|e| panic!("{}/actions.jsonl: {e}", out.display()))
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The evidence of the one action in `{out}/actions.jsonl`, which must be `rule` firing on
/// the window that starts at `window_start`.
pub fn the_one_firing(out: &Path, rule: &str, window_start: &str) -> serde_json::Value {
    let actions = actions(out);
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(actions[0]["rule"], rule, "{actions:?}");
    assert_eq!(actions[0]["kind"], "firing", "{actions:?}");
    let evidence = actions[0]["evidence"].clone();
    assert_eq!(
        evidence["window_start"],
        utc(window_start).timestamp(),
        "{evidence}"
    );
    evidence
}
