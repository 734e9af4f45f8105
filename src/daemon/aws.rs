//! AWS mode: S3 objects announced on SQS in; windows out to the local directory, S3 reports,
//! CloudWatch and the rules' messages, through durable state shared by every replica.
//!
//! Pollers long-poll the queue and read each announced object (streaming GetObject, decoded on
//! a blocking thread) into its own partial windows, store those and the object's ledger entry
//! ([`super::state`]), and only then delete the message: from that moment the object is safe
//! whatever happens to this process. Once a second, the finaliser looks for windows the
//! watermark has passed; for each series whose lease it gets it merges the stored parts,
//! analyses the window, commits its deliveries to the outbox, and delivers them. A sink that
//! fails delays its deliveries, which stay in the outbox, and loses nothing. Several replicas
//! on one queue share the state store and produce what one would.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

use super::actions::{append_actions, facts_of, messages, print_actions};
use super::state::{
    Durable, Fate, LedgerEntry, SeriesRules, WindowOutbox, object_hash, series_key, split_series,
};
use super::{
    ACTIONS_FILE, DEAD_LETTER_FILE, Monitor, RunError, RunSummary, dead_letter, now_seconds, route,
};
use crate::config::Config;
use crate::decode::{self, DecodeError, DecodeOptions, InputFormat, Quarantine};
use crate::events::{self, Event, Sink};
use crate::ingest::s3::{BlockingBody, FetchError, get_object_within, read_manifest};
use crate::ingest::sqs::{AllowList, Notice, Received, SqsQueue, parse_message, shorten};
use crate::rules::{RuleSet, WindowFacts, evaluate};
use crate::sinks::actions::{Destination, MessageSink, Routes};
use crate::sinks::cloudwatch::{CloudWatchSink, Family};
use crate::sinks::s3_report::{S3ReportSink, report_files};
use crate::sinks::sns::WindowContext;
use crate::store::{LocalStore, S3Store, StateStore, StoreError};
use crate::window::{ClosedWindow, WindowKey, WindowState, Windows, codec};

/// How often the finaliser looks for windows to close and deliveries to make.
const TICK: Duration = Duration::from_secs(1);
/// Pause after a failed ReceiveMessage.
const RECEIVE_BACKOFF: Duration = Duration::from_secs(5);

pub(super) fn run(
    config: &Config,
    monitors: Vec<Monitor>,
    rules: RuleSet,
) -> Result<RunSummary, RunError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| RunError::Io {
            path: PathBuf::from("(tokio runtime)"),
            error,
        })?;
    let summary = runtime.block_on(serve(config.clone(), monitors, rules));
    // Reads in progress were interrupted at shutdown; do not wait on a straggler forever.
    runtime.shutdown_timeout(Duration::from_secs(2));
    summary
}

/// Which version of which object: a redelivered message or a second event for the same upload
/// names the same one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ObjectId {
    bucket: String,
    key: String,
    etag: String,
}

impl ObjectId {
    fn hash(&self) -> String {
        object_hash(&self.bucket, &self.key, &self.etag)
    }
}

struct Shared {
    config: Config,
    monitors: Vec<Monitor>,
    rules: RuleSet,
    routes: Routes,
    queue: SqsQueue,
    s3: aws_sdk_s3::Client,
    allow: AllowList,
    durable: Durable,
    stop: CancellationToken,
    quarantine_path: PathBuf,
    objects_read: AtomicUsize,
    /// Messages that failed at least once (each is retried, so counted by id).
    failed_messages: Mutex<HashSet<String>>,
    objects_unrouted: AtomicUsize,
    /// Objects refused without a request: not on the allow-list, or a key no object can have.
    objects_refused: AtomicUsize,
    /// ReceiveMessage calls that failed (timeouts included).
    receive_failures: AtomicU64,
    /// When a receive began whose batch is fully handled: every message sent before then has
    /// been read (or is in flight elsewhere). The clock closes windows only up to here, so a
    /// stuck input never makes windows look empty.
    input_read_through: AtomicI64,
    /// A failed receive may have taken messages that never reached driftd: they stay hidden
    /// until its start plus the visibility timeout, and only a receive begun after that
    /// moves `input_read_through` on.
    input_hidden_until: AtomicI64,
    windows_written: AtomicUsize,
    windows_with_violations: AtomicUsize,
    late_rows: AtomicU64,
    /// Records skipped as malformed, summed over the objects (each has its own quarantine).
    malformed_records: AtomicU64,
    /// S3 reports given up after a permanent error.
    reports_failed: AtomicUsize,
    /// Finalised windows waiting in the outbox, as the finaliser last counted them.
    undelivered: AtomicUsize,
}

/// What became of a message in a poller.
enum Outcome {
    /// Nothing (more) to do: delete it. The reason is logged.
    Delete(String),
    /// Read: record the objects' windows, then delete it.
    Read(Vec<(ObjectId, Windows)>),
    /// Failed: leave it for redelivery (or release it at shutdown).
    Leave(String),
}

async fn serve(
    config: Config,
    monitors: Vec<Monitor>,
    rules: RuleSet,
) -> Result<RunSummary, RunError> {
    let out = &config.output.directory;
    std::fs::create_dir_all(out).map_err(|error| RunError::Io {
        path: out.clone(),
        error,
    })?;
    let sdk = crate::aws::sdk_config(&config.aws).await;
    // Emulators and VPC endpoints are addressed by URL, so S3 goes path-style there.
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(config.aws.endpoint_url.is_some())
            .build(),
    );
    let queue_url = config
        .input
        .sqs_queue_url
        .clone()
        .expect("validated: AWS mode has a queue URL");
    // A long poll waits `wait_time` before it answers: its attempts get that on top.
    let queue = SqsQueue::new(
        aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&sdk)
                .timeout_config(
                    TimeoutConfig::builder()
                        .operation_attempt_timeout(
                            config.input.wait_time + config.aws.request_timeout,
                        )
                        .build(),
                )
                .build(),
        ),
        queue_url.clone(),
        config.input.visibility_timeout,
        config.input.wait_time,
    );
    let sinks = build_sinks(&config, &sdk)?;
    check_resources(&config, &queue, &sinks).await?;
    let store = match &config.state.s3_uri {
        Some(uri) => S3Store::new(s3.clone(), uri).map(StateStore::from),
        None => LocalStore::open(config.state_directory()).map(StateStore::from),
    }
    .map_err(|e| RunError::Usage(format!("state: {e}")))?;
    // The store is read at once, so that a missing state bucket stops the start (like the
    // other resources) rather than every later record and window.
    let listed = store.list("watermark/").await;
    let telemetry = events::telemetry();
    telemetry.set_ready(
        "store",
        listed.as_ref().map(|_| ()).map_err(|e| e.to_string()),
    );
    telemetry.set_ready("queue", Err("not polled yet".into()));
    if let Err(error) = listed {
        if !error.is_retryable() {
            let key = match config.state.s3_uri {
                Some(_) => "state.s3_uri",
                None => "state.directory",
            };
            return Err(RunError::Usage(format!(
                "{key} = {:?}: {error}",
                store.describe()
            )));
        }
        tracing::warn!(
            error = error.to_string(),
            "cannot read the state store at start-up (unreachable now); starting anyway"
        );
    }
    let durable = Durable::new(store, config.state.lease_timeout);
    let stop = CancellationToken::new();
    watch_signals(stop.clone());
    let quarantine_path = config
        .output
        .quarantine
        .clone()
        .unwrap_or_else(|| out.join("quarantine.jsonl"));
    let shared = Arc::new(Shared {
        allow: AllowList {
            buckets: config.input.allowed_buckets.clone(),
            prefixes: config.input.allowed_prefixes.clone(),
        },
        routes: routes(&config),
        monitors,
        rules,
        queue,
        s3,
        durable,
        stop: stop.clone(),
        quarantine_path,
        objects_read: AtomicUsize::new(0),
        failed_messages: Mutex::new(HashSet::new()),
        objects_unrouted: AtomicUsize::new(0),
        objects_refused: AtomicUsize::new(0),
        receive_failures: AtomicU64::new(0),
        input_read_through: AtomicI64::new(i64::MIN),
        input_hidden_until: AtomicI64::new(i64::MIN),
        windows_written: AtomicUsize::new(0),
        windows_with_violations: AtomicUsize::new(0),
        late_rows: AtomicU64::new(0),
        malformed_records: AtomicU64::new(0),
        reports_failed: AtomicUsize::new(0),
        undelivered: AtomicUsize::new(0),
        config,
    });
    let config = &shared.config;
    for warning in config.warnings() {
        tracing::warn!(warning, "check the config");
    }
    tracing::info!(
        queue = %queue_url,
        pollers = config.input.pollers,
        state = %shared.durable.store.describe(),
        replica = %shared.durable.replica,
        cloudwatch = config.sinks.cloudwatch,
        alerts = config.sinks.sns_topic_arn.is_some(),
        s3_reports = config.sinks.s3_report_uri.is_some(),
        "driftd is polling the queue"
    );
    let mut pollers = JoinSet::new();
    for _ in 0..config.input.pollers {
        pollers.spawn(poll(shared.clone()));
    }

    let mut tick = tokio::time::interval(TICK);
    let mut failure = None;
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            // A poller ends only at shutdown. One that dies (a panic) would leave a daemon
            // that reads nothing yet looks alive: stop, and exit with an error so that the
            // service manager restarts it.
            ended = pollers.join_next() => {
                if stop.is_cancelled() {
                    break;
                }
                let how = how_it_ended(ended);
                events::telemetry().set_ready("pollers", Err(how.clone()));
                tracing::error!(how, "a poller stopped; driftd stops");
                failure = Some(how);
                stop.cancel();
                break;
            }
            _ = tick.tick() => {}
        }
        let finalised = finalise_ready(&shared, &sinks).await;
        let store = match &finalised {
            Err(RunError::State(error)) => Err(error.to_string()),
            _ => Ok(()),
        };
        events::telemetry().set_ready("store", store);
        if let Err(error) = finalised {
            tracing::error!(
                error = error.to_string(),
                "finalising windows failed; retried on the next tick"
            );
        }
    }

    // Shutdown: pollers stop (an object in progress fails and its message is released).
    // Everything recorded is in the state store; the next driftd, or another replica, carries
    // on from there.
    tracing::info!(
        timeout_s = config.daemon.shutdown_timeout.as_secs(),
        "stopping: no new messages; messages in progress are released"
    );
    let finish = async { while pollers.join_next().await.is_some() {} };
    if tokio::time::timeout(config.daemon.shutdown_timeout, finish)
        .await
        .is_err()
    {
        tracing::warn!(
            "shutdown timeout reached; messages not yet released reappear after their visibility timeout"
        );
    }
    if let Some(how) = failure {
        return Err(RunError::Usage(format!(
            "a poller stopped ({how}); no message would be read any more"
        )));
    }
    Ok(RunSummary {
        objects_read: shared.objects_read.load(Ordering::Relaxed),
        objects_failed: lock(&shared.failed_messages).len(),
        objects_unrouted: shared.objects_unrouted.load(Ordering::Relaxed),
        objects_refused: shared.objects_refused.load(Ordering::Relaxed),
        receive_failures: shared.receive_failures.load(Ordering::Relaxed),
        windows_written: shared.windows_written.load(Ordering::Relaxed),
        windows_with_violations: shared.windows_with_violations.load(Ordering::Relaxed),
        late_rows: shared.late_rows.load(Ordering::Relaxed),
        reports_failed: shared.reports_failed.load(Ordering::Relaxed),
        malformed_records: shared.malformed_records.load(Ordering::Relaxed),
    })
}

/// How an essential task ended, for the log and the exit error.
fn how_it_ended(ended: Option<Result<(), JoinError>>) -> String {
    match ended {
        Some(Err(error)) if error.is_panic() => {
            let payload = error.into_panic();
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            format!("panicked: {text}")
        }
        Some(Err(error)) => format!("cancelled: {error}"),
        Some(Ok(())) | None => "returned".into(),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The sets behind these locks stay consistent whatever panicked while holding them.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Checks at start-up that the queue, the report bucket and the topics and queues the config
/// names exist. One that does not (or that driftd may not use) stops the start with an error
/// naming its config key; one that cannot be reached now (an outage) is only logged, so that a
/// restart during an outage still starts and catches up later.
async fn check_resources(config: &Config, queue: &SqsQueue, sinks: &Sinks) -> Result<(), RunError> {
    let mut checks = vec![(
        "input.sqs_queue_url",
        queue.url().to_string(),
        queue.check().await,
    )];
    if let (Some(sink), Some(uri)) = (&sinks.s3_report, &config.sinks.s3_report_uri) {
        checks.push(("sinks.s3_report_uri", uri.clone(), sink.check().await));
    }
    let destinations = [
        (
            "sinks.sns_topic_arn",
            config.sinks.sns_topic_arn.clone().map(Destination::Topic),
        ),
        (
            "sinks.retrain_topic_arn",
            config
                .sinks
                .retrain_topic_arn
                .clone()
                .map(Destination::Topic),
        ),
        (
            "sinks.retrain_queue_url",
            config
                .sinks
                .retrain_queue_url
                .clone()
                .map(Destination::Queue),
        ),
    ];
    for (key, destination) in destinations {
        if let Some(destination) = destination {
            let outcome = sinks.messages.check(&destination).await;
            checks.push((key, destination.to_string(), outcome));
        }
    }
    for (key, value, outcome) in checks {
        match outcome {
            Ok(()) => {}
            Err(failure) if !failure.retryable => {
                return Err(RunError::Usage(format!(
                    "{key} = {value:?}: {} (does it exist, and may driftd use it?)",
                    failure.message
                )));
            }
            Err(failure) => tracing::warn!(
                key,
                value,
                error = failure.message,
                "cannot check at start-up that this exists (unreachable now); starting anyway"
            ),
        }
    }
    Ok(())
}

/// Where rule actions go unless a rule says otherwise.
fn routes(config: &Config) -> Routes {
    let sinks = &config.sinks;
    Routes {
        alert_topic: sinks.sns_topic_arn.clone(),
        retrain: sinks
            .retrain_topic_arn
            .clone()
            .map(Destination::Topic)
            .or_else(|| sinks.retrain_queue_url.clone().map(Destination::Queue)),
        models: config
            .monitors
            .iter()
            .map(|m| (m.name.clone(), m.model.clone()))
            .collect(),
    }
}

/// The sinks `[sinks]` asks for. They retry on their own (backoff with jitter), so their
/// clients do not: the SDK's retries would multiply the attempts.
fn build_sinks(config: &Config, sdk: &aws_config::SdkConfig) -> Result<Sinks, RunError> {
    let no_retry = RetryConfig::disabled();
    Ok(Sinks {
        s3_report: match &config.sinks.s3_report_uri {
            Some(uri) => Some(
                S3ReportSink::new(
                    aws_sdk_s3::Client::from_conf(
                        aws_sdk_s3::config::Builder::from(sdk)
                            .force_path_style(config.aws.endpoint_url.is_some())
                            .retry_config(no_retry.clone())
                            .build(),
                    ),
                    uri,
                    config.sinks.max_attempts,
                )
                .map_err(|e| RunError::Usage(format!("sinks.s3_report_uri: {e}")))?,
            ),
            None => None,
        },
        cloudwatch: config.sinks.cloudwatch.then(|| {
            CloudWatchSink::new(
                aws_sdk_cloudwatch::Client::from_conf({
                    let mut builder = aws_sdk_cloudwatch::config::Builder::from(sdk)
                        .retry_config(no_retry.clone());
                    if let Some(url) = &config.aws.cloudwatch_endpoint_url {
                        builder = builder.endpoint_url(url);
                    }
                    builder.build()
                }),
                config.sinks.cloudwatch_namespace_prefix.clone(),
                config.sinks.max_attempts,
            )
        }),
        messages: MessageSink::new(
            aws_sdk_sns::Client::from_conf({
                let mut builder =
                    aws_sdk_sns::config::Builder::from(sdk).retry_config(no_retry.clone());
                if let Some(url) = &config.aws.sns_endpoint_url {
                    builder = builder.endpoint_url(url);
                }
                builder.build()
            }),
            aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(sdk)
                    .retry_config(no_retry)
                    .build(),
            ),
            config.sinks.max_attempts,
        ),
    })
}

fn watch_signals(stop: CancellationToken) {
    tokio::spawn(async move {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(error) => {
                    tracing::warn!(error = error.to_string(), "cannot watch SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            _ = terminate => tracing::info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        }
        stop.cancel();
    });
}

async fn release(queue: &SqsQueue, message: &Received) {
    match queue.release(message).await {
        Ok(()) => {
            tracing::info!(
                message_id = message.message_id,
                "message released for redelivery"
            )
        }
        Err(error) => {
            tracing::warn!(
                error = error.to_string(),
                "cannot release message; it reappears after its visibility timeout"
            )
        }
    }
}

async fn poll(shared: Arc<Shared>) {
    let queue = &shared.queue;
    let limit = shared.config.daemon.max_undelivered_windows;
    let mut paused = false;
    while !shared.stop.is_cancelled() {
        // Backpressure: while the sinks cannot keep up, new objects would only pile up more
        // windows to deliver; their messages wait in the queue instead.
        let full = shared.undelivered.load(Ordering::Relaxed) >= limit;
        if full != paused {
            paused = full;
            events::emit(Event::Backpressure { on: full });
        }
        if full {
            tokio::select! {
                _ = shared.stop.cancelled() => break,
                _ = tokio::time::sleep(RECEIVE_BACKOFF) => continue,
            }
        }
        let asked_at = now_seconds();
        let received = tokio::select! {
            _ = shared.stop.cancelled() => break,
            received = queue.receive() => received,
        };
        events::telemetry().set_ready(
            "queue",
            received.as_ref().map(|_| ()).map_err(|e| e.to_string()),
        );
        let messages = match received {
            Ok(messages) => messages,
            Err(error) => {
                let hidden_until =
                    asked_at + shared.config.input.visibility_timeout.as_secs() as i64;
                shared
                    .input_hidden_until
                    .fetch_max(hidden_until, Ordering::Relaxed);
                let failures = shared.receive_failures.fetch_add(1, Ordering::Relaxed) + 1;
                let read_through = shared.input_read_through.load(Ordering::Relaxed);
                tracing::error!(
                    error,
                    failures,
                    stuck_s = (read_through > i64::MIN).then(|| now_seconds() - read_through),
                    "input is stuck: cannot receive messages; retrying, and no window closes on the clock meanwhile"
                );
                tokio::select! {
                    _ = shared.stop.cancelled() => break,
                    _ = tokio::time::sleep(RECEIVE_BACKOFF) => continue,
                }
            }
        };
        // Heartbeats for the whole batch at once: the last message waits for the others.
        let batch: Vec<_> = messages
            .into_iter()
            .map(|m| {
                let heartbeat = queue.heartbeat(&m);
                (m, heartbeat)
            })
            .collect();
        for (message, heartbeat) in batch {
            if shared.stop.is_cancelled() {
                heartbeat.stop().await;
                release(queue, &message).await;
                continue;
            }
            let outcome = match handle(&shared, &message).await {
                Outcome::Read(objects) => match record(&shared, objects).await {
                    Ok(()) => Outcome::Delete("its objects are recorded".into()),
                    Err(error) => Outcome::Leave(format!("cannot record the objects: {error}")),
                },
                other => other,
            };
            heartbeat.stop().await;
            match outcome {
                Outcome::Delete(reason) => {
                    tracing::info!(message_id = message.message_id, reason, "message deleted");
                    if let Err(error) = queue.delete(&message).await {
                        tracing::warn!(
                            error = error.to_string(),
                            "cannot delete message; if delivered again its objects are not counted twice"
                        );
                    }
                }
                Outcome::Leave(_) if shared.stop.is_cancelled() => release(queue, &message).await,
                Outcome::Leave(error) => {
                    lock(&shared.failed_messages).insert(message.message_id.clone());
                    events::emit(Event::ObjectFailed {
                        source: &format!("sqs message {}", message.message_id),
                        error: &error,
                    });
                    tracing::warn!(
                        message_id = message.message_id,
                        receive_count = message.receive_count,
                        "message left for redelivery (the queue's redrive policy moves it to the dead-letter queue)"
                    );
                    let path = shared.config.output.directory.join(DEAD_LETTER_FILE);
                    if let Err(e) = dead_letter(&path, &error) {
                        tracing::warn!(error = e.to_string(), "cannot write the dead-letter file");
                    }
                }
                Outcome::Read(_) => unreachable!("recorded above"),
            }
        }
        // Everything sent before this receive began is now read or in another's hands,
        // unless a lost receive still hides messages.
        if asked_at >= shared.input_hidden_until.load(Ordering::Relaxed) {
            shared
                .input_read_through
                .fetch_max(asked_at, Ordering::Relaxed);
        }
    }
}

/// Stores each object's partial windows, then its ledger entry. Rows for a window already
/// finalised are late: counted, logged and kept in the ledger entry, not merged.
async fn record(shared: &Shared, objects: Vec<(ObjectId, Windows)>) -> Result<(), StoreError> {
    let durable = &shared.durable;
    for (id, windows) in objects {
        let object = id.hash();
        if durable.ledger_entry(&object).await?.is_some() {
            tracing::info!(
                bucket = id.bucket,
                key = id.key,
                "object already counted by another reader meanwhile; not counted again"
            );
            continue;
        }
        let newest = windows.newest();
        let (mut rows, mut late_rows) = (0, 0);
        let mut fed = Vec::new();
        for (key, state) in windows.into_open() {
            let monitor = shared.config.monitors[key.monitor].name.as_str();
            let series = series_key(monitor, key.endpoint.as_deref());
            let n = state.row_count();
            rows += n;
            let bytes = tokio::task::spawn_blocking(move || codec::encode(&state))
                .await
                .expect("encoding does not panic");
            durable.put_part(&series, key.start, &object, bytes).await?;
            fed.push((monitor, series, key.start, n));
        }
        if let Some(newest) = newest {
            durable.note_event_time(newest).await?;
        }
        // Rows for a window fenced before their part landed are late (the finaliser removes
        // the stray part); a window being finalised right now is asked again until committed.
        let mut windows = Vec::new();
        let mut late_by_series = std::collections::BTreeMap::<String, u64>::new();
        for (monitor, series, start, n) in fed {
            if fate_once_decided(shared, &series, start, &object).await? == Fate::Late {
                late_rows += n;
                *late_by_series.entry(series.clone()).or_default() += n;
                events::emit(Event::LateRows { monitor, count: n });
            }
            windows.push(format!("{series}/{start}"));
        }
        // Before the ledger entry: a crash in between repeats the object and notes it again.
        for (series, rows) in late_by_series {
            durable.note_late(&series, &object, rows).await?;
        }
        if late_rows > 0 {
            tracing::warn!(
                bucket = id.bucket,
                key = id.key,
                late_rows,
                "rows for windows already finalised: counted as late, not merged"
            );
            shared.late_rows.fetch_add(late_rows, Ordering::Relaxed);
        }
        let entry = LedgerEntry {
            bucket: id.bucket.clone(),
            key: id.key.clone(),
            etag: id.etag.clone(),
            rows,
            windows,
            late_rows,
            replica: durable.replica.clone(),
            recorded_at: now_seconds(),
        };
        durable.put_ledger_entry(&object, &entry).await?;
        shared.objects_read.fetch_add(1, Ordering::Relaxed);
        events::emit(Event::ObjectRecorded {
            source: &format!("s3://{}/{}", id.bucket, id.key),
            windows: entry.windows.len(),
        });
    }
    Ok(())
}

/// An object named by a forged or corrupt event, or one driftd may not read: counted, logged
/// and written to the dead-letter file, never requested. Its message is deleted (a retry would
/// meet the same refusal). Keys are cut short and escaped wherever they are written: a forged
/// one must not forge log lines.
/// `category` names the kind of refusal for the metric (`invalid_key`, `not_allowed`,
/// `invalid_series`); `reason` says what exactly, for the log and the dead-letter file.
fn refuse(
    shared: &Shared,
    message: &Received,
    (bucket, key): (&str, &str),
    category: &'static str,
    reason: &str,
) {
    shared.objects_refused.fetch_add(1, Ordering::Relaxed);
    let key = shorten(key);
    events::emit(Event::ObjectRefused {
        source: &format!("s3://{bucket}/{key}"),
        reason: category,
    });
    tracing::warn!(
        message_id = message.message_id,
        reason,
        "object refused; not read"
    );
    let entry = format!(
        "message {:?}: s3://{bucket:?}/{key:?} refused: {reason}",
        message.message_id
    );
    let path = shared.config.output.directory.join(DEAD_LETTER_FILE);
    if let Err(error) = dead_letter(&path, &entry) {
        tracing::warn!(
            error = error.to_string(),
            "cannot write the dead-letter file"
        );
    }
}

/// How long a reader waits for a fenced window's commit before it gives up (its message is
/// then read again later): a finaliser that died after fencing is replaced once its lease
/// expires.
fn fence_patience(shared: &Shared) -> Duration {
    shared.config.state.lease_timeout * 2 + Duration::from_secs(10)
}

async fn fate_once_decided(
    shared: &Shared,
    series: &str,
    start: i64,
    object: &str,
) -> Result<Fate, StoreError> {
    let deadline = tokio::time::Instant::now() + fence_patience(shared);
    loop {
        let fate = shared.durable.fate(series, start, object).await?;
        if fate != Fate::Undecided {
            return Ok(fate);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(StoreError::Failed {
                store: shared.durable.store.describe(),
                op: "record",
                key: format!("fence/{series}/{start}"),
                message: "the window is being finalised and was not committed in time".into(),
                retryable: true,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn handle(shared: &Shared, message: &Received) -> Outcome {
    let notices = match parse_message(&message.body) {
        Err(error) => return Outcome::Leave(format!("message {}: {error}", message.message_id)),
        Ok(Notice::Test) => return Outcome::Delete("s3:TestEvent".into()),
        Ok(Notice::Ignored(reason)) => return Outcome::Delete(reason),
        Ok(Notice::Objects(objects)) => objects,
    };
    let mut read = Vec::new();
    for event in notices {
        let object = (event.bucket.as_str(), event.key.as_str());
        events::emit(Event::ObjectReceived {
            source: &format!("s3://{}/{}", event.bucket, shorten(&event.key)),
        });
        if let Some(reason) = &event.refused {
            refuse(shared, message, object, "invalid_key", reason);
            continue;
        }
        if let Err(reason) = shared.allow.check(&event.bucket, &event.key) {
            refuse(shared, message, object, "not_allowed", &reason);
            continue;
        }
        let Some((index, fields)) = route(&shared.monitors, &event.key) else {
            shared.objects_unrouted.fetch_add(1, Ordering::Relaxed);
            events::emit(Event::ObjectRefused {
                source: &format!("s3://{}/{}", event.bucket, event.key),
                reason: "no_monitor",
            });
            continue;
        };
        let monitor = &shared.config.monitors[index].name;
        if let Err(reason) = shared
            .durable
            .check_series(&series_key(monitor, fields.endpoint.as_deref()))
        {
            refuse(shared, message, object, "invalid_series", &reason);
            continue;
        }
        match read_object(shared, index, fields, &event.bucket, &event.key).await {
            Ok(Some(object)) => read.push(object),
            Ok(None) => {}
            Err(error) => return Outcome::Leave(error),
        }
    }
    if read.is_empty() {
        Outcome::Delete("nothing to read".into())
    } else {
        Outcome::Read(read)
    }
}

/// Reads one announced object (or the objects a manifest lists) into its own windows.
/// `Ok(None)`: the object no longer exists.
async fn read_object(
    shared: &Shared,
    monitor: usize,
    fields: crate::ingest::local::PathFields,
    bucket: &str,
    key: &str,
) -> Result<Option<(ObjectId, Windows)>, String> {
    let monitor_config = &shared.config.monitors[monitor];
    let started = std::time::Instant::now();
    tracing::info!(bucket, key, monitor = monitor_config.name, "reading object");
    let limits = &shared.config.limits;
    let object = match get_object_within(&shared.s3, bucket, key, limits).await {
        Ok(object) => object,
        Err(FetchError::NotFound { .. }) => {
            tracing::warn!(
                bucket,
                key,
                "announced object does not exist (deleted since?); skipped"
            );
            return Ok(None);
        }
        Err(error) => return Err(error.to_string()),
    };
    let id = ObjectId {
        bucket: bucket.to_string(),
        key: key.to_string(),
        etag: object.etag.clone(),
    };
    // Redelivered, or announced twice: counted already, so not read again.
    match shared.durable.ledger_entry(&id.hash()).await {
        Ok(Some(_)) => {
            tracing::info!(bucket, key, "object already counted; not counted again");
            return Ok(None);
        }
        Ok(None) => {}
        Err(error) => return Err(format!("cannot read the ledger: {error}")),
    }
    let object_time = fields.hour.map(|h| h.timestamp());
    let objects = if monitor_config.manifest {
        let mut listed = Vec::new();
        for (b, k) in read_manifest(object).await.map_err(|e| e.to_string())? {
            shared.allow.check(&b, &k).map_err(|reason| {
                format!("manifest s3://{bucket}/{key} lists s3://{b}/{k}: {reason}")
            })?;
            listed.push(
                get_object_within(&shared.s3, &b, &k, limits)
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        listed
    } else {
        vec![object]
    };
    let options = monitor_config.decode_options(shared.config.limits);
    let kind = shared.monitors[monitor].kind.clone();
    let size = shared.config.window.size.as_secs() as i64;
    let quarantine_path = shared.quarantine_path.clone();
    let cancel = shared.stop.child_token();
    let stall_timeout = shared.config.aws.request_timeout;
    let handle = tokio::runtime::Handle::current();
    let endpoint = fields.endpoint;
    let spool_dir = shared.config.output.directory.clone();
    let decoded =
        tokio::task::spawn_blocking(move || -> Result<(Windows, u64, Quarantine), DecodeError> {
            let mut quarantine =
                Quarantine::to_file(&quarantine_path).map_err(|error| DecodeError::Io {
                    source_name: quarantine_path.display().to_string(),
                    error,
                })?;
            let mut windows = Windows::new(size, 0);
            let mut rows = 0;
            for object in objects {
                let time = object_time
                    .or(object.last_modified)
                    .unwrap_or_else(now_seconds);
                let source_name = object.source_name();
                let body =
                    BlockingBody::new(handle.clone(), object.body, cancel.clone(), stall_timeout);
                decode_into(
                    source_name,
                    body,
                    &spool_dir,
                    &options,
                    &mut quarantine,
                    |chunk| {
                        rows += chunk.features.num_rows() as u64;
                        windows.add(monitor, &kind, endpoint.as_deref(), &chunk, time)
                    },
                )?;
            }
            Ok((windows, rows, quarantine))
        })
        .await
        .map_err(|e| format!("decoder thread failed: {e}"))?
        .map_err(|e| e.to_string())?;
    let (windows, rows, quarantine) = decoded;
    let source = format!("s3://{bucket}/{key}");
    for (reason, count) in quarantine.counts() {
        events::emit(Event::RecordsQuarantined {
            source: &source,
            reason: reason.as_str(),
            count: *count,
        });
    }
    shared
        .malformed_records
        .fetch_add(quarantine.total(), Ordering::Relaxed);
    events::emit(Event::ObjectRead {
        source: &source,
        monitor: &monitor_config.name,
        rows,
        seconds: started.elapsed().as_secs_f64(),
    });
    Ok(Some((id, windows)))
}

/// Decodes a streaming object chunk by chunk. Parquet needs random access, so it is spooled to
/// a temporary file first (disk, not memory).
fn decode_into(
    source_name: String,
    mut body: BlockingBody,
    spool_dir: &Path,
    options: &DecodeOptions,
    quarantine: &mut Quarantine,
    mut consume: impl FnMut(decode::Chunk),
) -> Result<(), DecodeError> {
    let io = |error| DecodeError::Io {
        source_name: source_name.clone(),
        error,
    };
    if options.format == InputFormat::Parquet {
        // A private file (random name, created exclusively, mode 0600, removed when dropped)
        // in driftd's own directory: nothing planted in a shared /tmp can be followed.
        let mut spool = tempfile::Builder::new()
            .prefix(".driftd-spool-")
            .suffix(".parquet")
            .tempfile_in(spool_dir)
            .map_err(io)?;
        std::io::copy(&mut body, spool.as_file_mut()).map_err(io)?;
        spool.as_file_mut().flush().map_err(io)?;
        crate::pipeline::decode_object(spool.path(), options, quarantine, consume)?;
        return Ok(());
    }
    let reader =
        decode::compression::decompressing_reader_with_limits(Box::new(body), &options.limits)
            .map_err(io)?;
    let mut decoder = decode::open_reader(reader, source_name.clone(), options);
    while let Some(chunk) = decoder.next_chunk(quarantine)? {
        consume(chunk);
    }
    Ok(())
}

struct Sinks {
    s3_report: Option<S3ReportSink>,
    cloudwatch: Option<CloudWatchSink>,
    /// Rule actions: alerts and retrain triggers.
    messages: MessageSink,
}

/// One finaliser pass: for every series with work — outboxes to deliver, windows the
/// watermark passed, or (with rules) windows in which nothing arrived — whose lease this
/// replica gets, in window order.
async fn finalise_ready(shared: &Arc<Shared>, sinks: &Sinks) -> Result<(), RunError> {
    let durable = &shared.durable;
    let config = &shared.config;
    let size = config.window.size.as_secs() as i64;
    let newest = durable.newest_event_time().await?;
    // The clock closes windows only as far as the input has been read: while it is stuck,
    // messages may wait in the queue for windows that would otherwise look empty.
    let read_through = shared.input_read_through.load(Ordering::Relaxed);
    let watermark = newest
        .unwrap_or(i64::MIN)
        .max(now_seconds().min(read_through))
        .saturating_sub(config.window.allowed_lateness.as_secs() as i64);
    let mut work = durable.pending_work().await?;
    let undelivered = work.values().map(|w| w.outboxes.len()).sum();
    shared.undelivered.store(undelivered, Ordering::Relaxed);
    events::emit(Event::OutboxDepth {
        windows: undelivered,
    });
    for series in durable.rule_series().await? {
        work.entry(series).or_default();
    }
    for (series, work) in work {
        if shared.stop.is_cancelled() {
            break;
        }
        let silent = work.parts.is_empty();
        let ready: Vec<(i64, Vec<String>)> = work
            .parts
            .into_iter()
            .filter(|(start, _)| start + size <= watermark)
            .collect();
        // Windows up to here have passed; with no part stored anywhere in the series, those
        // after the rules' last one had no data.
        // Saturating: before the first receive and with no event time yet, the watermark is
        // i64::MIN.
        let through = watermark.div_euclid(size).saturating_mul(size);
        let silence_due = silent
            && work.outboxes.is_empty()
            && durable
                .rules(&series)
                .await?
                .evaluated_through
                .is_some_and(|t| t < through);
        if work.outboxes.is_empty() && ready.is_empty() && !silence_due {
            continue;
        }
        let Some(mut held) = durable.acquire(&series).await? else {
            continue;
        };
        events::emit(Event::LeaseTaken { series: &series });
        let result = async {
            // Deliveries go out oldest first; once a sink fails, later windows are still
            // finalised and committed (so the outbox shows the real backlog), and wait for
            // that sink.
            let mut blocked = Blocked::default();
            for start in work.outboxes {
                deliver(shared, sinks, &series, start, &mut blocked).await?;
            }
            for (start, parts) in ready {
                if !durable.renew(&mut held).await? {
                    events::emit(Event::LeaseLost { series: &series });
                    return Ok(());
                }
                if let Some(start) = finalise(shared, sinks, &series, start, &parts).await? {
                    deliver(shared, sinks, &series, start, &mut blocked).await?;
                }
            }
            if silence_due
                && let Some(start) = finalise_silence(shared, &series, through - size).await?
            {
                deliver(shared, sinks, &series, start, &mut blocked).await?;
            }
            Ok::<(), RunError>(())
        }
        .await;
        durable.release(held).await;
        result?;
    }
    Ok(())
}

/// Merges a window's parts (in object order, so any replica gets the same result), analyses
/// it, writes its local files, runs the rules, and commits its deliveries. `None` when there
/// was nothing to commit (already finalised, or no readable part).
async fn finalise(
    shared: &Arc<Shared>,
    sinks: &Sinks,
    series: &str,
    start: i64,
    listed: &[String],
) -> Result<Option<i64>, RunError> {
    let durable = &shared.durable;
    let config = &shared.config;
    if durable.finalised_parts(series, start).await?.is_some() {
        // Parts that landed after the window was fenced were counted as late.
        durable.delete_parts(series, start, listed).await?;
        return Ok(None);
    }
    let (monitor_name, endpoint) = split_series(series);
    let Some(monitor) = config.monitors.iter().position(|m| m.name == monitor_name) else {
        tracing::warn!(
            series,
            "stored windows of a monitor no longer in the config; left as they are"
        );
        return Ok(None);
    };
    // Fenced first, listed after: a part stored before the fence is in this list; one stored
    // after it is counted late by its reader.
    durable.fence(series, start).await?;
    let parts = &durable.list_parts(series, start).await?;
    let mut stored = Vec::new();
    for object in parts {
        match durable.get_part(series, start, object).await? {
            Some(bytes) => stored.push((object.clone(), bytes)),
            // Removed since the listing: another replica (which took over an expired lease)
            // finalised the window meanwhile. Merging the rest would give a partial window.
            None => return Ok(None),
        }
    }
    let key = WindowKey {
        monitor,
        endpoint: endpoint.map(str::to_string),
        start,
    };
    let end = start + config.window.size.as_secs() as i64;
    let analysis = {
        let shared = shared.clone();
        tokio::task::spawn_blocking(move || {
            let kind = &shared.monitors[monitor].kind;
            let mut merged: Option<WindowState> = None;
            let mut used = Vec::new();
            for (object, bytes) in stored {
                match codec::decode(&bytes, kind) {
                    Ok(state) => {
                        match &mut merged {
                            Some(window) => window.merge(state),
                            None => merged = Some(state),
                        }
                        used.push(object);
                    }
                    Err(error) => tracing::error!(
                        object,
                        %error,
                        "a stored partial window cannot be read; left out of the window"
                    ),
                }
            }
            merged.map(|state| {
                let window = ClosedWindow { key, end, state };
                (
                    super::window_report(&shared.config, &shared.monitors, window),
                    used,
                )
            })
        })
        .await
        .expect("analysis does not panic")
    };
    let Some((report, used)) = analysis else {
        return Ok(None);
    };
    let report_uri = sinks
        .s3_report
        .as_ref()
        .map(|s| s.window_uri(&report.relative_dir));
    let context = WindowContext::of(&report, report_uri.as_deref());
    let before = durable.rules(series).await?;
    let (late_rows, late_notes) = durable.late_notes(series).await?;
    let facts = WindowFacts {
        late_rows,
        ..facts_of(&report)
    };
    let (actions, messages, rules_after) = decide(shared, &before, &facts, &context, false);
    let outbox = WindowOutbox {
        end,
        parts: used,
        rows: report.rows,
        relative_dir: report.relative_dir.clone(),
        report_files: if sinks.s3_report.is_some() {
            report_files(&report)
        } else {
            Vec::new()
        },
        report_done: sinks.s3_report.is_none(),
        report_failed: false,
        committed_at: now_seconds(),
        family: report.family(),
        endpoint: report.endpoint.clone(),
        metrics: if sinks.cloudwatch.is_some() {
            report.metrics.clone()
        } else {
            Vec::new()
        },
        metrics_done: sinks.cloudwatch.is_none(),
        messages,
        messages_sent: 0,
        rules_after,
    };
    if !commit(shared, series, start, &outbox, Some(&report), &actions).await? {
        return Ok(None);
    }
    durable.forget_late(&late_notes).await?;
    durable.delete_parts(series, start, parts).await?;
    shared.windows_written.fetch_add(1, Ordering::Relaxed);
    if report.violation_count() > 0 {
        shared
            .windows_with_violations
            .fetch_add(1, Ordering::Relaxed);
    }
    report.emit_finalised();
    Ok(Some(start))
}

/// The rules' verdict on a window of a series (`silent`: one in which nothing arrived), and
/// their state after it. A window the rules already saw yields nothing; a window with data
/// that silent windows overtook is evaluated in their stead.
fn decide(
    shared: &Shared,
    before: &SeriesRules,
    facts: &WindowFacts,
    context: &WindowContext,
    silent: bool,
) -> (
    Vec<crate::rules::Action>,
    Vec<crate::sinks::actions::Delivery>,
    SeriesRules,
) {
    let mut after = before.clone();
    if before.has_seen(facts.end, silent) {
        return (Vec::new(), Vec::new(), after);
    }
    // Rules removed or renamed since: their episodes are over.
    after.state.retain_rules(&shared.rules);
    let actions = evaluate(&shared.rules, &mut after.state, facts);
    after.saw(facts.end, silent);
    let messages = messages(&shared.rules, &actions, context, &shared.routes);
    (actions, messages, after)
}

/// Runs the rules over the empty windows of a silent series up to the one starting at
/// `start`, and commits the messages they decide.
async fn finalise_silence(
    shared: &Shared,
    series: &str,
    start: i64,
) -> Result<Option<i64>, RunError> {
    let durable = &shared.durable;
    let end = start + shared.config.window.size.as_secs() as i64;
    let (monitor, endpoint) = split_series(series);
    let (late_rows, late_notes) = durable.late_notes(series).await?;
    let facts = WindowFacts {
        late_rows,
        ..WindowFacts::empty(monitor, endpoint, start, end)
    };
    let context = WindowContext::silent(monitor, endpoint, start, end);
    // Fenced like any window, so that a part landing now is either seen here or late.
    durable.fence(series, start).await?;
    if !durable.list_parts(series, start).await?.is_empty() {
        // Not silent after all: the next tick finalises it with its data.
        return Ok(None);
    }
    let before = durable.rules(series).await?;
    let (actions, messages, rules_after) = decide(shared, &before, &facts, &context, true);
    let outbox = WindowOutbox {
        end,
        parts: Vec::new(),
        rows: 0,
        relative_dir: String::new(),
        report_files: Vec::new(),
        report_done: true,
        report_failed: false,
        committed_at: now_seconds(),
        family: Family::DataQuality,
        endpoint: endpoint.map(str::to_string),
        metrics: Vec::new(),
        metrics_done: true,
        messages,
        messages_sent: 0,
        rules_after,
    };
    if !commit(shared, series, start, &outbox, None, &actions).await? {
        return Ok(None);
    }
    durable.forget_late(&late_notes).await?;
    Ok(Some(start))
}

/// Commits a finalised window (`false`: another replica committed it first). Then, on this
/// replica only, writes its local files (when it had data), records its actions and saves
/// the rules' state after it.
async fn commit(
    shared: &Shared,
    series: &str,
    start: i64,
    outbox: &WindowOutbox,
    report: Option<&crate::sinks::WindowReport>,
    actions: &[crate::rules::Action],
) -> Result<bool, RunError> {
    let durable = &shared.durable;
    if !durable.commit(series, start, outbox).await? {
        return Ok(false);
    }
    let out = &shared.config.output.directory;
    if let Some(report) = report {
        super::write_local(&shared.config, report)?;
    }
    append_actions(&out.join(ACTIONS_FILE), actions)?;
    print_actions(actions);
    durable.put_rules(series, &outbox.rules_after).await?;
    Ok(true)
}

/// The sinks that failed for an earlier window in this pass: later windows wait for them, so
/// that each sink gets a series' windows in order, and go on to the others.
#[derive(Debug, Default)]
struct Blocked {
    report: bool,
    metrics: bool,
    messages: bool,
}

/// Delivers a committed window's outbox, step by step, saving progress after each. No sink
/// waits for another, except that alerts wait up to `sinks.report_wait` for the report they
/// link to, then go without the links. A failed step is retried on the next tick.
async fn deliver(
    shared: &Shared,
    sinks: &Sinks,
    series: &str,
    start: i64,
    blocked: &mut Blocked,
) -> Result<(), RunError> {
    let durable = &shared.durable;
    let Some(mut outbox) = durable.outbox(series, start).await? else {
        return Ok(());
    };
    // The finaliser may have stopped between committing and saving the rules' state.
    let rules = durable.rules(series).await?;
    if rules.behind(&outbox.rules_after) {
        durable.put_rules(series, &outbox.rules_after).await?;
    }
    let window = outbox.relative_dir.clone();
    let attempt = |sink: Sink, outcome: events::Delivery, error: Option<&str>| {
        events::emit(Event::Delivered {
            sink,
            outcome,
            window: &window,
            lag_seconds: (now_seconds() - outbox.end) as f64,
            error,
        });
        // Blocks this sink for the series' later windows unless delivered.
        outcome != events::Delivery::Delivered
    };
    if !outbox.report_done && !blocked.report {
        match &sinks.s3_report {
            Some(sink) => match sink.write(&outbox.relative_dir, &outbox.report_files).await {
                Ok(()) => {
                    attempt(Sink::S3Report, events::Delivery::Delivered, None);
                    outbox.report_done = true;
                }
                Err(error) if error.permanent => {
                    shared.reports_failed.fetch_add(1, Ordering::Relaxed);
                    attempt(
                        Sink::S3Report,
                        events::Delivery::Failed,
                        Some(&format!(
                            "{} (check sinks.s3_report_uri and s3:PutObject); given up, its alerts go without links",
                            error.message
                        )),
                    );
                    outbox.report_done = true;
                    outbox.report_failed = true;
                }
                Err(error) => {
                    blocked.report = attempt(
                        Sink::S3Report,
                        events::Delivery::Retrying,
                        Some(&error.message),
                    )
                }
            },
            None => outbox.report_done = true,
        }
        if outbox.report_done {
            durable.save_outbox(series, start, &outbox).await?;
        }
    }
    if !outbox.metrics_done && !blocked.metrics {
        match &sinks.cloudwatch {
            Some(sink) => match sink
                .publish(outbox.family, outbox.endpoint.as_deref(), &outbox.metrics)
                .await
            {
                Ok(()) => {
                    attempt(Sink::CloudWatch, events::Delivery::Delivered, None);
                    outbox.metrics_done = true;
                }
                Err(error) => {
                    blocked.metrics =
                        attempt(Sink::CloudWatch, events::Delivery::Retrying, Some(&error))
                }
            },
            None => outbox.metrics_done = true,
        }
        if outbox.metrics_done {
            durable.save_outbox(series, start, &outbox).await?;
        }
    }
    let waited = now_seconds() - outbox.committed_at;
    if !outbox.report_done && waited < shared.config.sinks.report_wait.as_secs() as i64 {
        // Later windows' alerts wait behind this one's, to keep their order.
        blocked.messages = true;
    }
    let linked = outbox.report_done && !outbox.report_failed;
    while !blocked.messages
        && let Some(message) = outbox.messages.get(outbox.messages_sent)
    {
        let message = if linked {
            message.clone()
        } else {
            message.without_report_links()
        };
        if let Err(error) = sinks.messages.send(&message).await {
            blocked.messages = attempt(Sink::Messages, events::Delivery::Retrying, Some(&error));
            break;
        }
        attempt(Sink::Messages, events::Delivery::Delivered, None);
        outbox.messages_sent += 1;
        // A crash before this write sends the message again: at least once, and the receiver
        // deduplicates by its key.
        durable.save_outbox(series, start, &outbox).await?;
    }
    if outbox.report_done && outbox.metrics_done && outbox.messages_sent == outbox.messages.len() {
        durable.retire(series, start, &outbox).await?;
        tracing::info!(series, start, "window delivered to every sink");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poller_that_panics_is_reported_with_its_panic() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let how = runtime.block_on(async {
            let mut tasks = JoinSet::new();
            tasks.spawn(std::future::pending::<()>());
            tasks.spawn(async { panic!("valid request: InvalidUri(TooLong)") });
            how_it_ended(tasks.join_next().await)
        });
        assert_eq!(how, "panicked: valid request: InvalidUri(TooLong)");
    }
}
