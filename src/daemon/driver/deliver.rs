//! Delivery of a committed window's outbox to each sink, step by step, saving progress after
//! each.

use super::*;

/// The sinks that failed for an earlier window in this pass: later windows wait for them, so
/// that each sink gets a series' windows in order, and go on to the others.
#[derive(Debug, Default)]
pub(super) struct Blocked {
    files: bool,
    report: bool,
    metrics: bool,
    messages: bool,
}

/// Delivers a committed window's outbox, step by step, saving progress after each (the local
/// files' progress goes with the next save: writing them twice does no harm). No sink waits
/// for another, except that alerts wait up to `sinks.report_wait` for the report they
/// link to, then go without the links. A failed step is retried on the next tick.
pub(super) async fn deliver(
    shared: &Shared,
    sinks: &Sinks,
    series: &SeriesKey,
    start: i64,
    blocked: &mut Blocked,
) -> Result<(), RunError> {
    let durable = &shared.durable;
    let Some(outbox) = durable.outbox(series, start).await? else {
        return Ok(());
    };
    // The finaliser may have stopped between committing and saving the rules' state.
    let rules = durable.rules(series).await?;
    if rules.behind(&outbox.rules_after) {
        durable.put_rules(series, &outbox.rules_after).await?;
    }
    deliver_committed(shared, sinks, series, start, outbox, blocked).await
}

/// Delivers an outbox in hand: one this pass committed (and saved the rules' state after), or
/// one [`deliver`] read.
pub(super) async fn deliver_committed(
    shared: &Shared,
    sinks: &Sinks,
    series: &SeriesKey,
    start: i64,
    mut outbox: WindowOutbox,
    blocked: &mut Blocked,
) -> Result<(), RunError> {
    let durable = &shared.durable;
    let window = outbox.relative_dir.clone();
    let end = outbox.end;
    let attempt = |sink: Sink, outcome: events::Delivery, error: Option<&str>| {
        events::emit(Event::Delivered {
            sink,
            outcome,
            window: &window,
            lag_seconds: (now_seconds() - end) as f64,
            error,
        });
    };
    // The sinks do not wait for one another: files, report and metrics go side by side, each
    // logged as it completes, and the progress is saved once.
    let files = async {
        if (outbox.files_done && outbox.actions.is_empty()) || blocked.files {
            return None;
        }
        Some(match write_local(shared, &outbox).await {
            Ok(()) => {
                if !outbox.files_done {
                    attempt(Sink::Files, events::Delivery::Delivered, None);
                }
                true
            }
            Err(error) => {
                let error = error.to_string();
                attempt(Sink::Files, events::Delivery::Retrying, Some(&error));
                false
            }
        })
    };
    let report = async {
        if outbox.report_done || blocked.report {
            return None;
        }
        let Some(sink) = &sinks.s3_report else {
            return Some(Report::Written);
        };
        Some(
            match sink.write(&outbox.relative_dir, &outbox.report_files).await {
                Ok(()) => {
                    attempt(Sink::S3Report, events::Delivery::Delivered, None);
                    Report::Written
                }
                Err(error) if error.permanent => {
                    attempt(
                        Sink::S3Report,
                        events::Delivery::Failed,
                        Some(&format!(
                            "{} (check sinks.s3_report_uri and s3:PutObject); given up, its alerts go without links",
                            error.message
                        )),
                    );
                    Report::GivenUp
                }
                Err(error) => {
                    attempt(
                        Sink::S3Report,
                        events::Delivery::Retrying,
                        Some(&error.message),
                    );
                    Report::Retry
                }
            },
        )
    };
    let metrics = async {
        if outbox.metrics_done || blocked.metrics {
            return None;
        }
        let Some(sink) = &sinks.cloudwatch else {
            return Some(true);
        };
        Some(
            match sink
                .publish(outbox.family, outbox.endpoint.as_deref(), &outbox.metrics)
                .await
            {
                Ok(()) => {
                    attempt(Sink::CloudWatch, events::Delivery::Delivered, None);
                    true
                }
                Err(error) => {
                    attempt(Sink::CloudWatch, events::Delivery::Retrying, Some(&error));
                    false
                }
            },
        )
    };
    let (files, report, metrics) = tokio::join!(files, report, metrics);
    // Blocks a failed sink for the series' later windows.
    match files {
        Some(true) => {
            outbox.files_done = true;
            outbox.actions.clear();
        }
        Some(false) => blocked.files = true,
        None => {}
    }
    let saved = (outbox.report_done, outbox.metrics_done);
    match report {
        Some(Report::Written) => outbox.report_done = true,
        Some(Report::GivenUp) => {
            outbox.report_done = true;
            outbox.report_failed = true;
        }
        Some(Report::Retry) => blocked.report = true,
        None => {}
    }
    match metrics {
        Some(true) => outbox.metrics_done = true,
        Some(false) => blocked.metrics = true,
        None => {}
    }
    // The local files' progress goes with this save (writing them twice does no harm).
    if (outbox.report_done, outbox.metrics_done) != saved {
        durable.save_outbox(series, start, &outbox).await?;
    }
    let waited = now_seconds() - outbox.committed_at;
    if !outbox.report_done && waited < shared.config.sinks.report_wait.as_secs() as i64 {
        // Later windows' alerts wait behind this one's, to keep their order.
        blocked.messages = true;
    }
    let linked = outbox.report_done && !outbox.report_failed;
    let Some(sink) = &sinks.messages else {
        if outbox.messages_sent < outbox.messages.len() {
            tracing::warn!(
                window,
                messages = outbox.messages.len() - outbox.messages_sent,
                "messages not sent: embedded mode sends none (they are in actions.jsonl)"
            );
            outbox.messages_sent = outbox.messages.len();
        }
        return finish(durable, series, start, &outbox).await;
    };
    while !blocked.messages
        && let Some(message) = outbox.messages.get(outbox.messages_sent)
    {
        let message = if linked {
            message.clone()
        } else {
            message.without_report_links()
        };
        if let Err(error) = sink.send(&message).await {
            attempt(Sink::Messages, events::Delivery::Retrying, Some(&error));
            blocked.messages = true;
            break;
        }
        attempt(Sink::Messages, events::Delivery::Delivered, None);
        outbox.messages_sent += 1;
        // A crash before this write sends the message again: at least once, and the receiver
        // deduplicates by its key.
        durable.save_outbox(series, start, &outbox).await?;
    }
    finish(durable, series, start, &outbox).await
}

/// What the S3 report step came to.
enum Report {
    /// Written, or there is no report sink.
    Written,
    /// Refused for good (e.g. the bucket is gone): the alerts go without links.
    GivenUp,
    Retry,
}

/// Writes the window's files (unless written) and appends its actions to the output directory,
/// on a blocking thread: files and their fsyncs stay off the async workers the pollers and
/// heartbeats share.
async fn write_local(shared: &Shared, outbox: &WindowOutbox) -> Result<(), RunError> {
    let output = shared.config.output.directory.clone();
    let dir = output.join(&outbox.relative_dir);
    let files = match outbox.files_done {
        true => Vec::new(),
        false => outbox.report_files.clone(),
    };
    let actions = outbox.actions.clone();
    tokio::task::spawn_blocking(move || {
        crate::sinks::file::write_window_files(&dir, &files)?;
        append_action_lines(&output.join(ACTIONS_FILE), &actions)
    })
    .await
    .expect("writing files does not panic")
}

/// Retires the outbox once every sink has what it should.
async fn finish(
    durable: &Durable,
    series: &SeriesKey,
    start: i64,
    outbox: &WindowOutbox,
) -> Result<(), RunError> {
    if outbox.files_done
        && outbox.actions.is_empty()
        && outbox.report_done
        && outbox.metrics_done
        && outbox.messages_sent == outbox.messages.len()
    {
        durable.retire(series, start, outbox).await?;
        tracing::info!(%series, start, "window delivered to every sink");
    }
    Ok(())
}
