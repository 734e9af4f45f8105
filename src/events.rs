//! What the daemon does, said once per event: each notable event is one structured log line and
//! one metric update, both from [`Telemetry::emit`], so the log and `/metrics` never disagree
//! and a new event cannot get one without the other.
//!
//! Values that come from outside (object keys, paths, error texts) are string fields, which the
//! text log writes quoted and escaped and the JSON log as JSON strings: a forged key cannot
//! write a fake log line.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder, exponential_buckets,
};

/// Where a window's results go; one label value per sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sink {
    Files,
    S3Report,
    CloudWatch,
    Messages,
}

impl Sink {
    pub fn as_str(self) -> &'static str {
        match self {
            Sink::Files => "files",
            Sink::S3Report => "s3_report",
            Sink::CloudWatch => "cloudwatch",
            Sink::Messages => "messages",
        }
    }
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    /// Failed in a way a later attempt may fix (an outage, throttling).
    Retrying,
    /// Failed in a way no retry fixes (a missing bucket, no permission): a person must act.
    Failed,
}

impl Delivery {
    fn as_str(self) -> &'static str {
        match self {
            Delivery::Delivered => "delivered",
            Delivery::Retrying => "retrying",
            Delivery::Failed => "failed",
        }
    }
}

/// One notable thing the daemon did. `source` names an object (`s3://bucket/key` or a path).
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// An object was announced (an S3 event) or found (a directory scan).
    ObjectReceived {
        source: &'a str,
    },
    /// An object was not read: forged bucket or prefix, a key S3 cannot have, no monitor.
    ObjectRefused {
        source: &'a str,
        reason: &'a str,
    },
    /// An object was read to its end and decoded.
    ObjectRead {
        source: &'a str,
        monitor: &'a str,
        rows: u64,
        seconds: f64,
    },
    /// An object could not be read or decoded; it goes to the dead-letter path.
    ObjectFailed {
        source: &'a str,
        error: &'a str,
    },
    /// An object already in the ledger (a redelivered message, a second event for the same
    /// upload, or another replica that read it meanwhile): not counted again.
    ObjectDuplicate {
        source: &'a str,
    },
    /// An object's partial windows and ledger entry are durable.
    ObjectRecorded {
        source: &'a str,
        windows: usize,
    },
    /// Records of one object skipped as malformed, by reason.
    RecordsQuarantined {
        source: &'a str,
        reason: &'a str,
        count: u64,
    },
    /// Rows that arrived for a window already finalised.
    LateRows {
        monitor: &'a str,
        count: u64,
    },
    /// A label file folded into its series' join: what became of its labels.
    LabelsAbsorbed {
        monitor: &'a str,
        endpoint: Option<&'a str>,
        name: &'a str,
        absorbed: &'a crate::model_quality::Absorbed,
    },
    /// A label-joined window's predictions and labels, as the join left them when the window
    /// closed for labels (late, orphan and duplicate labels: those since the last window).
    LabelJoin {
        monitor: &'a str,
        endpoint: Option<&'a str>,
        window: &'a str,
        counts: &'a crate::model_quality::JoinCounts,
    },
    /// A window's merge left out what would have taken it past its limits:
    /// `limits.max_window_rows` (rows of a label-joined window) or `limits.max_columns`.
    WindowLimited {
        monitor: &'a str,
        endpoint: Option<&'a str>,
        /// The window's start, in seconds since the epoch.
        start: i64,
        refused: &'a crate::window::Refused,
    },
    /// A label-joined window's next revision (`restate = true`): its late labels folded in.
    WindowRestated {
        monitor: &'a str,
        endpoint: Option<&'a str>,
        /// The revision's folder (relative).
        window: &'a str,
        revision: u32,
        /// Its labelled predictions now.
        labelled: u64,
        violations: usize,
    },
    /// A window was closed and its results computed.
    WindowFinalised {
        monitor: &'a str,
        endpoint: Option<&'a str>,
        /// The window's folder (relative), which names its monitor, endpoint and start.
        window: &'a str,
        rows: u64,
        violations: usize,
    },
    /// One delivery attempt of a window's results (`window`: its folder) to one sink;
    /// `lag_seconds` is the time from the window's end to this attempt.
    Delivered {
        sink: Sink,
        outcome: Delivery,
        window: &'a str,
        lag_seconds: f64,
        error: Option<&'a str>,
    },
    /// A periodic compliance report (`[report] every`) was written (`error`: it failed).
    ReportWritten {
        monitor: &'a str,
        /// Its folder below the output directory.
        report: &'a str,
        error: Option<&'a str>,
    },
    LeaseTaken {
        series: &'a str,
    },
    LeaseLost {
        series: &'a str,
    },
    /// Windows committed and not yet delivered everywhere.
    OutboxDepth {
        windows: usize,
    },
    /// Windows open (accumulating rows) in this process.
    OpenWindows {
        windows: usize,
    },
    /// A receive from the queue failed (an outage, a stalled connection): nothing is read and
    /// no window closes on the clock until one succeeds. `stuck_seconds`: since the input was
    /// last fully read.
    InputStuck {
        error: &'a str,
        stuck_seconds: Option<i64>,
    },
    /// Polling paused (`true`) or resumed because the outbox is full or has room again.
    Backpressure {
        on: bool,
    },
}

/// The metrics behind `/metrics` and the readiness behind `/readyz`.
pub struct Telemetry {
    registry: Registry,
    objects: IntCounterVec,
    refusals: IntCounterVec,
    rows: IntCounterVec,
    quarantined: IntCounterVec,
    late_rows: IntCounterVec,
    label_join: IntCounterVec,
    labels_absorbed: IntCounterVec,
    windows_restated: IntCounterVec,
    window_rows_refused: IntCounterVec,
    window_columns_refused: IntCounterVec,
    windows: IntCounterVec,
    windows_with_violations: IntCounterVec,
    deliveries: IntCounterVec,
    leases: IntCounterVec,
    reports: IntCounterVec,
    state_operations: IntCounterVec,
    receive_failures: IntCounter,
    outbox_depth: IntGauge,
    open_windows: IntGauge,
    backpressure: IntGauge,
    since_delivery: GaugeVec,
    object_read_seconds: Histogram,
    delivery_lag_seconds: HistogramVec,
    /// Unix seconds of each sink's last successful delivery, turned into "seconds since" when
    /// scraped.
    last_delivery: Mutex<BTreeMap<Sink, f64>>,
    readiness: Mutex<BTreeMap<&'static str, Result<(), String>>>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

/// Registers `collector` with `registry` and hands it back. Names are constants, so a failure
/// is a programming error.
fn register<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    collector: C,
) -> C {
    registry
        .register(Box::new(collector.clone()))
        .expect("metric names are unique and valid");
    collector
}

fn counters(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let counters = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric");
    register(registry, counters)
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(registry, IntGauge::new(name, help).expect("a valid metric"))
}

fn histogram(name: &str, help: &str, start: f64, count: usize) -> HistogramOpts {
    let buckets = exponential_buckets(start, 2.0, count).expect("valid buckets");
    HistogramOpts::new(name, help).buckets(buckets)
}

impl Telemetry {
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("driftd".into()), None).expect("a valid metric prefix");
        let r = &registry;
        let build_info = register(
            r,
            IntGaugeVec::new(Opts::new("build_info", "driftd's version"), &["version"])
                .expect("a valid metric"),
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        Self {
            objects: counters(
                r,
                "objects_total",
                "Objects by event: received, refused, read, failed, duplicate, recorded",
                &["event"],
            ),
            refusals: counters(
                r,
                "objects_refused_total",
                "Objects not read, by reason",
                &["reason"],
            ),
            rows: counters(r, "rows_total", "Rows read into windows", &["monitor"]),
            quarantined: counters(
                r,
                "records_quarantined_total",
                "Malformed records skipped, by reason",
                &["reason"],
            ),
            late_rows: counters(
                r,
                "late_rows_total",
                "Rows that arrived for a window already finalised",
                &["monitor"],
            ),
            label_join: counters(
                r,
                "label_join_total",
                "Predictions and labels of label-joined windows, by what the join made of them",
                &["monitor", "outcome"],
            ),
            labels_absorbed: counters(
                r,
                "labels_absorbed_total",
                "Labels of label files folded into a series' join, by what became of them",
                &["monitor", "outcome"],
            ),
            windows_restated: counters(
                r,
                "windows_restated_total",
                "Revisions of label-joined windows restated with late labels",
                &["monitor"],
            ),
            window_rows_refused: counters(
                r,
                "window_rows_refused_total",
                "Rows of label-joined windows refused past limits.max_window_rows",
                &["monitor"],
            ),
            window_columns_refused: counters(
                r,
                "window_columns_refused_total",
                "Columns left out of windows past limits.max_columns",
                &["monitor"],
            ),
            windows: counters(
                r,
                "windows_finalised_total",
                "Windows finalised",
                &["monitor"],
            ),
            windows_with_violations: counters(
                r,
                "windows_with_violations_total",
                "Windows finalised with at least one violation",
                &["monitor"],
            ),
            deliveries: counters(
                r,
                "deliveries_total",
                "Delivery attempts by sink and outcome (delivered, retrying, failed)",
                &["sink", "outcome"],
            ),
            leases: counters(
                r,
                "leases_total",
                "Series leases taken and lost",
                &["event"],
            ),
            reports: counters(
                r,
                "reports_total",
                "Periodic compliance reports, by monitor and outcome",
                &["monitor", "outcome"],
            ),
            state_operations: counters(
                r,
                "state_operations_total",
                "State-store operations (one S3 request each, but a list of more than 1000 keys), by operation and key area (ledger, parts, fence, ...)",
                &["op", "area"],
            ),
            receive_failures: register(
                r,
                IntCounter::new(
                    "receive_failures_total",
                    "Receives from the queue that failed (the input is stuck meanwhile)",
                )
                .expect("a valid metric"),
            ),
            outbox_depth: gauge(
                r,
                "outbox_windows",
                "Windows committed and not yet delivered to every sink",
            ),
            open_windows: gauge(
                r,
                "open_windows",
                "Windows accumulating rows in this process",
            ),
            backpressure: gauge(
                r,
                "backpressure",
                "1 while polling is paused because the outbox is full",
            ),
            since_delivery: register(
                r,
                GaugeVec::new(
                    Opts::new(
                        "sink_seconds_since_last_delivery",
                        "Seconds since the last successful delivery, per sink",
                    ),
                    &["sink"],
                )
                .expect("a valid metric"),
            ),
            // 5 ms … 40 s.
            object_read_seconds: register(
                r,
                Histogram::with_opts(histogram(
                    "object_read_seconds",
                    "Time to read and decode one object",
                    0.005,
                    14,
                ))
                .expect("a valid metric"),
            ),
            // 1 s … 9 h: a window is delivered seconds after its lateness allowance ends, or
            // hours later after a sink outage.
            delivery_lag_seconds: register(
                r,
                HistogramVec::new(
                    histogram(
                        "delivery_lag_seconds",
                        "From a window's end to its delivery, per sink",
                        1.0,
                        16,
                    ),
                    &["sink"],
                )
                .expect("a valid metric"),
            ),
            registry,
            last_delivery: Mutex::new(BTreeMap::new()),
            readiness: Mutex::new(BTreeMap::new()),
        }
    }

    /// Logs the event as one line and updates its metric.
    pub fn emit(&self, event: Event) {
        match event {
            Event::ObjectReceived { source } => {
                tracing::debug!(event = "object_received", source, "object received");
                self.objects.with_label_values(&["received"]).inc();
            }
            Event::ObjectRefused { source, reason } => {
                tracing::warn!(event = "object_refused", source, reason, "object refused");
                self.objects.with_label_values(&["refused"]).inc();
                self.refusals.with_label_values(&[reason]).inc();
            }
            Event::ObjectRead {
                source,
                monitor,
                rows,
                seconds,
            } => {
                tracing::info!(
                    event = "object_read",
                    source,
                    monitor,
                    rows,
                    seconds,
                    "object read"
                );
                self.objects.with_label_values(&["read"]).inc();
                self.rows.with_label_values(&[monitor]).inc_by(rows);
                self.object_read_seconds.observe(seconds);
            }
            Event::ObjectFailed { source, error } => {
                tracing::error!(
                    event = "object_failed",
                    source,
                    error,
                    "object failed; to the dead-letter path"
                );
                self.objects.with_label_values(&["failed"]).inc();
            }
            Event::ObjectDuplicate { source } => {
                tracing::info!(
                    event = "object_duplicate",
                    source,
                    "object already counted; not counted again"
                );
                self.objects.with_label_values(&["duplicate"]).inc();
            }
            Event::ObjectRecorded { source, windows } => {
                tracing::info!(
                    event = "object_recorded",
                    source,
                    windows,
                    "object recorded"
                );
                self.objects.with_label_values(&["recorded"]).inc();
            }
            Event::RecordsQuarantined {
                source,
                reason,
                count,
            } => {
                tracing::warn!(
                    event = "records_quarantined",
                    source,
                    reason,
                    count,
                    "malformed records skipped"
                );
                self.quarantined.with_label_values(&[reason]).inc_by(count);
            }
            Event::LateRows { monitor, count } => {
                tracing::warn!(
                    event = "late_rows",
                    monitor,
                    count,
                    "rows for a finalised window"
                );
                self.late_rows.with_label_values(&[monitor]).inc_by(count);
            }
            Event::LabelsAbsorbed {
                monitor,
                endpoint,
                name,
                absorbed,
            } => {
                tracing::info!(
                    event = "labels_absorbed",
                    monitor,
                    endpoint,
                    name,
                    waiting = absorbed.waiting,
                    late = absorbed.late,
                    duplicates = absorbed.duplicates,
                    refused = absorbed.refused,
                    "label file folded into the join"
                );
                for (outcome, count) in [
                    ("waiting", absorbed.waiting),
                    ("late", absorbed.late),
                    ("duplicate", absorbed.duplicates),
                    ("refused", absorbed.refused),
                ] {
                    self.labels_absorbed
                        .with_label_values(&[monitor, outcome])
                        .inc_by(count);
                }
            }
            Event::WindowLimited {
                monitor,
                endpoint,
                start,
                refused,
            } => {
                tracing::warn!(
                    event = "window_limited",
                    monitor,
                    endpoint,
                    start,
                    rows_refused = refused.rows,
                    columns_refused = refused.columns,
                    "a window's merge refused what would take it past limits.max_window_rows (rows) or limits.max_columns (columns)"
                );
                self.window_rows_refused
                    .with_label_values(&[monitor])
                    .inc_by(refused.rows);
                self.window_columns_refused
                    .with_label_values(&[monitor])
                    .inc_by(refused.columns);
            }
            Event::WindowRestated {
                monitor,
                endpoint,
                window,
                revision,
                labelled,
                violations,
            } => {
                tracing::info!(
                    event = "window_restated",
                    monitor,
                    endpoint,
                    window,
                    revision,
                    labelled,
                    violations,
                    "window restated with late labels"
                );
                self.windows_restated.with_label_values(&[monitor]).inc();
            }
            Event::LabelJoin {
                monitor,
                endpoint,
                window,
                counts,
            } => {
                tracing::info!(
                    event = "label_join",
                    monitor,
                    endpoint,
                    window,
                    predictions = counts.predictions,
                    labelled = counts.labelled,
                    unlabelled = counts.unlabelled,
                    late_labels = counts.late_labels,
                    orphan_labels = counts.orphan_labels,
                    duplicate_labels = counts.duplicate_labels,
                    skipped_rows = counts.skipped_rows,
                    "labels joined"
                );
                for (outcome, count) in [
                    ("labelled", counts.labelled),
                    ("unlabelled", counts.unlabelled),
                    ("late", counts.late_labels),
                    ("orphan", counts.orphan_labels),
                    ("duplicate", counts.duplicate_labels),
                    ("skipped", counts.skipped_rows),
                ] {
                    self.label_join
                        .with_label_values(&[monitor, outcome])
                        .inc_by(count);
                }
            }
            Event::ReportWritten {
                monitor,
                report,
                error,
            } => {
                match error {
                    None => tracing::info!(
                        event = "report_written",
                        monitor,
                        report,
                        "compliance report written"
                    ),
                    Some(error) => tracing::error!(
                        event = "report_failed",
                        monitor,
                        report,
                        error,
                        "compliance report failed; make it with `driftd report bias`"
                    ),
                }
                let outcome = if error.is_none() { "written" } else { "failed" };
                self.reports.with_label_values(&[monitor, outcome]).inc();
            }
            Event::WindowFinalised {
                monitor,
                endpoint,
                window,
                rows,
                violations,
            } => {
                tracing::info!(
                    event = "window_finalised",
                    monitor,
                    endpoint = endpoint.unwrap_or(""),
                    window,
                    rows,
                    violations,
                    "window finalised"
                );
                self.windows.with_label_values(&[monitor]).inc();
                if violations > 0 {
                    self.windows_with_violations
                        .with_label_values(&[monitor])
                        .inc();
                }
            }
            Event::Delivered {
                sink,
                outcome,
                window,
                lag_seconds,
                error,
            } => {
                match outcome {
                    Delivery::Delivered => {
                        tracing::info!(
                            event = "delivered",
                            sink = sink.as_str(),
                            window,
                            lag_seconds,
                            "window delivered"
                        );
                        self.delivery_lag_seconds
                            .with_label_values(&[sink.as_str()])
                            .observe(lag_seconds);
                        self.last_delivery
                            .lock()
                            .expect("telemetry lock")
                            .insert(sink, unix_now());
                    }
                    Delivery::Retrying => {
                        tracing::warn!(
                            event = "delivery_retrying",
                            sink = sink.as_str(),
                            window,
                            error = error.unwrap_or(""),
                            "delivery failed; will retry"
                        );
                    }
                    Delivery::Failed => {
                        tracing::error!(
                            event = "delivery_failed",
                            sink = sink.as_str(),
                            window,
                            error = error.unwrap_or(""),
                            "delivery failed; a retry will not help"
                        );
                    }
                }
                self.deliveries
                    .with_label_values(&[sink.as_str(), outcome.as_str()])
                    .inc();
            }
            Event::LeaseTaken { series } => {
                tracing::debug!(event = "lease_taken", series, "lease taken");
                self.leases.with_label_values(&["taken"]).inc();
            }
            Event::LeaseLost { series } => {
                tracing::warn!(event = "lease_lost", series, "lease lost");
                self.leases.with_label_values(&["lost"]).inc();
            }
            Event::InputStuck {
                error,
                stuck_seconds,
            } => {
                tracing::error!(
                    event = "input_stuck",
                    error,
                    stuck_seconds,
                    "input is stuck: cannot receive messages; retrying, and no window closes on the clock meanwhile"
                );
                self.receive_failures.inc();
            }
            Event::OutboxDepth { windows } => self.outbox_depth.set(windows as i64),
            Event::OpenWindows { windows } => self.open_windows.set(windows as i64),
            Event::Backpressure { on } => {
                if on {
                    tracing::warn!(event = "backpressure", on, "outbox full; polling paused");
                } else {
                    tracing::info!(
                        event = "backpressure",
                        on,
                        "outbox has room; polling resumed"
                    );
                }
                self.backpressure.set(i64::from(on));
            }
        }
    }

    /// Counts one state-store operation on `key` (or a list of the prefix): by its first
    /// segment, which is one of the state's fixed areas, so the label stays bounded.
    pub fn state_operation(&self, op: &'static str, key: &str) {
        let area = key.split('/').next().unwrap_or_default();
        self.state_operations.with_label_values(&[op, area]).inc();
    }

    /// Records whether one readiness check (`config`, `store`, `queue`, …) passes.
    pub fn set_ready(&self, check: &'static str, status: Result<(), String>) {
        self.readiness
            .lock()
            .expect("telemetry lock")
            .insert(check, status);
    }

    /// `Ok` when every check passed (and at least one was made), else the failing reasons.
    pub fn readiness(&self) -> Result<(), String> {
        let checks = self.readiness.lock().expect("telemetry lock");
        if checks.is_empty() {
            return Err("starting".into());
        }
        let failing: Vec<String> = checks
            .iter()
            .filter_map(|(check, status)| status.as_ref().err().map(|e| format!("{check}: {e}")))
            .collect();
        if failing.is_empty() {
            Ok(())
        } else {
            Err(failing.join("; "))
        }
    }

    /// The counters so far, for `driftd run`'s final line: the same numbers `/metrics` shows.
    pub fn totals(&self) -> Totals {
        let objects = by_label(&self.objects);
        let refusals = by_label(&self.refusals);
        let event = |name: &str| objects.get(name).copied().unwrap_or(0);
        let unrouted = refusals.get("no_monitor").copied().unwrap_or(0);
        Totals {
            objects_recorded: event("recorded"),
            objects_unrouted: unrouted,
            objects_refused: refusals.values().sum::<u64>() - unrouted,
            input_failures: self.receive_failures.get(),
            windows: by_label(&self.windows).values().sum(),
            windows_with_violations: by_label(&self.windows_with_violations).values().sum(),
            late_rows: by_label(&self.late_rows).values().sum(),
            reports_failed: self
                .deliveries
                .with_label_values(&[Sink::S3Report.as_str(), Delivery::Failed.as_str()])
                .get(),
            quarantined: by_label(&self.quarantined),
        }
    }

    /// The metrics in Prometheus' text exposition format (version 0.0.4), which Prometheus,
    /// promtool and OpenMetrics scrapers all read.
    pub fn render(&self) -> String {
        let now = unix_now();
        for (sink, at) in self.last_delivery.lock().expect("telemetry lock").iter() {
            self.since_delivery
                .with_label_values(&[sink.as_str()])
                .set(now - at);
        }
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .expect("the registry's metrics encode")
    }
}

/// What the counters say; see [`Telemetry::totals`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub objects_recorded: u64,
    pub objects_unrouted: u64,
    /// Refused for a reason other than matching no monitor.
    pub objects_refused: u64,
    pub input_failures: u64,
    pub windows: u64,
    pub windows_with_violations: u64,
    pub late_rows: u64,
    pub reports_failed: u64,
    /// Malformed records by reason (`bad_json`, …).
    pub quarantined: BTreeMap<String, u64>,
}

/// A one-label counter family's values by label value.
fn by_label(counters: &IntCounterVec) -> BTreeMap<String, u64> {
    use prometheus::core::Collector;
    counters
        .collect()
        .iter()
        .flat_map(|family| family.get_metric())
        .filter_map(|metric| {
            let label = metric.get_label().first()?.value().to_string();
            Some((label, metric.get_counter().get_value() as u64))
        })
        .collect()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The process's telemetry, shared by the driver and the HTTP endpoint.
pub fn telemetry() -> &'static Telemetry {
    static TELEMETRY: OnceLock<Telemetry> = OnceLock::new();
    TELEMETRY.get_or_init(Telemetry::new)
}

/// Emits `event` to the process's telemetry.
pub fn emit(event: Event) {
    telemetry().emit(event);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    }

    #[test]
    fn each_event_moves_its_metric() {
        let t = Telemetry::new();
        t.emit(Event::ObjectRead {
            source: "s3://b/k",
            monitor: "m",
            rows: 40,
            seconds: 0.02,
        });
        t.emit(Event::ObjectRead {
            source: "s3://b/k2",
            monitor: "m",
            rows: 2,
            seconds: 0.01,
        });
        t.emit(Event::RecordsQuarantined {
            source: "s3://b/k",
            reason: "bad_json",
            count: 3,
        });
        t.emit(Event::Delivered {
            sink: Sink::CloudWatch,
            outcome: Delivery::Retrying,
            window: "w",
            lag_seconds: 5.0,
            error: Some("connection refused"),
        });
        t.emit(Event::OutboxDepth { windows: 7 });
        for refused in [(5, 0), (2, 3)] {
            t.emit(Event::WindowLimited {
                monitor: "m",
                endpoint: None,
                start: 0,
                refused: &crate::window::Refused {
                    rows: refused.0,
                    columns: refused.1,
                },
            });
        }
        let text = t.render();
        for expected in [
            "driftd_window_rows_refused_total{monitor=\"m\"} 7",
            "driftd_window_columns_refused_total{monitor=\"m\"} 3",
            "driftd_objects_total{event=\"read\"} 2",
            "driftd_rows_total{monitor=\"m\"} 42",
            "driftd_records_quarantined_total{reason=\"bad_json\"} 3",
            "driftd_deliveries_total{outcome=\"retrying\",sink=\"cloudwatch\"} 1",
            "driftd_outbox_windows 7",
            "driftd_object_read_seconds_count 2",
        ] {
            let series = expected.rsplit_once(' ').unwrap().0;
            assert_eq!(line(&text, &format!("{series} ")), expected);
        }
        assert!(text.contains("driftd_build_info{version="), "{text}");
    }

    #[test]
    fn readiness_names_every_failing_check() {
        let t = Telemetry::new();
        assert_eq!(t.readiness(), Err("starting".into()));
        t.set_ready("config", Ok(()));
        assert_eq!(t.readiness(), Ok(()));
        t.set_ready("queue", Err("connection refused".into()));
        t.set_ready("store", Err("timed out".into()));
        assert_eq!(
            t.readiness(),
            Err("queue: connection refused; store: timed out".into())
        );
        t.set_ready("queue", Ok(()));
        t.set_ready("store", Ok(()));
        assert_eq!(t.readiness(), Ok(()));
    }
}
