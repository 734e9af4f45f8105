//! Rules in embedded mode: each closed window's facts go through the rules; the actions they
//! yield are printed and appended to `{out}/actions.jsonl`, and the rules' state is kept in
//! `{out}/rules_state.json`, so a restart neither fires an alert again nor forgets one that is
//! firing. (AWS mode does not apply rules yet.)

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::RunError;
use crate::json_file::{read_json, write_json};
use crate::rules::{Action, RuleSet, RulesState, WindowFacts, evaluate};
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
    /// Per `monitor/endpoint`, the end of the last window the rules saw. Embedded mode reads its
    /// directory again after a restart (there is no durable ledger yet) and closes the same
    /// windows again; the rules must not see them twice.
    evaluated_through: BTreeMap<String, i64>,
}

impl RuleRunner {
    pub(super) fn open(rules: RuleSet, out: &Path) -> Result<Self, RunError> {
        let state_path = out.join(RULES_STATE_FILE);
        let state = if state_path.exists() {
            read_json(&state_path)?
        } else {
            SavedState::default()
        };
        Ok(Self {
            rules,
            state,
            state_path,
            actions_path: out.join(ACTIONS_FILE),
        })
    }

    /// Runs the rules over a closed window; records and prints the actions. A window the rules
    /// already saw (a replay after a restart) yields nothing.
    pub(super) fn observe(&mut self, report: &WindowReport) -> Result<Vec<Action>, RunError> {
        let (start, end) = (report.start.timestamp(), report.end.timestamp());
        let endpoint = report.endpoint.as_deref();
        let series = format!("{}/{}", report.monitor, endpoint.unwrap_or("-"));
        if self
            .state
            .evaluated_through
            .get(&series)
            .is_some_and(|&through| end <= through)
        {
            return Ok(Vec::new());
        }
        self.state.evaluated_through.insert(series, end);
        let facts = match &report.outcome {
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
        };
        let actions = evaluate(&self.rules, &mut self.state.rules, &facts);
        if !actions.is_empty() {
            let append = || -> std::io::Result<()> {
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.actions_path)?;
                for action in &actions {
                    writeln!(file, "{}", serde_json::to_string(action)?)?;
                }
                file.sync_all()
            };
            append().map_err(|error| RunError::Io {
                path: self.actions_path.clone(),
                error,
            })?;
        }
        // Written after the actions: a crash in between repeats an action, never loses one.
        write_json(&self.state_path, &self.state)?;
        for action in &actions {
            println!("  {}", describe(action));
        }
        Ok(actions)
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
            serde_name(kind),
            rule,
            serde_name(severity)
        ),
        Action::Retrain {
            rule,
            idempotency_key,
            ..
        } => format!("retrain {rule} {idempotency_key}"),
    }
}

fn serde_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}
