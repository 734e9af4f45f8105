//! Rules over closed windows. Each window's facts go through the rules; the actions they yield
//! are printed and appended to `{out}/actions.jsonl`. Embedded mode keeps the rules' state —
//! what fired, what is firing — in `{out}/rules_state.json` ([`RuleRunner`]), so a restart
//! neither fires an alert again nor forgets one. AWS mode keeps it in its state store and turns
//! actions into messages ([`messages`]) sent through its outbox.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::RunError;
use super::state::{series_key, split_series};
use crate::json_file::{read_json, write_json};
use crate::rules::{Action, RuleSet, RulesState, WindowFacts, evaluate};
use crate::sinks::actions::{Delivery, Destination, Routes, delivery};
use crate::sinks::sns::{WindowContext, name};
use crate::sinks::{Outcome, WindowReport};

pub const ACTIONS_FILE: &str = "actions.jsonl";
pub const RULES_STATE_FILE: &str = "rules_state.json";

pub(super) struct RuleRunner {
    rules: RuleSet,
    state: SavedState,
    state_path: PathBuf,
    actions_path: PathBuf,
}

/// What survives a restart.
#[derive(Debug, Default, Serialize, Deserialize)]
struct SavedState {
    rules: RulesState,
    /// Per `monitor/endpoint` (`-` for none), the end of the last window the rules saw. A
    /// window closed again after a restart (its objects read again) is not seen twice.
    evaluated_through: BTreeMap<String, i64>,
}

impl RuleRunner {
    pub(super) fn open(rules: RuleSet, out: &Path) -> Result<Self, RunError> {
        let state_path = out.join(RULES_STATE_FILE);
        let mut state: SavedState = if state_path.exists() {
            read_json(&state_path)?
        } else {
            SavedState::default()
        };
        let dropped = state.rules.retain_rules(&rules);
        if dropped > 0 {
            tracing::info!(
                dropped,
                "forgot the state of rules no longer in the rules directory"
            );
        }
        Ok(Self {
            rules,
            state,
            state_path,
            actions_path: out.join(ACTIONS_FILE),
        })
    }

    /// Runs the rules over a closed window. A window the rules already saw (a replay after a
    /// restart) yields nothing.
    pub(super) fn observe(&mut self, report: &WindowReport) -> Result<Vec<Action>, RunError> {
        let end = report.end.timestamp();
        let series = series_key(&report.monitor, report.endpoint.as_deref());
        if self
            .state
            .evaluated_through
            .get(&series)
            .is_some_and(|&through| end <= through)
        {
            return Ok(Vec::new());
        }
        self.state.evaluated_through.insert(series, end);
        let actions = evaluate(&self.rules, &mut self.state.rules, &facts_of(report));
        self.record(&actions)?;
        Ok(actions)
    }

    /// Runs the rules over the windows in which nothing arrived: for every series the rules
    /// have seen, with no window still open (`open` says which are), the windows up to the
    /// `watermark` that never came are empty, so `no_data` fires and reminders go out while a
    /// stream is silent.
    pub(super) fn observe_silence(
        &mut self,
        watermark: i64,
        size: i64,
        open: &dyn Fn(&str, Option<&str>) -> bool,
    ) -> Result<Vec<Action>, RunError> {
        let through = watermark.div_euclid(size) * size;
        let silent: Vec<(String, i64)> = self
            .state
            .evaluated_through
            .iter()
            .filter(|&(_, &end)| end < through)
            .map(|(series, &end)| (series.clone(), end))
            .collect();
        let mut all = Vec::new();
        for (series, _) in silent {
            let (monitor, endpoint) = split_series(&series);
            if open(monitor, endpoint) {
                continue;
            }
            // The evaluator fills the gap before this window with empty ones too.
            let facts = WindowFacts::empty(monitor, endpoint, through - size, through);
            let actions = evaluate(&self.rules, &mut self.state.rules, &facts);
            self.state.evaluated_through.insert(series.clone(), through);
            self.record(&actions)?;
            all.extend(actions);
        }
        Ok(all)
    }

    /// Appends the actions to the actions file and saves the state; prints them.
    fn record(&mut self, actions: &[Action]) -> Result<(), RunError> {
        append_actions(&self.actions_path, actions)?;
        // Written after the actions file: a crash in between repeats an action there, never
        // loses one.
        write_json(&self.state_path, &self.state)?;
        print_actions(actions);
        Ok(())
    }
}

/// What the rules see of a closed window.
pub(super) fn facts_of(report: &WindowReport) -> WindowFacts {
    let (start, end) = (report.start.timestamp(), report.end.timestamp());
    let endpoint = report.endpoint.as_deref();
    match &report.outcome {
        Outcome::DataQuality { findings, .. } => {
            WindowFacts::from_findings(&report.monitor, endpoint, start, end, findings)
        }
        Outcome::Bias {
            analysis,
            violations,
        } => WindowFacts::from_bias(
            &report.monitor,
            endpoint,
            start,
            end,
            report.rows,
            analysis,
            violations,
        ),
    }
}

/// The messages for `actions` decided on `window`: each to its rule's destination, else the
/// default one; an alert with no topic anywhere is only recorded.
pub(super) fn messages(
    rules: &RuleSet,
    actions: &[Action],
    window: &WindowContext,
    routes: &Routes,
) -> Vec<Delivery> {
    let mut out = Vec::new();
    for action in actions {
        let rule = rules
            .rules
            .iter()
            .find(|r| r.name == action_rule(action))
            .expect("actions come from these rules");
        let alert_topic = rule.alert.as_ref().and_then(|a| a.topic_arn.as_deref());
        let retrain = rule.retrain.as_ref().and_then(|r| {
            r.topic_arn
                .clone()
                .map(Destination::Topic)
                .or_else(|| r.queue_url.clone().map(Destination::Queue))
        });
        match delivery(action, window, alert_topic, retrain, routes) {
            Some(message) => out.push(message),
            None => tracing::info!(
                rule = rule.name,
                "alert not sent: no topic (set sinks.sns_topic_arn or the rule's alert.topic_arn); kept in actions.jsonl"
            ),
        }
    }
    out
}

/// Appends actions to the local actions file, synced.
pub(super) fn append_actions(path: &Path, actions: &[Action]) -> Result<(), RunError> {
    if actions.is_empty() {
        return Ok(());
    }
    let append = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        for action in actions {
            writeln!(file, "{}", serde_json::to_string(action)?)?;
        }
        file.sync_all()
    };
    append().map_err(|error| RunError::Io {
        path: path.to_path_buf(),
        error,
    })
}

pub(super) fn print_actions(actions: &[Action]) {
    for action in actions {
        crate::sinks::stdout::print(&format!("  {}\n", describe(action)));
    }
}

fn action_rule(action: &Action) -> &str {
    match action {
        Action::Alert { rule, .. } | Action::Retrain { rule, .. } => rule,
    }
}

fn describe(action: &Action) -> String {
    match action {
        Action::Alert {
            rule,
            severity,
            kind,
            dedup_key,
            ..
        } => format!(
            "alert  {} {} ({}) {dedup_key}",
            name(kind),
            rule,
            name(severity)
        ),
        Action::Retrain {
            rule,
            idempotency_key,
            ..
        } => format!("retrain {rule} {idempotency_key}"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn a_silent_series_gets_empty_windows_so_no_data_fires_once() {
        let out = tempfile::tempdir().unwrap();
        let rules = RuleSet::from_toml(
            Path::new("r.toml"),
            "[[rule]]\nname = \"quiet\"\nseverity = \"warning\"\n[rule.condition.no_data]\n[rule.persistence]\nwindows = 2\n[rule.alert]\n",
        )
        .unwrap();
        let mut runner = RuleRunner::open(rules.clone(), out.path()).unwrap();
        // The series last closed the window [0, 10).
        runner.state.evaluated_through.insert("m/ep".into(), 10);
        let none_open = |_: &str, _: Option<&str>| false;
        // Watermark 25: only [10, 20) has passed; one empty window is not yet two.
        assert!(
            runner
                .observe_silence(25, 10, &none_open)
                .unwrap()
                .is_empty()
        );
        // Watermark 30: [20, 30) passed too: two empty windows in a row, one firing alert.
        let actions = runner.observe_silence(30, 10, &none_open).unwrap();
        assert_eq!(actions.len(), 1, "{actions:?}");
        let Action::Alert {
            kind,
            endpoint,
            evidence,
            ..
        } = &actions[0]
        else {
            panic!("{actions:?}")
        };
        assert_eq!(*kind, crate::rules::AlertKind::Firing);
        assert_eq!(endpoint.as_deref(), Some("ep"));
        assert_eq!((evidence.window_start, evidence.window_end), (20, 30));
        // The same watermark again, or a series with a window still open, adds nothing.
        assert!(
            runner
                .observe_silence(30, 10, &none_open)
                .unwrap()
                .is_empty()
        );
        let all_open = |_: &str, _: Option<&str>| true;
        assert!(
            runner
                .observe_silence(60, 10, &all_open)
                .unwrap()
                .is_empty()
        );
        // The state survives a restart: the next runner does not fire again.
        let mut again = RuleRunner::open(rules, out.path()).unwrap();
        assert!(
            again
                .observe_silence(40, 10, &none_open)
                .unwrap()
                .is_empty()
        );
        let logged = std::fs::read_to_string(out.path().join(ACTIONS_FILE)).unwrap();
        assert_eq!(logged.lines().count(), 1);
        // Rename the rule: the old name's episode is forgotten, so the new rule fires afresh.
        let renamed = RuleSet::from_toml(
            Path::new("r.toml"),
            "[[rule]]\nname = \"silent\"\nseverity = \"warning\"\n[rule.condition.no_data]\n[rule.alert]\n",
        )
        .unwrap();
        let mut renamed = RuleRunner::open(renamed, out.path()).unwrap();
        assert_eq!(renamed.state.rules, RulesState::default());
        assert_eq!(
            renamed.observe_silence(50, 10, &none_open).unwrap().len(),
            1
        );
    }
}
