//! What the finaliser does in one pass, decided without any I/O: a pure function of the state
//! store's listing (per series, the windows marked open and the committed windows still
//! to deliver), the rules' progress per series, and the watermark. The driver does the I/O
//! around it: it lists, calls [`plan`], and for each series in the plan takes the lease and
//! carries the plan out.

use std::collections::BTreeMap;

use super::state::{SeriesKey, SeriesWork};

/// One series' work in a pass, in the order it is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SeriesPlan {
    pub series: SeriesKey,
    /// Committed windows (their starts) to deliver, oldest first.
    pub deliver: Vec<i64>,
    /// Windows with parts that the watermark passed, oldest first.
    pub finalise: Vec<i64>,
    /// A series with rules but no data: the start of the last window, up to which its silent
    /// windows are evaluated (so `no_data` fires and reminders go out).
    pub silent_until: Option<i64>,
    /// Label files to fold into the series' join first, in arrival order.
    pub labels: Vec<String>,
}

/// The event time up to which windows may close: the newest event time recorded (by any
/// replica) or the clock, whichever is later — but the clock only as far as the input has been
/// read, so a stuck queue never makes windows look empty — less the allowed lateness.
pub(super) fn watermark(
    newest_event: Option<i64>,
    now: i64,
    read_through: i64,
    lateness: i64,
) -> i64 {
    newest_event
        .unwrap_or(i64::MIN)
        .max(now.min(read_through))
        .saturating_sub(lateness)
}

/// The pass: for each series with something to do, what. `evaluated_through` gives, for the
/// series with rules, the end of the last window the rules saw (`None` for none yet); a series
/// with neither parts nor outboxes is there only because it has rules. `label_lateness` gives
/// how much longer a series' windows wait (for their labels) after the watermark passed them.
pub(super) fn plan(
    work: BTreeMap<SeriesKey, SeriesWork>,
    evaluated_through: &BTreeMap<SeriesKey, Option<i64>>,
    watermark: i64,
    size: i64,
    label_lateness: impl Fn(&SeriesKey) -> i64,
) -> Vec<SeriesPlan> {
    // Saturating: before the first receive and with no event time yet, the watermark is
    // i64::MIN.
    let through = watermark.div_euclid(size).saturating_mul(size);
    work.into_iter()
        .filter_map(|(series, work)| {
            let silent = work.windows.is_empty() && work.outboxes.is_empty();
            let wait = size.saturating_add(label_lateness(&series));
            let finalise: Vec<i64> = (work.windows.into_iter())
                .filter(|start| start.saturating_add(wait) <= watermark)
                .collect();
            // With no part stored anywhere in the series, the windows after the rules' last
            // one up to the watermark had no data.
            let silence_due = silent
                && evaluated_through
                    .get(&series)
                    .copied()
                    .flatten()
                    .is_some_and(|t| t < through);
            let plan = SeriesPlan {
                series,
                deliver: work.outboxes,
                finalise,
                silent_until: silence_due.then(|| through - size),
                labels: work.labels,
            };
            let idle =
                plan.deliver.is_empty() && plan.finalise.is_empty() && plan.labels.is_empty();
            (!idle || silence_due).then_some(plan)
        })
        .collect()
}

/// The watermark at which the next window of `work` closes, if one is waiting: the earliest
/// end (plus its label lateness) of a window with parts that `watermark` has not passed. The
/// finaliser wakes when the clock brings the watermark there, instead of at its next tick.
pub(super) fn next_close(
    work: &BTreeMap<SeriesKey, SeriesWork>,
    watermark: i64,
    size: i64,
    label_lateness: impl Fn(&SeriesKey) -> i64,
) -> Option<i64> {
    (work.iter())
        .flat_map(|(series, work)| {
            let wait = size.saturating_add(label_lateness(series));
            (work.windows.iter()).map(move |start| start.saturating_add(wait))
        })
        .filter(|close| *close > watermark)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3600;

    fn series(monitor_and_endpoint: &str) -> SeriesKey {
        let (monitor, endpoint) = monitor_and_endpoint.split_once('/').unwrap();
        SeriesKey::new(monitor, Some(endpoint))
    }

    fn work(outboxes: &[i64], windows: &[i64]) -> SeriesWork {
        SeriesWork {
            outboxes: outboxes.to_vec(),
            labels: Vec::new(),
            windows: windows.iter().copied().collect(),
        }
    }

    #[test]
    fn the_next_close_is_the_earliest_window_end_the_watermark_has_not_passed() {
        let listing = BTreeMap::from([
            (series("m/a"), work(&[], &[0, HOUR])),
            (series("labelled/b"), work(&[], &[0])),
            (series("m/idle"), work(&[0], &[])),
        ]);
        let label_lateness = |s: &SeriesKey| if s.monitor == "labelled" { 2 * HOUR } else { 0 };
        // At HOUR the first window of m/a closes now; next, its second one at 2 h (before the
        // labelled window, which waits for labels until 3 h).
        assert_eq!(
            next_close(&listing, HOUR, HOUR, label_lateness),
            Some(2 * HOUR)
        );
        assert_eq!(
            next_close(&listing, 2 * HOUR, HOUR, label_lateness),
            Some(3 * HOUR)
        );
        assert_eq!(next_close(&listing, 3 * HOUR, HOUR, label_lateness), None);
    }

    #[test]
    fn only_windows_the_watermark_passed_are_finalised() {
        let listing = BTreeMap::from([(series("m/ep"), work(&[], &[0, HOUR, 2 * HOUR]))]);
        // The second window ends exactly at the watermark: it closes; the third is open.
        let plans = plan(listing, &BTreeMap::new(), 2 * HOUR, HOUR, |_| 0);
        assert_eq!(
            plans,
            [SeriesPlan {
                series: series("m/ep"),
                deliver: vec![],
                finalise: vec![0, HOUR],
                silent_until: None,
                labels: vec![],
            }]
        );
    }

    #[test]
    fn a_label_joined_series_waits_its_label_lateness_and_label_files_make_work() {
        let joined = |s: &SeriesKey| if s.monitor == "mq" { 600 } else { 0 };
        let listing = BTreeMap::from([
            (series("dq/ep"), work(&[], &[0])),
            (series("mq/ep"), work(&[], &[0])),
        ]);
        // At the window's end plus 599 s only the data-quality window closes.
        let plans = plan(listing, &BTreeMap::new(), HOUR + 599, HOUR, joined);
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].series, series("dq/ep"));
        let listing = BTreeMap::from([(series("mq/ep"), work(&[], &[0]))]);
        let plans = plan(listing, &BTreeMap::new(), HOUR + 600, HOUR, joined);
        assert_eq!(plans[0].finalise, [0]);
        // Label files alone are work: they are folded in at once.
        let mut labels_only = SeriesWork::default();
        labels_only.labels.push("000000003600-x".into());
        let plans = plan(
            BTreeMap::from([(series("mq/ep"), labels_only)]),
            &BTreeMap::new(),
            0,
            HOUR,
            joined,
        );
        assert_eq!(plans[0].labels, ["000000003600-x"]);
        assert!(plans[0].finalise.is_empty());
    }

    #[test]
    fn two_series_each_get_their_own_work_and_idle_ones_none() {
        let listing = BTreeMap::from([
            (series("m/a"), work(&[0], &[HOUR])),
            (series("m/b"), work(&[], &[5 * HOUR])),
        ]);
        let plans = plan(listing, &BTreeMap::new(), 3 * HOUR, HOUR, |_| 0);
        assert_eq!(plans.len(), 1, "m/b's window is still open: {plans:?}");
        assert_eq!(plans[0].series, series("m/a"));
        assert_eq!(plans[0].deliver, [0]);
        assert_eq!(plans[0].finalise, [HOUR]);
    }

    #[test]
    fn a_silent_series_is_evaluated_up_to_the_last_passed_window_once() {
        let listing = BTreeMap::from([(series("m/quiet"), SeriesWork::default())]);
        // The rules saw windows up to 02:00; the watermark is at 05:30: 02:00–05:00 were silent.
        let seen = BTreeMap::from([(series("m/quiet"), Some(2 * HOUR))]);
        let plans = plan(listing, &seen, 5 * HOUR + HOUR / 2, HOUR, |_| 0);
        assert_eq!(plans[0].silent_until, Some(4 * HOUR));
        // Once they saw up to 05:00, there is nothing to do.
        let listing = BTreeMap::from([(series("m/quiet"), SeriesWork::default())]);
        let seen = BTreeMap::from([(series("m/quiet"), Some(5 * HOUR))]);
        assert!(plan(listing, &seen, 5 * HOUR + HOUR / 2, HOUR, |_| 0).is_empty());
    }

    #[test]
    fn rules_that_never_ran_or_a_series_with_data_get_no_silent_windows() {
        let listing = BTreeMap::from([(series("m/new"), SeriesWork::default())]);
        let seen = BTreeMap::from([(series("m/new"), None)]);
        assert!(plan(listing, &seen, 10 * HOUR, HOUR, |_| 0).is_empty());
        // Parts waiting in an open window: the series is not silent.
        let listing = BTreeMap::from([(series("m/busy"), work(&[], &[9 * HOUR]))]);
        let seen = BTreeMap::from([(series("m/busy"), Some(HOUR))]);
        assert!(plan(listing, &seen, 9 * HOUR + 60, HOUR, |_| 0).is_empty());
    }

    #[test]
    fn a_restart_mid_window_finds_the_delivery_before_the_next_window() {
        // Killed after committing 00:00 and before delivering it; 01:00 has passed since.
        let listing = BTreeMap::from([(series("m/ep"), work(&[0], &[HOUR]))]);
        let plans = plan(listing, &BTreeMap::new(), 2 * HOUR + 1, HOUR, |_| 0);
        assert_eq!(plans[0].deliver, [0]);
        assert_eq!(plans[0].finalise, [HOUR]);
    }

    #[test]
    fn the_watermark_follows_events_and_the_clock_only_as_far_as_input_was_read() {
        // Events newer than the clock lead.
        assert_eq!(watermark(Some(1_000), 500, 500, 10), 990);
        // The clock leads events only as far as the queue has been read.
        assert_eq!(watermark(Some(100), 1_000, 400, 10), 390);
        assert_eq!(watermark(None, 1_000, 1_000, 10), 990);
        // Before anything was read or seen: nothing closes, and nothing overflows.
        assert_eq!(watermark(None, 1_000, i64::MIN, 10), i64::MIN);
        assert!(
            plan(
                BTreeMap::from([(series("m/ep"), work(&[], &[0]))]),
                &BTreeMap::new(),
                i64::MIN,
                HOUR,
                |_| 0
            )
            .is_empty()
        );
    }
}
