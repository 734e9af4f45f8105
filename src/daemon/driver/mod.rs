//! The one driver behind `driftd run`, for both modes. A source yields objects: files in a
//! directory (embedded mode, [`directory`]) or S3 objects announced on SQS (AWS mode,
//! [`queue`]). Each object is read into its own partial windows, which are stored with its
//! ledger entry in the state store ([`super::state`]) before the source lets go of it (the
//! message is deleted, the file marked read): from that moment the object is safe whatever
//! happens to this process, and it is never counted twice.
//!
//! Once a second, the finaliser ([`finalise`]) looks for windows the watermark has passed; for
//! each series whose lease it gets it merges the stored parts, analyses the window, runs the
//! rules, commits its deliveries to the outbox and delivers them ([`deliver`]). A sink that
//! fails delays its deliveries, which stay in the outbox, and loses nothing. Several replicas
//! sharing a store produce what one would. Embedded mode's sinks are the local files; AWS mode
//! adds S3 reports, CloudWatch and the rules' messages ([`connect`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

use super::actions::{action_lines, append_action_lines, facts_of, messages, print_actions};
use super::state::{Durable, Fate, LedgerEntry, SeriesKey, SeriesRules, WindowOutbox, object_hash};
use super::{
    ACTIONS_FILE, DEAD_LETTER_FILE, Monitor, Role, RunError, RunSummary, dead_letter, now_seconds,
    route,
};
use crate::config::{Config, InputSource};
use crate::decode::Quarantine;
use crate::events::{self, Event, Sink};
use crate::rules::{RuleSet, WindowFacts, evaluate};
use crate::sinks::actions::{MessageSink, Routes};
use crate::sinks::cloudwatch::{CloudWatchSink, Family};
use crate::sinks::s3_report::S3ReportSink;
use crate::sinks::sns::WindowContext;
use crate::store::{LocalStore, S3Store, StateStore, StoreError};
use crate::window::{ClosedWindow, WindowKey, WindowState, Windows, codec};

mod connect;
mod deliver;
mod directory;
mod finalise;
mod join;
mod queue;
mod record;
mod report;

use deliver::{Blocked, deliver, deliver_committed};
use finalise::{Pass, finalise_ready};
use record::record;

/// How often the finaliser looks for windows to close and deliveries to make.
const TICK: Duration = Duration::from_secs(1);

/// Pause after a failed receive or scan, and while backpressure holds the input.
const INPUT_BACKOFF: Duration = Duration::from_secs(5);

pub(super) fn run(
    config: &Config,
    config_path: &std::path::Path,
    monitors: Vec<Monitor>,
    rules: RuleSet,
    once: bool,
) -> Result<RunSummary, RunError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| RunError::Io {
            path: PathBuf::from("(tokio runtime)"),
            error,
        })?;
    let summary = runtime.block_on(serve(
        config.clone(),
        config_path.to_path_buf(),
        monitors,
        rules,
        once,
    ));
    // Reads in progress were interrupted at shutdown; do not wait on a straggler forever.
    runtime.shutdown_timeout(Duration::from_secs(2));
    summary
}

/// Which version of which object: a redelivered message, a second event for the same upload or
/// a file scanned again after a restart names the same one; an overwritten object or a
/// rewritten file is a new one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ObjectId {
    /// `s3://bucket/key`, or a file's path below the input directory.
    source: String,
    /// The S3 ETag, or a file's length and modification time.
    version: String,
    hash: String,
}

impl ObjectId {
    fn s3(bucket: &str, key: &str, etag: &str) -> Self {
        Self {
            source: format!("s3://{bucket}/{key}"),
            version: etag.to_string(),
            hash: object_hash(bucket, key, etag),
        }
    }

    fn file(relative: &str, length: u64, modified_ns: u128) -> Self {
        let version = format!("{length}:{modified_ns}");
        Self {
            source: relative.to_string(),
            // No bucket is empty, so a file never shares a hash with an S3 object.
            hash: object_hash("", relative, &version),
            version,
        }
    }

    /// The object as read by the `route`-th monitor it is routed to: each monitor's read is
    /// recorded on its own. The first keeps the object's own hash, so a ledger written
    /// before one object could feed several monitors still knows it.
    fn for_route(mut self, route: usize, monitor: &str) -> Self {
        if route > 0 {
            // No key or path holds a NUL, so this names no other object.
            self.hash = object_hash(&self.hash, monitor, "\0monitor");
        }
        self
    }
}

/// What every part of the driver shares.
struct Shared {
    config: Config,
    /// For the periodic reports, which read the config as `driftd report bias` does.
    config_path: PathBuf,
    monitors: Vec<Monitor>,
    rules: RuleSet,
    routes: Routes,
    durable: Durable,
    stop: CancellationToken,
    quarantine_path: PathBuf,
    /// Messages or files that failed: a file once per version (its failure is in the ledger),
    /// a message on its first receive (it is retried). A count, not a set of ids: forged
    /// messages must not grow memory.
    failed: AtomicUsize,
    /// When a receive or scan began whose objects are all recorded: everything sent before
    /// then has been read (or is in flight elsewhere). The clock closes windows only up to
    /// here, so a stuck input never makes windows look empty.
    input_read_through: AtomicI64,
    /// A failed receive may have taken messages that never reached driftd: they stay hidden
    /// until its start plus the visibility timeout, and only a receive begun after that
    /// moves `input_read_through` on.
    input_hidden_until: AtomicI64,
    /// Finalised windows waiting in the outbox, as the finaliser last counted them.
    undelivered: AtomicUsize,
    /// Whether the input is held back until deliveries catch up.
    paused: AtomicBool,
    /// The event time (or, for the clock, the time the input is read through) at which the
    /// next window with data closes, as the finaliser last planned; `i64::MAX` for none.
    next_close: AtomicI64,
    /// Wakes the finaliser when a reader takes the watermark past `next_close`, so that a
    /// window closed by an event is finalised at once, not at the next tick.
    close_due: tokio::sync::Notify,
}

impl Shared {
    /// Wakes the finaliser if `time` (an event time recorded, or the time the input is read
    /// through) reaches the next close.
    fn note_progress(&self, time: i64) {
        if time >= self.next_close.load(Ordering::Relaxed) {
            self.close_due.notify_one();
        }
    }

    /// How to decode an object routed to `monitor` in `role`: label files are SageMaker's
    /// ground-truth JSON Lines whatever the monitor's own format.
    fn decode_options(&self, monitor: usize, role: Role) -> crate::decode::DecodeOptions {
        let mut options = self.config.monitors[monitor].decode_options(self.config.limits);
        if role == Role::Labels {
            options.format = crate::decode::InputFormat::GroundTruth;
        }
        options
    }

    /// Backpressure: while the sinks cannot keep up, new objects would only pile up more
    /// windows to deliver; they wait in their source instead. Whether to hold back now.
    fn input_held(&self) -> bool {
        let full =
            self.undelivered.load(Ordering::Relaxed) >= self.config.daemon.max_undelivered_windows;
        if self.paused.swap(full, Ordering::Relaxed) != full {
            events::emit(Event::Backpressure { on: full });
        }
        full
    }

    /// Counts an object's quarantined records, one event per reason.
    fn note_quarantined(&self, source: &str, quarantine: &Quarantine) {
        for (reason, count) in quarantine.counts() {
            events::emit(Event::RecordsQuarantined {
                source,
                reason: reason.as_str(),
                count: *count,
            });
        }
    }

    /// A failed object, or one refused for a reason worth keeping, in the dead-letter file.
    fn dead_letter(&self, entry: &dyn std::fmt::Display) {
        let path = self.config.output.directory.join(DEAD_LETTER_FILE);
        if let Err(error) = dead_letter(&path, entry) {
            tracing::warn!(
                error = error.to_string(),
                "cannot write the dead-letter file"
            );
        }
    }

    /// Sleeps `pause` unless stopped first; `false` when stopped.
    async fn pause(&self, pause: Duration) -> bool {
        tokio::select! {
            _ = self.stop.cancelled() => false,
            _ = tokio::time::sleep(pause) => true,
        }
    }
}

/// What the driver reads.
enum Source {
    Directory(PathBuf),
    Queue(queue::QueueInput),
}

async fn serve(
    config: Config,
    config_path: PathBuf,
    monitors: Vec<Monitor>,
    rules: RuleSet,
    once: bool,
) -> Result<RunSummary, RunError> {
    let out = &config.output.directory;
    std::fs::create_dir_all(out).map_err(|error| RunError::Io {
        path: out.clone(),
        error,
    })?;
    let (source, sinks, s3) = match config.input.source().map_err(RunError::Usage)? {
        InputSource::Directory(directory) => (
            Source::Directory(directory.to_path_buf()),
            Sinks::default(),
            None,
        ),
        InputSource::Queue(url) => {
            let aws = connect::connect(&config, url).await?;
            (Source::Queue(aws.input), aws.sinks, Some(aws.s3))
        }
    };
    let store = match (&config.state.s3_uri, s3) {
        (Some(uri), Some(s3)) => S3Store::new(s3, uri).map(StateStore::from),
        _ => LocalStore::open(config.state_directory()).map(StateStore::from),
    }
    .map_err(|e| RunError::Usage(format!("state: {e}")))?;
    check_store(&config, &store).await?;
    let durable = Durable::new(store, config.state.lease_timeout);
    let stop = CancellationToken::new();
    watch_signals(stop.clone());
    let quarantine_path = config
        .output
        .quarantine
        .clone()
        .unwrap_or_else(|| out.join("quarantine.jsonl"));
    let shared = Arc::new(Shared {
        routes: connect::routes(&config),
        config_path,
        monitors,
        rules,
        durable,
        stop: stop.clone(),
        quarantine_path,
        failed: AtomicUsize::new(0),
        input_read_through: AtomicI64::new(i64::MIN),
        input_hidden_until: AtomicI64::new(i64::MIN),
        undelivered: AtomicUsize::new(0),
        paused: AtomicBool::new(false),
        next_close: AtomicI64::new(i64::MAX),
        close_due: tokio::sync::Notify::new(),
        config,
    });
    let config = &shared.config;
    for warning in config.warnings() {
        tracing::warn!(warning, "check the config");
    }
    shared
        .durable
        .mark_stored_windows()
        .await
        .map_err(|e| RunError::Usage(format!("state: {e}")))?;
    let mut readers = JoinSet::new();
    match source {
        Source::Directory(root) => {
            tracing::info!(
                directory = %root.display(),
                state = %shared.durable.store.describe(),
                once,
                "driftd is reading the directory"
            );
            if once {
                directory::scan(shared.clone(), root, true).await;
                return drain(&shared, &sinks).await;
            }
            readers.spawn(directory::scan(shared.clone(), root, false));
        }
        Source::Queue(input) => {
            tracing::info!(
                queue = %input.queue.url(),
                pollers = config.input.pollers,
                state = %shared.durable.store.describe(),
                replica = %shared.durable.replica,
                cloudwatch = config.sinks.cloudwatch,
                alerts = config.sinks.sns_topic_arn.is_some(),
                s3_reports = config.sinks.s3_report_uri.is_some(),
                "driftd is polling the queue"
            );
            let input = Arc::new(input);
            for _ in 0..config.input.pollers {
                readers.spawn(queue::poll(shared.clone(), input.clone()));
            }
        }
    }

    let mut tick = tokio::time::interval(TICK);
    // The wall-clock second the next window closes at: the finaliser wakes then, so a window
    // is delivered as soon as it closes, not up to a tick later.
    let mut next_close: Option<i64> = None;
    let mut failure = None;
    loop {
        let close = async move {
            match next_close {
                // A close already due did not happen in the last pass (the input has not been
                // read that far yet): the tick retries it, rather than a pass at once, again
                // and again.
                Some(second) if second > now_seconds() => {
                    tokio::time::sleep(until_second(second)).await;
                }
                _ => std::future::pending().await,
            }
        };
        let pass = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            // A reader ends only at shutdown. One that dies (a panic) would leave a daemon
            // that reads nothing yet looks alive: stop, and exit with an error so that the
            // service manager restarts it.
            ended = readers.join_next() => {
                if stop.is_cancelled() {
                    break;
                }
                let how = how_it_ended(ended);
                events::telemetry().set_ready("pollers", Err(how.clone()));
                tracing::error!(how, "a reader stopped; driftd stops");
                failure = Some(how);
                stop.cancel();
                break;
            }
            _ = tick.tick() => Pass::Tick,
            () = close => Pass::Tick,
            () = shared.close_due.notified() => Pass::CloseDue,
        };
        let finalised = finalise_ready(&shared, &sinks, pass).await;
        note_store_health(&finalised);
        match finalised {
            Ok(close) => {
                next_close = close;
                shared
                    .next_close
                    .store(close.unwrap_or(i64::MAX), Ordering::Relaxed);
            }
            Err(error) => {
                next_close = None;
                tracing::error!(
                    error = error.to_string(),
                    "finalising windows failed; retried on the next tick"
                );
            }
        }
    }

    // Shutdown: readers stop (an object in progress fails; its message is released, its file
    // read again at the next start). Everything recorded is in the state store; the next
    // driftd, or another replica, carries on from there.
    tracing::info!(
        timeout_s = config.daemon.shutdown_timeout.as_secs(),
        "stopping: no new objects; objects in progress are left for the next start"
    );
    let finish = async { while readers.join_next().await.is_some() {} };
    if tokio::time::timeout(config.daemon.shutdown_timeout, finish)
        .await
        .is_err()
    {
        tracing::warn!(
            "shutdown timeout reached; messages not yet released reappear after their visibility timeout"
        );
    }
    shared.durable.release_kept().await;
    if let Some(how) = failure {
        return Err(RunError::Usage(format!(
            "a reader stopped ({how}); no object would be read any more"
        )));
    }
    Ok(summary(&shared))
}

/// `--once`: every window the objects filled is finalised now, whatever the clock says, and
/// delivered. A series whose lease a stopped driftd still holds is waited for until the lease
/// expires.
async fn drain(shared: &Arc<Shared>, sinks: &Sinks) -> Result<RunSummary, RunError> {
    let drained = finalise_all(shared, sinks).await;
    // Also after a failed pass: the next `--once` must not wait for this run's leases.
    shared.durable.release_kept().await;
    drained.map(|()| summary(shared))
}

async fn finalise_all(shared: &Arc<Shared>, sinks: &Sinks) -> Result<(), RunError> {
    let patience = tokio::time::Instant::now() + shared.config.state.lease_timeout * 2 + TICK;
    loop {
        finalise_ready(shared, sinks, Pass::Drain).await?;
        let left = shared.durable.pending_work().await?;
        if left.is_empty() || shared.stop.is_cancelled() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= patience {
            tracing::warn!(
                series = left.len(),
                "windows left unfinalised: their lease is held elsewhere, or their monitor is no longer in the config"
            );
            return Ok(());
        }
        tokio::time::sleep(TICK).await;
    }
}

/// The run's counts are the telemetry's (what `/metrics` shows); a failed message, retried,
/// counts once.
fn summary(shared: &Shared) -> RunSummary {
    RunSummary {
        objects_failed: shared.failed.load(Ordering::Relaxed),
        counts: events::telemetry().totals(),
    }
}

/// The store is read at once, so that a missing state bucket or an unwritable state directory
/// stops the start (like the other resources) rather than every later object and window.
async fn check_store(config: &Config, store: &StateStore) -> Result<(), RunError> {
    let listed = store.list("watermark/").await;
    let telemetry = events::telemetry();
    telemetry.set_ready(
        "store",
        listed.as_ref().map(|_| ()).map_err(|e| e.to_string()),
    );
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
    Ok(())
}

/// How long until the wall clock reaches `second` (Unix time), and a little more, so that the
/// clock reads that second when the sleep ends.
fn until_second(second: i64) -> Duration {
    let target = Duration::from_secs(second.max(0) as u64) + Duration::from_millis(2);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    target.saturating_sub(now)
}

fn note_store_health<T>(finalised: &Result<T, RunError>) {
    let store = match finalised {
        Err(RunError::State(error)) => Err(error.to_string()),
        _ => Ok(()),
    };
    events::telemetry().set_ready("store", store);
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

/// Where finalised windows go besides the local files (which every mode writes): none in
/// embedded mode.
#[derive(Default)]
struct Sinks {
    s3_report: Option<S3ReportSink>,
    cloudwatch: Option<CloudWatchSink>,
    /// Rule actions: alerts and retrain triggers.
    messages: Option<MessageSink>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_that_panics_is_reported_with_its_panic() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let how = runtime.block_on(async {
            let mut tasks = JoinSet::new();
            tasks.spawn(std::future::pending::<()>());
            tasks.spawn(async { panic!("valid request: InvalidUri(TooLong)") });
            how_it_ended(tasks.join_next().await)
        });
        assert_eq!(how, "panicked: valid request: InvalidUri(TooLong)");
    }

    #[test]
    fn a_file_and_an_object_never_share_an_identity() {
        let file = ObjectId::file("b/k", 10, 7);
        assert_eq!(file, ObjectId::file("b/k", 10, 7));
        assert_ne!(file.hash, ObjectId::file("b/k", 11, 7).hash);
        assert_ne!(file.hash, ObjectId::file("b/k", 10, 8).hash);
        assert_ne!(file.hash, ObjectId::s3("b", "k", "10:7").hash);
        // A second monitor's read of the object is recorded apart; the first's is the object's.
        assert_eq!(file.clone().for_route(0, "dq").hash, file.hash);
        let second = file.clone().for_route(1, "mq");
        assert_ne!(second.hash, file.hash);
        assert_ne!(second.hash, file.clone().for_route(1, "other").hash);
        assert_eq!(second.source, file.source);
    }
}
