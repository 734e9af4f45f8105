//! The pollers: each long-polls the queue, reads the objects a message announces into their
//! own partial windows, records them (parts, then the ledger entry) and only then deletes the
//! message.

use super::*;

/// What became of a message in a poller.
enum Outcome {
    /// Nothing (more) to do: delete it. The reason is logged.
    Delete(String),
    /// Read: record the objects' windows, then delete it.
    Read(Vec<(ObjectId, Windows)>),
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

pub(super) async fn poll(shared: Arc<Shared>) {
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
                shared.receive_failures.fetch_add(1, Ordering::Relaxed);
                let read_through = shared.input_read_through.load(Ordering::Relaxed);
                events::emit(Event::InputStuck {
                    error: &error,
                    stuck_seconds: (read_through > i64::MIN).then(|| now_seconds() - read_through),
                });
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
            events::emit(Event::ObjectDuplicate {
                source: &format!("s3://{}/{}", id.bucket, id.key),
            });
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
            events::emit(Event::ObjectDuplicate {
                source: &format!("s3://{bucket}/{key}"),
            });
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
