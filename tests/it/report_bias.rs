//! `driftd report bias` and `driftd report verify` on the quickstart's loan monitor: every
//! number of the impact tables against scipy on counts taken from the CSV files themselves,
//! Clarify metrics against `driftd bias` on the same hour, verdicts for the biased and fair
//! hours, byte-identical reruns, and tampering (a changed byte, a changed input, a dropped link
//! of the chain, another key) caught and named.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};

const HOURS: [&str; 3] = ["00", "01", "02"];
/// A fixed Ed25519 seed (64 hex digits), as `openssl rand -hex 32` makes one.
const KEY: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";

/// The quickstart's loan monitor run once on a copy: (tempdir, quickstart dir).
fn quickstart_windows() -> (tempfile::TempDir, PathBuf) {
    let (dir, quickstart) = common::copy_quickstart();
    let out = common::driftd()
        .args(["run", "--once", "--config"])
        .arg(quickstart.join("driftd.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, quickstart)
}

fn report(quickstart: &Path, output: &Path, extra: &[&str]) -> Output {
    report_command(quickstart, output, extra).output().unwrap()
}

/// `driftd report bias` of the quickstart's loan monitor over 2026-11-01.
fn report_command(quickstart: &Path, output: &Path, extra: &[&str]) -> std::process::Command {
    let mut command = common::driftd();
    command
        .args(["report", "bias", "--monitor", "loans-bias"])
        .args([
            "--from",
            "2026-11-01T00:00:00Z",
            "--to",
            "2026-11-02T00:00:00Z",
        ])
        .arg("--config")
        .arg(quickstart.join("driftd.toml"))
        .arg("--output")
        .arg(output)
        .args(extra);
    command
}

fn ok(out: Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn verdict<'a>(report: &'a Value, scope: &str, criterion: &str) -> &'a str {
    report["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["scope"] == scope && v["criterion"] == criterion && v["attribute"] == "sex")
        .unwrap_or_else(|| panic!("no {criterion} verdict for {scope}"))["verdict"]
        .as_str()
        .unwrap()
}

/// Counts from the CSV files (pandas), then rates, Wilson intervals (scipy's, and worked by
/// hand), ratios with Katz intervals and Fisher's p from scipy, per window and for the period. Input: `files` (scope →
/// CSV), `facets` (one, or a pair: its cells), each `{"facet", "value"}` (a configured value, or
/// null: each value against the rest, missing values in no group), `outcome` (the column whose
/// 1 means selected), `min_rows`.
const ORACLE: &str = r#"
import json, math, sys
import pandas as pd
from scipy.stats import binomtest, fisher_exact, norm
from scipy.stats.contingency import relative_risk
inp = json.load(sys.stdin)
facets, outcome, min_rows = inp["facets"], inp["outcome"], inp["min_rows"]
frames = {h: pd.read_csv(p) for h, p in inp["files"].items()}
frames["period"] = pd.concat(list(frames.values()))
def facet_groups(df, facet, value):
    if value is None:
        return {f"{facet} = {v}": df[facet] == v for v in df[facet].dropna().unique()}
    return {f"{facet} = {value}": df[facet] == value, f"{facet} ≠ {value}": df[facet] != value}
out = {}
for scope, df in frames.items():
    masks = {"": pd.Series(True, index=df.index)}
    for f in facets:
        masks = {(a + " × " if a else "") + b: m & n
                 for a, m in masks.items() for b, n in facet_groups(df, f["facet"], f["value"]).items()}
    groups = {g: df[m] for g, m in masks.items() if m.any()}
    counts = {g: (len(d), int((d[outcome] == 1).sum())) for g, d in groups.items()}
    judged = [g for g in counts if counts[g][0] >= min_rows]
    ref = max(judged, key=lambda g: counts[g][1] / counts[g][0])
    rows = {}
    for g, (n, x) in counts.items():
        ci = binomtest(x, n).proportion_ci(method="wilson")
        # Wilson's interval worked by hand agrees with scipy's.
        z, p = norm.ppf(0.975), x / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        assert abs(centre - half - ci.low) < 1e-12 and abs(centre + half - ci.high) < 1e-12
        row = {"rows": n, "selected": x, "rate": x / n, "rate_interval": [ci.low, ci.high],
               "impact_ratio": (x / n) / (counts[ref][1] / counts[ref][0]),
               "judged": n >= min_rows}
        if g != ref:
            if x > 0:
                rr = relative_risk(x, n, counts[ref][1], counts[ref][0]).confidence_interval(0.95)
                row["ratio_interval"] = [rr.low, rr.high]
            row["fisher_p"] = fisher_exact([[x, n - x], [counts[ref][1], counts[ref][0] - counts[ref][1]]]).pvalue
        rows[g] = row
    unknown = df[[f["facet"] for f in facets if f["value"] is None]].isna().any(axis=1)
    out[scope] = {"reference": ref, "rows": rows, "unknown": int(unknown.sum()), "all": len(df)}
json.dump(out, sys.stdout)
"#;

/// Every row of every impact table of `attribute` equals the oracle's.
fn assert_impact_tables<'a>(
    tables: impl IntoIterator<Item = &'a Value>,
    attribute: &str,
    oracle: &Value,
) -> usize {
    let mut rows = 0;
    for table in tables {
        if table["attribute"] != attribute {
            continue;
        }
        let scope = table["scope"].as_str().unwrap();
        let expected = &oracle[scope];
        assert_eq!(table["reference"], expected["reference"], "{scope}");
        assert_eq!(
            table["rows"].as_array().unwrap().len(),
            expected["rows"].as_object().unwrap().len(),
            "{scope}: groups"
        );
        for row in table["rows"].as_array().unwrap() {
            let group = row["group"].as_str().unwrap();
            let want = &expected["rows"][group];
            for field in ["rows", "selected", "judged"] {
                assert_eq!(row[field], want[field], "{scope} {group} {field}");
            }
            for field in ["rate", "impact_ratio", "fisher_p"] {
                match want[field].as_f64() {
                    Some(w) => close(
                        row[field].as_f64().unwrap(),
                        w,
                        &format!("{scope} {group} {field}"),
                    ),
                    None => assert!(row[field].is_null(), "{scope} {group} {field}"),
                }
            }
            for field in ["rate_interval", "ratio_interval"] {
                match want[field].as_array() {
                    Some(w) => {
                        for i in 0..2 {
                            close(
                                row[field][i].as_f64().unwrap(),
                                w[i].as_f64().unwrap(),
                                &format!("{scope} {group} {field}[{i}]"),
                            );
                        }
                    }
                    None => assert!(row[field].is_null(), "{scope} {group} {field}"),
                }
            }
            rows += 1;
        }
    }
    rows
}

fn trend<'a>(report: &'a Value, title: &str) -> &'a Value {
    report["trends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["title"] == title)
        .unwrap_or_else(|| panic!("no trend {title}"))
}

/// Hour 01's interval of the trend `title` is centred on its value, and its half-width is
/// 1.96 × `deviation` (an independent estimate of the metric's standard deviation) to 10 %:
/// driftd's 1,000 resamples estimate the deviation to about 2 %. Returns the value.
fn assert_interval_width(report: &Value, title: &str, deviation: f64) -> f64 {
    let trend = trend(report, title);
    let value = trend["values"][1].as_f64().unwrap();
    let (low, high) = (
        trend["intervals"][1][0].as_f64().unwrap(),
        trend["intervals"][1][1].as_f64().unwrap(),
    );
    close(
        (low + high) / 2.0,
        value,
        &format!("{title}: interval centre"),
    );
    let half_width = (high - low) / 2.0 / 1.959963984540054;
    assert!(
        (half_width / deviation - 1.0).abs() < 0.1,
        "{title}: bootstrap deviation {half_width}, independent {deviation}"
    );
    value
}

fn close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-9 * b.abs().max(1e-300),
        "{what}: driftd {a}, oracle {b}"
    );
}

#[test]
fn the_quickstart_report_matches_scipy_and_flags_the_biased_hour() {
    let (_dir, quickstart) = quickstart_windows();
    let output = quickstart.join("report");
    ok(report(&quickstart, &output, &[]));
    let report = read_json(&output.join("report.json"));
    assert_eq!(report["schema_version"], 2);

    let batch = quickstart.join("data/batch/loans/2026/11/01");
    let files: serde_json::Map<String, Value> = HOURS
        .iter()
        .map(|h| {
            let path = batch.join(h).join("decisions.csv");
            (format!("2026-11-01T{h}:00:00Z"), json!(path))
        })
        .collect();
    let oracle = common::run_python(
        ORACLE,
        &json!({"files": files, "facets": [{"facet": "sex", "value": 0}], "outcome": "pred", "min_rows": 30}),
    );
    assert_eq!(
        assert_impact_tables(report["impact"].as_array().unwrap(), "sex", &oracle),
        8,
        "two groups, the period and three windows"
    );

    // The bootstrap interval of hour 01's DPPL: centred on the value, its half-width 1.96
    // standard deviations of DPPL over multinomial resamples of the hour's rows (numpy, 20,000
    // resamples; driftd's 1,000 estimate the deviation to about 2 %).
    let hour_01 = batch.join("01/decisions.csv");
    let numpy = |script: &str| {
        common::run_python(script, &json!(hour_01))
            .as_f64()
            .unwrap()
    };
    assert_interval_width(
        &report,
        "DPPL of sex = 0",
        numpy(
            r#"
import json, sys
import numpy as np
import pandas as pd
df = pd.read_csv(json.load(sys.stdin))
keys = [(d, p) for d in (0, 1) for p in (0, 1)]
counts = np.array([((df.sex == 0).astype(int).eq(d) & df.pred.eq(p)).sum() for d, p in keys])
draws = np.random.default_rng(7).multinomial(counts.sum(), counts / counts.sum(), size=20000)
n_a, n_d = draws[:, 0] + draws[:, 1], draws[:, 2] + draws[:, 3]
dppl = draws[:, 1] / n_a - draws[:, 3] / n_d
json.dump(float(dppl.std(ddof=1)), sys.stdout)
"#,
        ),
    );

    // CDDPL's interval the same way: multinomial resamples of the hour's rows over sex × age ×
    // prediction, CDDPL = Σ_age n_age·(share of d among the rejected − among the accepted) / n.
    assert_interval_width(
        &report,
        "CDDPL of sex = 0",
        numpy(
            r#"
import json, sys
import numpy as np
import pandas as pd
df = pd.read_csv(json.load(sys.stdin))
ages = np.unique(df.age)
keys = [(a, d, p) for a in ages for d in (0, 1) for p in (0, 1)]
d = (df.sex == 0).astype(int)
counts = np.array([((df.age == a) & (d == s) & (df.pred == p)).sum() for a, s, p in keys])
draws = np.random.default_rng(7).multinomial(counts.sum(), counts / counts.sum(), size=20000)
cells = draws.reshape(-1, len(ages), 2, 2)  # draw, age, d, prediction
n_age = cells.sum(axis=(2, 3))
rejected, accepted = cells[:, :, :, 0].sum(axis=2), cells[:, :, :, 1].sum(axis=2)
with np.errstate(divide="ignore", invalid="ignore"):
    share_rejected = np.where(rejected > 0, cells[:, :, 1, 0] / rejected, 0.0)
    share_accepted = np.where(accepted > 0, cells[:, :, 1, 1] / accepted, 0.0)
cddpl = (n_age * (share_rejected - share_accepted)).sum(axis=1) / n_age.sum(axis=1)
json.dump(float(cddpl.std(ddof=1)), sys.stdout)
"#,
        ),
    );
    // FT's resamples the flip outcomes of d's rows (+1, −1, 0), whose mean has the standard
    // deviation √((p⁺ + p⁻ − (p⁺ − p⁻)²)/n) for shares p⁺, p⁻ of the n rows.
    let groups = read_json(&quickstart.join("out/loans-bias/2026/11/01/01/bias_groups.json"));
    let flips = &groups["facets"][0]["groups"][0]["flips"];
    let count = |field: &str| flips[field].as_f64().unwrap();
    let (n, positive, negative) = (
        count("d_rows"),
        count("positive_flips") / count("d_rows"),
        count("negative_flips") / count("d_rows"),
    );
    assert!(positive + negative > 0.0, "{flips}");
    let value = assert_interval_width(
        &report,
        "FT of sex = 0",
        ((positive + negative - (positive - negative).powi(2)) / n).sqrt(),
    );
    close(value, positive - negative, "FT from its flips");
    let cddl = trend(&report, "CDDL of sex = 0");
    assert!(cddl["intervals"][1][0].as_f64() < cddl["intervals"][1][1].as_f64());

    // Section 6's group sizes are the period's rows of sex = 0 and of the rest.
    for row in report["clarify"].as_array().unwrap() {
        assert_eq!(
            row["group_rows"],
            oracle["period"]["rows"]["sex = 0"]["rows"]
        );
        assert_eq!(
            row["rest_rows"],
            oracle["period"]["rows"]["sex ≠ 0"]["rows"]
        );
    }

    // Hour 01's model rejects 70 % of sex 0's approvals: a breach on both criteria. The fair
    // hours 00 and 02 (4,000 rows, ~2,000 a group) are within on both. Over the period the one
    // biased hour pulls the pooled impact ratio to 0.77, with an interval across 0.8:
    // inconclusive.
    let hour = |h: &str| format!("2026-11-01T{h}:00:00Z");
    assert_eq!(verdict(&report, &hour("01"), "four-fifths rule"), "breach");
    assert_eq!(
        verdict(&report, &hour("01"), "Clarify bias drift"),
        "breach"
    );
    for h in ["00", "02"] {
        assert_eq!(verdict(&report, &hour(h), "four-fifths rule"), "within");
        assert_eq!(verdict(&report, &hour(h), "Clarify bias drift"), "within");
    }
    assert_eq!(
        verdict(&report, "period", "four-fifths rule"),
        "inconclusive"
    );
    assert_eq!(verdict(&report, "period", "Clarify bias drift"), "breach");

    // Clarify metrics of hour 01 are those `driftd bias` computes on the same file.
    let bias_out = quickstart.join("bias-01");
    let repo = common::repo_root();
    ok(common::driftd()
        .args(["bias", "--format", "csv", "--header", "--analysis-config"])
        .arg(repo.join("baselines/loans-bias/analysis_config.json"))
        .arg("--input")
        .arg(batch.join("01/decisions.csv"))
        .arg("--output")
        .arg(&bias_out)
        .output()
        .unwrap());
    let analysis = read_json(&bias_out.join("analysis.json"));
    let mut compared = 0;
    for trend in report["trends"].as_array().unwrap() {
        if trend["kind"] != "Clarify metric" {
            continue;
        }
        let metric = trend["title"].as_str().unwrap().split(' ').next().unwrap();
        let stage = ["pre_training_bias_metrics", "post_training_bias_metrics"]
            .into_iter()
            .find(|s| {
                analysis[s]["facets"]["sex"][0]["metrics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["name"] == metric)
            })
            .unwrap();
        assert_eq!(report["windows"][1]["start"], hour("01"));
        assert_eq!(
            trend["values"][1].as_f64(),
            analysis[stage]["facets"]["sex"][0]["metrics"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["name"] == metric)
                .unwrap()["value"]
                .as_f64(),
            "{metric}"
        );
        compared += 1;
    }
    assert_eq!(compared, 21, "every Clarify metric has a trend");

    // Labels are in the batch output: per-group performance is in, its counts those of the CSV.
    assert_eq!(report["performance"]["available"], true);

    let html = std::fs::read_to_string(output.join("report.html")).unwrap();
    assert!(
        html.contains("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none';")
    );
    for id in [
        "cover",
        "verdicts",
        "data",
        "coverage",
        "impact",
        "clarify",
        "performance",
        "trends",
        "violations",
        "drift",
        "methodology",
        "appendix",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "section {id}");
    }
    // No fetch anywhere: no URL but SVG's namespace, no script but the embedded data.
    assert_eq!(
        html.matches("http").count(),
        html.matches("http://www.w3.org/2000/svg").count() + 1,
        "only the CSP meta's http-equiv and SVG namespaces"
    );
    assert_eq!(html.matches("<script").count(), 1);
    let embedded = html
        .split("<script type=\"application/json\" id=\"report-data\">")
        .nth(1)
        .and_then(|rest| rest.split("</script>").next())
        .unwrap();
    assert_eq!(serde_json::from_str::<Value>(embedded).unwrap(), report);
    assert_eq!(
        html.matches("role=\"img\"").count(),
        report["trends"].as_array().unwrap().len()
    );

    let ratio = &oracle[hour("01")]["rows"]["sex = 0"];
    let shown = [
        format!("{:.4}", ratio["impact_ratio"].as_f64().unwrap()),
        format!(
            "[{:.4}, {:.4}]",
            ratio["ratio_interval"][0].as_f64().unwrap(),
            ratio["ratio_interval"][1].as_f64().unwrap()
        ),
    ];
    browser_checks(&quickstart, &output.join("report.html"), &shown);
}

/// A real browser (scripts/test.sh installs Debian's chromium when it can) opens the report with
/// every request routed to a proxy this test listens on: nothing reaches it and nothing is
/// refused by the page's policy; the rendered page has every section and the `shown` values. A
/// screenshot is kept in the test's target directory. Then `--format pdf` prints a PDF.
fn browser_checks(quickstart: &Path, html: &Path, shown: &[String]) {
    // Found as `driftd report --format pdf` finds it: DRIFTD_CHROMIUM, else on the PATH.
    let Ok(chromium) = driftd::report::pdf::find_chromium() else {
        eprintln!("SKIPPED browser and PDF checks: chromium is not installed");
        return;
    };
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    proxy.set_nonblocking(true).unwrap();
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let screenshot = artifacts.join("report_bias_quickstart.png");
    let browse = |mode: &str| {
        std::process::Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            .args([
                "--enable-logging=stderr",
                "--v=0",
                "--window-size=1200,2400",
            ])
            .arg(format!(
                "--proxy-server=127.0.0.1:{}",
                proxy.local_addr().unwrap().port()
            ))
            .arg("--proxy-bypass-list=<-loopback>")
            .arg(format!(
                "--user-data-dir={}",
                quickstart
                    .join(format!("chromium-profile-{}", mode.len()))
                    .display()
            ))
            .arg(mode)
            .arg(format!("file://{}", html.display()))
            .output()
            .unwrap()
    };
    let dom = browse("--dump-dom");
    let shot = browse(&format!("--screenshot={}", screenshot.display()));
    let text = String::from_utf8_lossy(&dom.stdout);
    for log in [&dom.stderr, &shot.stderr] {
        let log = String::from_utf8_lossy(log);
        assert!(
            !log.contains("Content Security Policy"),
            "a request was refused:\n{log}"
        );
    }
    // Chromium itself calls home (time, accounts, updates) whatever the page; anything else
    // that reached the proxy came from the page.
    let own = ["google.com:", "gvt1.com:", "googleapis.com:"];
    while let Ok((mut connection, _)) = proxy.accept() {
        use std::io::Read;
        connection.set_nonblocking(false).unwrap();
        connection
            .set_read_timeout(Some(std::time::Duration::from_secs(1)))
            .unwrap();
        let mut head = [0u8; 512];
        let n = connection.read(&mut head).unwrap_or(0);
        let request = String::from_utf8_lossy(&head[..n]);
        let line = request.lines().next().unwrap_or("");
        let host = line.split(' ').nth(1).unwrap_or("");
        let host = host
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or("");
        let host = if host.contains(':') {
            host.to_string()
        } else {
            format!("{host}:80")
        };
        assert!(
            own.iter().any(|suffix| host.contains(suffix)),
            "the page made a network request: {line}"
        );
    }
    for heading in SECTION_TITLES {
        assert!(text.contains(heading), "rendered page lacks {heading}");
    }
    for value in shown {
        assert!(text.contains(value.as_str()), "rendered page lacks {value}");
    }
    assert!(
        std::fs::metadata(&screenshot).unwrap().len() > 10_000,
        "screenshot"
    );

    let pdf_dir = quickstart.join("report-pdf");
    ok(report(quickstart, &pdf_dir, &["--format", "pdf"]));
    let pdf = std::fs::read(pdf_dir.join("report.pdf")).unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    // The page tree's root counts every page.
    let pages = String::from_utf8_lossy(&pdf)
        .split("/Count ")
        .skip(1)
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u32>()
                .ok()
        })
        .max()
        .unwrap();
    assert!((4..=40).contains(&pages), "{pages} pages");
    pdf_text_checks(&pdf_dir.join("report.pdf"), shown);
    let manifest = read_json(&pdf_dir.join("manifest.json"));
    assert!(
        manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == "report.pdf")
    );
}

/// The report's section titles, as a reader sees them.
const SECTION_TITLES: [&str; 12] = [
    "1. Cover",
    "2. Verdicts",
    "3. Data",
    "4. Coverage",
    "5. Impact tables",
    "6. Clarify metrics",
    "7. Per-group performance",
    "8. Trends",
    "9. Violations",
    "10. Data drift",
    "11. Methodology and limitations",
    "12. Appendix",
];

/// The PDF's text, as pdftotext (Debian's poppler-utils, which scripts/test.sh installs when it
/// can) extracts it: every section title and the `shown` table values.
fn pdf_text_checks(pdf: &Path, shown: &[String]) {
    let Ok(out) = std::process::Command::new("pdftotext")
        .args(["-enc", "UTF-8"])
        .arg(pdf)
        .arg("-")
        .output()
    else {
        eprintln!("SKIPPED the PDF's text check: pdftotext (poppler-utils) is not installed");
        return;
    };
    assert!(
        out.status.success(),
        "pdftotext: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for heading in SECTION_TITLES {
        assert!(text.contains(heading), "the PDF's text lacks {heading}");
    }
    for value in shown {
        assert!(
            text.contains(value.as_str()),
            "the PDF's text lacks {value}"
        );
    }
}

fn verify(dirs: &[&Path], extra: &[&str]) -> Output {
    common::driftd()
        .args(["report", "verify"])
        .args(dirs)
        .args(extra)
        .output()
        .unwrap()
}

fn fails_naming(out: Output, file: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "verify passed; expected a failure naming {file}"
    );
    assert!(stderr.contains(file), "expected {file} named in: {stderr}");
}

#[test]
fn reports_are_deterministic_signed_and_chained() {
    let (dir, quickstart) = quickstart_windows();
    let key = dir.path().join("report.key");
    std::fs::write(&key, format!("{KEY}\n")).unwrap();
    let key_arg = key.to_str().unwrap();
    let (a, b, c, again) = (
        quickstart.join("a"),
        quickstart.join("b"),
        quickstart.join("c"),
        quickstart.join("a-again"),
    );
    ok(report(&quickstart, &a, &["--sign", key_arg]));
    ok(report(&quickstart, &again, &["--sign", key_arg]));
    for file in [
        "report.json",
        "report.html",
        "manifest.json",
        "manifest.json.sig",
    ] {
        assert!(
            std::fs::read(a.join(file)).unwrap() == std::fs::read(again.join(file)).unwrap(),
            "{file} differs between two runs"
        );
    }
    let a_arg = a.to_str().unwrap();
    ok(report(
        &quickstart,
        &b,
        &["--sign", key_arg, "--previous", a_arg],
    ));
    ok(report(
        &quickstart,
        &c,
        &["--sign", key_arg, "--previous", b.to_str().unwrap()],
    ));

    // The public key of RFC 8032's first test vector, whose secret key is KEY.
    let public = ok(common::driftd()
        .args(["report", "public-key", "--key", key_arg])
        .output()
        .unwrap());
    assert_eq!(
        public.trim(),
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    );
    let config = quickstart.join("driftd.toml");
    let config_args = [
        "--config",
        config.to_str().unwrap(),
        "--public-key",
        public.trim(),
    ];
    let checked = ok(verify(&[&a, &b, &c], &config_args));
    assert_eq!(checked.matches(": ok").count(), 3, "{checked}");

    // A report dropped from the chain.
    fails_naming(
        verify(&[&a, &c], &[]),
        &c.join("report.json").display().to_string(),
    );
    // Another key.
    let other = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
    fails_naming(
        verify(&[&a], &["--public-key", other]),
        "signature does not match",
    );

    // One byte of the HTML changed.
    let html = b.join("report.html");
    let mut bytes = std::fs::read(&html).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    std::fs::write(&html, &bytes).unwrap();
    fails_naming(verify(&[&b], &[]), &html.display().to_string());

    // One byte of an input window changed.
    let input = quickstart.join("out/loans-bias/2026/11/01/01/bias_groups.json");
    let mut bytes = std::fs::read(&input).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&input, &bytes).unwrap();
    fails_naming(
        verify(&[&a], &config_args),
        "out/loans-bias/2026/11/01/01/bias_groups.json",
    );

    // The manifest itself edited (a digest replaced) breaks the signature.
    let manifest = c.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let html_digest = common_sha256(&c.join("report.html"));
    std::fs::write(&manifest, text.replacen(&html_digest, &"0".repeat(64), 1)).unwrap();
    fails_naming(verify(&[&c], &[]), "signature does not match");
}

fn common_sha256(path: &Path) -> String {
    let out = common::run_python(
        "import hashlib, json, sys; json.dump(hashlib.sha256(open(json.load(sys.stdin), 'rb').read()).hexdigest(), sys.stdout)",
        &json!(path),
    );
    out.as_str().unwrap().to_string()
}

/// Rows of sex, region, label, pred: region north or south, a rare "west" (~1 %, a group too
/// small to judge) and ~2 % missing; the model favours the south.
fn region_rows(seed: u64, n: usize) -> String {
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    let mut rng = StdRng::seed_from_u64(seed);
    let mut text = String::from("sex,region,label,pred\n");
    for _ in 0..n {
        let u = rng.random::<f64>();
        let region = match u {
            u if u < 0.01 => "west",
            u if u < 0.03 => "",
            u if u < 0.52 => "north",
            _ => "south",
        };
        let label = u32::from(rng.random::<f64>() < 0.5);
        let approve = if region == "south" { 0.6 } else { 0.4 };
        let pred = u32::from(rng.random::<f64>() < approve);
        let sex = u32::from(rng.random::<f64>() < 0.5);
        text.push_str(&format!("{sex},{region},{label},{pred}\n"));
    }
    text
}

/// Under `root`: hours 00 and 01 of [`region_rows`] for each monitor (the same rows), each
/// monitor's baseline (`driftd bias` on hour 00), a config, and `driftd run --once`. Returns the
/// CSV files by window start.
fn region_monitors(root: &Path, monitors: &[(&str, &Value)]) -> serde_json::Map<String, Value> {
    let mut files = serde_json::Map::new();
    for (hour, seed) in [("00", 1), ("01", 2)] {
        let rows = region_rows(seed, 600);
        for (monitor, _) in monitors {
            let path = root.join(format!("data/{monitor}/2026/11/01/{hour}/rows.csv"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &rows).unwrap();
            files.insert(format!("2026-11-01T{hour}:00:00Z"), json!(path));
        }
    }
    let mut config = String::from(
        "[input]\ndirectory = \"data\"\n[output]\ndirectory = \"out\"\n[window]\nsize = \"1h\"\n",
    );
    for &(name, analysis_config) in monitors {
        let config_path = root.join(format!("{name}.json"));
        std::fs::write(&config_path, analysis_config.to_string()).unwrap();
        ok(common::driftd()
            .args(["bias", "--format", "csv", "--header", "--analysis-config"])
            .arg(&config_path)
            .arg("--input")
            .arg(root.join(format!("data/{name}/2026/11/01/00/rows.csv")))
            .arg("--output")
            .arg(root.join(format!("baseline-{name}")))
            .output()
            .unwrap());
        config.push_str(&format!(
            "[[monitor]]\nname = \"{name}\"\npath = \"{name}/{{yyyy}}/{{mm}}/{{dd}}/{{hh}}/*.csv\"\n\
             format = \"csv\"\nheader = true\nkind = \"bias\"\nanalysis_config = \"{name}.json\"\n\
             baseline = \"baseline-{name}/analysis.json\"\n"
        ));
    }
    std::fs::write(root.join("driftd.toml"), config).unwrap();
    ok(common::driftd()
        .args(["run", "--once", "--config"])
        .arg(root.join("driftd.toml"))
        .output()
        .unwrap());
    files
}

/// `driftd report bias` of `monitor` over hours 00 and 01, into `output`; its report.json.
fn region_report(root: &Path, monitor: &str, output: &Path) -> Value {
    ok(common::driftd()
        .args(["report", "bias", "--monitor", monitor, "--config"])
        .arg(root.join("driftd.toml"))
        .args([
            "--from",
            "2026-11-01T00:00:00Z",
            "--to",
            "2026-11-01T02:00:00Z",
        ])
        .arg("--output")
        .arg(output)
        .output()
        .unwrap());
    read_json(&output.join("report.json"))
}

#[test]
fn enumerated_facets_count_unknowns_and_leave_small_groups_unjudged() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let with_predictions = json!({
        "label": "label", "label_values_or_threshold": [1], "predicted_label": "pred",
        "facet": [{"name_or_index": "region"}],
        "methods": {"pre_training_bias": {"methods": ["CI", "DPL"]},
                    "post_training_bias": {"methods": ["DPPL", "DI"]}}
    });
    let labels_only = json!({
        "label": "label", "label_values_or_threshold": [1],
        "facet": [{"name_or_index": "region"}],
        "methods": {"pre_training_bias": {"methods": ["CI", "DPL"]}}
    });
    // The same rows for both monitors, each in its own folder.
    let files = region_monitors(
        root,
        &[
            ("regions", &with_predictions),
            ("labels-only", &labels_only),
        ],
    );

    for (monitor, outcome) in [("regions", "pred"), ("labels-only", "label")] {
        let output = root.join(format!("report-{monitor}"));
        let report = region_report(root, monitor, &output);
        let oracle = common::run_python(
            ORACLE,
            &json!({"files": files, "facets": [{"facet": "region", "value": null}], "outcome": outcome, "min_rows": 30}),
        );
        assert_eq!(
            assert_impact_tables(report["impact"].as_array().unwrap(), "region", &oracle),
            9,
            "{monitor}"
        );
        let coverage = &report["coverage"][0];
        assert_eq!(
            coverage["unknown"], oracle["period"]["unknown"],
            "{monitor}"
        );
        assert_eq!(coverage["rows"], oracle["period"]["all"], "{monitor}");
        let west = coverage["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["group"] == "region = west")
            .unwrap();
        assert_eq!(west["excluded"], true, "{monitor}");
        let available = monitor == "regions";
        assert_eq!(report["performance"]["available"], available, "{monitor}");
        let html = std::fs::read_to_string(output.join("report.html")).unwrap();
        assert_eq!(
            html.contains("performance waits for the join of ground truth"),
            !available,
            "{monitor}"
        );
    }

    // A window without bias_groups.json (written before driftd kept it): listed, its rows left
    // out of the tables, and the limitation said.
    let before = read_json(&root.join("report-regions/report.json"));
    std::fs::remove_file(root.join("out/regions/2026/11/01/01/bias_groups.json")).unwrap();
    let partial = region_report(root, "regions", &root.join("report-partial"));
    assert_eq!(partial["windows"].as_array().unwrap().len(), 2);
    assert!(partial["windows"][1]["rows"].is_null());
    let hour_00 = before["impact"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["scope"] == "2026-11-01T00:00:00Z")
        .unwrap();
    assert_eq!(partial["impact"][0]["scope"], "period");
    assert_eq!(partial["impact"][0]["rows"], hour_00["rows"]);
    assert!(
        partial["limitations"].as_array().unwrap().iter().any(|l| l
            .as_str()
            .unwrap()
            .starts_with("Windows without bias_groups.json (written by an older driftd): 1;")),
        "{}",
        partial["limitations"]
    );
}

/// sex (0 against the rest) × region (each value): every cell's numbers against the oracle on
/// the CSV files, small cells (west) shown and not judged, rows without a region the unknown
/// category, and the pair's four-fifths verdict. A window whose counts have no pairs (as an
/// older driftd or a version-1 window state writes them) is named and left out.
#[test]
fn intersectional_tables_match_scipy_and_name_windows_without_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let analysis_config = json!({
        "label": "label", "label_values_or_threshold": [1], "predicted_label": "pred",
        "facet": [{"name_or_index": "sex", "value_or_threshold": [0]},
                  {"name_or_index": "region"}],
        "methods": {"pre_training_bias": {"methods": ["CI"]},
                    "post_training_bias": {"methods": ["DI"]}}
    });
    let mut files = region_monitors(root, &[("pairs", &analysis_config)]);
    let report = region_report(root, "pairs", &root.join("report"));
    let facets = json!([{"facet": "sex", "value": 0}, {"facet": "region", "value": null}]);
    let oracle = |files: &serde_json::Map<String, Value>| {
        common::run_python(
            ORACLE,
            &json!({"files": files, "facets": facets, "outcome": "pred", "min_rows": 30}),
        )
    };
    let expected = oracle(&files);
    let pairs = &report["intersectional"];
    assert_eq!(pairs["windows_without_pairs"], json!([]));
    let tables = pairs["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 1);
    let table = &tables[0];
    assert_eq!(
        assert_impact_tables([&table["table"]], "sex × region", &expected),
        6,
        "sex = 0 and sex ≠ 0 × north, south, west"
    );
    assert_eq!(table["unknown"], expected["period"]["unknown"]);
    assert!(table["unknown"].as_u64().unwrap() > 0);
    assert_eq!(table["refused"], 0);
    for row in table["table"]["rows"].as_array().unwrap() {
        let west = row["group"].as_str().unwrap().ends_with("region = west");
        assert_eq!(row["judged"], !west, "{}", row["group"]);
    }
    // The model favours the south (0.6 against 0.4): the north's cells breach four-fifths.
    let verdict = report["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["attribute"] == "sex × region")
        .unwrap();
    assert_eq!(verdict["scope"], "period");
    assert_eq!(verdict["verdict"], "breach", "{verdict}");
    assert!(
        verdict["worst_group"]
            .as_str()
            .unwrap()
            .contains("region = north")
    );
    let html = std::fs::read_to_string(root.join("report/report.html")).unwrap();
    assert!(html.contains("<caption>sex × region — period"));

    // Hour 01's counts without pairs: named, and the tables are hour 00's alone.
    let groups = root.join("out/pairs/2026/11/01/01/bias_groups.json");
    let mut counts = read_json(&groups);
    counts.as_object_mut().unwrap().remove("pairs").unwrap();
    std::fs::write(&groups, counts.to_string()).unwrap();
    let partial = region_report(root, "pairs", &root.join("report-partial"));
    let hour_01 = "2026-11-01T01:00:00Z";
    assert_eq!(
        partial["intersectional"]["windows_without_pairs"],
        json!([hour_01])
    );
    files.remove(hour_01);
    let table = &partial["intersectional"]["tables"][0];
    assert_eq!(
        assert_impact_tables([&table["table"]], "sex × region", &oracle(&files)),
        6
    );
    assert!(
        partial["limitations"].as_array().unwrap().iter().any(|l| l
            .as_str()
            .unwrap()
            .starts_with(&format!("Windows without pair-of-facets counts (written by an older driftd, or from a window state of format version 1): {hour_01};"))),
        "{}",
        partial["limitations"]
    );
}

/// `--windows s3://…`: the quickstart's bias windows written to a moto bucket by driftd's S3
/// report sink are read back into the same report as from the output directory, with the
/// windows named by their S3 URIs. A prefix that cannot be listed fails naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_from_the_s3_report_prefix_give_the_local_report() {
    use driftd::s3_uri::S3Uri;
    use driftd::sinks::s3_report::S3ReportSink;

    let (_dir, quickstart) = quickstart_windows();
    let moto = common::MotoServer::start();
    let s3 = moto.s3().await;
    let bucket = "report-bias-windows-from-s3";
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    let uri = S3Uri::parse(&format!("s3://{bucket}/monitoring")).unwrap();
    let sink = S3ReportSink::new(s3, &uri, 3);
    for hour in HOURS {
        let relative = format!("loans-bias/2026/11/01/{hour}");
        let dir = quickstart.join("out").join(&relative);
        // The main file first, as the sink takes them.
        let files: Vec<(String, String)> = [
            "analysis.json",
            "constraint_violations.json",
            "cloudwatch_metrics.jsonl",
            "bias_groups.json",
        ]
        .iter()
        .map(|name| {
            let body = std::fs::read_to_string(dir.join(name)).unwrap();
            (name.to_string(), body)
        })
        .collect();
        sink.write(&relative, &files).await.unwrap();
    }
    // The same config for both reports, so that its digest (and the report id) agree.
    let config = quickstart.join("driftd.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[aws]\nregion = \"us-east-1\"\nendpoint_url = \"{}\"\n",
        moto.endpoint_url
    ));
    std::fs::write(&config, text).unwrap();

    let local = quickstart.join("report-local");
    ok(report(&quickstart, &local, &[]));
    let from_s3 = quickstart.join("report-s3");
    let run = |windows: &str, output: &Path| {
        let mut command = report_command(&quickstart, output, &["--windows", windows]);
        moto.driftd_env(&mut command);
        command.output().unwrap()
    };
    ok(run(&uri.to_string(), &from_s3));

    let mut local = read_json(&local.join("report.json"));
    let mut remote = read_json(&from_s3.join("report.json"));
    let (local_sources, remote_sources) = (local["sources"].take(), remote["sources"].take());
    assert_eq!(remote, local, "the same report but for the sources' paths");
    let (local_sources, remote_sources) = (
        local_sources.as_array().unwrap(),
        remote_sources.as_array().unwrap(),
    );
    assert_eq!(local_sources.len(), remote_sources.len());
    let mut windows = 0;
    for (l, r) in local_sources.iter().zip(remote_sources) {
        assert_eq!(l["sha256"], r["sha256"]);
        let (l, r) = (l["path"].as_str().unwrap(), r["path"].as_str().unwrap());
        if let Some(below) = l.strip_prefix("out/") {
            assert_eq!(r, format!("s3://{bucket}/monitoring/{below}"));
            windows += 1;
        } else {
            assert_eq!(l, r);
        }
    }
    assert_eq!(windows, 12, "four files of three windows");

    let out = run(
        "s3://no-such-report-bucket/monitoring",
        &quickstart.join("none"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("s3://no-such-report-bucket/monitoring/: ListObjectsV2 failed"),
        "{stderr}"
    );
}

/// `[report] every = "1h"`: the daemon writes each hour's report of the loan monitor as its
/// windows close — the biased hour a breach, the fair ones within — chained hour to hour, once
/// (a second run finds the reports done in its state store).
#[test]
fn the_daemon_writes_a_chained_report_for_each_closed_period() {
    let (_dir, quickstart) = common::copy_quickstart();
    let config = quickstart.join("driftd.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}\n[report]\nevery = \"1h\"\n")).unwrap();
    let run = || {
        let out = common::driftd()
            .args(["run", "--once", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run();
    let reports = quickstart.join("out/reports/loans-bias/-");
    let report =
        |hour: &str| read_json(&reports.join(format!("2026-11-01T{hour}0000Z/report.json")));
    for hour in HOURS {
        let expected = if hour == "01" { "breach" } else { "within" };
        assert_eq!(
            verdict(&report(hour), "period", "four-fifths rule"),
            expected,
            "hour {hour}"
        );
    }
    // Each report links to the one before it.
    assert!(report("00")["previous_report"].is_null());
    for (before, after) in [("00", "01"), ("01", "02")] {
        let digest = common_sha256(&reports.join(format!("2026-11-01T{before}0000Z/report.json")));
        assert_eq!(report(after)["previous_report"]["sha256"], digest.as_str());
    }
    let listing = |dir: &Path| {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let first = listing(&reports);
    assert_eq!(first.len(), 3, "{first:?}");
    let digest = common_sha256(&reports.join("2026-11-01T020000Z/report.json"));
    run();
    assert_eq!(listing(&reports), first);
    assert_eq!(
        common_sha256(&reports.join("2026-11-01T020000Z/report.json")),
        digest
    );
}
