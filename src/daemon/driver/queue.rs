//! AWS mode's source: pollers, each long-polling the queue, read the S3 objects a message
//! announces into their own partial windows, record them (parts, then the ledger entry) and
//! only then delete the message.

use std::io::Write;
use std::path::Path;

use super::record::{Contents, read_object as read_contents};
use super::*;
use crate::decode::{self, DecodeError, DecodeOptions, InputFormat};
use crate::ingest::s3::{BlockingBody, FetchError, get_object_within, read_manifest};
use crate::ingest::sqs::{AllowList, Notice, Received, SqsQueue, parse_message, shorten};

/// The queue, and what reads and vets the objects its messages announce.
pub(super) struct QueueInput {
    pub queue: SqsQueue,
    pub s3: aws_sdk_s3::Client,
    pub allow: AllowList,
}

/// What became of a message in a poller.
enum Outcome {
    /// Nothing (more) to do: delete it. The reason is logged.
    Delete(String),
    /// Read: record the objects' windows, then delete it.
    Read(Vec<(ObjectId, Contents)>),
    /// Failed: leave it for redelivery (or release it at shutdown).
    Leave(String),
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

pub(super) async fn poll(shared: Arc<Shared>, input: Arc<QueueInput>) {
    let queue = &input.queue;
    while !shared.stop.is_cancelled() {
        if shared.input_held() {
            if shared.pause(INPUT_BACKOFF).await {
                continue;
            }
            break;
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
                let read_through = shared.input_read_through.load(Ordering::Relaxed);
                events::emit(Event::InputStuck {
                    error: &error,
                    stuck_seconds: (read_through > i64::MIN).then(|| now_seconds() - read_through),
                });
                if shared.pause(INPUT_BACKOFF).await {
                    continue;
                }
                break;
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
            let outcome = match handle(&shared, &input, &message).await {
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
                    if message.receive_count <= 1 {
                        shared.failed.fetch_add(1, Ordering::Relaxed);
                    }
                    events::emit(Event::ObjectFailed {
                        source: &format!("sqs message {}", message.message_id),
                        error: &error,
                    });
                    tracing::warn!(
                        message_id = message.message_id,
                        receive_count = message.receive_count,
                        "message left for redelivery (the queue's redrive policy moves it to the dead-letter queue)"
                    );
                    shared.dead_letter(&error);
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
            shared.note_progress(asked_at);
        }
    }
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
    shared.dead_letter(&entry);
}

async fn handle(shared: &Shared, input: &QueueInput, message: &Received) -> Outcome {
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
        if let Err(reason) = input.allow.check(&event.bucket, &event.key) {
            refuse(shared, message, object, "not_allowed", &reason);
            continue;
        }
        let routes = route(&shared.monitors, &event.key);
        if routes.is_empty() {
            events::emit(Event::ObjectRefused {
                source: &format!("s3://{}/{}", event.bucket, event.key),
                reason: "no_monitor",
            });
        }
        for (n, (index, fields, role)) in routes.into_iter().enumerate() {
            let monitor = &shared.config.monitors[index].name;
            if let Err(reason) = shared
                .durable
                .check_series(&SeriesKey::new(monitor, fields.endpoint.as_deref()))
            {
                refuse(shared, message, object, "invalid_series", &reason);
                continue;
            }
            match read_object(
                shared,
                input,
                (n, index),
                role,
                fields,
                &event.bucket,
                &event.key,
            )
            .await
            {
                Ok(Some(object)) => read.push(object),
                Ok(None) => {}
                Err(error) => return Outcome::Leave(error),
            }
        }
    }
    if read.is_empty() {
        Outcome::Delete("nothing to read".into())
    } else {
        Outcome::Read(read)
    }
}

/// Reads one announced object (or the objects a manifest lists) into the windows of the
/// `monitor`-th monitor, its `n`-th route. `Ok(None)`: the object no longer exists, or is
/// counted already for that monitor.
async fn read_object(
    shared: &Shared,
    input: &QueueInput,
    (n, monitor): (usize, usize),
    role: Role,
    fields: crate::ingest::local::PathFields,
    bucket: &str,
    key: &str,
) -> Result<Option<(ObjectId, Contents)>, String> {
    let monitor_config = &shared.config.monitors[monitor];
    let started = std::time::Instant::now();
    tracing::info!(bucket, key, monitor = monitor_config.name, "reading object");
    let limits = &shared.config.limits;
    let object = match get_object_within(&input.s3, bucket, key, limits).await {
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
    let id = ObjectId::s3(bucket, key, &object.etag).for_route(n, &monitor_config.name);
    // Redelivered, or announced twice: counted already, so not read again.
    match shared.durable.ledger_entry(&id.hash).await {
        Ok(Some(_)) => {
            events::emit(Event::ObjectDuplicate { source: &id.source });
            return Ok(None);
        }
        Ok(None) => {}
        Err(error) => return Err(format!("cannot read the ledger: {error}")),
    }
    let object_time = fields.hour.map(|h| h.timestamp());
    let objects = if monitor_config.manifest && role == Role::Records {
        let mut listed = Vec::new();
        for (b, k) in read_manifest(object).await.map_err(|e| e.to_string())? {
            input.allow.check(&b, &k).map_err(|reason| {
                format!("manifest s3://{bucket}/{key} lists s3://{b}/{k}: {reason}")
            })?;
            listed.push(
                get_object_within(&input.s3, &b, &k, limits)
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        listed
    } else {
        vec![object]
    };
    let options = shared.decode_options(monitor, role);
    let cancel = shared.stop.child_token();
    let stall_timeout = shared.config.aws.request_timeout;
    let handle = tokio::runtime::Handle::current();
    let spool_dir = shared.config.output.directory.clone();
    let contents = read_contents(
        shared,
        &id.source,
        monitor,
        role,
        fields.endpoint,
        started,
        move |quarantine, add| {
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
                    quarantine,
                    |chunk| add(chunk, time),
                )?;
            }
            Ok(())
        },
    )
    .await?;
    Ok(Some((id, contents)))
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
