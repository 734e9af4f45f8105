//! The daemon's periodic compliance reports (`[report] every`): once a bias series' period has
//! passed the watermark, the report `driftd report bias` writes for that period, chained to
//! the series' previous one, goes to `{output}/reports/{monitor}/{endpoint or -}/{period}/`
//! and, with an S3 report sink, under its prefix. With a shared (S3) state store, replicas
//! each hold only the windows they finalised, so the report then reads the windows from the
//! S3 report prefix, once the period's windows are delivered there.

use super::*;
use crate::config::MonitorKind;
use crate::daemon::state::ReportProgress;
use crate::report::{self, inputs::WindowSource};

/// Starts a bias series' reports at the period of its first finalised window.
pub(super) async fn note_window(
    shared: &Shared,
    series: &SeriesKey,
    start: i64,
) -> Result<(), StoreError> {
    let Some(every) = period_seconds(shared, series) else {
        return Ok(());
    };
    let progress = ReportProgress {
        next: start.div_euclid(every) * every,
        previous: None,
    };
    shared.durable.start_reports(series, &progress).await
}

/// The report period of `series`, if its monitor is a bias monitor and `[report]` is set.
fn period_seconds(shared: &Shared, series: &SeriesKey) -> Option<i64> {
    let every = shared.config.report.as_ref()?.every.as_secs() as i64;
    shared
        .config
        .monitors
        .iter()
        .any(|m| m.name == series.monitor && m.kind == MonitorKind::Bias)
        .then_some(every)
}

/// Writes the reports of the series' periods that the watermark has passed and whose windows
/// are all finalised (and, reading from S3, delivered). None starts after `newest_event`:
/// `--once` drains with an unbounded watermark.
pub(super) async fn write_due(
    shared: &Arc<Shared>,
    sinks: &Sinks,
    series: &SeriesKey,
    watermark: i64,
    newest_event: Option<i64>,
) -> Result<(), RunError> {
    let (Some(every), Some(settings)) = (period_seconds(shared, series), &shared.config.report)
    else {
        return Ok(());
    };
    let durable = &shared.durable;
    let Some(mut progress) = durable.report_progress(series).await? else {
        return Ok(());
    };
    let from_s3 = shared.config.state.s3_uri.is_some();
    let newest = newest_event.unwrap_or(i64::MIN);
    while progress.next.saturating_add(every) <= watermark && progress.next <= newest {
        let (from, to) = (progress.next, progress.next + every);
        if from_s3 && durable.undelivered_between(series, from, to).await? {
            return Ok(());
        }
        let relative = format!(
            "reports/{}/{}/{}",
            series.monitor,
            series.endpoint.as_deref().unwrap_or("-"),
            time(from).format("%Y-%m-%dT%H%M%SZ")
        );
        let written = {
            let shared = shared.clone();
            let (series, relative, previous) =
                (series.clone(), relative.clone(), progress.previous.clone());
            let windows = from_s3
                .then(|| {
                    shared
                        .config
                        .sinks
                        .s3_report_uri
                        .clone()
                        .map(WindowSource::S3)
                })
                .flatten();
            let (key, min_group_rows) = (settings.sign.clone(), settings.min_group_rows);
            tokio::task::spawn_blocking(move || {
                let out = &shared.config.output.directory;
                report::generate(&report::Request {
                    config_path: &shared.config_path,
                    monitor: &series.monitor,
                    endpoint: series.endpoint.as_deref(),
                    windows: windows.as_ref(),
                    from: time(from),
                    to: time(to),
                    output: &out.join(&relative),
                    html: true,
                    pdf: false,
                    key: key.as_deref(),
                    previous: previous.map(|p| out.join(p)).as_deref(),
                    min_group_rows,
                })
                .map(|_| ())
            })
            .await
            .expect("report generation does not panic")
        };
        match written {
            Ok(()) => {
                upload(shared, sinks, &relative).await;
                events::emit(Event::ReportWritten {
                    monitor: &series.monitor,
                    report: &relative,
                    error: None,
                });
                progress.previous = Some(relative);
            }
            // A period in which nothing arrived has no report; the chain goes on past it.
            Err(error) if error.to_string().starts_with("no windows of") => {}
            Err(error) => events::emit(Event::ReportWritten {
                monitor: &series.monitor,
                report: &relative,
                error: Some(&format!("{error:#}")),
            }),
        }
        progress.next = to;
        durable.put_report_progress(series, &progress).await?;
    }
    Ok(())
}

/// The report's files under the S3 report prefix too, when there is one.
async fn upload(shared: &Shared, sinks: &Sinks, relative: &str) {
    let Some(sink) = &sinks.s3_report else {
        return;
    };
    let dir = shared.config.output.directory.join(relative);
    let files: std::io::Result<Vec<(String, String)>> = (|| {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into();
            files.push((name, std::fs::read_to_string(&path)?));
        }
        files.sort();
        Ok(files)
    })();
    let outcome = match files {
        Ok(files) => sink.write(relative, &files).await.map_err(|e| e.message),
        Err(error) => Err(error.to_string()),
    };
    events::emit(Event::Delivered {
        sink: Sink::S3Report,
        outcome: if outcome.is_ok() {
            events::Delivery::Delivered
        } else {
            events::Delivery::Failed
        },
        window: relative,
        lag_seconds: 0.0,
        error: outcome.as_ref().err().map(String::as_str),
    });
}

fn time(seconds: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(seconds, 0).expect("a window time is in range")
}
