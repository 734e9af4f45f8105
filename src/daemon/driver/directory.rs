//! Embedded mode's source: the input directory, scanned every `input.poll_interval`. Each
//! settled file is read into its own partial windows and recorded with its ledger entry, keyed
//! by its path, length and modification time, so a file is counted once across restarts and a
//! rewritten file is read as a new object.

use std::path::Path;
use std::time::Instant;

use super::record::read_object;
use super::*;
use crate::ingest::local::{DirectoryScanner, FoundFile};

/// Scans until stopped, or with `once` a single time with no settle time (the files present
/// now are all complete).
pub(super) async fn scan(shared: Arc<Shared>, root: PathBuf, once: bool) {
    let config = &shared.config;
    let settle_time = if once {
        Duration::ZERO
    } else {
        config.input.settle_time
    };
    let mut scanner = DirectoryScanner::new(root.clone(), settle_time);
    loop {
        if !once && shared.input_held() {
            if shared.pause(INPUT_BACKOFF).await {
                continue;
            }
            break;
        }
        let began = now_seconds();
        let scanned = tokio::task::block_in_place(|| scanner.scan());
        events::telemetry().set_ready(
            "input",
            scanned.as_ref().map(|_| ()).map_err(|e| e.to_string()),
        );
        let mut all_recorded = true;
        match scanned {
            Ok(files) => {
                for file in files {
                    if shared.stop.is_cancelled() {
                        return;
                    }
                    if let Err(error) = read_file(&shared, &root, &file).await {
                        // The store failed: the file is read again at the next scan.
                        tracing::warn!(
                            path = %file.path.display(),
                            error = error.to_string(),
                            "cannot record the file; read again at the next scan"
                        );
                        scanner.forget(&file.path);
                        all_recorded = false;
                    }
                }
            }
            Err(error) => {
                let read_through = shared.input_read_through.load(Ordering::Relaxed);
                events::emit(Event::InputStuck {
                    error: &format!("{}: {error}", root.display()),
                    stuck_seconds: (read_through > i64::MIN).then(|| now_seconds() - read_through),
                });
                all_recorded = false;
            }
        }
        // Every file settled before this scan began is recorded.
        if all_recorded {
            shared
                .input_read_through
                .fetch_max(began - settle_time.as_secs() as i64, Ordering::Relaxed);
        }
        if once || !shared.pause(config.input.poll_interval).await {
            return;
        }
    }
}

/// Routes one file and reads it for each monitor it is routed to. `Err`: the state store
/// failed.
async fn read_file(shared: &Shared, root: &Path, file: &FoundFile) -> Result<(), StoreError> {
    let relative = relative_path(root, &file.path);
    events::emit(Event::ObjectReceived { source: &relative });
    let routes = route(&shared.monitors, &relative);
    if routes.is_empty() {
        events::emit(Event::ObjectRefused {
            source: &relative,
            reason: "no_monitor",
        });
    }
    for (n, (index, fields, role)) in routes.into_iter().enumerate() {
        read_for_monitor(shared, file, &relative, (n, index), fields, role).await?;
    }
    Ok(())
}

/// Reads and records one file for the `index`-th monitor, its `n`-th route. A file that cannot
/// be decoded is counted failed, goes to the dead-letter file and into the ledger (so it is not
/// read again until it changes).
async fn read_for_monitor(
    shared: &Shared,
    file: &FoundFile,
    relative: &str,
    (n, index): (usize, usize),
    fields: crate::ingest::local::PathFields,
    role: Role,
) -> Result<(), StoreError> {
    let relative = relative.to_string();
    let monitor = &shared.config.monitors[index];
    if let Err(reason) = shared
        .durable
        .check_series(&SeriesKey::new(&monitor.name, fields.endpoint.as_deref()))
    {
        events::emit(Event::ObjectRefused {
            source: &relative,
            reason: "invalid_series",
        });
        shared.dead_letter(&format!("{relative:?} refused: {reason}"));
        return Ok(());
    }
    let id = ObjectId::file(&relative, file.length, file.modified_ns()).for_route(n, &monitor.name);
    if shared.durable.ledger_entry(&id.hash).await?.is_some() {
        events::emit(Event::ObjectDuplicate { source: &relative });
        return Ok(());
    }
    let object_time = fields.hour.map_or_else(
        || file.modified_ns() as i64 / 1_000_000_000,
        |h| h.timestamp(),
    );
    let options = shared.decode_options(index, role);
    let path = file.path.clone();
    let read = read_object(
        shared,
        &relative,
        index,
        role,
        fields.endpoint,
        Instant::now(),
        move |quarantine, add| {
            crate::pipeline::decode_object(&path, &options, quarantine, |chunk| {
                add(chunk, object_time)
            })
            .map(|_| ())
        },
    )
    .await;
    match read {
        Ok(contents) => record(shared, vec![(id, contents)]).await,
        Err(error) => {
            shared.failed.fetch_add(1, Ordering::Relaxed);
            events::emit(Event::ObjectFailed {
                source: &relative,
                error: &error,
            });
            shared.dead_letter(&error);
            let entry = LedgerEntry {
                source: id.source,
                version: id.version,
                rows: 0,
                windows: Vec::new(),
                late_rows: 0,
                failed: Some(error),
                replica: shared.durable.replica.clone(),
                recorded_at: now_seconds(),
            };
            shared.durable.put_ledger_entry(&id.hash, &entry).await
        }
    }
}

/// `path` relative to the input directory, with `/` separators, for pattern matching.
fn relative_path(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}
