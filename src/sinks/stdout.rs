//! The short human summary: which features drifted, by how much, which checks failed.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::analyze::Findings;
use crate::bias::drift::BiasViolations;
use crate::model_quality::ModelQualityViolations;

/// Writes `text` to stdout. A reader that went away (`driftd check | head`) is not an error:
/// the output files are written and the exit code still tells the result, so the rest of the
/// text is dropped instead of panicking as `print!` would.
pub fn print(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// How many drifted features and violations are listed before "… and N more".
const LIST_LIMIT: usize = 10;

/// Renders a window's findings as a few lines of text, starting with `title`.
pub fn summarize(title: &str, rows: u64, findings: &Findings) -> String {
    let mut out = String::new();
    let drift = &findings.drift;
    let violations = &findings.violations.violations;
    let _ = writeln!(
        out,
        "{title}: {rows} records, {} of {} features drifted ({:.1}%), {} violation{}",
        drift.features_drifted,
        drift.features_compared,
        drift.drifted_share * 100.0,
        violations.len(),
        if violations.len() == 1 { "" } else { "s" }
    );
    let mut drifted: Vec<_> = drift.features.iter().filter(|f| f.drifted).collect();
    drifted.sort_by(|a, b| b.distance.total_cmp(&a.distance));
    for feature in drifted.iter().take(LIST_LIMIT) {
        let _ = write!(
            out,
            "  drift  {:<24} {} {:.4} > {}  psi {:.3}  js {:.3}",
            feature.name,
            feature.method,
            feature.distance,
            feature.threshold,
            feature.psi,
            feature.js
        );
        if let Some(w) = feature.wasserstein_normed {
            let _ = write!(out, "  wasserstein_normed {w:.3}");
        }
        out.push('\n');
    }
    push_more(&mut out, drifted.len(), "drifted features");
    for violation in violations.iter().take(LIST_LIMIT) {
        let _ = writeln!(
            out,
            "  check  {:<24} {}: {}",
            violation.feature_name,
            serde_name(&violation.constraint_check_type),
            violation.description.trim_end()
        );
    }
    push_more(&mut out, violations.len(), "violations");
    out
}

/// Renders a bias window's drift violations as a few lines of text, starting with `title`.
pub fn summarize_bias(title: &str, rows: u64, violations: &BiasViolations) -> String {
    let violations = &violations.violations;
    let mut out = format!(
        "{title}: {rows} records, {} bias violation{}\n",
        violations.len(),
        if violations.len() == 1 { "" } else { "s" }
    );
    for v in violations.iter().take(LIST_LIMIT) {
        let _ = writeln!(
            out,
            "  bias   {:<6} {}={}: {}",
            v.metric_name, v.facet, v.facet_value, v.description
        );
    }
    push_more(&mut out, violations.len(), "violations");
    out
}

pub fn summarize_attribution(
    title: &str,
    records: u64,
    refused_values: u64,
    drift: &[crate::attribution::LabelDrift],
    violations: &crate::attribution::AttributionViolations,
) -> String {
    let violations = &violations.violations;
    let refused = if refused_values > 0 {
        format!(" ({refused_values} values past the feature limit or unreadable)")
    } else {
        String::new()
    };
    let mut out = format!(
        "{title}: {records} records with attributions{refused}, {} feature attribution violation{}\n",
        violations.len(),
        if violations.len() == 1 { "" } else { "s" }
    );
    for d in drift.iter().take(LIST_LIMIT) {
        let ndcg = d.ndcg.map_or("none".to_string(), |n| n.to_string());
        let _ = writeln!(out, "  ndcg   {}: {ndcg}", d.label);
    }
    for v in violations.iter().take(LIST_LIMIT) {
        let _ = writeln!(out, "  shap   {}: {}", v.label, v.description);
    }
    push_more(&mut out, violations.len(), "violations");
    out
}

/// A multivariate-drift window: its error against the thresholds, and the features with the
/// largest shares of it.
pub fn summarize_multivariate(
    title: &str,
    result: &crate::multivariate::ChunkResult,
    baseline: &crate::multivariate::Baseline,
) -> String {
    let refused = if result.rows_refused > 0 {
        format!(" ({} refused)", result.rows_refused)
    } else {
        String::new()
    };
    let number = |x: Option<f64>| x.map_or("none".to_string(), |x| format!("{x:.4}"));
    let mut out = format!(
        "{title}: {} rows{refused} (baseline chunks: {} rows), reconstruction error {} (thresholds {} .. {}){}\n",
        result.rows,
        baseline.chunk_size,
        number(result.reconstruction_error),
        number(result.lower_threshold),
        number(result.upper_threshold),
        if result.alert {
            ", multivariate drift"
        } else {
            ""
        }
    );
    for f in &result.top_features {
        let _ = writeln!(
            out,
            "  share  {:<24} {:.1}% (reference {:.1}%)",
            f.feature,
            100.0 * f.share,
            100.0 * f.reference_share
        );
    }
    out
}

pub fn summarize_model_quality(
    title: &str,
    labelled: u64,
    skipped: u64,
    violations: &ModelQualityViolations,
) -> String {
    let violations = &violations.violations;
    let mut out = format!(
        "{title}: {labelled} labelled records ({skipped} without a usable value), {} model-quality violation{}\n",
        violations.len(),
        if violations.len() == 1 { "" } else { "s" }
    );
    for v in violations.iter().take(LIST_LIMIT) {
        let _ = writeln!(out, "  model  {}", v.description);
    }
    push_more(&mut out, violations.len(), "violations");
    out
}

/// A line per estimate outside its reference thresholds (`[monitor.estimate]`).
pub fn summarize_estimate(estimate: &crate::estimate::EstimatedPerformance) -> String {
    let mut out = String::new();
    for (name, m) in estimate.alerts() {
        let _ = writeln!(
            out,
            "  estimate  {name} {:.4} (±{:.4}) outside [{:.4}, {:.4}] learned on the reference (CBPE, from {} scores)",
            m.value,
            3.0 * m.sampling_error,
            m.lower_threshold,
            m.upper_threshold,
            estimate.input_rows
        );
    }
    out
}

/// One line on malformed records, or nothing when there were none.
pub fn summarize_quarantine(counts: &BTreeMap<String, u64>) -> Option<String> {
    let total: u64 = counts.values().sum();
    if total == 0 {
        return None;
    }
    let reasons: Vec<String> = counts
        .iter()
        .map(|(reason, count)| format!("{reason} {count}"))
        .collect();
    Some(format!(
        "  skipped {total} malformed record{} ({})",
        if total == 1 { "" } else { "s" },
        reasons.join(", ")
    ))
}

/// The name a unit enum variant has in the JSON files, so the summary uses the same words.
fn serde_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// "… and N more" when a list was cut at [`LIST_LIMIT`].
fn push_more(out: &mut String, total: usize, what: &str) {
    if total > LIST_LIMIT {
        let _ = writeln!(out, "  … and {} more {what}", total - LIST_LIMIT);
    }
}
