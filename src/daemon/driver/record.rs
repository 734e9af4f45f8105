//! What both sources do with an object: read it into its own partial windows, then record
//! them and its ledger entry in the state store, before the source lets go of it.

use std::time::Instant;

use super::*;
use crate::decode::{Chunk, DecodeError};
use crate::model_quality::{LabelRun, ModelQualitySpec, ProblemType, join_key};
use crate::window::{RowKeys, StateKind};

/// What an object was read into: its own partial windows, or (a label file) its labels for
/// one series' join, with the time they arrived.
pub(super) enum Contents {
    Windows(Windows),
    Labels {
        series: SeriesKey,
        arrived: i64,
        run: LabelRun,
    },
}

/// Runs `decode` on a blocking thread, with the object's own quarantine, into the object's own
/// windows of `monitor` (each chunk with its object's event time when its records have none),
/// or for `Role::Labels` into the labels of the monitor's join; counts what it quarantined and
/// notes the read.
pub(super) async fn read_object(
    shared: &Shared,
    source: &str,
    monitor: usize,
    role: Role,
    endpoint: Option<String>,
    started: Instant,
    decode: impl FnOnce(&mut Quarantine, &mut dyn FnMut(Chunk, i64)) -> Result<(), DecodeError>
    + Send
    + 'static,
) -> Result<Contents, String> {
    let kind = shared.monitors[monitor].kind.clone();
    let size = shared.config.window.size.as_secs() as i64;
    let quarantine_path = shared.quarantine_path.clone();
    let object = crate::model_quality::key_hash(source.as_bytes());
    let series = SeriesKey::new(&shared.config.monitors[monitor].name, endpoint.as_deref());
    let source_name = source.to_string();
    let (contents, rows, quarantine) =
        tokio::task::spawn_blocking(move || -> Result<_, DecodeError> {
            let mut quarantine =
                Quarantine::to_file(&quarantine_path).map_err(|error| DecodeError::Io {
                    source_name: quarantine_path.display().to_string(),
                    error,
                })?;
            let mut rows = 0;
            // A bias monitor's labels are text, named as its analysis config names the label.
            let label_spec = match &kind {
                StateKind::Predictions(spec) => Some((**spec).clone()),
                StateKind::BiasRows(spec) => Some(ModelQualitySpec {
                    problem_type: ProblemType::MulticlassClassification,
                    inference_attribute: None,
                    probability_attribute: None,
                    probability_threshold: None,
                    ground_truth_attribute: spec.label.clone(),
                    class_scores: Vec::new(),
                }),
                _ => None,
            };
            let contents = match (role, label_spec) {
                (Role::Labels, Some(spec)) => {
                    let mut runs = Vec::new();
                    let mut arrived = None;
                    decode(&mut quarantine, &mut |chunk, time| {
                        rows += chunk.features.num_rows() as u64;
                        arrived.get_or_insert(time);
                        let keys: Vec<_> = (chunk.events.as_ref())
                            .map(|events| {
                                crate::decode::join_keys(events)
                                    .map(|id| join_key(id.as_bytes()))
                                    .collect()
                            })
                            .unwrap_or_default();
                        runs.push(
                            LabelRun::from_batch(&spec, &chunk.features, &keys).unwrap_or_else(
                                |error| {
                                    // Every row of the batch is unusable: counted as skipped.
                                    tracing::warn!(
                                        source = source_name,
                                        error,
                                        "labels without their label column; counted as skipped"
                                    );
                                    let mut none = LabelRun::empty();
                                    none.skipped = chunk.features.num_rows() as u64;
                                    none
                                },
                            ),
                        );
                    })?;
                    Contents::Labels {
                        series,
                        arrived: arrived.unwrap_or(i64::MIN),
                        run: LabelRun::concat(&runs),
                    }
                }
                (Role::Labels, _) => unreachable!("only label-joined monitors route labels"),
                (Role::Records, _) => {
                    let mut windows = Windows::new(size, 0);
                    decode(&mut quarantine, &mut |chunk, time| {
                        let keys = RowKeys {
                            object,
                            first_row: rows,
                        };
                        rows += chunk.features.num_rows() as u64;
                        windows.add(monitor, &kind, endpoint.as_deref(), &chunk, time, keys)
                    })?;
                    Contents::Windows(windows)
                }
            };
            Ok((contents, rows, quarantine))
        })
        .await
        .map_err(|e| format!("decoder thread failed: {e}"))?
        .map_err(|e| e.to_string())?;
    shared.note_quarantined(source, &quarantine);
    events::emit(Event::ObjectRead {
        source,
        monitor: &shared.config.monitors[monitor].name,
        rows,
        seconds: started.elapsed().as_secs_f64(),
    });
    Ok(contents)
}

/// Stores each object's partial windows, then its ledger entry. Rows for a window already
/// finalised are late: counted, logged and kept in the ledger entry, not merged.
///
/// The sources looked each object up in the ledger before reading it, so it is not looked up
/// again (one store request less per object): the ledger entry is created once, and a replica
/// that finds it created (it read the object at the same time as another) counts a duplicate.
/// The parts both stored are the same bytes under the same keys.
pub(super) async fn record(
    shared: &Shared,
    objects: Vec<(ObjectId, Contents)>,
) -> Result<(), StoreError> {
    let durable = &shared.durable;
    let mut recorded = std::collections::HashSet::new();
    for (id, contents) in objects {
        let object = &id.hash;
        // An object announced twice in one message.
        if !recorded.insert(object.clone()) {
            events::emit(Event::ObjectDuplicate { source: &id.source });
            continue;
        }
        let windows = match contents {
            Contents::Windows(windows) => windows,
            Contents::Labels {
                series,
                arrived,
                run,
            } => {
                record_labels(shared, &id, &series, arrived, run).await?;
                continue;
            }
        };
        let newest = windows.newest();
        let (mut rows, mut late_rows) = (0, 0);
        let mut fed = Vec::new();
        for (key, state) in windows.into_open() {
            let monitor = shared.config.monitors[key.monitor].name.as_str();
            let series = SeriesKey::new(monitor, key.endpoint.as_deref());
            let n = state.row_count();
            rows += n;
            let bytes = tokio::task::spawn_blocking(move || codec::encode(&state))
                .await
                .expect("encoding does not panic");
            durable.mark_open(&series, key.start).await?;
            durable.put_part(&series, key.start, object, bytes).await?;
            fed.push((monitor, series, key.start, n));
        }
        if let Some(newest) = newest {
            durable.note_event_time(newest).await?;
            shared.note_progress(newest);
        }
        // Rows for a window fenced before their part landed are late (the finaliser removes
        // the stray part); a window being finalised right now is asked again until committed.
        let mut windows = Vec::new();
        let mut late_by_series = BTreeMap::<SeriesKey, u64>::new();
        for (monitor, series, start, n) in fed {
            let fate = fate_once_decided(shared, &series, start, object).await?;
            if fate != Fate::Open {
                // Committed without this part, or (read again) with it: the finaliser may
                // not list it any more, so it goes now.
                durable
                    .delete_parts(&series, start, std::slice::from_ref(object))
                    .await?;
            }
            if fate == Fate::Late {
                late_rows += n;
                *late_by_series.entry(series.clone()).or_default() += n;
                events::emit(Event::LateRows { monitor, count: n });
            }
            windows.push(format!("{series}/{start}"));
        }
        // Before the ledger entry: a crash in between repeats the object and notes it again.
        for (series, rows) in late_by_series {
            durable.note_late(&series, object, rows).await?;
        }
        if late_rows > 0 {
            tracing::warn!(
                source = id.source,
                late_rows,
                "rows for windows already finalised: counted as late, not merged"
            );
        }
        let entry = LedgerEntry {
            source: id.source.clone(),
            version: id.version.clone(),
            rows,
            windows,
            late_rows,
            failed: None,
            replica: durable.replica.clone(),
            recorded_at: now_seconds(),
        };
        if !durable.create_ledger_entry(object, &entry).await? {
            // Another replica read it too (a redelivery while this one was reading): it
            // counts once; the parts both stored are the same bytes under the same keys.
            events::emit(Event::ObjectDuplicate { source: &id.source });
            continue;
        }
        events::emit(Event::ObjectRecorded {
            source: &id.source,
            windows: entry.windows.len(),
        });
    }
    Ok(())
}

/// Stores a label file's labels for its series' join, then its ledger entry. Labels do not
/// move the watermark: they are collected after the predictions they label.
async fn record_labels(
    shared: &Shared,
    id: &ObjectId,
    series: &SeriesKey,
    arrived: i64,
    run: LabelRun,
) -> Result<(), StoreError> {
    let rows = run.len() as u64 + run.duplicates + run.skipped;
    // Zero-padded so that names list in arrival order.
    let name = format!("{:012}-{}", arrived.max(0), id.hash);
    let bytes = tokio::task::spawn_blocking(move || run.encode())
        .await
        .expect("encoding does not panic");
    let key = shared.durable.put_labels(series, &name, bytes).await?;
    let entry = LedgerEntry {
        source: id.source.clone(),
        version: id.version.clone(),
        rows,
        windows: vec![key],
        late_rows: 0,
        failed: None,
        replica: shared.durable.replica.clone(),
        recorded_at: now_seconds(),
    };
    shared.durable.put_ledger_entry(&id.hash, &entry).await?;
    events::emit(Event::ObjectRecorded {
        source: &id.source,
        windows: 1,
    });
    Ok(())
}

/// How long a reader waits for a fenced window's commit before it gives up (the object is then
/// read again later): a finaliser that died after fencing is replaced once its lease expires.
fn fence_patience(shared: &Shared) -> Duration {
    shared.config.state.lease_timeout * 2 + Duration::from_secs(10)
}

async fn fate_once_decided(
    shared: &Shared,
    series: &SeriesKey,
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
