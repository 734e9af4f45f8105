//! Per series: the rules' state, finalised windows' outboxes, and the periodic reports'
//! progress.

use serde::{Deserialize, Serialize};

use super::{Durable, SeriesKey, json, parse, window_id};
use crate::analyze::metrics::MetricDatum;
use crate::rules::RulesState;
use crate::sinks::actions::Delivery;
use crate::sinks::cloudwatch::Family;
use crate::store::StoreError;

/// The rules' memory of one series.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(in crate::daemon) struct SeriesRules {
    pub state: RulesState,
    /// The end of the last window the rules saw.
    pub evaluated_through: Option<i64>,
    /// The end of the last window with data the rules saw. A window with data that is
    /// finalised after silent windows overtook it (its input was late) is still evaluated.
    /// `None` in state written before this field: then `evaluated_through` stands for it.
    #[serde(default)]
    pub data_through: Option<i64>,
}

impl SeriesRules {
    /// Whether the rules have already seen the window ending at `end` (`silent`: with no data).
    pub fn has_seen(&self, end: i64, silent: bool) -> bool {
        let through = if silent {
            self.evaluated_through
        } else {
            self.data_through.or(self.evaluated_through)
        };
        through.is_some_and(|t| end <= t)
    }

    /// Notes that the rules saw the window ending at `end`.
    pub fn saw(&mut self, end: i64, silent: bool) {
        self.evaluated_through = self.evaluated_through.max(Some(end));
        if !silent {
            self.data_through = self.data_through.max(Some(end));
        }
    }

    /// Whether `self` has seen less than `other`.
    pub fn behind(&self, other: &SeriesRules) -> bool {
        self.evaluated_through < other.evaluated_through || self.data_through < other.data_through
    }
}

/// A finalised window on its way to the sinks; each step is marked once done, so a new holder
/// of the lease carries on where the last one stopped.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(in crate::daemon) struct WindowOutbox {
    pub end: i64,
    /// The objects merged, in merge order.
    pub parts: Vec<String>,
    pub rows: u64,
    /// The report's files (name, content), and their directory below the output directory and
    /// the S3 report root; empty for a window in which nothing arrived.
    pub relative_dir: String,
    pub report_files: Vec<(String, String)>,
    /// The files are in the local output directory. An outbox of a driftd from before this
    /// field had its files written when it was committed.
    #[serde(default = "already_written")]
    pub files_done: bool,
    /// Lines still to append to the local actions file (`actions.jsonl`); emptied once they
    /// are. A crash in between appends them again: at least once, and each carries its rule's
    /// dedup or idempotency key.
    #[serde(default)]
    pub actions: Vec<String>,
    pub report_done: bool,
    /// The report could not be written for good (e.g. its bucket is gone): the alerts went
    /// without links to it.
    #[serde(default)]
    pub report_failed: bool,
    /// When the window was committed (seconds): alerts wait for the report at most
    /// `sinks.report_wait` from here, then go without links.
    #[serde(default)]
    pub committed_at: i64,
    pub family: Family,
    pub endpoint: Option<String>,
    pub metrics: Vec<MetricDatum>,
    pub metrics_done: bool,
    pub messages: Vec<Delivery>,
    pub messages_sent: usize,
    /// The rules' state after this window.
    pub rules_after: SeriesRules,
}

fn already_written() -> bool {
    true
}

/// Where a bias series' periodic compliance reports stand.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(in crate::daemon) struct ReportProgress {
    /// The start of the next period to report.
    pub next: i64,
    /// The last report's folder below the output directory: the next one links to it.
    pub previous: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct DoneRecord {
    pub parts: Vec<String>,
    pub rows: u64,
}

impl Durable {
    /// Every series the rules have state for.
    pub async fn rule_series(&self) -> Result<Vec<SeriesKey>, StoreError> {
        Ok(self
            .store
            .list("rules/")
            .await?
            .into_iter()
            .filter_map(|k| SeriesKey::parse(k.strip_prefix("rules/")?))
            .collect())
    }

    pub async fn outbox(
        &self,
        series: &SeriesKey,
        start: i64,
    ) -> Result<Option<WindowOutbox>, StoreError> {
        let key = format!("outbox/{}", window_id(series, start));
        match self.store.get(&key).await? {
            Some(bytes) => parse(&key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Commits a finalised window: `false` if it already was.
    pub async fn commit(
        &self,
        series: &SeriesKey,
        start: i64,
        outbox: &WindowOutbox,
    ) -> Result<bool, StoreError> {
        let key = format!("outbox/{}", window_id(series, start));
        self.store.put_new(&key, json(outbox)).await
    }

    pub async fn save_outbox(
        &self,
        series: &SeriesKey,
        start: i64,
        outbox: &WindowOutbox,
    ) -> Result<(), StoreError> {
        let key = format!("outbox/{}", window_id(series, start));
        self.store.put(&key, json(outbox)).await
    }

    /// A delivered window leaves the outbox; its record of merged parts stays.
    pub async fn retire(
        &self,
        series: &SeriesKey,
        start: i64,
        outbox: &WindowOutbox,
    ) -> Result<(), StoreError> {
        let id = window_id(series, start);
        let done = DoneRecord {
            parts: outbox.parts.clone(),
            rows: outbox.rows,
        };
        self.store.put(&format!("done/{id}"), json(&done)).await?;
        self.store.delete(&format!("outbox/{id}")).await
    }

    /// Starts a series' reports, unless they have started.
    pub async fn start_reports(
        &self,
        series: &SeriesKey,
        progress: &ReportProgress,
    ) -> Result<(), StoreError> {
        self.store
            .put_new(&format!("reports/{series}"), json(progress))
            .await
            .map(|_| ())
    }

    pub async fn report_progress(
        &self,
        series: &SeriesKey,
    ) -> Result<Option<ReportProgress>, StoreError> {
        let key = format!("reports/{series}");
        match self.store.get(&key).await? {
            Some(bytes) => parse(&key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    pub async fn put_report_progress(
        &self,
        series: &SeriesKey,
        progress: &ReportProgress,
    ) -> Result<(), StoreError> {
        self.store
            .put(&format!("reports/{series}"), json(progress))
            .await
    }

    /// Every series with periodic reports.
    pub async fn report_series(&self) -> Result<Vec<SeriesKey>, StoreError> {
        Ok(self
            .store
            .list("reports/")
            .await?
            .into_iter()
            .filter_map(|k| SeriesKey::parse(k.strip_prefix("reports/")?))
            .collect())
    }

    /// Whether a committed window of the series starting in `[from, to)` is not yet
    /// delivered everywhere.
    pub async fn undelivered_between(
        &self,
        series: &SeriesKey,
        from: i64,
        to: i64,
    ) -> Result<bool, StoreError> {
        let prefix = format!("outbox/{series}/");
        Ok(self.store.list(&prefix).await?.iter().any(|key| {
            key.strip_prefix(&prefix)
                .and_then(|start| start.parse::<i64>().ok())
                .is_some_and(|start| (from..to).contains(&start))
        }))
    }

    pub async fn rules(&self, series: &SeriesKey) -> Result<SeriesRules, StoreError> {
        let key = format!("rules/{series}");
        match self.store.get(&key).await? {
            Some(bytes) => parse(&key, &bytes),
            None => Ok(SeriesRules::default()),
        }
    }

    pub async fn put_rules(
        &self,
        series: &SeriesKey,
        rules: &SeriesRules,
    ) -> Result<(), StoreError> {
        self.store
            .put(&format!("rules/{series}"), json(rules))
            .await
    }
}
