//! The finaliser: once a tick, for each series with work whose lease this replica gets, it
//! merges the parts of the windows the watermark passed, runs the rules once per window and
//! commits the window to the outbox, then has it delivered.

use std::collections::BTreeMap;

use super::*;
use crate::daemon::plan::{self, SeriesPlan};
use crate::window::{MergeLimits, Refused, WindowMerger};

/// What started a finaliser pass, which decides where its watermark comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pass {
    /// The tick, or a close on the clock: the newest event any replica has seen, read from
    /// every replica's watermark key.
    Tick,
    /// A reader here recorded an event past the next close. This replica's own newest event
    /// proves that close, and reading the other replicas' keys would only add a round trip
    /// before it; a window (or a compliance report) that only their events make due waits for the
    /// next tick.
    CloseDue,
    /// `--once`: every window is finalised, whatever the watermark, and none is silent.
    Drain,
}

/// One finaliser pass: for every series with work — outboxes to deliver, windows the
/// watermark passed, or (with rules) windows in which nothing arrived — whose lease this
/// replica gets, in window order. Returns the wall-clock second (Unix time) at which the
/// next window with data closes, when the clock decides it.
pub(super) async fn finalise_ready(
    shared: &Arc<Shared>,
    sinks: &Sinks,
    pass: Pass,
) -> Result<Option<i64>, RunError> {
    let durable = &shared.durable;
    let config = &shared.config;
    let size = config.window.size.as_secs() as i64;
    let lateness = config.window.allowed_lateness.as_secs() as i64;
    let drain = pass == Pass::Drain;
    // The reads a pass starts with, side by side: on S3 each is a round trip before the
    // first window closes.
    let (newest_event, mut work, rule_series) = futures_util::try_join!(
        async {
            match pass {
                // Drain needs it too: compliance reports are due by the newest event.
                Pass::Tick | Pass::Drain => durable.newest_event_time().await,
                Pass::CloseDue => Ok(durable.own_newest_event_time()),
            }
        },
        durable.pending_work(),
        async {
            match drain {
                true => Ok(Vec::new()),
                false => durable.rule_series().await,
            }
        },
    )?;
    let watermark = if drain {
        i64::MAX
    } else {
        plan::watermark(
            newest_event,
            now_seconds(),
            shared.input_read_through.load(Ordering::Relaxed),
            lateness,
        )
    };
    let label_lateness = |series: &SeriesKey| {
        (config.monitors.iter())
            .find(|m| m.name == series.monitor)
            .and_then(|m| m.label_join(&config.window))
            .map_or(0, |join| join.label_lateness.as_secs() as i64)
    };
    let next_close = plan::next_close(&work, watermark, size, label_lateness)
        .map(|close| close.saturating_add(lateness));
    let undelivered = work.values().map(|w| w.outboxes.len()).sum();
    shared.undelivered.store(undelivered, Ordering::Relaxed);
    events::emit(Event::OutboxDepth {
        windows: undelivered,
    });
    // Windows with data that the watermark has not passed yet (those it passed close now).
    events::emit(Event::OpenWindows {
        windows: work
            .values()
            .flat_map(|w| w.windows.iter())
            .filter(|start| start.saturating_add(size) > watermark)
            .count(),
    });
    // The rules' progress matters only for series with nothing stored but their rules.
    let mut evaluated_through = BTreeMap::new();
    for series in rule_series {
        let work = work.entry(series.clone()).or_default();
        if work.windows.is_empty() && work.outboxes.is_empty() {
            let rules = durable.rules(&series).await?;
            evaluated_through.insert(series, rules.evaluated_through);
        }
    }
    let plans = plan::plan(work, &evaluated_through, watermark, size, label_lateness);
    let planned: Vec<SeriesKey> = plans.iter().map(|p| p.series.clone()).collect();
    for SeriesPlan {
        series,
        deliver: outboxes,
        finalise: ready,
        silent_until,
        labels,
    } in plans
    {
        if shared.stop.is_cancelled() {
            break;
        }
        let Some(mut held) = durable.acquire(&series).await? else {
            continue;
        };
        events::emit(Event::LeaseTaken {
            series: &series.to_string(),
        });
        let result = async {
            // Deliveries go out oldest first; once a sink fails, later windows are still
            // finalised and committed (so the outbox shows the real backlog), and wait for
            // that sink.
            let mut blocked = Blocked::default();
            for start in outboxes {
                deliver(shared, sinks, &series, start, &mut blocked).await?;
            }
            if !labels.is_empty() {
                join::absorb(shared, &series, &labels).await?;
            }
            for start in ready {
                if !durable.renew(&mut held).await? {
                    events::emit(Event::LeaseLost {
                        series: &series.to_string(),
                    });
                    return Ok(());
                }
                if let Some(outbox) = finalise(shared, sinks, &series, start).await? {
                    deliver_committed(shared, sinks, &series, start, outbox, &mut blocked).await?;
                }
            }
            if let Some(until) = silent_until
                && let Some(outbox) = finalise_silence(shared, &series, until).await?
            {
                deliver_committed(shared, sinks, &series, until, outbox, &mut blocked).await?;
            }
            for start in join::restate(shared, sinks, &series).await? {
                deliver(shared, sinks, &series, start, &mut blocked).await?;
            }
            report::write_due(shared, sinks, &series, watermark, newest_event).await?;
            Ok::<(), RunError>(())
        }
        .await;
        durable.keep(held);
        result?;
    }
    // Series with nothing left to finalise whose report period has passed since.
    for series in durable.report_series().await? {
        if shared.stop.is_cancelled() || planned.contains(&series) {
            continue;
        }
        let Some(held) = durable.acquire(&series).await? else {
            continue;
        };
        let result = report::write_due(shared, sinks, &series, watermark, newest_event).await;
        durable.keep(held);
        result?;
    }
    Ok(next_close)
}

/// A window's stored parts (object, bytes) merged within the configured limits: the state,
/// what the limits refused, and the objects merged. `None` when no part could be read.
fn merge_parts(
    shared: &Shared,
    monitor: usize,
    stored: Vec<(String, Vec<u8>)>,
) -> Option<(WindowState, Refused, Vec<String>)> {
    let kind = &shared.monitors[monitor].kind;
    let mut merger = WindowMerger::new(kind, MergeLimits::of(&shared.config.limits));
    let mut used = Vec::new();
    for (object, bytes) in stored {
        let merged = codec::decode(&bytes, kind)
            .map_err(|e| e.to_string())
            .and_then(|state| merger.add(state).map_err(|e| e.to_string()));
        match merged {
            Ok(()) => used.push(object),
            Err(error) => tracing::error!(
                object,
                %error,
                "a stored part cannot be read or merged; left out of the window"
            ),
        }
    }
    merger
        .finish()
        .map(|(state, refused)| (state, refused, used))
}

/// Merges a window's parts (in object order, so any replica gets the same result), analyses
/// it, runs the rules, and commits its deliveries: the outbox committed, or `None` when there
/// was nothing to commit (already finalised, or no readable part).
async fn finalise(
    shared: &Arc<Shared>,
    sinks: &Sinks,
    series: &SeriesKey,
    start: i64,
) -> Result<Option<WindowOutbox>, RunError> {
    let durable = &shared.durable;
    let config = &shared.config;
    let monitor = (config.monitors.iter()).position(|m| m.name == series.monitor);
    // The window is fenced while it is looked up: fencing a finalised window changes nothing.
    let fence = async {
        match monitor {
            Some(_) => durable.fence(series, start).await,
            None => Ok(()),
        }
    };
    let (finalised, ()) = futures_util::try_join!(durable.finalised_parts(series, start), fence)?;
    if finalised.is_some() {
        // Committed before a crash left its parts or mark, or marked again by a reader
        // whose part came late (and was counted late): what is left goes.
        let left = durable.list_parts(series, start).await?;
        durable.delete_parts(series, start, &left).await?;
        durable.unmark_open(series, start).await?;
        return Ok(None);
    }
    let Some(monitor) = monitor else {
        tracing::warn!(
            %series,
            "stored windows of a monitor no longer in the config; left as they are"
        );
        return Ok(None);
    };
    // Fenced first, listed after: a part stored before the fence is in this list; one stored
    // after it is counted late by its reader. The rules' state and the late notes are read
    // meanwhile (only the lease holder writes the rules; a note written after this read goes
    // to the next window).
    let read_parts = async {
        let parts = durable.list_parts(series, start).await?;
        let bytes = durable.get_parts(series, start, &parts).await?;
        Ok::<_, crate::store::StoreError>((parts, bytes))
    };
    let ((parts, bytes), before, (late_rows, late_notes)) = futures_util::try_join!(
        read_parts,
        durable.rules(series),
        durable.late_notes(series)
    )?;
    let parts = &parts;
    let mut stored = Vec::new();
    for (object, bytes) in parts.iter().zip(bytes) {
        match bytes {
            Some(bytes) => stored.push((object.clone(), bytes)),
            // Removed since the listing: another replica (which took over an expired lease)
            // finalised the window meanwhile. Merging the rest would give a partial window.
            None => return Ok(None),
        }
    }
    let key = WindowKey {
        monitor,
        endpoint: series.endpoint.clone(),
        start,
    };
    let end = start + config.window.size.as_secs() as i64;
    let merged = {
        let shared = shared.clone();
        tokio::task::spawn_blocking(move || merge_parts(&shared, monitor, stored))
            .await
            .expect("merging does not panic")
    };
    let Some((state, refused, used)) = merged else {
        return Ok(None);
    };
    if refused != Refused::default() {
        events::emit(Event::WindowLimited {
            monitor: &series.monitor,
            endpoint: series.endpoint.as_deref(),
            start,
            refused: &refused,
        });
    }
    // A label-joined window: its predictions meet their labels now.
    let join::Joined {
        state,
        counts: join_counts,
        estimate,
    } = join::with_labels(shared, series, start, state).await?;
    let report = {
        let shared = shared.clone();
        let window = ClosedWindow { key, end, state };
        tokio::task::spawn_blocking(move || {
            crate::daemon::window_report(
                &shared.config,
                &shared.monitors,
                window,
                join_counts,
                estimate,
            )
        })
        .await
        .expect("analysis does not panic")
    };
    if let Some(counts) = &join_counts {
        events::emit(Event::LabelJoin {
            monitor: &series.monitor,
            endpoint: series.endpoint.as_deref(),
            window: &report.relative_dir,
            counts,
        });
    }
    let report_uri = sinks
        .s3_report
        .as_ref()
        .map(|s| s.window_uri(&report.relative_dir));
    let context = WindowContext::of(&report, report_uri.as_deref());
    let facts = WindowFacts {
        late_rows,
        ..facts_of(&report)
    };
    let (actions, messages, rules_after) = decide(shared, &before, &facts, &context, false);
    let outbox = window_outbox(sinks, &report, used, &actions, messages, rules_after);
    if !commit(shared, series, start, &outbox, Some(&report), &actions).await? {
        return Ok(None);
    }
    durable.forget_late(&late_notes).await?;
    durable.delete_parts(series, start, parts).await?;
    durable.unmark_open(series, start).await?;
    report::note_window(shared, series, start).await?;
    Ok(Some(outbox))
}

/// What a window's report gives each sink, to be committed.
pub(super) fn window_outbox(
    sinks: &Sinks,
    report: &crate::sinks::WindowReport,
    parts: Vec<String>,
    actions: &[crate::rules::Action],
    messages: Vec<crate::sinks::actions::Delivery>,
    rules_after: SeriesRules,
) -> WindowOutbox {
    WindowOutbox {
        end: report.end.timestamp(),
        parts,
        rows: report.rows,
        relative_dir: report.relative_dir.clone(),
        report_files: crate::sinks::file::window_files(report),
        files_done: false,
        actions: action_lines(actions),
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
    }
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
/// `start`, and commits the messages they decide (the outbox committed).
async fn finalise_silence(
    shared: &Shared,
    series: &SeriesKey,
    start: i64,
) -> Result<Option<WindowOutbox>, RunError> {
    let durable = &shared.durable;
    let end = start + shared.config.window.size.as_secs() as i64;
    let (monitor, endpoint) = (series.monitor.as_str(), series.endpoint.as_deref());
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
        files_done: true,
        actions: action_lines(&actions),
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
    Ok(Some(outbox))
}

/// Commits a finalised window (`false`: another replica committed it first). Then, on this
/// replica only, prints its summary (when it had data) and actions, and saves the rules'
/// state after it. Its files and actions are written to the output directory as its first
/// delivery.
pub(super) async fn commit(
    shared: &Shared,
    series: &SeriesKey,
    start: i64,
    outbox: &WindowOutbox,
    report: Option<&crate::sinks::WindowReport>,
    actions: &[crate::rules::Action],
) -> Result<bool, RunError> {
    let durable = &shared.durable;
    if !durable.commit(series, start, outbox).await? {
        return Ok(false);
    }
    // Finalised once committed, before any delivery of it.
    if let Some(report) = report {
        report.emit_finalised();
        crate::sinks::stdout::print(&crate::daemon::window_summary(&shared.config, report));
    }
    print_actions(actions);
    durable.put_rules(series, &outbox.rules_after).await?;
    Ok(true)
}
