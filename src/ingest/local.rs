//! Embedded mode's source of objects: files in a local directory, routed to monitors by path
//! pattern.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, NaiveDate, Utc};
use regex::Regex;

/// A monitor's path pattern, e.g. `{endpoint}/{variant}/{yyyy}/{mm}/{dd}/{hh}/*.jsonl`
/// (SageMaker's capture layout).
#[derive(Debug, Clone)]
pub struct PathPattern {
    regex: Regex,
}

/// What a matching path says about its object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathFields {
    pub endpoint: Option<String>,
    pub variant: Option<String>,
    /// The hour the path names (`{yyyy}/{mm}/{dd}/{hh}`), when it names one.
    pub hour: Option<DateTime<Utc>>,
}

impl PathPattern {
    /// Whether matching paths say which endpoint they belong to.
    pub fn names_endpoint(&self) -> bool {
        self.regex
            .capture_names()
            .any(|name| name == Some("endpoint"))
    }

    pub fn new(pattern: &str) -> Result<Self, String> {
        let mut regex = String::from("^");
        let mut rest = pattern;
        while let Some(c) = rest.chars().next() {
            if let Some(after) = rest.strip_prefix("**") {
                regex.push_str(".*");
                rest = after;
            } else if let Some(after) = rest.strip_prefix('*') {
                regex.push_str("[^/]*");
                rest = after;
            } else if let Some(after) = rest.strip_prefix('{') {
                let end = after
                    .find('}')
                    .ok_or_else(|| format!("unclosed '{{' in {pattern:?}"))?;
                let group = match &after[..end] {
                    "endpoint" => r"(?P<endpoint>[^/]+)",
                    "variant" => r"(?P<variant>[^/]+)",
                    "yyyy" => r"(?P<yyyy>\d{4})",
                    "mm" => r"(?P<mm>\d{2})",
                    "dd" => r"(?P<dd>\d{2})",
                    "hh" => r"(?P<hh>\d{2})",
                    other => {
                        return Err(format!(
                            "unknown placeholder {{{other}}} in {pattern:?}; use {{endpoint}}, {{variant}}, {{yyyy}}, {{mm}}, {{dd}} or {{hh}}"
                        ));
                    }
                };
                if regex.contains(&group[..group.find('>').expect("named group")]) {
                    return Err(format!(
                        "placeholder {{{}}} appears twice in {pattern:?}",
                        &after[..end]
                    ));
                }
                regex.push_str(group);
                rest = &after[end + 1..];
            } else {
                regex.push_str(&regex::escape(&c.to_string()));
                rest = &rest[c.len_utf8()..];
            }
        }
        regex.push('$');
        let regex = Regex::new(&regex).map_err(|e| format!("invalid pattern {pattern:?}: {e}"))?;
        Ok(Self { regex })
    }

    /// The fields of `relative_path` (with `/` separators) if it matches.
    pub fn matches(&self, relative_path: &str) -> Option<PathFields> {
        let captures = self.regex.captures(relative_path)?;
        let text = |name| captures.name(name).map(|m| m.as_str().to_string());
        let number = |name| {
            captures
                .name(name)
                .and_then(|m| m.as_str().parse::<u32>().ok())
        };
        let hour = match (number("yyyy"), number("mm"), number("dd")) {
            (Some(y), Some(m), Some(d)) => NaiveDate::from_ymd_opt(y as i32, m, d)
                .and_then(|date| date.and_hms_opt(number("hh").unwrap_or(0), 0, 0))
                .map(|t| t.and_utc()),
            _ => None,
        };
        Some(PathFields {
            endpoint: text("endpoint"),
            variant: text("variant"),
            hour,
        })
    }
}

/// A settled file found by a scan: a new one, or a new version of one found before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundFile {
    pub path: PathBuf,
    pub length: u64,
    pub modified: SystemTime,
}

impl FoundFile {
    /// The modification time in nanoseconds since the epoch (0 before it).
    pub fn modified_ns(&self) -> u128 {
        self.modified
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    }
}

/// Finds settled files under a directory that it has not reported before, or that changed
/// since.
#[derive(Debug)]
pub struct DirectoryScanner {
    root: PathBuf,
    settle_time: Duration,
    /// Path → (length, modification time) when last reported.
    reported: HashMap<PathBuf, (u64, SystemTime)>,
}

impl DirectoryScanner {
    pub fn new(root: PathBuf, settle_time: Duration) -> Self {
        Self {
            root,
            settle_time,
            reported: HashMap::new(),
        }
    }

    /// New or changed files, oldest path first (SageMaker's layout sorts by time). Hidden
    /// files and the writer's temporary files (`.tmp`, `.part`) are skipped; so are files
    /// changed within the settle time, which may still be being written.
    pub fn scan(&mut self) -> std::io::Result<Vec<FoundFile>> {
        let mut found = Vec::new();
        let now = SystemTime::now();
        let mut pending = vec![self.root.clone()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') || name.ends_with(".tmp") || name.ends_with(".part") {
                    continue;
                }
                let meta = entry.metadata()?;
                if meta.is_dir() {
                    pending.push(entry.path());
                    continue;
                }
                // Symbolic links (not followed: they could lead out of the directory), sockets…
                if !meta.is_file() {
                    continue;
                }
                let modified = meta.modified()?;
                let settled = now
                    .duration_since(modified)
                    .is_ok_and(|age| age >= self.settle_time);
                let stamp = (meta.len(), modified);
                if settled && self.reported.get(&entry.path()) != Some(&stamp) {
                    self.reported.insert(entry.path(), stamp);
                    found.push(FoundFile {
                        path: entry.path(),
                        length: meta.len(),
                        modified,
                    });
                }
            }
        }
        found.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(found)
    }

    /// Reports `path` again at the next scan (it could not be handled this time).
    pub fn forget(&mut self, path: &Path) {
        self.reported.remove(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sagemaker_capture_layout() {
        let p = PathPattern::new("{endpoint}/{variant}/{yyyy}/{mm}/{dd}/{hh}/*.jsonl").unwrap();
        let fields = p
            .matches("churn/AllTraffic/2022/04/18/00/20-48-871-0b7bfd33.jsonl")
            .unwrap();
        assert_eq!(fields.endpoint.as_deref(), Some("churn"));
        assert_eq!(fields.variant.as_deref(), Some("AllTraffic"));
        assert_eq!(
            fields.hour.unwrap().to_rfc3339(),
            "2022-04-18T00:00:00+00:00"
        );
        assert!(p.matches("churn/AllTraffic/2022/04/18/00/x.csv").is_none());
        assert!(p.matches("churn/2022/04/18/00/x.jsonl").is_none());
    }

    #[test]
    fn double_star_crosses_segments() {
        let p = PathPattern::new("batch/**/*.csv").unwrap();
        assert!(p.matches("batch/a/b/c.csv").is_some());
        assert!(p.matches("batch/c.csv").is_none());
        assert!(p.matches("other/a/c.csv").is_none());
    }

    #[test]
    fn bad_patterns_say_why() {
        assert!(
            PathPattern::new("{model}/*.jsonl")
                .unwrap_err()
                .contains("unknown placeholder {model}")
        );
        assert!(
            PathPattern::new("{endpoint/x")
                .unwrap_err()
                .contains("unclosed")
        );
        assert!(
            PathPattern::new("{endpoint}/{endpoint}")
                .unwrap_err()
                .contains("twice")
        );
    }
}
