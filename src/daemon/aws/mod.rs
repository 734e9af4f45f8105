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

mod deliver;
mod finalise;
mod poll;

use deliver::{Blocked, deliver};
use finalise::finalise_ready;
use poll::poll;

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
        checks.push(("sinks.s3_report_uri", uri.to_string(), sink.check().await));
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
        s3_report: config.sinks.s3_report_uri.as_ref().map(|uri| {
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
        }),
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

struct Sinks {
    s3_report: Option<S3ReportSink>,
    cloudwatch: Option<CloudWatchSink>,
    /// Rule actions: alerts and retrain triggers.
    messages: MessageSink,
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
