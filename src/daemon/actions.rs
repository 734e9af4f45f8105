//! Rules over closed windows. Each window's facts go through the rules; the actions they yield
//! are printed and appended to `{out}/actions.jsonl`, and turned into messages ([`messages`])
//! that the outbox sends. The rules' state — what fired, what is firing — is kept per series in
//! the state store, so a restart neither fires an alert again nor forgets one.

use std::io::Write;
use std::path::Path;

use super::RunError;
use crate::rules::{Action, RuleSet, WindowFacts};
use crate::sinks::actions::{Delivery, Destination, Routes, delivery};
use crate::sinks::sns::{WindowContext, name};
use crate::sinks::{Outcome, WindowReport};

pub const ACTIONS_FILE: &str = "actions.jsonl";

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
            ..
        } => WindowFacts::from_bias(
            &report.monitor,
            endpoint,
            start,
            end,
            report.rows,
            analysis,
            violations,
        ),
        Outcome::ModelQuality {
            statistics,
            violations,
            estimate,
            ..
        } => WindowFacts::from_model_quality(
            &report.monitor,
            endpoint,
            (start, end),
            report.rows,
            statistics,
            violations,
            estimate.as_deref(),
        ),
        Outcome::FeatureAttribution {
            drift, violations, ..
        } => WindowFacts::from_attribution(
            &report.monitor,
            endpoint,
            (start, end),
            report.rows,
            drift,
            violations,
        ),
        Outcome::MultivariateDrift {
            result, violations, ..
        } => WindowFacts::from_multivariate(
            &report.monitor,
            endpoint,
            (start, end),
            report.rows,
            result,
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

/// The actions' lines for the local actions file.
pub(super) fn action_lines(actions: &[Action]) -> Vec<String> {
    (actions.iter())
        .map(|action| serde_json::to_string(action).expect("an action serializes"))
        .collect()
}

/// Appends lines to the local actions file, synced.
pub(super) fn append_action_lines(path: &Path, lines: &[String]) -> Result<(), RunError> {
    let append = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        for line in lines {
            writeln!(file, "{line}")?;
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
