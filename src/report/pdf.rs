//! `report.pdf`: the HTML printed by headless Chromium (its print styles lay the report out
//! on A4). Chromium stamps a creation date into the PDF, so unlike the HTML and JSON the PDF's
//! bytes differ between runs; the manifest holds its digest all the same.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Names Chromium goes by; `DRIFTD_CHROMIUM` overrides the search.
const NAMES: &[&str] = &["chromium", "chromium-browser", "google-chrome"];

pub fn find_chromium() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("DRIFTD_CHROMIUM").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| NAMES.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
        .context(
            "the PDF needs headless Chromium, which is not installed (Debian: apt-get install \
             chromium; or set DRIFTD_CHROMIUM); nothing was written: ask for --format html,json",
        )
}

/// Prints `html` to PDF. The page is loaded from a file in `dir` with every network request
/// sent to a closed port, on top of the page's own policy that forbids fetching.
pub fn render(chromium: &Path, dir: &Path, html: &str) -> Result<Vec<u8>> {
    let dir = std::path::absolute(dir)?;
    let page = dir.join(".report-print.html");
    let out = dir.join(".report-print.pdf");
    let profile = dir.join(".report-print-profile");
    std::fs::write(&page, html).with_context(|| format!("cannot write {}", page.display()))?;
    let result = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-pdf-header-footer",
            "--run-all-compositor-stages-before-draw",
            "--proxy-server=127.0.0.1:9",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--print-to-pdf={}", out.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .with_context(|| format!("cannot start {}", chromium.display()));
    let pdf = std::fs::read(&out);
    // Whatever happened, leave only the report's own files.
    for path in [&page, &out] {
        let _ = std::fs::remove_file(path);
    }
    let _ = std::fs::remove_dir_all(&profile);
    let result = result?;
    match pdf {
        Ok(bytes) if bytes.starts_with(b"%PDF-") => Ok(bytes),
        _ => bail!(
            "{} did not print the PDF (exit {}): {}",
            chromium.display(),
            result.status,
            String::from_utf8_lossy(&result.stderr).trim()
        ),
    }
}
