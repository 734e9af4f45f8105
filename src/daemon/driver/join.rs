//! The label join's I/O: each label-joined series keeps one [`JoinState`] in the store
//! (`join/{series}`), changed only by the holder of the series' lease. A finaliser pass folds
//! the series' new label files into it, then joins each window due with it. Each change is
//! one write of the whole state, so a crash leaves the state before or after it:
//! - label files folded in are named in the state (`absorbed`) before they are deleted, so a
//!   restart does not fold them twice;
//! - a joined window is staged in the state before the window is committed, so a restart
//!   commits the same result; it is forgotten when the series' next window is joined.

use super::*;
use crate::bias::BiasState;
use crate::config::LabelJoin;
use crate::model_quality::{JoinCounts, JoinState, LabelRun, ProblemType, Staged, Ttl};
use crate::window::{ModelQualityWindow, StateKind};

async fn load(
    shared: &Shared,
    series: &SeriesKey,
    problem_type: ProblemType,
) -> Result<JoinState, StoreError> {
    let Some(bytes) = shared.durable.join_state(series).await? else {
        return Ok(JoinState::new(problem_type));
    };
    let decoded = tokio::task::spawn_blocking(move || JoinState::decode(&bytes))
        .await
        .expect("decoding does not panic");
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
    let Some((_, problem_type)) = settings(shared, series) else {
        tracing::warn!(%series, "label files of a monitor that joins no labels; left as they are");
        return Ok(());
    };
    let mut state = load(shared, series, problem_type).await?;
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

/// A label-joined window's state with its labels, and the join's counts; any other state as
/// it is. The result staged by an earlier attempt is used when there is one; else the window
/// is joined and its result staged before it is returned. The window closes for labels at its
/// end plus the allowed lateness and `label_lateness`.
pub(super) async fn with_labels(
    shared: &Shared,
    series: &SeriesKey,
    start: i64,
    state: WindowState,
) -> Result<(WindowState, Option<JoinCounts>), StoreError> {
    if !matches!(
        state,
        WindowState::Predictions(_) | WindowState::BiasRows(_)
    ) {
        return Ok((state, None));
    }
    let (settings, problem_type) = settings(shared, series).expect("a label-joined series");
    let mut join = load(shared, series, problem_type).await?;
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
    let (joined, join) = tokio::task::spawn_blocking(move || -> Result<_, String> {
        let joined = match state {
            WindowState::Predictions(window) => {
                let staged = match staged {
                    Some(staged) => staged,
                    None => join.join(start, window.run(), closes, expires, ttl),
                };
                let Staged::ModelQuality(state) = staged.state else {
                    return Err("a staged model-quality window holds another kind".into());
                };
                let window = ModelQualityWindow {
                    spec: window.spec,
                    state: *state,
                    skipped_rows: staged.counts.skipped_rows,
                };
                (WindowState::ModelQuality(Box::new(window)), staged.counts)
            }
            WindowState::BiasRows(window) => {
                let kind = StateKind::Bias(window.spec.clone());
                if let Some(staged) = staged {
                    let Staged::Window(bytes) = staged.state else {
                        return Err("a staged bias window holds another kind".into());
                    };
                    let state = codec::decode(&bytes, &kind).map_err(|e| e.to_string())?;
                    (state, staged.counts)
                } else {
                    let (keys, picks, duplicates) = window.first_rows();
                    let (labels, mut counts) = join.join_labels(start, &keys, closes, expires, ttl);
                    counts.duplicate_predictions = duplicates;
                    let mut bias = BiasState::new(window.spec.clone());
                    bias.add_batch(&window.labelled(&picks, &labels, &window.spec.label));
                    let state = WindowState::Bias(Box::new(bias));
                    join.stage(start, codec::encode(&state), counts);
                    (state, counts)
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
    Ok((joined.0, Some(joined.1)))
}
