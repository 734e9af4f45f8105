//! Finding and reading the bias windows of a period under `output.directory` (or another
//! directory, or the S3 report prefix), in Model Monitor's layout
//! (`[{endpoint}/]{monitor}/yyyy/mm/dd/hh[/mm[/ss]]`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, NaiveDate, Utc};

use crate::bias::drift::BiasViolations;
use crate::bias::groups::{BiasGroups, GROUPS_FILE};
use crate::bias::{ANALYSIS_FILE, Analysis};
use crate::json_file::read_json;
use crate::s3_uri::S3Uri;
use crate::sinks::file::{METRICS_FILE, VIOLATIONS_FILE};

/// The files of a window that the report reads, in the order it digests them.
const WINDOW_FILES: [&str; 4] = [ANALYSIS_FILE, VIOLATIONS_FILE, METRICS_FILE, GROUPS_FILE];

/// Where the windows are read from (`--windows`): a directory in the output layout, or the S3
/// report prefix (`s3://bucket/prefix`, as `sinks.s3_report_uri` writes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowSource {
    Directory(PathBuf),
    S3(S3Uri),
}

impl std::str::FromStr for WindowSource {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.starts_with("s3://") {
            S3Uri::parse(text).map(WindowSource::S3)
        } else {
            Ok(WindowSource::Directory(PathBuf::from(text)))
        }
    }
}

/// Whether `path` (below the windows' root, `/`-separated) is a file of one of `monitor`'s
/// windows that start in [from, to).
pub fn is_window_file(path: &str, monitor: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
    let parts: Vec<String> = path.split('/').map(str::to_string).collect();
    let Some((name, dirs)) = parts.split_last() else {
        return false;
    };
    let start = dirs
        .iter()
        .position(|p| p == monitor)
        .and_then(|at| window_start(&dirs[at + 1..]));
    WINDOW_FILES.contains(&name.as_str()) && start.is_some_and(|(s, _)| s >= from && s < to)
}

/// One window's files as read.
#[derive(Debug)]
pub struct WindowInput {
    pub start: String,
    pub end: String,
    /// Relative to the output directory, `/`-separated.
    pub dir: String,
    /// The window's revision read: its highest `revision-{n}/` folder (late labels restated
    /// it, `monitor.restate`), else 0, the window's first result.
    pub revision: u32,
    pub analysis: Analysis,
    pub violations: BiasViolations,
    pub groups: Option<BiasGroups>,
    /// The files read (and digested), in a fixed order.
    pub files: Vec<PathBuf>,
}

/// The windows of `monitor` whose start is in [from, to), oldest first; of a restated window
/// its latest revision.
pub fn find_windows(
    out: &Path,
    monitor: &str,
    endpoint: Option<&str>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    size: chrono::Duration,
) -> Result<Vec<WindowInput>> {
    let mut found: Vec<(DateTime<Utc>, Option<String>, u32, PathBuf)> = Vec::new();
    walk(out, &mut |dir| {
        if !dir.join(ANALYSIS_FILE).is_file() {
            return;
        }
        let Ok(relative) = dir.strip_prefix(out) else {
            return;
        };
        let parts: Vec<String> = relative
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let Some(at) = parts.iter().position(|p| p == monitor) else {
            return;
        };
        let Some((start, revision)) = window_start(&parts[at + 1..]) else {
            return;
        };
        let window_endpoint = at.checked_sub(1).map(|i| parts[i].clone());
        if start >= from
            && start < to
            && (endpoint.is_none() || window_endpoint.as_deref() == endpoint)
        {
            found.push((start, window_endpoint, revision, dir.to_path_buf()));
        }
    })
    .with_context(|| format!("cannot list the windows under {}", out.display()))?;
    found.sort();
    // Sorted by revision within a window: the last of each window is its latest.
    found.reverse();
    found.dedup_by_key(|(start, endpoint, _, _)| (*start, endpoint.clone()));
    found.reverse();
    let endpoints: std::collections::BTreeSet<_> = found.iter().map(|f| f.1.clone()).collect();
    if endpoints.len() > 1 {
        bail!(
            "windows of {monitor} from {} endpoints ({:?}); choose one with --endpoint",
            endpoints.len(),
            endpoints
        );
    }
    found
        .into_iter()
        .map(|(start, _, revision, dir)| read_window(out, &dir, start, revision, size))
        .collect()
}

fn walk(dir: &Path, visit: &mut dyn FnMut(&Path)) -> std::io::Result<()> {
    visit(dir);
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        if entry.file_type()?.is_dir() {
            walk(&entry.path(), visit)?;
        }
    }
    Ok(())
}

/// yyyy/mm/dd/hh[/mm[/ss]] → the window's start.
/// The start of the window a folder below the monitor's is, and its revision: `yyyy/mm/dd/hh`
/// (or finer), then optionally `revision-{n}`.
fn window_start(parts: &[String]) -> Option<(DateTime<Utc>, u32)> {
    let revision = (parts.last())
        .and_then(|last| last.strip_prefix("revision-"))
        .map(|n| n.parse::<u32>().ok().filter(|&n| n > 0));
    match revision {
        Some(n) => Some((parse_start(&parts[..parts.len() - 1])?, n?)),
        None => Some((parse_start(parts)?, 0)),
    }
}

fn parse_start(parts: &[String]) -> Option<DateTime<Utc>> {
    if !(4..=6).contains(&parts.len())
        || !parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let n = |i: usize| parts.get(i).map_or(Some(0), |p| p.parse::<u32>().ok());
    let date = NaiveDate::from_ymd_opt(parts[0].parse().ok()?, n(1)?, n(2)?)?;
    Some(date.and_hms_opt(n(3)?, n(4)?, n(5)?)?.and_utc())
}

pub fn timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn read_window(
    out: &Path,
    dir: &Path,
    start: DateTime<Utc>,
    revision: u32,
    size: chrono::Duration,
) -> Result<WindowInput> {
    let analysis: Analysis = read_json(&dir.join(ANALYSIS_FILE))?;
    let violations_path = dir.join(VIOLATIONS_FILE);
    let violations: BiasViolations = read_json(&violations_path)?;
    let groups_path = dir.join(GROUPS_FILE);
    let groups = groups_path
        .is_file()
        .then(|| read_json::<BiasGroups>(&groups_path))
        .transpose()?;
    let files = WINDOW_FILES
        .into_iter()
        .map(|name| dir.join(name))
        .filter(|p| p.is_file())
        .collect();
    let relative = dir.strip_prefix(out).unwrap_or(dir);
    Ok(WindowInput {
        start: timestamp(start),
        end: timestamp(start + size),
        dir: slash_path(relative),
        revision,
        analysis,
        violations,
        groups,
        files,
    })
}

pub fn slash_path(path: &Path) -> String {
    path.iter()
        .map(|p| p.to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Of the S3 report prefix only the monitor's window files in the period are copied.
    #[test]
    fn window_files_are_the_monitors_in_the_period() {
        let at = |text: &str| DateTime::parse_from_rfc3339(text).unwrap().to_utc();
        let (from, to) = (at("2026-11-01T00:00:00Z"), at("2026-11-02T00:00:00Z"));
        let wanted = |path: &str| is_window_file(path, "loans", from, to);
        assert!(wanted("loans/2026/11/01/00/analysis.json"));
        assert!(wanted("endpoint-1/loans/2026/11/01/23/bias_groups.json"));
        assert!(
            !wanted("loans/2026/11/02/00/analysis.json"),
            "after the period"
        );
        assert!(
            !wanted("loans/2026/10/31/23/analysis.json"),
            "before the period"
        );
        assert!(
            !wanted("other/2026/11/01/00/analysis.json"),
            "another monitor"
        );
        assert!(
            !wanted("loans/2026/11/01/00/statistics.json"),
            "not a bias window file"
        );
        assert!(!wanted("loans/analysis.json"), "not in a window directory");
        assert!(
            wanted("loans/2026/11/01/00/revision-2/analysis.json"),
            "a restated window's revision"
        );
        assert!(
            !wanted("loans/2026/11/01/00/revision-x/analysis.json"),
            "not a revision folder"
        );
    }
}
