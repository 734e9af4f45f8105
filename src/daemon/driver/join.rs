//! The label join's I/O: each label-joined series keeps one [`JoinState`] in the store
//! (`join/{series}`), changed only by the holder of the series' lease. A finaliser pass folds
//! the series' new label files into it, then joins each window due with it. Each change is
//! one write of the whole state, so a crash leaves the state before or after it:
//! - label files folded in are named in the state (`absorbed`) before they are deleted, so a
//!   restart does not fold them twice;
//! - a joined window is staged in the state before the window is committed, so a restart
//!   commits the same result; it is forgotten when the series' next window is joined;
//! - with `restate`, a window with late labels gets its next revision ([`restate`]).

use super::*;
use crate::bias::BiasState;
use crate::config::{LabelJoin, MonitorBaseline};
use crate::estimate::{EstimatedPerformance, WindowEstimator};
use crate::model_quality::{JoinCounts, JoinState, LabelRun, LateRows, ProblemType, Staged, Ttl};
use crate::window::{ModelQualityWindow, StateKind};

async fn load(
    shared: &Shared,
    series: &SeriesKey,
    (settings, problem_type): (LabelJoin, ProblemType),
) -> Result<JoinState, StoreError> {
    let Some(bytes) = shared.durable.join_state(series).await? else {
        let mut state = JoinState::new(problem_type);
        state.restate = settings.restate;
        return Ok(state);
    };
    let decoded = tokio::task::spawn_blocking(move || JoinState::decode(bytes))
        .await
        .expect("decoding does not panic");
    let decoded = decoded.map(|mut state| {
        state.restate = settings.restate;
        state
    });
    decoded.map_err(|message| StoreError::Failed {
        store: shared.durable.store.describe(),
        op: "read",
        key: format!("join/{series}"),
        message: format!("{message}; move the key away to start the join afresh"),
        retryable: false,
    })
}

async fn save(
    shared: &Shared,
    series: &SeriesKey,
    state: JoinState,
) -> Result<JoinState, StoreError> {
    let (bytes, state) = tokio::task::spawn_blocking(move || (state.encode(), state))
        .await
        .expect("encoding does not panic");
    shared.durable.put_join_state(series, bytes).await?;
    Ok(state)
}

/// The join settings and problem type of a series' monitor, if it is label-joined.
fn settings(shared: &Shared, series: &SeriesKey) -> Option<(LabelJoin, ProblemType)> {
    let monitor = shared
        .config
        .monitors
        .iter()
        .position(|m| m.name == series.monitor)?;
    let join = shared.config.monitors[monitor].label_join(&shared.config.window)?;
    match &shared.monitors[monitor].kind {
        StateKind::Predictions(spec) => Some((join, spec.problem_type)),
        // A bias monitor's labels are kept as text.
        StateKind::BiasRows(_) => Some((join, ProblemType::MulticlassClassification)),
        _ => None,
    }
}

fn arrival(name: &str) -> i64 {
    name.split_once('-')
        .and_then(|(time, _)| time.parse().ok())
        .unwrap_or(0)
}

/// Folds the label files `names` (in arrival order) into the series' join, then deletes them.
pub(super) async fn absorb(
    shared: &Shared,
    series: &SeriesKey,
    names: &[String],
) -> Result<(), StoreError> {
    let Some(settings) = settings(shared, series) else {
        tracing::warn!(%series, "label files of a monitor that joins no labels; left as they are");
        return Ok(());
    };
    let mut state = load(shared, series, settings).await?;
    // Names no longer listed were deleted after being folded in: forget them.
    state.absorbed.retain(|name| names.contains(name));
    let max_waiting = shared.config.limits.max_pending_labels;
    for name in names {
        if state.absorbed.contains(name) {
            continue;
        }
        let absorbed = match shared.durable.get_labels(series, name).await? {
            Some(bytes) => match LabelRun::decode(&bytes) {
                Ok(run) => state.absorb(run, arrival(name), max_waiting),
                Err(error) => {
                    tracing::error!(%series, name, %error, "a stored label file cannot be read; left out of the join");
                    Default::default()
                }
            },
            None => Default::default(),
        };
        events::emit(Event::LabelsAbsorbed {
            monitor: &series.monitor,
            endpoint: series.endpoint.as_deref(),
            name,
            absorbed: &absorbed,
        });
        state.absorbed.push(name.clone());
    }
    let state = save(shared, series, state).await?;
    shared.durable.delete_labels(series, &state.absorbed).await
}

/// A closed window after the label join.
pub(super) struct Joined {
    pub state: WindowState,
    /// A label-joined window's counts.
    pub counts: Option<JoinCounts>,
    /// With `[monitor.estimate]`: the window's performance estimated from its scores.
    pub estimate: Option<EstimatedPerformance>,
}

/// The CBPE estimator of a series' monitor, if it has one.
fn estimator(shared: &Shared, series: &SeriesKey) -> Option<Arc<WindowEstimator>> {
    let monitor = (shared.config.monitors.iter()).position(|m| m.name == series.monitor)?;
    match &shared.monitors[monitor].baseline {
        MonitorBaseline::ModelQuality { estimator, .. } => estimator.clone(),
        _ => None,
    }
}

/// A label-joined window's state with its labels, the join's counts and its estimate; any
/// other state as it is. The result staged by an earlier attempt is used when there is one;
/// else the window is joined and its result staged before it is returned. The window closes
/// for labels at its end plus the allowed lateness and `label_lateness`.
pub(super) async fn with_labels(
    shared: &Shared,
    series: &SeriesKey,
    start: i64,
    state: WindowState,
) -> Result<Joined, StoreError> {
    if !matches!(
        state,
        WindowState::Predictions(_) | WindowState::BiasRows(_)
    ) {
        return Ok(Joined {
            state,
            counts: None,
            estimate: None,
        });
    }
    let estimator = estimator(shared, series);
    let (settings, problem_type) = settings(shared, series).expect("a label-joined series");
    let mut join = load(shared, series, (settings, problem_type)).await?;
    let window = &shared.config.window;
    let end = start + window.size.as_secs() as i64;
    let closes = end + (window.allowed_lateness + settings.label_lateness).as_secs() as i64;
    let ttl = Ttl {
        orphan: settings.orphan_ttl.as_secs() as i64,
        label: settings.label_ttl.as_secs() as i64,
        max_remembered: shared.config.limits.max_pending_labels,
    };
    let expires = end.saturating_add(ttl.label);
    // A series' windows are committed in order: those staged before this one are committed
    // (or were committed by another replica), so their results are no longer needed.
    join.staged.retain(|w| w.start >= start);
    let staged = join.staged.iter().find(|w| w.start == start).cloned();
    let (joined, join) =
        tokio::task::spawn_blocking(move || -> Result<_, String> {
            let joined =
                match state {
                    WindowState::Predictions(window) => {
                        // The estimate is a function of the window's predictions alone, so a retry
                        // after a crash gives the same one.
                        let run = (staged.is_none() || estimator.is_some()).then(|| window.run());
                        let estimate = (estimator.as_deref()).zip(run.as_ref()).and_then(
                            |(estimator, run)| estimator.estimate(run, window.score_run().as_ref()),
                        );
                        let staged = match (staged, run) {
                            (Some(staged), _) => staged,
                            (None, Some(run)) => join.join(start, run, closes, expires, ttl),
                            (None, None) => unreachable!("the run is made when nothing is staged"),
                        };
                        let Staged::ModelQuality(state) = staged.state else {
                            return Err("a staged model-quality window holds another kind".into());
                        };
                        let window = ModelQualityWindow {
                            spec: window.spec,
                            state: *state,
                            skipped_rows: staged.counts.skipped_rows,
                        };
                        let state = WindowState::ModelQuality(Box::new(window));
                        (state, staged.counts, estimate)
                    }
                    WindowState::BiasRows(window) => {
                        let kind = StateKind::Bias(window.spec.clone());
                        if let Some(staged) = staged {
                            let Staged::Window(bytes) = staged.state else {
                                return Err("a staged bias window holds another kind".into());
                            };
                            let state = codec::decode(&bytes, &kind).map_err(|e| e.to_string())?;
                            (state, staged.counts, None)
                        } else {
                            let (keys, picks, duplicates) = window.first_rows();
                            let (labels, mut counts, late) =
                                join.join_labels(start, &keys, closes, expires, ttl);
                            counts.duplicate_predictions = duplicates;
                            // Rows past limits.max_window_rows.bias_rows, refused by the merge.
                            counts.skipped_rows += window.refused_rows;
                            let mut bias = BiasState::new(window.spec.clone());
                            bias.add_batch(&window.labelled(&picks, &labels, &window.spec.label));
                            let state = WindowState::Bias(Box::new(bias));
                            let unlabelled = if join.restate {
                                let rows = window.unlabelled(&keys, &picks, &labels);
                                codec::encode(&WindowState::BiasRows(rows))
                            } else {
                                Vec::new()
                            };
                            join.stage(start, codec::encode(&state), counts, unlabelled, late);
                            (state, counts, None)
                        }
                    }
                    _ => unreachable!("checked above"),
                };
            Ok((joined, join))
        })
        .await
        .expect("joining does not panic")
        .map_err(|message| StoreError::Failed {
            store: shared.durable.store.describe(),
            op: "read",
            key: format!("join/{series}"),
            message,
            retryable: false,
        })?;
    save(shared, series, join).await?;
    let (state, counts, estimate) = joined;
    Ok(Joined {
        state,
        counts: Some(counts),
        estimate,
    })
}

/// With `restate`: each window of the series with late labels not folded in yet gets its next
/// revision, once the window's earlier delivery is done; returns the windows committed, to be
/// delivered. A revision's files go to `revision-{n}/` in the window's folder (the first
/// result stays as it was delivered); the rules do not see it and no metrics are published
/// again (CloudWatch would keep both data points of the window's time). The revision is
/// committed before the join state that records it is saved: a crash in between commits it
/// again, with the same number and content (at least once).
pub(super) async fn restate(
    shared: &Arc<Shared>,
    sinks: &Sinks,
    series: &SeriesKey,
) -> Result<Vec<i64>, RunError> {
    let Some(settings) = settings(shared, series).filter(|(join, _)| join.restate) else {
        return Ok(Vec::new());
    };
    let durable = &shared.durable;
    let monitor = (shared.config.monitors.iter())
        .position(|m| m.name == series.monitor)
        .expect("a label-joined series");
    let mut committed = Vec::new();
    let mut join = load(shared, series, settings).await?;
    for start in join.restatements_due() {
        if durable.outbox(series, start).await?.is_some() {
            // Its earlier result is still being delivered: restated after it.
            continue;
        }
        let restated = {
            let shared = shared.clone();
            tokio::task::spawn_blocking(move || {
                let kind = &shared.monitors[monitor].kind;
                let next = next_revision(&mut join, start, kind);
                (join, next)
            })
            .await
            .expect("restating does not panic")
        };
        join = restated.0;
        let (state, counts) = match restated.1 {
            Ok(Some(next)) => next,
            Ok(None) => continue,
            Err(error) => {
                tracing::error!(%series, start, %error, "a window's stored result cannot be read; not restated");
                continue;
            }
        };
        let key = WindowKey {
            monitor,
            endpoint: series.endpoint.clone(),
            start,
        };
        let end = start + shared.config.window.size.as_secs() as i64;
        let mut report = {
            let shared = shared.clone();
            let window = ClosedWindow { key, end, state };
            tokio::task::spawn_blocking(move || {
                crate::daemon::window_report(
                    &shared.config,
                    &shared.monitors,
                    window,
                    Some(counts),
                    None,
                )
            })
            .await
            .expect("analysis does not panic")
        };
        report.relative_dir = format!("{}/revision-{}", report.relative_dir, counts.revision);
        let parts = durable
            .finalised_parts(series, start)
            .await?
            .unwrap_or_default();
        let rules = durable.rules(series).await?;
        let mut outbox = finalise::window_outbox(sinks, &report, parts, &[], Vec::new(), rules);
        outbox.metrics = Vec::new();
        outbox.metrics_done = true;
        if finalise::commit(shared, series, start, &outbox, Some(&report), &[]).await? {
            join = save(shared, series, join).await?;
            committed.push(start);
        } else {
            // Committed meanwhile (a crash after an earlier commit): the saved state is
            // the one to go on from.
            join = load(shared, series, settings).await?;
        }
    }
    Ok(committed)
}

/// The next revision of a window with late labels: its state and counts, from the join state
/// (which keeps it as the window's result). `None`: nothing to restate.
fn next_revision(
    join: &mut JoinState,
    start: i64,
    kind: &StateKind,
) -> Result<Option<(WindowState, JoinCounts)>, String> {
    match kind {
        StateKind::Predictions(spec) => {
            let Some(joined) = join.restate(start) else {
                return Ok(None);
            };
            let Staged::ModelQuality(state) = joined.state else {
                return Err("a restated model-quality window holds another kind".into());
            };
            let window = ModelQualityWindow {
                spec: spec.clone(),
                state: *state,
                skipped_rows: joined.counts.skipped_rows,
            };
            Ok(Some((
                WindowState::ModelQuality(Box::new(window)),
                joined.counts,
            )))
        }
        StateKind::BiasRows(spec) => {
            let Some(LateRows {
                labels: late,
                rows,
                result,
            }) = join.late_rows(start)
            else {
                return Ok(None);
            };
            let rows = codec::decode(rows, kind).map_err(|e| e.to_string())?;
            let Staged::Window(bytes) = &result.state else {
                return Err("a restated bias window holds another kind".into());
            };
            let bias = codec::decode(bytes, &StateKind::Bias(spec.clone()));
            let (WindowState::BiasRows(rows), Ok(WindowState::Bias(mut bias))) = (rows, bias)
            else {
                return Err("a restated bias window holds another kind".into());
            };
            let late: BTreeMap<_, _> = late.into_iter().collect();
            let (keys, picks, _) = rows.first_rows();
            let labels: Vec<Option<String>> = keys.iter().map(|k| late.get(k).cloned()).collect();
            let folded = labels.iter().flatten().count() as u64;
            bias.add_batch(&rows.labelled(&picks, &labels, &spec.label));
            let state = WindowState::Bias(bias);
            let counts = (join.restated(start, codec::encode(&state), folded))
                .expect("the window was just found");
            Ok(Some((state, counts)))
        }
        _ => Ok(None),
    }
}
