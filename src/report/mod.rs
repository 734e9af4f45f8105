//! `driftd report bias`: a compliance report on a bias monitor's windows over a period — one
//! offline HTML file and its JSON twin, deterministic, optionally signed, chained to the
//! previous report.
//!
//! ```text
//! windows (output.directory, --windows DIR or s3://) ─► inputs ─► model::build ─► report.json ─┐
//!                                                            └► html ─► report.html ─┴► sign: manifest.json(.sig)
//! ```

pub mod html;
pub mod inputs;
pub mod model;
pub mod pdf;
pub mod sign;
pub mod stats;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};

use crate::bias::Analysis;
use crate::config::{Config, MonitorKind};
use crate::json_file::read_json;
use sign::{Digest256, Manifest, REPORT_JSON};

pub const REPORT_HTML: &str = "report.html";
pub const REPORT_PDF: &str = "report.pdf";

pub struct Request<'a> {
    pub config_path: &'a Path,
    pub monitor: &'a str,
    pub endpoint: Option<&'a str>,
    /// Where the windows are; `None`: the config's `output.directory`.
    pub windows: Option<&'a inputs::WindowSource>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub output: &'a Path,
    /// Also write report.html (report.json is always written: the chain links to it).
    pub html: bool,
    /// Also render report.pdf from the HTML with headless Chromium.
    pub pdf: bool,
    pub key: Option<&'a Path>,
    /// A previous report's directory: its digest goes into this one (the chain).
    pub previous: Option<&'a Path>,
    pub min_group_rows: u64,
}

/// What was written.
#[derive(Debug)]
pub struct Written {
    pub windows: usize,
    pub files: Vec<PathBuf>,
    pub report: model::Report,
}

pub fn generate(request: &Request) -> Result<Written> {
    // Before any work: a PDF needs Chromium, and saying so late would waste the run.
    let chromium = request.pdf.then(pdf::find_chromium).transpose()?;
    let config = Config::load(request.config_path)?;
    let monitor = config
        .monitors
        .iter()
        .find(|m| m.name == request.monitor)
        .with_context(|| {
            format!(
                "{}: no monitor named {}",
                request.config_path.display(),
                request.monitor
            )
        })?;
    if monitor.kind != MonitorKind::Bias {
        bail!("monitor {} is not a bias monitor", monitor.name);
    }
    if request.from >= request.to {
        bail!("--from must be before --to");
    }
    let analysis_config = monitor
        .analysis_config
        .as_ref()
        .context("a bias monitor names its analysis_config")?;
    let size = chrono::Duration::from_std(config.window.size)?;
    // The S3 report prefix's window files are copied to a temporary directory, then read as a
    // local one; the report names them by their S3 URIs.
    let copied = match request.windows {
        Some(inputs::WindowSource::S3(uri)) => {
            let dir = tempfile::tempdir().context("cannot make a temporary directory")?;
            let name = &monitor.name;
            crate::ingest::s3::copy_prefix(&config.aws.connection(), uri, dir.path(), &|path| {
                inputs::is_window_file(path, name, request.from, request.to)
            })?;
            Some((dir, uri))
        }
        _ => None,
    };
    let (root, shown_root) = match (&copied, request.windows) {
        (Some((dir, uri)), _) => (dir.path().to_path_buf(), uri.to_string()),
        (None, Some(inputs::WindowSource::Directory(dir))) => {
            (dir.clone(), dir.display().to_string())
        }
        _ => (
            config.output.directory.clone(),
            config.output.directory.display().to_string(),
        ),
    };
    let windows = inputs::find_windows(
        &root,
        &monitor.name,
        request.endpoint,
        request.from,
        request.to,
        size,
    )?;
    if windows.is_empty() {
        bail!(
            "no windows of {} from {} to {} under {}",
            monitor.name,
            inputs::timestamp(request.from),
            inputs::timestamp(request.to),
            shown_root
        );
    }
    let base = request.config_path.parent().unwrap_or(Path::new(""));
    let source = |role: &str, path: &Path| -> Result<model::Source> {
        Ok(model::Source {
            role: role.into(),
            path: relative_to(base, path),
            sha256: sign::sha256_file(path)?,
        })
    };
    let mut sources = vec![
        source("config", request.config_path)?,
        source("analysis_config", analysis_config)?,
        source("baseline", &monitor.baseline)?,
    ];
    for window in &windows {
        for file in &window.files {
            let mut input = source("window", file)?;
            if let Some((dir, uri)) = &copied {
                let below = file.strip_prefix(dir.path()).unwrap_or(file);
                input.path = format!("{uri}{}", inputs::slash_path(below));
            }
            sources.push(input);
        }
    }
    let previous = request
        .previous
        .map(|dir| -> Result<_> {
            let path = dir.join(REPORT_JSON);
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let value: serde_json::Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("{}: not a report", path.display()))?;
            let report = model::PreviousReport {
                report_id: value["report_id"].as_str().unwrap_or_default().to_string(),
                sha256: sign::sha256_bytes(&bytes),
            };
            Ok((report, value))
        })
        .transpose()?;
    let baseline: Analysis = read_json(&monitor.baseline)?;
    let read_text = |path: &Path| {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    };
    let meta = model::Meta {
        monitor: monitor.name.clone(),
        endpoint: request.endpoint.map(str::to_string),
        from: inputs::timestamp(request.from),
        to: inputs::timestamp(request.to),
        baseline_path: relative_to(base, &monitor.baseline),
        sources,
        baseline,
        previous,
        min_group_rows: request.min_group_rows,
        config_text: read_text(request.config_path)?,
        analysis_config_text: read_text(analysis_config)?,
    };
    let report = model::build(meta, &windows);

    std::fs::create_dir_all(request.output)
        .with_context(|| format!("cannot create {}", request.output.display()))?;
    // report.json is always written: it is the link the next report's chain points at.
    let mut json = serde_json::to_vec_pretty(&report)?;
    json.push(b'\n');
    let mut written = vec![(REPORT_JSON, json)];
    if request.html || chromium.is_some() {
        let html = html::render(&report)?;
        if let Some(chromium) = &chromium {
            written.push((REPORT_PDF, pdf::render(chromium, request.output, &html)?));
        }
        if request.html {
            written.push((REPORT_HTML, html.into_bytes()));
        }
    }
    let mut files = Vec::new();
    let mut digests = Vec::new();
    for (name, bytes) in &written {
        let path = request.output.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        digests.push(Digest256 {
            path: name.to_string(),
            sha256: sign::sha256_bytes(bytes),
        });
        files.push(path);
    }
    let key = request.key.map(sign::read_signing_key).transpose()?;
    let manifest = Manifest {
        schema_version: model::SCHEMA_VERSION,
        report_id: report.report_id.clone(),
        public_key: None,
        files: digests,
        inputs: report
            .sources
            .iter()
            .map(|s| Digest256 {
                path: s.path.clone(),
                sha256: s.sha256.clone(),
            })
            .collect(),
        previous_report_sha256: report.previous_report.as_ref().map(|p| p.sha256.clone()),
    };
    sign::write_manifest(request.output, manifest, key.as_ref())?;
    files.push(request.output.join(sign::MANIFEST_FILE));
    if key.is_some() {
        files.push(request.output.join(sign::SIGNATURE_FILE));
    }
    Ok(Written {
        windows: windows.len(),
        files,
        report,
    })
}

/// `path` relative to `base` when below it (the config's paths are joined onto its directory),
/// else as given; `/`-separated.
fn relative_to(base: &Path, path: &Path) -> String {
    inputs::slash_path(path.strip_prefix(base).unwrap_or(path))
}
