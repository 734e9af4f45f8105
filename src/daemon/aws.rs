//! AWS mode: S3 objects announced on SQS in, windows out to the local directory, S3 reports,
//! CloudWatch and SNS.
//!
//! Pollers long-poll the queue, read each announced object (streaming GetObject, decoded on a
//! blocking thread) into per-object windows, and hand them to the window owner. The owner
//! merges them, closes windows on the watermark, delivers each closed window to every sink,
//! and only then deletes the messages whose objects fed it. Until then a message is kept
//! invisible by a heartbeat; a message whose object fails is left for redelivery, so the
//! queue's redrive policy moves a poison object to the dead-letter queue. Within a process, an
//! object seen twice (redelivery, or S3 announcing one upload twice) is counted once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::actions::RuleRunner;
use super::{DEAD_LETTER_FILE, Monitor, RunError, RunSummary, dead_letter, now_seconds, route};
use crate::config::Config;
use crate::decode::{self, DecodeError, DecodeOptions, InputFormat, Quarantine};
use crate::ingest::s3::{BlockingBody, FetchError, S3Object, get_object_within, read_manifest};
use crate::ingest::sqs::{AllowList, Heartbeat, Notice, Received, SqsQueue, parse_message};
use crate::sinks::WindowReport;
use crate::sinks::actions::{Destination, MessageSink, Routes};
use crate::sinks::cloudwatch::CloudWatchSink;
use crate::sinks::s3_report::S3ReportSink;
use crate::window::{WindowKey, Windows};

/// Objects remembered for de-duplication once their windows are written.
const LEDGER_CAPACITY: usize = 100_000;
/// How often the owner looks for windows to close when no object arrives.
const TICK: Duration = Duration::from_secs(1);
/// Pause after a failed ReceiveMessage.
const RECEIVE_BACKOFF: Duration = Duration::from_secs(5);

pub(super) fn run(
    config: &Config,
    monitors: Vec<Monitor>,
    rules: crate::rules::RuleSet,
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

struct Shared {
    config: Config,
    monitors: Vec<Monitor>,
    queue: SqsQueue,
    s3: aws_sdk_s3::Client,
    allow: AllowList,
    stop: CancellationToken,
    quarantine_path: PathBuf,
    objects_failed: AtomicUsize,
    objects_unrouted: AtomicUsize,
}

/// A message whose objects were all read, with their windows.
struct Done {
    message: Received,
    heartbeat: Heartbeat,
    objects: Vec<(ObjectId, Windows)>,
}

/// What became of a message in a poller.
enum Outcome {
    /// Nothing (more) to do: delete it. The reason is logged.
    Delete(String),
    /// Read: hand to the owner.
    Read(Vec<(ObjectId, Windows)>),
    /// Failed: leave it for redelivery (or release it at shutdown).
    Leave(String),
}

async fn serve(
    config: Config,
    monitors: Vec<Monitor>,
    rules: crate::rules::RuleSet,
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
    let queue = SqsQueue::new(
        aws_sdk_sqs::Client::new(&sdk),
        queue_url.clone(),
        config.input.visibility_timeout,
        config.input.wait_time,
    );
    let sinks = build_sinks(&config, &sdk)?;
    let rules = RuleRunner::open(rules, out, Some(routes(&config)))?;
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
        monitors,
        queue: queue.clone(),
        s3,
        stop: stop.clone(),
        quarantine_path,
        objects_failed: AtomicUsize::new(0),
        objects_unrouted: AtomicUsize::new(0),
        config,
    });
    let config = &shared.config;
    tracing::info!(
        queue = %queue_url,
        pollers = config.input.pollers,
        cloudwatch = config.sinks.cloudwatch,
        alerts = config.sinks.sns_topic_arn.is_some(),
        s3_reports = config.sinks.s3_report_uri.is_some(),
        "driftd is polling the queue"
    );
    let (sender, mut receiver) = mpsc::channel::<Done>(config.input.pollers * 2);
    let pollers: Vec<_> = (0..config.input.pollers)
        .map(|_| tokio::spawn(poll(shared.clone(), sender.clone())))
        .collect();
    drop(sender);

    let mut owner = Owner {
        windows: Windows::new(
            config.window.size.as_secs() as i64,
            config.window.allowed_lateness.as_secs() as i64,
        ),
        pending: Vec::new(),
        outbox: Vec::new(),
        ledger: HashMap::new(),
        ledger_order: VecDeque::new(),
        rules,
        summary: RunSummary::default(),
    };
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            done = receiver.recv() => match done {
                Some(done) => owner.absorb(done),
                None => break,
            },
            _ = tick.tick() => {}
        }
        owner.close_ready(&shared, &sinks)?;
        owner.deliver(&sinks).await?;
        owner.settle(&queue).await;
    }

    // Shutdown: pollers stop (their objects in progress fail and their messages are released),
    // closed windows are delivered, and every message whose windows are not written is
    // released, so the next driftd reads its object again. Open windows are not written: a
    // partial window would later be overwritten by the whole one.
    tracing::info!(
        timeout_s = config.daemon.shutdown_timeout.as_secs(),
        "stopping: no new messages; delivering closed windows and releasing the rest"
    );
    let finish = async {
        while let Some(done) = receiver.recv().await {
            done.heartbeat.stop().await;
            release(&queue, &done.message).await;
        }
        for poller in pollers {
            let _ = poller.await;
        }
        if let Err(error) = owner.deliver(&sinks).await {
            tracing::error!(%error, "cannot save the rules' state");
        }
        owner.settle(&queue).await;
        for pending in owner.pending.drain(..) {
            pending.heartbeat.stop().await;
            release(&queue, &pending.message).await;
        }
    };
    if tokio::time::timeout(config.daemon.shutdown_timeout, finish)
        .await
        .is_err()
    {
        tracing::warn!(
            "shutdown timeout reached; messages not yet released reappear after their visibility timeout"
        );
    }
    let mut summary = std::mem::take(&mut owner.summary);
    summary.objects_failed = shared.objects_failed.load(Ordering::Relaxed);
    summary.objects_unrouted = shared.objects_unrouted.load(Ordering::Relaxed);
    summary.late_rows = owner.windows.late_rows();
    Ok(summary)
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
                aws_sdk_cloudwatch::Client::from_conf(
                    aws_sdk_cloudwatch::config::Builder::from(sdk)
                        .retry_config(no_retry.clone())
                        .build(),
                ),
                config.sinks.cloudwatch_namespace_prefix.clone(),
                config.sinks.max_attempts,
            )
        }),
        messages: MessageSink::new(
            aws_sdk_sns::Client::from_conf(
                aws_sdk_sns::config::Builder::from(sdk)
                    .retry_config(no_retry.clone())
                    .build(),
            ),
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
                    tracing::warn!(%error, "cannot watch SIGTERM");
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
            tracing::info!(message_id = %message.message_id, "message released for redelivery")
        }
        Err(error) => {
            tracing::warn!(%error, "cannot release message; it reappears after its visibility timeout")
        }
    }
}

async fn poll(shared: Arc<Shared>, owner: mpsc::Sender<Done>) {
    let queue = &shared.queue;
    while !shared.stop.is_cancelled() {
        let received = tokio::select! {
            _ = shared.stop.cancelled() => break,
            received = queue.receive() => received,
        };
        let messages = match received {
            Ok(messages) => messages,
            Err(error) => {
                tracing::error!(%error, "cannot receive messages; retrying");
                tokio::select! {
                    _ = shared.stop.cancelled() => break,
                    _ = tokio::time::sleep(RECEIVE_BACKOFF) => continue,
                }
            }
        };
        // Heartbeats for the whole batch at once: the last message waits for the others.
        let batch: Vec<(Received, Heartbeat)> = messages
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
            match handle(&shared, &message).await {
                Outcome::Delete(reason) => {
                    heartbeat.stop().await;
                    tracing::info!(message_id = %message.message_id, reason, "message deleted");
                    if let Err(error) = queue.delete(&message).await {
                        tracing::warn!(%error, "cannot delete message");
                    }
                }
                Outcome::Read(objects) => {
                    let done = Done {
                        message,
                        heartbeat,
                        objects,
                    };
                    if let Err(mpsc::error::SendError(done)) = owner.send(done).await {
                        done.heartbeat.stop().await;
                        release(queue, &done.message).await;
                    }
                }
                Outcome::Leave(error) => {
                    heartbeat.stop().await;
                    if shared.stop.is_cancelled() {
                        release(queue, &message).await;
                    } else {
                        shared.objects_failed.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(
                            message_id = %message.message_id,
                            receive_count = message.receive_count,
                            %error,
                            "message failed; left for redelivery (the queue's redrive policy moves it to the dead-letter queue)"
                        );
                        let path = shared.config.output.directory.join(DEAD_LETTER_FILE);
                        if let Err(e) = dead_letter(&path, &error) {
                            tracing::warn!(error = %e, "cannot write the dead-letter file");
                        }
                    }
                }
            }
        }
    }
}

async fn handle(shared: &Shared, message: &Received) -> Outcome {
    let events = match parse_message(&message.body) {
        Err(error) => return Outcome::Leave(format!("message {}: {error}", message.message_id)),
        Ok(Notice::Test) => return Outcome::Delete("s3:TestEvent".into()),
        Ok(Notice::Ignored(reason)) => return Outcome::Delete(reason),
        Ok(Notice::Objects(events)) => events,
    };
    let mut read = Vec::new();
    for event in events {
        if let Err(reason) = shared.allow.check(&event.bucket, &event.key) {
            tracing::warn!(
                message_id = %message.message_id,
                bucket = %event.bucket,
                key = %event.key,
                %reason,
                "object refused: not on the allow-list; not read"
            );
            continue;
        }
        let Some((index, fields)) = route(&shared.monitors, &event.key) else {
            shared.objects_unrouted.fetch_add(1, Ordering::Relaxed);
            tracing::info!(bucket = %event.bucket, key = %event.key, "no monitor's path pattern matches the key; skipped");
            continue;
        };
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
    tracing::info!(bucket, key, monitor = %monitor_config.name, "reading object");
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
    let handle = tokio::runtime::Handle::current();
    let endpoint = fields.endpoint;
    let decoded = tokio::task::spawn_blocking(move || -> Result<(Windows, u64), DecodeError> {
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
            decode_into(
                &handle,
                object,
                &options,
                &mut quarantine,
                &cancel,
                |chunk| {
                    rows += chunk.features.num_rows() as u64;
                    windows.add(monitor, &kind, endpoint.as_deref(), &chunk, time)
                },
            )?;
        }
        Ok((windows, rows))
    })
    .await
    .map_err(|e| format!("decoder thread failed: {e}"))?
    .map_err(|e| e.to_string())?;
    let (windows, rows) = decoded;
    tracing::info!(bucket, key, rows, "object read");
    Ok(Some((id, windows)))
}

/// Decodes a streaming object chunk by chunk. Parquet needs random access, so it is spooled to
/// a temporary file first (disk, not memory).
fn decode_into(
    handle: &tokio::runtime::Handle,
    object: S3Object,
    options: &DecodeOptions,
    quarantine: &mut Quarantine,
    cancel: &CancellationToken,
    mut consume: impl FnMut(decode::Chunk),
) -> Result<(), DecodeError> {
    let source_name = object.source_name();
    let io = |error| DecodeError::Io {
        source_name: source_name.clone(),
        error,
    };
    let mut body = BlockingBody::new(handle.clone(), object.body, cancel.clone());
    if options.format == InputFormat::Parquet {
        let spool = SpoolFile::new().map_err(io)?;
        let mut file = std::fs::File::create(&spool.0).map_err(io)?;
        std::io::copy(&mut body, &mut file).map_err(io)?;
        file.flush().map_err(io)?;
        crate::pipeline::decode_object(&spool.0, options, quarantine, consume)?;
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

/// A temporary file removed when dropped.
struct SpoolFile(PathBuf);

impl SpoolFile {
    fn new() -> std::io::Result<Self> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "driftd-{}-{}.parquet",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        Ok(Self(path))
    }
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A message whose objects are in open (or undelivered) windows.
struct Pending {
    message: Received,
    heartbeat: Heartbeat,
    windows: HashSet<WindowKey>,
}

/// A closed window on its way to the sinks; each sink is called until it succeeds once.
struct Emission {
    key: WindowKey,
    report: WindowReport,
    s3_done: bool,
    cloudwatch_done: bool,
}

struct Sinks {
    s3_report: Option<S3ReportSink>,
    cloudwatch: Option<CloudWatchSink>,
    /// Rule actions: alerts and retrain triggers.
    messages: MessageSink,
}

struct Owner {
    windows: Windows,
    pending: Vec<Pending>,
    outbox: Vec<Emission>,
    /// Objects counted, with the windows they fed.
    ledger: HashMap<ObjectId, Vec<WindowKey>>,
    ledger_order: VecDeque<ObjectId>,
    rules: RuleRunner,
    summary: RunSummary,
}

impl Owner {
    fn is_pending(&self, key: &WindowKey) -> bool {
        self.windows.keys().any(|k| k == key) || self.outbox.iter().any(|e| &e.key == key)
    }

    fn absorb(&mut self, done: Done) {
        let mut keys = HashSet::new();
        for (id, object_windows) in done.objects {
            if let Some(fed) = self.ledger.get(&id) {
                tracing::info!(bucket = %id.bucket, key = %id.key, "object already counted; not counted again");
                keys.extend(fed.iter().filter(|k| self.is_pending(k)).cloned());
                continue;
            }
            let object_keys: Vec<WindowKey> = object_windows.keys().cloned().collect();
            self.windows.absorb(object_windows);
            // Rows for windows already closed were counted as late; those keys are not open.
            let open: HashSet<&WindowKey> = self.windows.keys().collect();
            let fed: Vec<WindowKey> = object_keys
                .into_iter()
                .filter(|k| open.contains(k))
                .collect();
            keys.extend(fed.iter().cloned());
            self.summary.objects_read += 1;
            if self.ledger_order.len() == LEDGER_CAPACITY
                && let Some(oldest) = self.ledger_order.pop_front()
            {
                self.ledger.remove(&oldest);
            }
            self.ledger_order.push_back(id.clone());
            self.ledger.insert(id, fed);
        }
        self.pending.push(Pending {
            message: done.message,
            heartbeat: done.heartbeat,
            windows: keys,
        });
    }

    /// Closes the windows the watermark passed: their files are written locally, the rules
    /// see them (their actions queued durably), and they wait in the outbox for the sinks.
    fn close_ready(&mut self, shared: &Shared, sinks: &Sinks) -> Result<(), RunError> {
        let now = now_seconds();
        self.windows.observe_clock(now);
        for window in self.windows.close_ready() {
            let key = window.key.clone();
            let report = super::window_report(&shared.config, &shared.monitors, window);
            super::write_local(&shared.config, &report)?;
            let report_uri = sinks.s3_report.as_ref().map(|s| s.window_uri(&report));
            self.rules.observe(&report, report_uri.as_deref())?;
            self.summary.windows_written += 1;
            if report.violation_count() > 0 {
                self.summary.windows_with_violations += 1;
            }
            self.outbox.push(Emission {
                key,
                report,
                s3_done: false,
                cloudwatch_done: false,
            });
        }
        let config = &shared.config;
        let open = |monitor: &str, endpoint: Option<&str>| {
            self.windows.keys().any(|k| {
                config.monitors[k.monitor].name == monitor && k.endpoint.as_deref() == endpoint
            })
        };
        self.rules.observe_silence(
            now - config.window.allowed_lateness.as_secs() as i64,
            config.window.size.as_secs() as i64,
            &open,
        )?;
        Ok(())
    }

    /// Sends each closed window to the sinks that do not have it yet, then the rules' queued
    /// messages. A window a sink failed for stays in the outbox (its messages invisible) and
    /// is tried again on the next tick.
    async fn deliver(&mut self, sinks: &Sinks) -> Result<(), RunError> {
        for emission in &mut self.outbox {
            let report = &emission.report;
            if !emission.s3_done {
                emission.s3_done = match &sinks.s3_report {
                    Some(sink) => log_failure(sink.write(report).await, report),
                    None => true,
                };
            }
            if !emission.cloudwatch_done {
                emission.cloudwatch_done = match &sinks.cloudwatch {
                    Some(sink) => log_failure(
                        sink.publish(report.family(), report.endpoint.as_deref(), &report.metrics)
                            .await,
                        report,
                    ),
                    None => true,
                };
            }
        }
        let mut delivered = Vec::new();
        // Alerts link to the reports, so they wait for them.
        if self.outbox.iter().all(|e| e.s3_done) {
            self.rules.send_unsent(&sinks.messages).await?;
        }
        self.outbox.retain(|e| {
            let done = e.s3_done && e.cloudwatch_done;
            if done {
                tracing::info!(monitor = %e.report.monitor, window = %e.report.relative_dir, rows = e.report.rows, "window delivered to every sink");
                delivered.push(e.key.clone());
            }
            !done
        });
        for pending in &mut self.pending {
            for key in &delivered {
                pending.windows.remove(key);
            }
        }
        Ok(())
    }

    /// Deletes the messages whose windows are all delivered.
    async fn settle(&mut self, queue: &SqsQueue) {
        let (done, waiting): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.windows.is_empty());
        self.pending = waiting;
        for pending in done {
            pending.heartbeat.stop().await;
            match queue.delete(&pending.message).await {
                Ok(()) => {
                    tracing::debug!(message_id = %pending.message.message_id, "message deleted: its windows are written")
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot delete message; if delivered again its object is not counted twice by this process")
                }
            }
        }
    }
}

fn log_failure(result: Result<(), String>, report: &WindowReport) -> bool {
    match result {
        Ok(()) => true,
        Err(error) => {
            tracing::error!(
                monitor = %report.monitor,
                window = %report.relative_dir,
                %error,
                "sink failed; retried on the next tick, the window's messages stay invisible"
            );
            false
        }
    }
}
