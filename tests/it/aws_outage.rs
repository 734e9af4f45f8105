//! Faults between driftd and AWS, end to end: the real `driftd` binary against moto, with TCP
//! proxies the tests switch to refuse, forward or stall connections.
//!
//! A CloudWatch and SNS outage (issue 6): nothing may be lost across the outage and a restart
//! in the middle of it, and nothing may arrive twice. Issue 11: a stalled connection to the
//! queue, forged keys, a backlog draining while windows close.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::aws::*;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What a [`Proxy`] does with connections.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// Closes every new connection at once and cuts the ones it holds, as a dead endpoint or
    /// a network partition would.
    Refuse,
    Forward,
    /// Accepts connections and forwards nothing, on new and open ones alike, without closing
    /// them: a half-open connection. A connection stalled once stays stalled.
    Stall,
}

/// A TCP forwarder to one port on 127.0.0.1 whose [`Mode`] the test switches.
struct Proxy {
    port: u16,
    mode: watch::Sender<Mode>,
    /// Connections forwarded.
    forwarded: Arc<AtomicUsize>,
    /// Connections closed at once: proof that driftd kept trying.
    refused: Arc<AtomicUsize>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy to `target`, refusing until switched.
    async fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (mode, state) = watch::channel(Mode::Refuse);
        let forwarded = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let accept = tokio::spawn({
            let (forwarded, refused) = (forwarded.clone(), refused.clone());
            async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        continue;
                    };
                    let mut state = state.clone();
                    let now = *state.borrow();
                    match now {
                        Mode::Refuse => {
                            refused.fetch_add(1, Ordering::SeqCst);
                            drop(client);
                        }
                        // Held open until the proxy refuses or goes.
                        Mode::Stall => {
                            tokio::spawn(async move {
                                let _ = state.wait_for(|m| *m == Mode::Refuse).await;
                                drop(client);
                            });
                        }
                        Mode::Forward => {
                            forwarded.fetch_add(1, Ordering::SeqCst);
                            tokio::spawn(async move {
                                let Ok(mut server) =
                                    TcpStream::connect(("127.0.0.1", target)).await
                                else {
                                    return;
                                };
                                // Whichever ends first; a switch away from forwarding drops
                                // both sockets or, to stall, holds them silent.
                                tokio::select! {
                                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
                                    _ = state.wait_for(|m| *m != Mode::Forward) => {}
                                }
                                if *state.borrow() == Mode::Stall {
                                    let _ = state.wait_for(|m| *m == Mode::Refuse).await;
                                }
                            });
                        }
                    }
                }
            }
        });
        Self {
            port,
            mode,
            forwarded,
            refused,
            accept,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn set_up(&self, up: bool) {
        self.set_mode(if up { Mode::Forward } else { Mode::Refuse });
    }

    fn set_mode(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    fn forwarded(&self) -> usize {
        self.forwarded.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Points all of driftd's AWS traffic at `proxy`, with short timeouts so that a stalled or
/// refused connection fails fast, and appends `more` to the config.
fn all_traffic_through(stack: &Stack, config: &std::path::Path, proxy: &Proxy, more: &str) {
    let text = std::fs::read_to_string(config).unwrap().replace(
        &format!("endpoint_url = \"{}\"", stack.moto.endpoint_url),
        &format!(
            "endpoint_url = \"{}\"\nrequest_timeout = \"2s\"\nconnect_timeout = \"1s\"",
            proxy.url()
        ),
    );
    std::fs::write(config, text + more).unwrap();
}

/// Window `k` of the harness's size from 2030-01-01: windows that close on the objects' event
/// times alone, never on the clock.
fn window_2030(k: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
        + chrono::Duration::seconds(k * WINDOW_S)
}

/// An alert, out of its SNS envelope.
fn alert_of(message: &aws_sdk_sqs::types::Message) -> Value {
    let envelope: Value = serde_json::from_str(message.body().unwrap()).unwrap();
    serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap()
}

/// The next alert on the alert inbox.
async fn next_alert(stack: &Stack) -> Option<Value> {
    stack
        .receive(&stack.alert_queue_url)
        .await
        .first()
        .map(alert_of)
}

fn moto_port(stack: &Stack) -> u16 {
    stack
        .moto
        .endpoint_url
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The SampleCount of `feature_data_age` per window (by its index from `base`), as CloudWatch
/// holds it. Datums carry their window's end, so the period from `base + (k + 1) · WINDOW_S`
/// holds window k's.
async fn samples_per_window(
    stack: &Stack,
    base: DateTime<Utc>,
    windows: i64,
) -> BTreeMap<i64, f64> {
    let from = base.timestamp();
    stack
        .metric_points(
            NAMESPACE,
            "feature_data_age",
            &[("MonitoringSchedule", MONITOR)],
            "SampleCount",
            WINDOW_S as i32,
            (
                base,
                base + chrono::Duration::seconds((windows + 2) * WINDOW_S),
            ),
        )
        .await
        .into_iter()
        .map(|(at, value)| ((at - from) / WINDOW_S - 1, value))
        .collect()
}

/// The JSON files below `dir`, by path relative to it.
fn json_files(dir: &std::path::Path) -> BTreeMap<String, Value> {
    walk(dir)
        .iter()
        .map(|path| {
            (
                path.strip_prefix(dir).unwrap().display().to_string(),
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap(),
            )
        })
        .collect()
}

/// Window starts (seconds) named by the store keys below `dir` whose last (or, for parts,
/// second-to-last) component is a window start.
fn window_starts(dir: &std::path::Path, depth_from_end: usize) -> Vec<i64> {
    let mut starts: Vec<i64> = walk(dir)
        .iter()
        .filter_map(|path| {
            let parts: Vec<_> = path.iter().collect();
            parts[parts.len() - 1 - depth_from_end]
                .to_str()?
                .parse()
                .ok()
        })
        .collect();
    starts.sort();
    starts.dedup();
    starts
}

/// Everything on the alert inbox until it has been empty twice in a row (each receive waits 1 s).
async fn drain_alerts(stack: &Stack) -> Vec<Value> {
    let mut alerts = Vec::new();
    let mut empty = 0;
    while empty < 2 {
        let messages = stack.receive(&stack.alert_queue_url).await;
        if messages.is_empty() {
            empty += 1;
        }
        alerts.extend(messages.iter().map(alert_of));
    }
    alerts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloudwatch_and_sns_outage_across_a_restart_loses_no_datum_and_sends_each_alert_once() {
    let began = Instant::now();
    let stack = Stack::new("sink-outage", 2, Delivery::Direct).await;
    // Both down from the start.
    let cloudwatch = Proxy::start(moto_port(&stack)).await;
    let sns = Proxy::start(moto_port(&stack)).await;

    let config = stack.config(2, 0, CAPTURE_PATTERN);
    let text = std::fs::read_to_string(&config).unwrap();
    let global = format!("endpoint_url = \"{}\"\n", stack.moto.endpoint_url);
    assert!(text.contains(&global));
    let text = text.replace(
        &global,
        &format!(
            "{global}cloudwatch_endpoint_url = \"{}\"\nsns_endpoint_url = \"{}\"\n",
            cloudwatch.url(),
            sns.url()
        ),
    );
    // A SIGKILLed driftd leaves its lease behind; the next one takes over this much later.
    std::fs::write(
        &config,
        format!("{text}\n[state]\nlease_timeout = \"2s\"\n"),
    )
    .unwrap();

    // Event times in 2030: windows close only on the watermark the objects move, never on the
    // clock, so which windows exist when is up to the test. Windows 0 and 1 drifted (ages 30
    // higher than the baseline's, a violation: the shipped rule fires once for the episode),
    // window 2 clean (it resolves), window 3 clean and left open: it only closes windows 0–2.
    let base = window_2030(0);
    let window = window_2030;
    const ROWS: usize = 40;

    let mut driftd = stack.start_polling(&config, "driftd-1.log").await;
    for k in 0..=3 {
        let shift = if k <= 1 { 30 } else { 0 };
        stack
            .put(
                &stack.capture_key(window(k), &format!("w{k}.jsonl")),
                capture_lines(ROWS, window(k), shift, &format!("w{k}")).into_bytes(),
            )
            .await;
        driftd
            .wait_for_metric(
                r#"driftd_objects_total{event="recorded"}"#,
                (k + 1) as f64,
                Duration::from_secs(30),
            )
            .await;
    }

    // During the outage: the objects are recorded and their messages deleted, the delivery
    // failures are logged, the closed windows wait in the state store, nothing is published.
    driftd
        .wait_for_metric(
            r#"driftd_deliveries_total{outcome="retrying""#,
            2.0,
            Duration::from_secs(30),
        )
        .await;
    let log = driftd.log();
    assert!(
        log.contains("CloudWatch") && log.contains("sink call failed; retrying"),
        "{log}"
    );
    assert!(cloudwatch.refused() > 0, "driftd never tried CloudWatch");
    assert_eq!(cloudwatch.forwarded() + sns.forwarded(), 0);
    eventually(
        "the event queue to empty",
        Duration::from_secs(10),
        || async { (stack.queue_depth(&stack.queue_url).await == 0).then_some(()) },
    )
    .await;
    assert_eq!(stack.queue_depth(&stack.dlq_url).await, 0);
    let state = stack.dir.path().join("out/state");
    assert_eq!(
        walk(&state.join("ledger")).len(),
        4,
        "every object recorded"
    );
    let outbox = json_files(&state.join("outbox"));
    assert!(!outbox.is_empty(), "no window in the outbox");
    // Deliveries go oldest first: the oldest window's report reached S3 (which is up), the
    // windows behind it wait their turn; no datum and no alert went anywhere.
    let (oldest, first) = outbox.iter().next().unwrap();
    assert_eq!(first["report_done"], true, "{oldest}: S3 is up");
    for (key, entry) in &outbox {
        assert_eq!(entry["metrics_done"], false, "{key}");
        assert_eq!(entry["messages_sent"], 0, "{key}");
    }
    // Windows 0–2 are closed: each is finalised in the outbox (or, if the finaliser has not
    // reached it yet, still waits as parts; while it commits, it is in both); window 3 is open.
    let mut held = window_starts(&state.join("outbox"), 0);
    held.extend(window_starts(&state.join("parts"), 1));
    held.sort();
    held.dedup();
    let starts: Vec<i64> = (0..=3).map(|k| window(k).timestamp()).collect();
    assert_eq!(held, starts, "windows held in the state store");
    assert_eq!(samples_per_window(&stack, base, 4).await, BTreeMap::new());
    assert!(stack.receive(&stack.alert_queue_url).await.is_empty());

    // A crash in the middle of the outage: the next driftd finds the windows in the store and
    // keeps trying.
    signal("-KILL", &driftd.child.as_ref().unwrap().id().to_string());
    driftd.child.take().unwrap().wait().unwrap();
    let tried_before = cloudwatch.refused();
    let driftd = stack.start_driftd(&config, "driftd-2.log");
    driftd
        .wait_for_metric(
            r#"driftd_deliveries_total{outcome="retrying""#,
            1.0,
            Duration::from_secs(30),
        )
        .await;
    assert!(cloudwatch.refused() > tried_before);
    assert!(stack.receive(&stack.alert_queue_url).await.is_empty());

    // CloudWatch comes back, SNS not yet: the first window's datums go out, exactly, and its
    // alert waits.
    cloudwatch.set_up(true);
    eventually(
        "window 0's datums in CloudWatch",
        Duration::from_secs(30),
        || async { samples_per_window(&stack, base, 4).await.get(&0).copied() },
    )
    .await;
    driftd
        .wait_for_metric(
            r#"driftd_deliveries_total{outcome="retrying",sink="messages"}"#,
            1.0,
            Duration::from_secs(30),
        )
        .await;
    assert!(sns.refused() > 0, "driftd never tried SNS");
    assert!(stack.receive(&stack.alert_queue_url).await.is_empty());

    // SNS comes back: everything goes out.
    sns.set_up(true);
    driftd
        .wait_for_count("window delivered to every sink", 3, Duration::from_secs(30))
        .await;
    // Time for anything extra (a resend) to go out before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let expected: BTreeMap<i64, f64> = (0..=2).map(|k| (k, ROWS as f64)).collect();
    assert_eq!(
        samples_per_window(&stack, base, 4).await,
        expected,
        "every closed window's rows, each once"
    );
    let mut alerts = drain_alerts(&stack).await;
    alerts.sort_by_key(|a| a["window"]["start"].as_str().unwrap().to_string());
    let at = |k: i64| window(k).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let kinds: Vec<(&str, &str)> = alerts
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap(),
                a["window"]["start"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [("firing", at(0).as_str()), ("resolved", at(2).as_str())],
        "one firing and one resolved alert: {alerts:?}"
    );
    for alert in &alerts {
        assert_eq!(
            alert["dedup_key"],
            format!("any-violation/{MONITOR}/{}", stack.endpoint).as_str()
        );
    }
    assert!(cloudwatch.forwarded() > 0 && sns.forwarded() > 0);
    assert!(walk(&state.join("outbox")).is_empty(), "the outbox drained");
    // Every row of the closed windows ends in its window or is counted late.
    assert_eq!(
        rows_in_windows(&stack.dir.path().join("out")) + late_rows(&local_ledger(&state)),
        3 * ROWS as u64
    );
    let log = driftd.log();
    assert!(
        !log.contains(common::MOTO_SECRET_KEY),
        "a secret in the log: {log}"
    );
    eprintln!("outage test took {:.1} s", began.elapsed().as_secs_f64());
}

/// Issue 11, item 2: a long poll whose connection stalls without closing must be abandoned and
/// retried, the stuck input logged, and no window may close on the clock meanwhile (it would
/// miss the rows still in the queue).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_queue_connection_is_abandoned_and_no_window_closes_while_input_is_stuck() {
    // The stalled long poll may take b's message with it: hidden until its visibility
    // timeout ends, which the window must wait for too.
    let stack = Stack::new("stall", 10, Delivery::Direct).await;
    let proxy = Proxy::start(moto_port(&stack)).await;
    proxy.set_mode(Mode::Forward);
    let config = stack.config(10, 1, CAPTURE_PATTERN);
    all_traffic_through(&stack, &config, &proxy, "");
    let driftd = stack.start_polling(&config, "driftd.log").await;

    let start = upcoming_window();
    stack
        .put(
            &stack.capture_key(start, "a.jsonl"),
            capture_lines(20, start, 0, "a").into_bytes(),
        )
        .await;
    driftd
        .wait_for_metric(
            r#"driftd_objects_total{event="recorded"}"#,
            1.0,
            Duration::from_secs(30),
        )
        .await;
    proxy.set_mode(Mode::Stall);
    stack
        .put(
            &stack.capture_key(start, "b.jsonl"),
            capture_lines(30, start, 0, "b").into_bytes(),
        )
        .await;
    driftd
        .wait_for_metric(
            "driftd_receive_failures_total",
            1.0,
            Duration::from_secs(60),
        )
        .await;
    // Stuck past the window's end and lateness: a clock alone would close it with a's rows.
    let closes = start.timestamp() + WINDOW_S + 1;
    while Utc::now().timestamp() < closes + 2 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    proxy.set_mode(Mode::Forward);
    driftd
        .wait_for_metric(
            r#"driftd_objects_total{event="recorded"}"#,
            2.0,
            Duration::from_secs(60),
        )
        .await;
    let stats = stack
        .dir
        .path()
        .join("out")
        .join(&stack.endpoint)
        .join(MONITOR)
        .join(start.format("%Y/%m/%d/%H/%M/%S").to_string())
        .join("statistics.json");
    let stats: Value = eventually("the window written", Duration::from_secs(60), || {
        let stats = stats.clone();
        async move {
            std::fs::read_to_string(&stats)
                .ok()
                .map(|t| serde_json::from_str(&t).unwrap())
        }
    })
    .await;
    assert_eq!(stats["dataset"]["item_count"], 50, "{}", driftd.log());
    assert!(
        !driftd.log().contains("counted as late"),
        "{}",
        driftd.log()
    );
}

/// Issue 11, items 1, 7 and 8: a key no S3 object can have (250 KB, which panicked the poller
/// inside the S3 client) or one with a newline (a forged log line), and one whose endpoint
/// cannot be a state-store key, are refused before any request, counted and dead-lettered
/// escaped; reading goes on, and the log has no colours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_keys_are_refused_escaped_and_reading_goes_on() {
    let stack = Stack::new("forged", 30, Delivery::Direct).await;
    let config = stack.config(30, 1, CAPTURE_PATTERN);
    let mut driftd = stack.start_polling(&config, "driftd.log").await;
    let start = upcoming_window();
    let long = stack.capture_key(start, &format!("{}.jsonl", "k".repeat(250_000)));
    stack.send(&s3_event(&stack.bucket, &long)).await;
    const FORGED: &str = "ERROR driftd: forged line";
    let newline = stack.capture_key(start, &format!("x\n{FORGED} y.jsonl"));
    stack.send(&s3_event(&stack.bucket, &newline)).await;
    // An endpoint segment the state store cannot hold: refused before it is downloaded.
    let dotted = format!(
        "capture/.hidden/AllTraffic/{}/x.jsonl",
        start.format("%Y/%m/%d/%H")
    );
    stack
        .put(&dotted, capture_lines(5, start, 0, "d").into_bytes())
        .await;
    stack
        .put(
            &stack.capture_key(start, "real.jsonl"),
            capture_lines(20, start, 0, "r").into_bytes(),
        )
        .await;
    driftd
        .wait_for_log("object recorded", Duration::from_secs(60))
        .await;
    eventually("an empty queue", Duration::from_secs(30), || async {
        (stack.queue_depth(&stack.queue_url).await == 0).then_some(())
    })
    .await;
    let log = driftd.log();
    assert_eq!(log.matches("object refused; not read").count(), 3, "{log}");
    assert!(log.contains("cannot be a state-store key"), "{log}");
    assert!(
        !log.contains("reading object bucket=\"forged-capture\" key=\"capture/.hidden"),
        "{log}"
    );
    assert!(log.contains("more than S3's 1024"), "{log}");
    assert!(log.contains("control characters"), "{log}");
    assert!(!log.contains('\x1b'), "no colours in a log file: {log}");
    let dead_letter =
        std::fs::read_to_string(stack.dir.path().join("out/dead_letter.jsonl")).unwrap();
    for text in [&log, &dead_letter] {
        assert!(
            !text.lines().any(|line| line.starts_with(FORGED)),
            "a forged line: {text}"
        );
    }
    let entries: Vec<Value> = dead_letter
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 3, "{dead_letter}");
    assert!(dead_letter.len() < 4000, "keys are cut short");
    assert_eq!(stack.queue_depth(&stack.dlq_url).await, 0);
    let (status, _) = driftd.terminate();
    assert!(status.success());
    let summary = std::fs::read_to_string(driftd.log.with_extension("stdout")).unwrap();
    assert!(
        summary.contains("1 objects read, 0 failed") && summary.contains("3 refused"),
        "{summary}"
    );
}

/// Issue 11, item 3: a backlog drains while its windows close (objects of all windows
/// interleaved, lateness 0, several pollers): every row ends in its window or is counted late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_draining_while_windows_close_loses_no_row() {
    const OBJECTS: usize = 60;
    const ROWS: usize = 20;
    const WINDOWS: i64 = 6;
    let stack = Stack::with_receives("backlog", 30, Delivery::Direct, 10).await;
    let config = stack.config(30, 0, CAPTURE_PATTERN);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("wait_time = \"1s\"", "wait_time = \"1s\"\npollers = 3");
    std::fs::write(&config, text).unwrap();
    let window = window_2030;
    for i in 0..OBJECTS {
        let start = window(i as i64 % WINDOWS);
        stack
            .put(
                &stack.capture_key(start, &format!("o{i:03}.jsonl")),
                capture_lines(ROWS, start, 0, &format!("o{i}")).into_bytes(),
            )
            .await;
    }
    let driftd = stack.start_driftd(&config, "driftd.log");
    let state = stack.dir.path().join("out/state");
    eventually("every object recorded", Duration::from_secs(120), || {
        let n = walk(&state.join("ledger")).len();
        async move { (n == OBJECTS).then_some(()) }
    })
    .await;
    // A later object closes every window.
    let later = window(WINDOWS + 10);
    stack
        .put(
            &stack.capture_key(later, "later.jsonl"),
            capture_lines(1, later, 0, "later").into_bytes(),
        )
        .await;
    let out = stack.dir.path().join("out");
    let windows = out.join(&stack.endpoint);
    eventually("every window finalised", Duration::from_secs(60), || {
        let settled = window_starts(&state.join("parts"), 1)
            .iter()
            .all(|&s| s >= later.timestamp())
            && walk(&state.join("outbox")).is_empty()
            && !walk(&windows).is_empty();
        async move { settled.then_some(()) }
    })
    .await;
    let in_windows = rows_in_windows(&out);
    let late = late_rows(&local_ledger(&state));
    eprintln!("{in_windows} rows in windows, {late} late");
    assert_eq!(
        in_windows + late,
        (OBJECTS * ROWS) as u64,
        "rows uploaded = rows in windows + rows counted late: {}",
        driftd.log()
    );
}

/// Issue 11, item 5: a window whose input comes late (here: after another endpoint's data
/// moved the watermark on, so that the rules evaluated a later window of this series as
/// silent) is still evaluated when it is finalised, and its violations alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_finalised_after_a_later_silent_one_still_alerts() {
    let stack = Stack::new("overtaken", 30, Delivery::Direct).await;
    let config = stack.config(30, 0, CAPTURE_PATTERN);
    let driftd = stack.start_polling(&config, "driftd.log").await;
    // Event times in 2030: windows close on the objects' times alone.
    let window = window_2030;
    let other = format!("{}-other", stack.endpoint);
    let put = |endpoint: &str, k: i64, shift: i64, name: &str| {
        let key = format!(
            "capture/{endpoint}/AllTraffic/{}/{name}.jsonl",
            window(k).format("%Y/%m/%d/%H")
        );
        let body = capture_lines(40, window(k), shift, name).into_bytes();
        let stack = &stack;
        async move { stack.put(&key, body).await }
    };
    let rules = stack
        .dir
        .path()
        .join("out/state/rules")
        .join(MONITOR)
        .join(&stack.endpoint);
    let evaluated_through = || {
        std::fs::read_to_string(&rules)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["evaluated_through"].as_i64())
    };
    // This series' window 0, clean; the other endpoint's window 1 closes it.
    put(&stack.endpoint, 0, 0, "a").await;
    driftd
        .wait_for_metric(
            r#"driftd_objects_total{event="recorded"}"#,
            1.0,
            Duration::from_secs(30),
        )
        .await;
    put(&other, 1, 0, "b").await;
    eventually("window 0 evaluated", Duration::from_secs(30), || {
        let through = evaluated_through();
        async move { (through == Some(window(1).timestamp())).then_some(()) }
    })
    .await;
    // The other endpoint jumps to window 5: this series had nothing since, so the rules see
    // its window 4 as silent.
    put(&other, 5, 0, "c").await;
    eventually(
        "the silent window 4 evaluated",
        Duration::from_secs(30),
        || {
            let through = evaluated_through();
            async move { (through == Some(window(5).timestamp())).then_some(()) }
        },
    )
    .await;
    // Then this series' window 2 arrives, drifted (ages 30 above the baseline's).
    put(&stack.endpoint, 2, 30, "d").await;
    driftd
        .wait_for_count("window delivered to every sink", 4, Duration::from_secs(30))
        .await;
    let alerts = drain_alerts(&stack).await;
    let firing: Vec<&Value> = alerts.iter().filter(|a| a["kind"] == "firing").collect();
    assert_eq!(firing.len(), 1, "{alerts:?}\n{}", driftd.log());
    assert_eq!(
        firing[0]["window"]["start"],
        window(2).format("%Y-%m-%dT%H:%M:%SZ").to_string()
    );
    assert!(
        !driftd.log().contains("counted as late"),
        "{}",
        driftd.log()
    );
}

/// Issue 11, item 6: the report bucket disappears (a permanent error for every PutObject):
/// the window's metrics still go out, and its alert too, without links to the report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_that_cannot_be_written_holds_neither_metrics_nor_alerts() {
    let stack = Stack::new("report-gone", 30, Delivery::Direct).await;
    let config = stack.config(30, 0, CAPTURE_PATTERN);
    let driftd = stack.start_polling(&config, "driftd.log").await;
    stack
        .s3
        .delete_bucket()
        .bucket(&stack.report_bucket)
        .send()
        .await
        .unwrap();
    let base = window_2030(0);
    let window = window_2030;
    // Window 0 drifted (an alert); window 1 closes it.
    for (k, shift) in [(0, 30), (1, 0)] {
        stack
            .put(
                &stack.capture_key(window(k), &format!("w{k}.jsonl")),
                capture_lines(40, window(k), shift, &format!("w{k}")).into_bytes(),
            )
            .await;
    }
    eventually("window 0's datums", Duration::from_secs(60), || async {
        samples_per_window(&stack, base, 2).await.get(&0).copied()
    })
    .await;
    let alert = eventually("window 0's alert", Duration::from_secs(60), || {
        next_alert(&stack)
    })
    .await;
    assert_eq!(alert["kind"], "firing");
    assert_eq!(
        alert["report"],
        Value::Null,
        "no link to a report that is not there"
    );
    let log = driftd.log();
    assert!(
        log.contains(r#"event="delivery_failed" sink="s3_report""#)
            && log.contains("given up, its alerts go without links"),
        "{log}"
    );
}

/// Issue 11, items 6 and 8: a queue, topic or state bucket the config names that does not
/// exist stops the start at once, with an error naming its key, instead of retrying forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_queue_or_topic_fails_the_start_naming_its_key() {
    let stack = Stack::new("missing", 30, Delivery::Direct).await;
    let config = stack.config(30, 120, CAPTURE_PATTERN);
    let good = std::fs::read_to_string(&config).unwrap();
    let missing_queue = format!("{}-nope", stack.queue_url);
    let missing_topic = format!("{}-nope", stack.topic_arn);
    for (text, key) in [
        (
            good.replace(&stack.queue_url, &missing_queue),
            "input.sqs_queue_url",
        ),
        (
            good.replace(&stack.topic_arn, &missing_topic),
            "sinks.sns_topic_arn",
        ),
        (
            format!("{good}\n[state]\ns3_uri = \"s3://missing-state-bucket/driftd\"\n"),
            "state.s3_uri",
        ),
    ] {
        std::fs::write(&config, text).unwrap();
        let mut driftd = stack.start_driftd(&config, &format!("{key}.log"));
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = driftd.child.as_mut().unwrap().try_wait().unwrap() {
                driftd.child = None;
                break status;
            }
            // Dropping `driftd` on this panic kills it.
            assert!(Instant::now() < deadline, "driftd did not stop");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(!status.success());
        let log = driftd.log();
        assert!(log.contains(&format!("error: {key} = ")), "{log}");
    }
}

/// Issue 11, item 4: rows that arrive after their window closed are counted late and a rule
/// hears about them (`late_rows`), in the series' next window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_rows_are_counted_and_a_rule_alerts_on_them() {
    let stack = Stack::new("late", 30, Delivery::Direct).await;
    let config = stack.config(30, 0, CAPTURE_PATTERN);
    let rules = stack.dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("late.toml"),
        "[[rule]]\nname = \"late-rows\"\nseverity = \"warning\"\n[rule.condition.late_rows]\nat_least = 1\n[rule.alert]\n",
    )
    .unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}\n[rules]\ndirectory = \"rules\"\n")).unwrap();
    let mut driftd = stack.start_polling(&config, "driftd.log").await;
    let window = window_2030;
    let put = |k: i64, name: &str, rows: usize| {
        let key = stack.capture_key(window(k), &format!("{name}.jsonl"));
        let body = capture_lines(rows, window(k), 0, name).into_bytes();
        let stack = &stack;
        async move { stack.put(&key, body).await }
    };
    put(0, "a", 10).await;
    driftd
        .wait_for_metric(
            r#"driftd_objects_total{event="recorded"}"#,
            1.0,
            Duration::from_secs(30),
        )
        .await;
    put(1, "b", 10).await;
    driftd
        .wait_for_metric(
            "driftd_windows_finalised_total",
            1.0,
            Duration::from_secs(30),
        )
        .await;
    // Window 0 is closed: these rows are late.
    put(0, "c", 7).await;
    driftd
        .wait_for_metric("driftd_late_rows_total", 1.0, Duration::from_secs(30))
        .await;
    put(2, "d", 10).await;
    let alert = eventually("the late-rows alert", Duration::from_secs(30), || {
        next_alert(&stack)
    })
    .await;
    assert_eq!(alert["rule"], "late-rows");
    assert_eq!(alert["kind"], "firing");
    assert_eq!(
        alert["window"]["start"],
        window(1).format("%Y-%m-%dT%H:%M:%SZ").to_string()
    );
    assert_eq!(alert["evidence"]["matches"][0]["value"], 7.0, "{alert}");
    let (status, _) = driftd.terminate();
    assert!(status.success());
    let summary = std::fs::read_to_string(driftd.log.with_extension("stdout")).unwrap();
    assert!(summary.contains("7 late records"), "{summary}");
}

/// Issue 12: what an operator sees of AWS mode. `/metrics` counts one object exactly (received,
/// read, recorded, its rows and its malformed record), its window and each sink's delivery;
/// `/readyz` turns 503 naming the queue while the queue cannot be reached, and 200 once it can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_an_aws_run_and_readiness_follows_the_queue() {
    let stack = Stack::new("observe", 10, Delivery::Direct).await;
    let proxy = Proxy::start(moto_port(&stack)).await;
    proxy.set_mode(Mode::Forward);
    let port = common::free_port();
    let config = stack.config(10, 1, CAPTURE_PATTERN);
    all_traffic_through(
        &stack,
        &config,
        &proxy,
        &format!("\n[observability]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let _driftd = stack.start_polling(&config, "driftd.log").await;
    let scrape = || async move {
        common::http_get(port, "/metrics")
            .filter(|(status, _)| *status == 200)
            .map(|(_, body)| body)
    };
    let sample = |metrics: &str, series: &str| common::metric_sample(metrics, series);

    let start = upcoming_window();
    let mut body = capture_lines(20, start, 0, "a");
    body.push_str("{\"captureData\": \n");
    stack
        .put(&stack.capture_key(start, "a.jsonl"), body.into_bytes())
        .await;
    let recorded = r#"driftd_objects_total{event="recorded"}"#;
    eventually("the object recorded", Duration::from_secs(30), || async {
        scrape().await.filter(|m| sample(m, recorded) == 1.0)
    })
    .await;
    assert_eq!(
        common::http_get(port, "/readyz"),
        Some((200, "ready\n".into()))
    );

    proxy.set_mode(Mode::Refuse);
    let (_, reason) = eventually("not ready", Duration::from_secs(30), || async {
        common::http_get(port, "/readyz").filter(|(status, _)| *status == 503)
    })
    .await;
    assert!(reason.starts_with("not ready: queue: "), "{reason}");
    proxy.set_mode(Mode::Forward);
    eventually("ready again", Duration::from_secs(30), || async {
        common::http_get(port, "/readyz").filter(|(status, _)| *status == 200)
    })
    .await;

    let delivered =
        |sink: &str| format!(r#"driftd_deliveries_total{{outcome="delivered",sink="{sink}"}}"#);
    let metrics = eventually("the window delivered", Duration::from_secs(60), || async {
        scrape().await.filter(|m| {
            ["files", "s3_report", "cloudwatch"]
                .iter()
                .all(|sink| sample(m, &delivered(sink)) == 1.0)
        })
    })
    .await;
    for (series, value) in [
        (r#"driftd_objects_total{event="received"}"#.to_string(), 1.0),
        (r#"driftd_objects_total{event="read"}"#.into(), 1.0),
        (recorded.into(), 1.0),
        (format!(r#"driftd_rows_total{{monitor="{MONITOR}"}}"#), 20.0),
        (
            r#"driftd_records_quarantined_total{reason="bad_json"}"#.into(),
            1.0,
        ),
        (
            format!(r#"driftd_windows_finalised_total{{monitor="{MONITOR}"}}"#),
            1.0,
        ),
        (r#"driftd_leases_total{event="lost"}"#.into(), 0.0),
        ("driftd_backpressure".into(), 0.0),
    ] {
        assert_eq!(sample(&metrics, &series), value, "{series} in\n{metrics}");
    }
    // Receives failed while the proxy refused the queue; how many depends on timing.
    assert!(sample(&metrics, "driftd_receive_failures_total") >= 1.0);
}
