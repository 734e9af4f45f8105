//! The report's data: built from the bias windows of a period, serialized as `report.json` and
//! embedded in `report.html`. Pure: files are read by [`super::inputs`], not here.

use serde::Serialize;

use super::inputs::WindowInput;
use super::stats::{fisher_exact, ratio_interval, wilson, z_score};
use crate::bias::Analysis;
use crate::bias::drift::{bootstrap_interval, flip_test_interval};
use crate::bias::groups::{BiasGroups, Cells, FacetGroups, PairGroups};
use crate::bias::metrics::Metric;
use crate::bias::state::PAIR_CELLS;

/// 2: `intersectional` holds the pair-of-facets tables (it was a sentence saying there were
/// none).
pub const SCHEMA_VERSION: u32 = 2;
/// The four-fifths rule of UGESP 29 CFR 1607.4(D).
pub const FOUR_FIFTHS: f64 = 0.8;
pub const CONFIDENCE: f64 = 0.95;
pub const PERIOD: &str = "period";
pub const FOUR_FIFTHS_CRITERION: &str = "four-fifths rule";
pub const DRIFT_CRITERION: &str = "Clarify bias drift";

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub report_id: String,
    pub monitor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    pub from: String,
    pub to: String,
    pub driftd_version: String,
    pub previous_report: Option<PreviousReport>,
    pub sources: Vec<Source>,
    pub data: Data,
    pub windows: Vec<WindowRow>,
    pub verdicts: Vec<Verdict>,
    pub coverage: Vec<Coverage>,
    /// Scope [`PERIOD`] (all windows' counts summed) first, then one per window.
    pub impact: Vec<ImpactTable>,
    pub intersectional: Intersectional,
    pub performance: Performance,
    pub clarify: Vec<ClarifyRow>,
    pub trends: Vec<Trend>,
    pub violations: Vec<ViolationRow>,
    pub methodology: Vec<String>,
    pub limitations: Vec<String>,
    pub config_text: String,
    pub analysis_config_text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PreviousReport {
    pub report_id: String,
    /// SHA-256 of the previous report's `report.json`.
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Source {
    /// config, analysis_config, baseline or window.
    pub role: String,
    pub path: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Data {
    pub label: String,
    pub label_value_or_threshold: String,
    /// What counts as selected: the predicted label's positive value, or the label's.
    pub outcome: String,
    pub labels_available: bool,
    pub baseline: String,
    pub rows: u64,
    pub min_group_rows: u64,
    pub confidence: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct WindowRow {
    pub start: String,
    pub end: String,
    pub dir: String,
    /// The window's revision the report read (`None`: its first result); a later one restated
    /// the window with late labels (`monitor.restate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u32>,
    /// From `bias_groups.json`; `None` when the window has none (written before driftd kept it).
    pub rows: Option<u64>,
    /// Share of rows with a positive label.
    pub base_rate: Option<f64>,
    pub violations: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub scope: String,
    pub attribute: String,
    pub criterion: String,
    /// within, breach or inconclusive.
    pub verdict: String,
    pub worst_group: Option<String>,
    /// Four-fifths: the worst impact ratio; bias drift: windows in breach.
    pub value: Option<f64>,
    pub reason: String,
    /// Change of `value` since the previous report (period verdicts only).
    pub change: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    pub attribute: String,
    pub groups: Vec<CoverageRow>,
    /// Rows with no value of the attribute; `None` when the facet's configured values put them
    /// in the rest.
    pub unknown: Option<u64>,
    pub rows: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CoverageRow {
    pub group: String,
    pub rows: u64,
    pub share: f64,
    pub selection_rate: Option<f64>,
    pub excluded: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImpactTable {
    pub scope: String,
    pub attribute: String,
    pub reference: Option<String>,
    pub rows: Vec<ImpactRow>,
}

/// The impact tables of each pair of facets, over the period.
#[derive(Debug, Clone, Serialize)]
pub struct Intersectional {
    pub tables: Vec<PairImpactTable>,
    /// Windows whose counts have no pairs of facets (written by an older driftd, or from a
    /// window state of format version 1): their rows are in no intersectional table.
    pub windows_without_pairs: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PairImpactTable {
    /// Scope [`PERIOD`], attribute "first × second", one row per cell with rows.
    pub table: ImpactTable,
    /// Rows with a missing value of either facet (the unknown category), in no cell.
    pub unknown: u64,
    /// Rows in no cell because a window's state reached its limit of pair cells.
    pub refused: u64,
    /// Why the pair could not be split (a facet or the labels could not be read).
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImpactRow {
    pub group: String,
    pub rows: u64,
    pub selected: u64,
    pub rate: Option<f64>,
    pub rate_interval: Option<(f64, f64)>,
    pub impact_ratio: Option<f64>,
    pub ratio_interval: Option<(f64, f64)>,
    /// Fisher's exact test against the reference group (two-sided).
    pub fisher_p: Option<f64>,
    pub below_four_fifths: bool,
    /// Whether the group has at least `min_group_rows` rows (else shown, not judged).
    pub judged: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Performance {
    pub available: bool,
    pub note: String,
    pub rows: Vec<PerformanceRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PerformanceRow {
    pub attribute: String,
    pub group: String,
    pub cells: Cells,
    /// TPR, FPR, precision, accuracy.
    pub rates: Vec<Rate>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rate {
    pub name: String,
    pub value: Option<f64>,
    /// Wilson's interval.
    pub interval: Option<(f64, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClarifyRow {
    pub attribute: String,
    pub value: String,
    pub metric: String,
    pub description: String,
    pub ideal: f64,
    /// Rows of the group (d) and of the rest (a) over the period.
    pub group_rows: Option<u64>,
    pub rest_rows: Option<u64>,
    pub baseline: Option<f64>,
    pub last: Option<f64>,
    /// The last window's 95 % normal bootstrap interval.
    pub last_interval: Option<(f64, f64)>,
    pub change: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub windows_in_breach: usize,
    pub status: String,
    pub meaning: String,
}

/// One series over the period's windows: entry i of each list is `windows[i]`.
#[derive(Debug, Clone, Serialize)]
pub struct Trend {
    pub title: String,
    /// Clarify metric, or impact ratio.
    pub kind: String,
    pub values: Vec<Option<f64>>,
    pub intervals: Vec<Option<(f64, f64)>>,
    /// Indexes of the windows in breach.
    pub breaches: Vec<usize>,
    pub baseline: Option<f64>,
    pub ideal: Option<f64>,
    /// The allowed floor (four-fifths) for impact ratios.
    pub threshold: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ViolationRow {
    pub window: String,
    pub facet: String,
    pub facet_value: String,
    pub metric_name: String,
    pub description: String,
}

/// What [`build`] needs besides the windows.
pub struct Meta {
    pub monitor: String,
    pub endpoint: Option<String>,
    pub from: String,
    pub to: String,
    pub sources: Vec<Source>,
    pub baseline_path: String,
    pub baseline: Analysis,
    pub previous: Option<(PreviousReport, serde_json::Value)>,
    pub min_group_rows: u64,
    pub config_text: String,
    pub analysis_config_text: String,
}

pub fn build(meta: Meta, windows: &[WindowInput]) -> Report {
    let z = z_score(CONFIDENCE);
    let counted: Vec<&BiasGroups> = windows.iter().filter_map(|w| w.groups.as_ref()).collect();
    let pooled = pool(&counted);
    let labels_available = !counted.is_empty()
        && counted
            .iter()
            .all(|g| g.label_error.is_none() && g.prediction_error.is_none());
    let by_prediction = counted.iter().all(|g| g.prediction_error.is_none());
    let first = counted.first();
    let data = Data {
        label: first.map(|g| g.label.clone()).unwrap_or_default(),
        label_value_or_threshold: first
            .map(|g| g.label_value_or_threshold.clone())
            .unwrap_or_default(),
        outcome: if by_prediction {
            "predicted label in the positive label values".into()
        } else {
            "label in the positive label values (no usable predictions)".into()
        },
        labels_available,
        baseline: meta.baseline_path.clone(),
        rows: counted.iter().map(|g| g.rows).sum(),
        min_group_rows: meta.min_group_rows,
        confidence: CONFIDENCE,
    };
    let selected = |c: &Cells| {
        if by_prediction {
            c.predicted_positive()
        } else {
            c.labelled_positive()
        }
    };

    let mut impact = Vec::new();
    if let Some(pooled) = &pooled {
        for facet in &pooled.facets {
            impact.push(impact_table(
                PERIOD,
                &facet.name,
                &table_groups(facet),
                meta.min_group_rows,
                z,
                &selected,
            ));
        }
    }
    for window in windows {
        if let Some(groups) = &window.groups {
            for facet in &groups.facets {
                impact.push(impact_table(
                    &window.start,
                    &facet.name,
                    &table_groups(facet),
                    meta.min_group_rows,
                    z,
                    &selected,
                ));
            }
        }
    }

    let intersectional = intersectional(windows, meta.min_group_rows, z, &selected);
    let mut verdicts: Vec<Verdict> = impact
        .iter()
        .chain(intersectional.tables.iter().map(|t| &t.table))
        .map(|table| four_fifths_verdict(table, meta.min_group_rows))
        .collect();
    let facet_names: Vec<String> = clarify_facets(windows);
    for facet in &facet_names {
        let per_window: Vec<Verdict> = windows
            .iter()
            .map(|w| drift_verdict(&w.start, facet, w))
            .collect();
        verdicts.push(period_drift_verdict(facet, &per_window));
        verdicts.extend(per_window);
    }
    // Period verdicts first, each attribute's criteria together.
    verdicts.sort_by_key(|v| (v.scope != PERIOD, v.scope.clone(), v.attribute.clone()));
    if let Some((_, previous)) = &meta.previous {
        for verdict in verdicts.iter_mut().filter(|v| v.scope == PERIOD) {
            verdict.change = previous_value(previous, verdict)
                .zip(verdict.value)
                .map(|(before, now)| now - before);
        }
    }

    let coverage = pooled
        .as_ref()
        .map(|p| coverage(p, meta.min_group_rows, &selected))
        .unwrap_or_default();
    let performance = performance(pooled.as_ref(), labels_available, z);
    let mut trends = clarify_trends(&meta.baseline, windows);
    let clarify = clarify_rows(windows, pooled.as_ref(), &trends);
    trends.extend(ratio_trends(&impact, windows));
    let violations = windows
        .iter()
        .flat_map(|w| {
            w.violations.violations.iter().map(|v| ViolationRow {
                window: w.start.clone(),
                facet: v.facet.clone(),
                facet_value: v.facet_value.clone(),
                metric_name: v.metric_name.clone(),
                description: v.description.clone(),
            })
        })
        .collect();
    let window_rows = windows
        .iter()
        .map(|w| WindowRow {
            start: w.start.clone(),
            end: w.end.clone(),
            dir: w.dir.clone(),
            revision: (w.revision > 0).then_some(w.revision),
            rows: w.groups.as_ref().map(|g| g.rows),
            base_rate: w.groups.as_ref().and_then(base_rate),
            violations: w.violations.violations.len(),
        })
        .collect();
    let missing_counts = windows.iter().filter(|w| w.groups.is_none()).count();
    Report {
        schema_version: SCHEMA_VERSION,
        report_id: report_id(&meta),
        monitor: meta.monitor,
        endpoint: meta.endpoint,
        from: meta.from,
        to: meta.to,
        driftd_version: env!("CARGO_PKG_VERSION").into(),
        previous_report: meta.previous.map(|(p, _)| p),
        sources: meta.sources,
        data,
        windows: window_rows,
        verdicts,
        coverage,
        impact,
        limitations: limitations(missing_counts, &intersectional),
        intersectional,
        performance,
        clarify,
        trends,
        violations,
        methodology: methodology(meta.min_group_rows),
        config_text: meta.config_text,
        analysis_config_text: meta.analysis_config_text,
    }
}

/// The id: the first 32 hex digits of the SHA-256 of the monitor, the period and every source's
/// digest, so the same inputs give the same id.
fn report_id(meta: &Meta) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in [&meta.monitor, &meta.from, &meta.to] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    for source in &meta.sources {
        hash.update(source.sha256.as_bytes());
    }
    super::sign::hex(&hash.finalize())[..32].to_string()
}

/// Every window's counts summed per facet and group (groups matched by value).
fn pool(windows: &[&BiasGroups]) -> Option<BiasGroups> {
    let mut pooled = (*windows.first()?).clone();
    for window in &windows[1..] {
        pooled.rows += window.rows;
        for (mine, theirs) in pooled.facets.iter_mut().zip(&window.facets) {
            if mine.error.is_none() {
                mine.error = theirs.error.clone();
            }
            for group in &theirs.groups {
                match mine
                    .groups
                    .iter_mut()
                    .find(|g| g.value_or_threshold == group.value_or_threshold)
                {
                    Some(g) => {
                        g.facet.add(&group.facet);
                        g.rest.add(&group.rest);
                    }
                    None => mine.groups.push(group.clone()),
                }
            }
        }
    }
    // Only the group cells are summed: one window's metric inputs and pairs would misstate
    // the period (pairs are pooled by `intersectional`).
    pooled.pairs = None;
    for group in pooled.facets.iter_mut().flat_map(|f| &mut f.groups) {
        group.by_group = None;
        group.flips = None;
    }
    Some(pooled)
}

/// Each pair of facets' cells summed over the windows that counted them, as impact tables.
fn intersectional(
    windows: &[WindowInput],
    min_rows: u64,
    z: f64,
    selected: &dyn Fn(&Cells) -> u64,
) -> Intersectional {
    let mut pooled: Vec<PairGroups> = Vec::new();
    let mut windows_without_pairs = Vec::new();
    for window in windows {
        let Some(groups) = window.groups.as_ref().filter(|g| g.facets.len() > 1) else {
            continue;
        };
        let Some(pairs) = &groups.pairs else {
            windows_without_pairs.push(window.start.clone());
            continue;
        };
        for pair in pairs {
            let Some(mine) = pooled.iter_mut().find(|p| p.facets == pair.facets) else {
                pooled.push(pair.clone());
                continue;
            };
            mine.unknown += pair.unknown;
            mine.refused += pair.refused;
            if mine.error.is_none() {
                mine.error = pair.error.clone();
            }
            for cell in &pair.cells {
                match mine.cells.iter_mut().find(|c| c.groups == cell.groups) {
                    Some(c) => c.counts.add(&cell.counts),
                    None => mine.cells.push(cell.clone()),
                }
            }
        }
    }
    let tables = pooled
        .into_iter()
        .map(|pair| {
            let groups: Vec<(String, Cells)> = pair
                .cells
                .iter()
                .map(|c| (c.groups.join(" × "), c.counts))
                .collect();
            let attribute = pair.facets.join(" × ");
            PairImpactTable {
                table: impact_table(PERIOD, &attribute, &groups, min_rows, z, selected),
                unknown: pair.unknown,
                refused: pair.refused,
                error: pair.error,
            }
        })
        .collect();
    Intersectional {
        tables,
        windows_without_pairs,
    }
}

/// A facet's groups as the impact tables list them: configured values against the rest, or
/// each enumerated value (missing values, Clarify's "nan", in no group).
fn table_groups(facet: &FacetGroups) -> Vec<(String, Cells)> {
    if facet.configured_values {
        facet
            .groups
            .iter()
            .flat_map(|g| {
                [
                    (
                        format!("{} = {}", facet.name, g.value_or_threshold),
                        g.facet,
                    ),
                    (format!("{} ≠ {}", facet.name, g.value_or_threshold), g.rest),
                ]
            })
            .collect()
    } else {
        facet
            .groups
            .iter()
            .filter(|g| g.value_or_threshold != "nan")
            .map(|g| {
                (
                    format!("{} = {}", facet.name, g.value_or_threshold),
                    g.facet,
                )
            })
            .collect()
    }
}

fn impact_table(
    scope: &str,
    attribute: &str,
    groups: &[(String, Cells)],
    min_rows: u64,
    z: f64,
    selected: &dyn Fn(&Cells) -> u64,
) -> ImpactTable {
    let rate = |c: &Cells| (c.rows() > 0).then(|| selected(c) as f64 / c.rows() as f64);
    // The most-selected group among those large enough to judge.
    let reference = groups
        .iter()
        .filter(|(_, c)| c.rows() >= min_rows && c.rows() > 0)
        .fold(None::<&(String, Cells)>, |best, g| match best {
            Some(b) if rate(&b.1) >= rate(&g.1) => Some(b),
            _ => Some(g),
        });
    let rows = groups
        .iter()
        .map(|(name, cells)| {
            let (n, x) = (cells.rows(), selected(cells));
            let versus = reference.filter(|r| r.0 != *name).map(|r| r.1);
            let ratio = reference.and_then(|r| Some(rate(cells)? / rate(&r.1)?));
            let ratio = ratio.filter(|r| r.is_finite());
            let judged = n >= min_rows && n > 0;
            ImpactRow {
                group: name.clone(),
                rows: n,
                selected: x,
                rate: rate(cells),
                rate_interval: wilson(x, n, z),
                impact_ratio: ratio,
                ratio_interval: versus
                    .and_then(|r| ratio_interval(x, n, selected(&r), r.rows(), z)),
                fisher_p: versus
                    .filter(|_| n > 0)
                    .map(|r| fisher_exact(x, n, selected(&r), r.rows())),
                below_four_fifths: judged && ratio.is_some_and(|r| r < FOUR_FIFTHS),
                judged,
            }
        })
        .collect();
    ImpactTable {
        scope: scope.into(),
        attribute: attribute.into(),
        reference: reference.map(|r| r.0.clone()),
        rows,
    }
}

fn four_fifths_verdict(table: &ImpactTable, min_rows: u64) -> Verdict {
    let verdict = |verdict: &str, worst: Option<&ImpactRow>, reason: String| Verdict {
        scope: table.scope.clone(),
        attribute: table.attribute.clone(),
        criterion: FOUR_FIFTHS_CRITERION.into(),
        verdict: verdict.into(),
        worst_group: worst.map(|w| w.group.clone()),
        value: worst.and_then(|w| w.impact_ratio),
        reason,
        change: None,
    };
    let judged: Vec<&ImpactRow> = table
        .rows
        .iter()
        .filter(|r| r.judged && Some(&r.group) != table.reference.as_ref())
        .collect();
    let Some(worst) = judged.iter().copied().min_by(|a, b| {
        a.impact_ratio
            .unwrap_or(0.0)
            .total_cmp(&b.impact_ratio.unwrap_or(0.0))
    }) else {
        return verdict(
            "inconclusive",
            None,
            format!("fewer than two groups of at least {min_rows} rows"),
        );
    };
    let breach = judged
        .iter()
        .filter(|r| r.ratio_interval.is_some_and(|(_, high)| high < FOUR_FIFTHS))
        .min_by(|a, b| {
            a.impact_ratio
                .unwrap_or(0.0)
                .total_cmp(&b.impact_ratio.unwrap_or(0.0))
        });
    if let Some(row) = breach {
        return verdict(
            "breach",
            Some(row),
            "the impact ratio's interval lies below 0.8".into(),
        );
    }
    if judged
        .iter()
        .all(|r| r.ratio_interval.is_some_and(|(low, _)| low >= FOUR_FIFTHS))
    {
        return verdict(
            "within",
            Some(worst),
            "every impact ratio's interval lies at or above 0.8".into(),
        );
    }
    verdict(
        "inconclusive",
        Some(worst),
        "an impact ratio's interval straddles 0.8 (or has no bounds)".into(),
    )
}

/// Facets in the order the windows' analyses list them.
fn clarify_facets(windows: &[WindowInput]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for window in windows {
        for stage in stages(&window.analysis) {
            for name in stage.facets.keys() {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
        }
    }
    names
}

fn stages(analysis: &Analysis) -> impl Iterator<Item = &crate::bias::report::StageReport> {
    [
        &analysis.pre_training_bias_metrics,
        &analysis.post_training_bias_metrics,
    ]
    .into_iter()
    .flatten()
}

fn drift_verdict(scope: &str, facet: &str, window: &WindowInput) -> Verdict {
    let mine: Vec<_> = window
        .violations
        .violations
        .iter()
        .filter(|v| v.facet == facet)
        .collect();
    let any_value = stages(&window.analysis)
        .filter_map(|s| s.facets.get(facet))
        .flatten()
        .flat_map(|f| &f.metrics)
        .any(|m| m.value.is_some());
    let (verdict, reason) = if !mine.is_empty() {
        ("breach", format!("{} bias drift violations", mine.len()))
    } else if any_value {
        ("within", "no bias drift violation".to_string())
    } else {
        ("inconclusive", "no metric could be computed".to_string())
    };
    Verdict {
        scope: scope.into(),
        attribute: facet.into(),
        criterion: DRIFT_CRITERION.into(),
        verdict: verdict.into(),
        worst_group: mine
            .first()
            .map(|v| format!("{} = {} ({})", v.facet, v.facet_value, v.metric_name)),
        value: Some(mine.len() as f64),
        reason,
        change: None,
    }
}

fn period_drift_verdict(facet: &str, per_window: &[Verdict]) -> Verdict {
    let breaches: Vec<&Verdict> = per_window
        .iter()
        .filter(|v| v.verdict == "breach")
        .collect();
    let inconclusive = per_window.iter().any(|v| v.verdict == "inconclusive");
    let verdict = if !breaches.is_empty() {
        "breach"
    } else if inconclusive || per_window.is_empty() {
        "inconclusive"
    } else {
        "within"
    };
    Verdict {
        scope: PERIOD.into(),
        attribute: facet.into(),
        criterion: DRIFT_CRITERION.into(),
        verdict: verdict.into(),
        worst_group: breaches.first().and_then(|v| v.worst_group.clone()),
        value: Some(breaches.len() as f64),
        reason: format!(
            "{} of {} windows with bias drift violations",
            breaches.len(),
            per_window.len()
        ),
        change: None,
    }
}

/// The same verdict's value in the previous report.
fn previous_value(previous: &serde_json::Value, verdict: &Verdict) -> Option<f64> {
    previous["verdicts"].as_array()?.iter().find(|v| {
        v["scope"] == PERIOD
            && v["attribute"] == verdict.attribute.as_str()
            && v["criterion"] == verdict.criterion.as_str()
    })?["value"]
        .as_f64()
}

fn coverage(pooled: &BiasGroups, min_rows: u64, selected: &dyn Fn(&Cells) -> u64) -> Vec<Coverage> {
    pooled
        .facets
        .iter()
        .map(|facet| {
            let groups = table_groups(facet);
            let counted: u64 = groups.iter().map(|(_, c)| c.rows()).sum();
            Coverage {
                attribute: facet.name.clone(),
                groups: groups
                    .iter()
                    .map(|(name, c)| CoverageRow {
                        group: name.clone(),
                        rows: c.rows(),
                        share: c.rows() as f64 / pooled.rows.max(1) as f64,
                        selection_rate: (c.rows() > 0)
                            .then(|| selected(c) as f64 / c.rows() as f64),
                        excluded: c.rows() < min_rows,
                    })
                    .collect(),
                unknown: (!facet.configured_values).then(|| pooled.rows - counted),
                rows: pooled.rows,
            }
        })
        .collect()
}

fn performance(pooled: Option<&BiasGroups>, labels: bool, z: f64) -> Performance {
    let Some(pooled) = pooled.filter(|_| labels) else {
        return Performance {
            available: false,
            note: "The windows' rows carry no usable labels and predictions: per-group \
                   performance waits for the join of ground truth to live traffic \
                   (ground_truth_path on the bias monitor)."
                .into(),
            rows: Vec::new(),
        };
    };
    let rate = |name: &str, k: u64, n: u64| Rate {
        name: name.to_string(),
        value: (n > 0).then(|| k as f64 / n as f64),
        interval: wilson(k, n, z),
    };
    let rows = pooled
        .facets
        .iter()
        .flat_map(|facet| {
            table_groups(facet)
                .into_iter()
                .map(|(group, c)| PerformanceRow {
                    attribute: facet.name.clone(),
                    group,
                    rates: vec![
                        rate("TPR", c.true_positive, c.labelled_positive()),
                        rate("FPR", c.false_positive, c.false_positive + c.true_negative),
                        rate("precision", c.true_positive, c.predicted_positive()),
                        rate("accuracy", c.true_positive + c.true_negative, c.rows()),
                    ],
                    cells: c,
                })
        })
        .collect();
    Performance {
        available: true,
        note: "Labels are in the windows' rows (batch output with ground truth, or ground \
               truth joined to live traffic)."
            .into(),
        rows,
    }
}

fn base_rate(groups: &BiasGroups) -> Option<f64> {
    let facet = groups.facets.first()?.groups.first()?;
    let mut all = facet.facet;
    all.add(&facet.rest);
    (all.rows() > 0).then(|| all.labelled_positive() as f64 / all.rows() as f64)
}

/// (facet, value, metric) in the order of the windows' analyses.
fn metric_keys(windows: &[WindowInput]) -> Vec<(String, String, String)> {
    let mut keys = Vec::new();
    for window in windows {
        for stage in stages(&window.analysis) {
            for (facet, values) in &stage.facets {
                for value in values {
                    for metric in &value.metrics {
                        let key = (
                            facet.clone(),
                            value.value_or_threshold.clone(),
                            metric.name.clone(),
                        );
                        if !keys.contains(&key) {
                            keys.push(key);
                        }
                    }
                }
            }
        }
    }
    keys
}

fn in_breach(window: &WindowInput, facet: &str, value: &str, metric: &str) -> bool {
    window
        .violations
        .violations
        .iter()
        .any(|v| v.facet == facet && v.facet_value == value && v.metric_name == metric)
}

/// Section 6, from the Clarify trends (one per metric key, in [`metric_keys`]' order).
fn clarify_rows(
    windows: &[WindowInput],
    pooled: Option<&BiasGroups>,
    trends: &[Trend],
) -> Vec<ClarifyRow> {
    metric_keys(windows)
        .into_iter()
        .zip(trends)
        .map(|((facet, value, metric), trend)| {
            let sizes = pooled
                .and_then(|p| p.facets.iter().find(|f| f.name == facet))
                .and_then(|f| f.groups.iter().find(|g| g.value_or_threshold == value));
            let values: Vec<f64> = trend.values.iter().flatten().copied().collect();
            let last = trend.values.last().copied().flatten();
            let breaches = trend.breaches.len();
            let known = Metric::from_name(&metric);
            ClarifyRow {
                description: known
                    .map(|m| m.description().to_string())
                    .unwrap_or_default(),
                ideal: known.map_or(0.0, Metric::ideal),
                group_rows: sizes.map(|g| g.facet.rows()),
                rest_rows: sizes.map(|g| g.rest.rows()),
                baseline: trend.baseline,
                change: last.zip(trend.baseline).map(|(l, b)| l - b),
                last,
                last_interval: trend.intervals.last().copied().flatten(),
                min: values.iter().copied().reduce(f64::min),
                max: values.iter().copied().reduce(f64::max),
                windows_in_breach: breaches,
                status: if breaches > 0 {
                    format!("breach in {breaches} of {} windows", windows.len())
                } else {
                    "within".into()
                },
                meaning: known.map(meaning).unwrap_or_default().into(),
                attribute: facet,
                value,
                metric,
            }
        })
        .collect()
}

/// One trend per metric key. The bootstrap intervals are the costly part: keys run in parallel
/// (each interval has its own fixed seed, so the result does not depend on the order).
fn clarify_trends(baseline: &Analysis, windows: &[WindowInput]) -> Vec<Trend> {
    use rayon::prelude::*;
    metric_keys(windows)
        .into_par_iter()
        .map(|(facet, value, metric)| Trend {
            title: format!("{metric} of {facet} = {value}"),
            kind: "Clarify metric".into(),
            values: windows
                .iter()
                .map(|w| w.analysis.value(&facet, &value, &metric))
                .collect(),
            intervals: windows
                .iter()
                .map(|w| metric_interval(w, &facet, &value, &metric))
                .collect(),
            breaches: (0..windows.len())
                .filter(|&i| in_breach(&windows[i], &facet, &value, &metric))
                .collect(),
            baseline: baseline.value(&facet, &value, &metric),
            ideal: Metric::from_name(&metric).map(Metric::ideal),
            threshold: None,
        })
        .collect()
}

/// A Clarify metric's 95 % normal bootstrap interval in one window: driftd's bias drift
/// resampling (same resamples, same seed) over the window's group counts (CDDL and CDDPL with
/// the group variable's split); FT's over its flip counts. None for a window without those
/// counts, and an unbounded interval.
fn metric_interval(
    window: &WindowInput,
    facet: &str,
    value: &str,
    metric: &str,
) -> Option<(f64, f64)> {
    let metric = Metric::from_name(metric)?;
    let x = window
        .analysis
        .value(facet, value, metric.name())
        .filter(|x| x.is_finite())?;
    let group = window
        .groups
        .as_ref()?
        .facets
        .iter()
        .find(|f| f.name == facet)?
        .groups
        .iter()
        .find(|g| g.value_or_threshold == value)?;
    let z = z_score(CONFIDENCE);
    let (low, high) = match metric {
        Metric::FT => flip_test_interval(group.flips.as_ref()?, z)?,
        Metric::CDDL | Metric::CDDPL => {
            group.by_group.as_ref()?;
            bootstrap_interval(metric, x, &group.facet_counts(), z)
        }
        _ => bootstrap_interval(metric, x, &group.facet_counts(), z),
    };
    (low.is_finite() && high.is_finite()).then_some((low, high))
}

/// The impact ratio of each group over the windows, with its interval and the 0.8 floor.
fn ratio_trends(impact: &[ImpactTable], windows: &[WindowInput]) -> Vec<Trend> {
    let mut trends: Vec<Trend> = Vec::new();
    for (i, window) in windows.iter().enumerate() {
        for table in impact.iter().filter(|t| t.scope == window.start) {
            for row in &table.rows {
                let title = format!("impact ratio of {}", row.group);
                let trend = match trends.iter().position(|t| t.title == title) {
                    Some(at) => &mut trends[at],
                    None => {
                        trends.push(Trend {
                            title,
                            kind: "impact ratio".into(),
                            values: vec![None; windows.len()],
                            intervals: vec![None; windows.len()],
                            breaches: Vec::new(),
                            baseline: None,
                            ideal: Some(1.0),
                            threshold: Some(FOUR_FIFTHS),
                        });
                        trends.last_mut().expect("just pushed")
                    }
                };
                trend.values[i] = row.impact_ratio;
                trend.intervals[i] = row.ratio_interval;
                if row.judged && row.ratio_interval.is_some_and(|(_, h)| h < FOUR_FIFTHS) {
                    trend.breaches.push(i);
                }
            }
        }
    }
    trends
}

/// One sentence on what a metric measures (facet d = the group, a = the rest).
fn meaning(metric: Metric) -> &'static str {
    match metric {
        Metric::CI => "How much smaller the group is than the rest, relative to both (−1…1).",
        Metric::DPL => "Share of positive labels in the rest minus in the group.",
        Metric::KL => "How far the group's label distribution is from the rest's (KL divergence).",
        Metric::JS => "Symmetric divergence of the group's and the rest's label distributions.",
        Metric::LP => "L2 distance between the group's and the rest's label distributions.",
        Metric::TVD => "Half the L1 distance between the label distributions.",
        Metric::KS => "Largest gap between the group's and the rest's label distributions.",
        Metric::CDDL => "Demographic disparity of labels, averaged over the group variable.",
        Metric::DPPL => "Share of positive predictions in the rest minus in the group.",
        Metric::DI => "The group's share of positive predictions divided by the rest's.",
        Metric::DCA => "Gap in the ratio of actual to predicted positives (rest − group).",
        Metric::DCR => "Gap in the ratio of actual to predicted negatives (rest − group).",
        Metric::RD => "Recall (true positive rate) of the rest minus the group's.",
        Metric::SD => "Specificity (true negative rate) of the rest minus the group's.",
        Metric::DAR => "Precision of the rest minus the group's.",
        Metric::DRR => "Negative predictive value of the rest minus the group's.",
        Metric::AD => "Accuracy of the rest minus the group's.",
        Metric::TE => "Ratio of false negatives to false positives, group versus rest.",
        Metric::CDDPL => "Demographic disparity of predictions, averaged over the group variable.",
        Metric::FT => "Share of the group whose prediction flips when matched to the rest.",
        Metric::GE => "Inequality of benefits (prediction − label + 1) across all rows.",
    }
}

fn methodology(min_rows: u64) -> Vec<String> {
    vec![
        "Selection rate = selected rows ÷ rows of the group; impact ratio = a group's rate ÷ the \
         rate of the most-selected group with enough rows (LL144 §5-301, UGESP 1607.4(D))."
            .into(),
        "Rate intervals: Wilson score interval at 95 %, no continuity correction.".into(),
        "Ratio intervals: Katz's log interval, exp(ln r ± z·√(1/x₁ − 1/n₁ + 1/x₂ − 1/n₂)); none \
         when a group has no selected row."
            .into(),
        "Fisher's exact test, two-sided, of each group against the reference group.".into(),
        "Four-fifths verdict: breach when an impact ratio's interval lies below 0.8, within when \
         every interval lies at or above 0.8, else inconclusive."
            .into(),
        format!(
            "Groups under {min_rows} rows are shown but not judged (--min-group-rows) and are \
             not chosen as reference."
        ),
        format!(
            "Intersectional tables: each pair of facets, one cell per combination of their \
             groups that has rows, over the period (the windows' cell counts summed), with the \
             same rates, ratios, intervals and tests as the per-facet tables. Rows with a \
             missing value of either facet are the unknown category, counted beside the table. \
             A window's state keeps at most {PAIR_CELLS} cells over all pairs; rows that would \
             open a cell past that are counted as refused."
        ),
        "Clarify metrics and bias drift are those of the windows' analysis.json and \
         constraint_violations.json (smclarify's formulas; driftd's bias drift rule of the \
         analysis config, with the bootstrap's fixed seed)."
            .into(),
        "Intervals and tests are per table and not adjusted for multiple comparisons; read \
         p-values across many groups with that in mind."
            .into(),
    ]
}

fn limitations(missing_counts: usize, intersectional: &Intersectional) -> Vec<String> {
    let mut out = vec![
        "The four-fifths rule is a rule of thumb (EEOC); it is no legal threshold for credit or \
         insurance."
            .into(),
        "Clarify metrics' intervals are driftd's normal bootstrap (1,000 multinomial resamples \
         of the window's counts, fixed seed, 95 %). FT's resamples the flip outcomes of the \
         sampled rows of the group with the k-NN classifier held fixed, so it leaves out the \
         classifier's own variability. Windows written by an older driftd lack the counts of \
         CDDL, CDDPL and FT: those have no interval there."
            .into(),
        "Clarify metrics compare one facet value against the rest; only the impact tables are \
         intersectional."
            .into(),
        "Data drift of the other features is not part of a bias monitor's windows.".into(),
    ];
    if !intersectional.windows_without_pairs.is_empty() {
        out.push(format!(
            "Windows without pair-of-facets counts (written by an older driftd, or from a window \
             state of format version 1): {}; their rows are missing from the intersectional \
             tables.",
            intersectional.windows_without_pairs.join(", ")
        ));
    }
    let refused: u64 = intersectional.tables.iter().map(|t| t.refused).sum();
    if refused > 0 {
        out.push(format!(
            "{refused} rows are in no intersectional cell: their windows reached the limit of \
             {PAIR_CELLS} pair cells."
        ));
    }
    if missing_counts > 0 {
        out.push(format!(
            "Windows without bias_groups.json (written by an older driftd): {missing_counts}; \
             their rows are missing from the impact, coverage and performance tables."
        ));
    }
    out
}
