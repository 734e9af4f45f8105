//! The report as one offline HTML file: inline CSS and SVG, no script to run, a
//! Content-Security-Policy that forbids every fetch, the report's data embedded as JSON. Every
//! chart has a title, a description and its numbers in a table beside it; verdicts carry a word
//! and a symbol, never colour alone.

use std::fmt::Write;

use anyhow::Result;

use super::model::{DRIFT_CRITERION, ImpactTable, PERIOD, Report, Trend, Verdict, WindowRow};

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                   base-uri 'none'; form-action 'none'";

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#111}\
h1{font-size:1.6rem}h2{border-bottom:2px solid #333;margin-top:2.2rem}h3{margin-top:1.4rem}\
table{border-collapse:collapse;margin:.5rem 0;font-variant-numeric:tabular-nums}\
th,td{border:1px solid #999;padding:.2rem .45rem;text-align:left;vertical-align:top}th{background:#eee}\
td.n{text-align:right}.within{background:#e3f4e3}.breach{background:#fbdcdc;font-weight:bold}\
.inconclusive{background:#fff3cd}.muted{color:#555}.chart{display:flex;gap:1rem;flex-wrap:wrap;\
align-items:flex-start;break-inside:avoid;margin:1rem 0}svg{border:1px solid #ccc;background:#fff}\
pre{background:#f4f4f4;padding:.6rem;overflow-x:auto;white-space:pre-wrap}\
.signoff td{height:2rem;min-width:12rem}\
@page{size:A4;margin:15mm}@media print{body{margin:0;max-width:none}h2{break-after:avoid}\
table,.chart{break-inside:avoid}}\
.series td+td{text-align:right}";

fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number as the tables print it: 4 decimals, ∞ for infinities, — when absent.
pub fn num(x: Option<f64>) -> String {
    match x {
        None => "—".into(),
        Some(x) if x.is_nan() => "—".into(),
        Some(x) if x == f64::INFINITY => "∞".into(),
        Some(x) if x == f64::NEG_INFINITY => "−∞".into(),
        Some(x) => format!("{x:.4}"),
    }
}

/// A p-value: 4 decimals, or scientific notation below 0.0001.
pub fn p_value(p: Option<f64>) -> String {
    match p {
        Some(p) if p < 1e-4 => format!("{p:.2e}"),
        p => num(p),
    }
}

fn interval(i: Option<(f64, f64)>) -> String {
    i.map_or("—".into(), |(l, h)| {
        format!("[{}, {}]", num(Some(l)), num(Some(h)))
    })
}

fn verdict_cell(verdict: &str) -> String {
    let symbol = match verdict {
        "within" => "✓",
        "breach" => "✗",
        _ => "?",
    };
    format!("<td class=\"{verdict}\">{symbol} {verdict}</td>")
}

pub fn render(report: &Report) -> Result<String> {
    let mut h = String::new();
    let title = format!(
        "Bias compliance report: {} ({} to {})",
        report.monitor, report.from, report.to
    );
    write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{}</title>\
         <style>{STYLE}</style></head><body>\n",
        esc(&title)
    )?;
    cover(&mut h, report, &title)?;
    verdicts(&mut h, report)?;
    data(&mut h, report)?;
    coverage(&mut h, report)?;
    impact(&mut h, report)?;
    clarify(&mut h, report)?;
    performance(&mut h, report)?;
    trends(&mut h, report)?;
    violations(&mut h, report)?;
    writeln!(
        h,
        "<section id=\"drift\"><h2>10. Data drift of the facets</h2><p>A bias monitor's windows \
         hold no data drift files; the mix of each facet per window is in §4 and the base rate \
         (share of positive labels) per window in §8.</p></section>"
    )?;
    methodology(&mut h, report)?;
    appendix(&mut h, report)?;
    // `<` escaped so that no text in the data can close the script element.
    let json = serde_json::to_string(report)?.replace('<', "\\u003c");
    writeln!(
        h,
        "<script type=\"application/json\" id=\"report-data\">{json}</script>\n</body></html>"
    )?;
    Ok(h)
}

fn cover(h: &mut String, r: &Report, title: &str) -> Result<()> {
    writeln!(h, "<header id=\"cover\"><h1>{}</h1>", esc(title))?;
    writeln!(h, "<h2>1. Cover</h2><table>")?;
    let previous = r
        .previous_report
        .as_ref()
        .map_or("none (first report of its chain)".into(), |p| {
            format!("{} (report {})", p.sha256, p.report_id)
        });
    let rows = [
        ("Monitor", r.monitor.clone()),
        ("Endpoint", r.endpoint.clone().unwrap_or("— (batch)".into())),
        ("Period", format!("{} to {} (end excluded)", r.from, r.to)),
        ("Windows", r.windows.len().to_string()),
        ("Report id", r.report_id.clone()),
        ("driftd version", r.driftd_version.clone()),
        ("Previous report (SHA-256 of its report.json)", previous),
    ];
    for (k, v) in rows {
        writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v))?;
    }
    writeln!(
        h,
        "</table><h3>Inputs (SHA-256)</h3><table><tr><th>role</th><th>path</th><th>SHA-256</th></tr>"
    )?;
    for s in &r.sources {
        writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            esc(&s.role),
            esc(&s.path),
            s.sha256
        )?;
    }
    writeln!(
        h,
        "</table><h3>Sign-off</h3><table class=\"signoff\"><tr><th>role</th><th>name</th>\
         <th>date</th><th>signature</th></tr><tr><td>Prepared by</td><td></td><td></td><td></td></tr>\
         <tr><td>Reviewed by</td><td></td><td></td><td></td></tr><tr><td>Approved by</td><td></td>\
         <td></td><td></td></tr></table></header>"
    )?;
    Ok(())
}

fn verdict_rows(h: &mut String, verdicts: &[&Verdict], with_change: bool) -> Result<()> {
    write!(
        h,
        "<table><tr><th>scope</th><th>attribute</th><th>criterion</th><th>verdict</th>\
         <th>worst group</th><th>value</th><th>reason</th>"
    )?;
    if with_change {
        write!(h, "<th>change since previous report</th>")?;
    }
    writeln!(h, "</tr>")?;
    for v in verdicts {
        // Bias drift's value is a count.
        let value = match v.value {
            Some(n) if v.criterion == DRIFT_CRITERION => format!("{n:.0}"),
            value => num(value),
        };
        write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td>{}<td>{}</td><td class=\"n\">{}</td><td>{}</td>",
            esc(&v.scope),
            esc(&v.attribute),
            esc(&v.criterion),
            verdict_cell(&v.verdict),
            esc(v.worst_group.as_deref().unwrap_or("—")),
            value,
            esc(&v.reason)
        )?;
        if with_change {
            write!(h, "<td class=\"n\">{}</td>", num(v.change))?;
        }
        writeln!(h, "</tr>")?;
    }
    writeln!(h, "</table>")?;
    Ok(())
}

fn verdicts(h: &mut String, r: &Report) -> Result<()> {
    writeln!(
        h,
        "<section id=\"verdicts\"><h2>2. Verdicts</h2><p>Per attribute and criterion: \
         <b>within</b>, <b>breach</b> or <b>inconclusive</b> (an interval straddles the \
         threshold, or too few rows). Value: the worst impact ratio (four-fifths rule) or the \
         number of windows with bias drift violations.</p><h3>The period</h3>"
    )?;
    let period: Vec<&Verdict> = r.verdicts.iter().filter(|v| v.scope == PERIOD).collect();
    verdict_rows(h, &period, true)?;
    writeln!(h, "<h3>Each window</h3>")?;
    let windows: Vec<&Verdict> = r.verdicts.iter().filter(|v| v.scope != PERIOD).collect();
    verdict_rows(h, &windows, false)?;
    writeln!(h, "</section>")?;
    Ok(())
}

fn data(h: &mut String, r: &Report) -> Result<()> {
    let d = &r.data;
    writeln!(h, "<section id=\"data\"><h2>3. Data</h2><table>")?;
    let rows = [
        (
            "Source",
            "the monitor's windows under output.directory (see §1 for every file)".to_string(),
        ),
        ("Rows in the period", d.rows.to_string()),
        ("Label column", d.label.clone()),
        (
            "Positive label values or threshold",
            d.label_value_or_threshold.clone(),
        ),
        ("Selected (positive outcome)", d.outcome.clone()),
        (
            "Labels available",
            if d.labels_available { "yes" } else { "no" }.to_string(),
        ),
        ("Baseline (Clarify analysis.json)", d.baseline.clone()),
        ("Smallest group judged (rows)", d.min_group_rows.to_string()),
        ("Confidence level of intervals", format!("{}", d.confidence)),
    ];
    for (k, v) in rows {
        writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v))?;
    }
    writeln!(h, "</table></section>")?;
    Ok(())
}

fn coverage(h: &mut String, r: &Report) -> Result<()> {
    writeln!(
        h,
        "<section id=\"coverage\"><h2>4. Coverage</h2><p>Rows per group over the period; \
         groups under {} rows are excluded from judgement, listed with their count and rate.</p>",
        r.data.min_group_rows
    )?;
    for c in &r.coverage {
        writeln!(
            h,
            "<h3>{}</h3><table><tr><th>group</th><th>rows</th><th>share</th><th>selection rate</th><th>judged</th></tr>",
            esc(&c.attribute)
        )?;
        for g in &c.groups {
            writeln!(
                h,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                esc(&g.group),
                g.rows,
                num(Some(g.share)),
                num(g.selection_rate),
                if g.excluded {
                    "no: too few rows"
                } else {
                    "yes"
                }
            )?;
        }
        let unknown = c.unknown.map_or(
            "counted in the rest (the facet's values are configured)".into(),
            |u| u.to_string(),
        );
        writeln!(
            h,
            "<tr><td>unknown / missing</td><td class=\"n\" colspan=\"4\">{}</td></tr><tr><td>all rows</td><td class=\"n\">{}</td><td colspan=\"3\"></td></tr></table>",
            esc(&unknown),
            c.rows
        )?;
    }
    writeln!(h, "</section>")?;
    Ok(())
}

fn impact_table(h: &mut String, t: &ImpactTable) -> Result<()> {
    writeln!(
        h,
        "<table><caption>{} — {}; reference: {}</caption><tr><th>group</th><th>rows</th>\
         <th>selected</th><th>selection rate</th><th>95 % interval (Wilson)</th>\
         <th>impact ratio</th><th>95 % interval (Katz)</th><th>Fisher's exact p</th>\
         <th>four-fifths</th></tr>",
        esc(&t.attribute),
        esc(&t.scope),
        esc(t.reference.as_deref().unwrap_or("none"))
    )?;
    for row in &t.rows {
        let flag = if !row.judged {
            "not judged (too few rows)"
        } else if row.below_four_fifths {
            "✗ below 0.8"
        } else {
            "✓ at or above 0.8"
        };
        writeln!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            esc(&row.group),
            row.rows,
            row.selected,
            num(row.rate),
            interval(row.rate_interval),
            num(row.impact_ratio),
            interval(row.ratio_interval),
            p_value(row.fisher_p),
            flag
        )?;
    }
    writeln!(h, "</table>")?;
    Ok(())
}

fn impact(h: &mut String, r: &Report) -> Result<()> {
    writeln!(
        h,
        "<section id=\"impact\"><h2>5. Impact tables</h2><p>Selection rate per group, impact \
         ratio to the most-selected group, intervals, Fisher's exact test against that group, \
         and the four-fifths flag. First the period (every window's counts summed), then each \
         window.</p>"
    )?;
    for t in &r.impact {
        impact_table(h, t)?;
    }
    let pairs = &r.intersectional;
    writeln!(
        h,
        "<h3>Intersectional: each pair of facets, over the period</h3>"
    )?;
    if pairs.tables.is_empty() && pairs.windows_without_pairs.is_empty() {
        writeln!(h, "<p>One facet: no pairs.</p>")?;
    }
    if !pairs.windows_without_pairs.is_empty() {
        writeln!(
            h,
            "<p>Windows without pair counts (older driftd or window-state format 1), left out \
             of these tables: {}.</p>",
            esc(&pairs.windows_without_pairs.join(", "))
        )?;
    }
    for t in &pairs.tables {
        impact_table(h, &t.table)?;
        writeln!(
            h,
            "<p>{}: unknown category (a facet value missing) {} rows; refused at the cell \
             limit {} rows{}.</p>",
            esc(&t.table.attribute),
            t.unknown,
            t.refused,
            t.error
                .as_ref()
                .map(|e| format!("; not split: {}", esc(e)))
                .unwrap_or_default()
        )?;
    }
    writeln!(h, "</section>")?;
    Ok(())
}

fn clarify(h: &mut String, r: &Report) -> Result<()> {
    writeln!(
        h,
        "<section id=\"clarify\"><h2>6. Clarify metrics</h2><p>Per facet value, as the \
         windows' analysis.json hold them: the last window's value, the range over the period, \
         the baseline, the change from it, and how many windows broke the bias drift rule.</p>\
         <table><tr><th>facet</th><th>value</th><th>rows of the group / the rest</th>\
         <th>metric</th><th>last</th><th>95 % interval (bootstrap)</th><th>min</th><th>max</th><th>ideal</th><th>baseline</th><th>change</th><th>status</th><th>meaning</th></tr>"
    )?;
    for c in &r.clarify {
        let class = if c.windows_in_breach > 0 {
            "breach"
        } else {
            "within"
        };
        writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{} / {}</td><td title=\"{}\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"{class}\">{}</td><td>{}</td></tr>",
            esc(&c.attribute),
            esc(&c.value),
            c.group_rows.map_or("—".into(), |n| n.to_string()),
            c.rest_rows.map_or("—".into(), |n| n.to_string()),
            esc(&c.description),
            esc(&c.metric),
            num(c.last),
            interval(c.last_interval),
            num(c.min),
            num(c.max),
            num(Some(c.ideal)),
            num(c.baseline),
            num(c.change),
            esc(&c.status),
            esc(&c.meaning)
        )?;
    }
    writeln!(h, "</table></section>")?;
    Ok(())
}

fn performance(h: &mut String, r: &Report) -> Result<()> {
    let p = &r.performance;
    writeln!(
        h,
        "<section id=\"performance\"><h2>7. Per-group performance</h2><p>{}</p>",
        esc(&p.note)
    )?;
    if p.available {
        writeln!(
            h,
            "<table><tr><th>attribute</th><th>group</th><th>TP</th><th>FP</th><th>FN</th><th>TN</th>\
             <th>TPR</th><th>FPR</th><th>precision</th><th>accuracy</th></tr>"
        )?;
        for row in &p.rows {
            let c = &row.cells;
            write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>",
                esc(&row.attribute),
                esc(&row.group),
                c.true_positive,
                c.false_positive,
                c.false_negative,
                c.true_negative
            )?;
            for rate in &row.rates {
                write!(
                    h,
                    "<td class=\"n\">{} {}</td>",
                    num(rate.value),
                    interval(rate.interval)
                )?;
            }
            writeln!(h, "</tr>")?;
        }
        writeln!(h, "</table>")?;
    }
    writeln!(h, "</section>")?;
    Ok(())
}

/// A small line chart of one series, with interval bars, the baseline (dashed), the ideal
/// (dotted) and the allowed floor (dash-dot); breaches are squares, other points circles.
fn chart(h: &mut String, id: usize, t: &Trend, windows: &[WindowRow]) -> Result<()> {
    const W: f64 = 360.0;
    const H: f64 = 150.0;
    const LEFT: f64 = 48.0;
    const RIGHT: f64 = 10.0;
    const TOP: f64 = 10.0;
    const BOTTOM: f64 = 24.0;
    let interval_at = |i: usize| t.intervals.get(i).copied().flatten();
    let mut ys: Vec<f64> = t.values.iter().flatten().copied().collect();
    for (l, u) in t.intervals.iter().flatten() {
        ys.extend([*l, *u]);
    }
    ys.extend(t.baseline);
    ys.extend(t.ideal);
    ys.extend(t.threshold);
    ys.retain(|y| y.is_finite());
    let (mut lo, mut hi) = ys
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &y| {
            (a.min(y), b.max(y))
        });
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        (lo, hi) = (lo - 0.5, hi + 0.5);
    }
    let n = t.values.len();
    let x = |i: usize| {
        if n <= 1 {
            LEFT + (W - LEFT - RIGHT) / 2.0
        } else {
            LEFT + (W - LEFT - RIGHT) * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: f64| TOP + (H - TOP - BOTTOM) * (hi - v) / (hi - lo);
    let first = windows.first().map_or("", |w| w.start.as_str());
    let last = windows.last().map_or("", |w| w.start.as_str());
    let desc = format!(
        "{} over {n} windows from {first} to {last}; axis from {} to {}; {} windows in breach.{}{}{}",
        t.title,
        num(Some(lo)),
        num(Some(hi)),
        t.breaches.len(),
        t.baseline.map_or(String::new(), |b| format!(
            " Baseline {} (dashed).",
            num(Some(b))
        )),
        t.ideal.map_or(String::new(), |b| format!(
            " Ideal {} (dotted).",
            num(Some(b))
        )),
        t.threshold.map_or(String::new(), |b| format!(
            " Allowed floor {} (dash-dot).",
            num(Some(b))
        )),
    );
    write!(
        h,
        "<div class=\"chart\"><svg role=\"img\" aria-labelledby=\"t{id} d{id}\" width=\"{W}\" height=\"{H}\" \
         viewBox=\"0 0 {W} {H}\" xmlns=\"http://www.w3.org/2000/svg\"><title id=\"t{id}\">{}</title>\
         <desc id=\"d{id}\">{}</desc>",
        esc(&t.title),
        esc(&desc)
    )?;
    write!(
        h,
        "<text x=\"2\" y=\"{:.1}\" font-size=\"10\">{}</text><text x=\"2\" y=\"{:.1}\" font-size=\"10\">{}</text>\
         <text x=\"{LEFT}\" y=\"{:.1}\" font-size=\"10\">{}</text>",
        y(hi) + 4.0,
        num(Some(hi)),
        y(lo),
        num(Some(lo)),
        H - 6.0,
        esc(first)
    )?;
    let hline = |h: &mut String, v: Option<f64>, dash: &str, colour: &str| -> std::fmt::Result {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            write!(
                h,
                "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-dasharray=\"{dash}\"/>",
                W - RIGHT,
                y(v),
                y(v)
            )?;
        }
        Ok(())
    };
    hline(h, t.baseline, "6 3", "#555")?;
    hline(h, t.ideal, "1 3", "#2a7")?;
    hline(h, t.threshold, "8 3 2 3", "#c22")?;
    let mut bars = String::new();
    let mut line = Vec::new();
    let mut marks = String::new();
    for i in 0..n {
        if let Some((l, u)) = interval_at(i).filter(|(l, u)| l.is_finite() && u.is_finite()) {
            write!(bars, "M{:.1} {:.1}V{:.1}", x(i), y(l), y(u))?;
        }
        let Some(v) = t.values[i].filter(|v| v.is_finite()) else {
            continue;
        };
        line.push(format!("{:.1},{:.1}", x(i), y(v)));
        if t.breaches.contains(&i) {
            write!(
                marks,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"8\" height=\"8\" fill=\"#c22\"/>",
                x(i) - 4.0,
                y(v) - 4.0
            )?;
        } else {
            write!(
                marks,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\"/>",
                x(i),
                y(v)
            )?;
        }
    }
    if !bars.is_empty() {
        write!(h, "<path d=\"{bars}\" stroke=\"#88a\" stroke-width=\"3\"/>")?;
    }
    writeln!(
        h,
        "<polyline fill=\"none\" stroke=\"#124\" points=\"{}\"/><g fill=\"#124\">{marks}</g></svg>",
        line.join(" ")
    )?;
    let with_intervals = t.intervals.iter().any(Option::is_some);
    write!(
        h,
        "<table class=\"series\"><caption>{}</caption><tr><th>window</th><th>value</th>{}<th>breach</th></tr>",
        esc(&t.title),
        if with_intervals {
            "<th>interval</th>"
        } else {
            ""
        }
    )?;
    for (i, w) in windows.iter().enumerate() {
        write!(
            h,
            "<tr><td>{}</td><td>{}</td>",
            esc(&w.start),
            num(t.values[i])
        )?;
        if with_intervals {
            write!(h, "<td>{}</td>", interval(interval_at(i)))?;
        }
        writeln!(
            h,
            "<td>{}</td></tr>",
            if t.breaches.contains(&i) {
                "✗ yes"
            } else {
                "no"
            }
        )?;
    }
    writeln!(h, "</table></div>")?;
    Ok(())
}

fn trends(h: &mut String, r: &Report) -> Result<()> {
    writeln!(
        h,
        "<section id=\"trends\"><h2>8. Trends</h2><p>One chart per series across the period's \
         windows, its numbers in the table beside it. Squares mark windows in breach, bars the \
         95 % interval; dashed: baseline, dotted: ideal, dash-dot: the 0.8 floor.</p>\
         <h3>Rows per window</h3>"
    )?;
    if r.windows.iter().any(|w| w.revision.is_some()) {
        writeln!(
            h,
            "<p>A folder ending in <code>revision-n</code> holds its window restated with \
             labels that came after it closed; the report reads each window's latest.</p>"
        )?;
    }
    writeln!(
        h,
        "<table><tr><th>window start</th><th>end</th><th>rows</th>\
         <th>base rate (positive labels)</th><th>bias drift violations</th><th>folder</th></tr>"
    )?;
    for w in &r.windows {
        writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            esc(&w.start),
            esc(&w.end),
            w.rows.map_or("—".into(), |n| n.to_string()),
            num(w.base_rate),
            w.violations,
            esc(&w.dir)
        )?;
    }
    writeln!(h, "</table>")?;
    for (i, t) in r.trends.iter().enumerate() {
        chart(h, i, t, &r.windows)?;
    }
    writeln!(h, "</section>")?;
    Ok(())
}

fn violations(h: &mut String, r: &Report) -> Result<()> {
    writeln!(
        h,
        "<section id=\"violations\"><h2>9. Violations</h2><p>{} bias drift violations in the \
         period (constraint_violations.json of each window).</p>",
        r.violations.len()
    )?;
    if !r.violations.is_empty() {
        writeln!(
            h,
            "<table><tr><th>window</th><th>facet</th><th>value</th><th>metric</th><th>description</th></tr>"
        )?;
        for v in &r.violations {
            writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&v.window),
                esc(&v.facet),
                esc(&v.facet_value),
                esc(&v.metric_name),
                esc(&v.description)
            )?;
        }
        writeln!(h, "</table>")?;
    }
    writeln!(h, "</section>")?;
    Ok(())
}

fn methodology(h: &mut String, r: &Report) -> Result<()> {
    writeln!(
        h,
        "<section id=\"methodology\"><h2>11. Methodology and limitations</h2><ul>"
    )?;
    for m in &r.methodology {
        writeln!(h, "<li>{}</li>", esc(m))?;
    }
    writeln!(h, "</ul><h3>Limitations</h3><ul>")?;
    for m in &r.limitations {
        writeln!(h, "<li>{}</li>", esc(m))?;
    }
    writeln!(h, "</ul></section>")?;
    Ok(())
}

fn appendix(h: &mut String, r: &Report) -> Result<()> {
    writeln!(
        h,
        "<section id=\"appendix\"><h2>12. Appendix</h2><h3>Configuration</h3><pre>{}</pre>\
         <h3>Analysis configuration</h3><pre>{}</pre><h3>Glossary</h3><dl>\
         <dt>selection rate</dt><dd>selected rows ÷ rows of a group</dd>\
         <dt>impact ratio</dt><dd>a group's selection rate ÷ the most-selected group's</dd>\
         <dt>four-fifths rule</dt><dd>an impact ratio under 0.8 is generally taken as adverse impact (UGESP 1607.4(D))</dd>\
         <dt>facet</dt><dd>the attribute compared (Clarify's term); d = the group, a = the rest</dd>\
         <dt>inconclusive</dt><dd>the data cannot tell: an interval straddles the threshold, or too few rows</dd>\
         </dl><p class=\"muted\">The report's data is embedded below as JSON \
         (<code>script#report-data</code>), the same as report.json.</p></section>",
        esc(&r.config_text),
        esc(&r.analysis_config_text)
    )?;
    Ok(())
}
