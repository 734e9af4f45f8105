//! The label join's I/O: each label-joined series keeps one [`JoinState`] in the store
//! (`join/{series}`), changed only by the holder of the series' lease. A finaliser pass folds
//! the series' new label files into it, then joins each window due with it. Each change is
//! one write of the whole state, so a crash leaves the state before or after it:
//! - label files folded in are named in the state (`absorbed`) before they are deleted, so a
//!   restart does not fold them twice;
//! - a joined window is staged in the state before the window is committed, so a restart
//!   commits the same result.

use super::*;
use crate::config::LabelJoin;
use crate::model_quality::{JoinState, JoinedWindow, LabelRun, PredictionRun, ProblemType, Ttl};

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
        crate::window::StateKind::Predictions(spec) => Some((join, spec.problem_type)),
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
        tracing::info!(
            event = "labels_absorbed",
            %series,
            name,
            waiting = absorbed.waiting,
            late = absorbed.late,
            duplicates = absorbed.duplicates,
            refused = absorbed.refused,
            "label file folded into the join"
        );
        state.absorbed.push(name.clone());
    }
    let state = save(shared, series, state).await?;
    shared.durable.delete_labels(series, &state.absorbed).await
}

/// The window starting at `start` joined with the series' labels: the result staged by an
/// earlier attempt, else a new join, staged before it is returned. The window closes for
/// labels at its end plus the allowed lateness and `label_lateness`.
pub(super) async fn join_window(
    shared: &Shared,
    series: &SeriesKey,
    start: i64,
    predictions: PredictionRun,
) -> Result<JoinedWindow, StoreError> {
    let (settings, problem_type) = settings(shared, series).expect("a label-joined series");
    let mut state = load(shared, series, problem_type).await?;
    if let Some(staged) = state.staged.iter().find(|w| w.start == start) {
        return Ok(staged.clone());
    }
    let window = &shared.config.window;
    let end = start + window.size.as_secs() as i64;
    let closes = end + (window.allowed_lateness + settings.label_lateness).as_secs() as i64;
    let ttl = Ttl {
        orphan: settings.orphan_ttl.as_secs() as i64,
        label: settings.label_ttl.as_secs() as i64,
    };
    let expires = end.saturating_add(ttl.label);
    let joined = state.join(start, predictions, closes, expires, ttl);
    save(shared, series, state).await?;
    Ok(joined)
}

/// Forgets the staged result of a window now committed.
pub(super) async fn unstage(
    shared: &Shared,
    series: &SeriesKey,
    start: i64,
) -> Result<(), StoreError> {
    let Some((_, problem_type)) = settings(shared, series) else {
        return Ok(());
    };
    let mut state = load(shared, series, problem_type).await?;
    let before = state.staged.len();
    state.staged.retain(|w| w.start != start);
    if state.staged.len() != before {
        save(shared, series, state).await?;
    }
    Ok(())
}
