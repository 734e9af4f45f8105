//! `driftd run` configuration (TOML). Unknown keys are rejected, and every error names the file,
//! the key and what to change: a daemon that starts with a typo in its config watches nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::baseline::Baseline;
use crate::decode::{DecodeOptions, InputFormat, OutputColumnsPosition};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub input: InputConfig,
    pub output: OutputConfig,
    #[serde(default)]
    pub window: WindowConfig,
    #[serde(rename = "monitor")]
    pub monitors: Vec<MonitorConfig>,
}

/// Embedded mode: capture and batch files appear in a local directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    pub directory: PathBuf,
    /// How often the directory is scanned for new files.
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// A file is read only once it has not changed for this long, so that a file still being
    /// written is not read half. Writers that rename finished files into place can set 0s.
    #[serde(default = "default_settle_time", with = "humantime_serde")]
    pub settle_time: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Window outputs go to `{directory}/{endpoint}/{monitor}/yyyy/mm/dd/hh/`.
    pub directory: PathBuf,
    /// Where malformed records are written; default `{directory}/quarantine.jsonl`.
    pub quarantine: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Tumbling event-time windows of this length, aligned to the Unix epoch.
    #[serde(default = "default_window", with = "humantime_serde")]
    pub size: Duration,
    /// A window closes once the newest event time seen (or the clock, whichever is later) is
    /// this far past its end. Records arriving for a closed window are counted as late.
    #[serde(default = "default_lateness", with = "humantime_serde")]
    pub allowed_lateness: Duration,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self {
            size: default_window(),
            allowed_lateness: default_lateness(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    /// Also the `MonitoringSchedule` dimension of the metrics and the `{monitor}` of the layout.
    pub name: String,
    /// Which files this monitor reads, relative to the input directory. `{endpoint}`,
    /// `{variant}` and `{yyyy}`, `{mm}`, `{dd}`, `{hh}` each match one path segment (or part of
    /// one); `*` matches within a segment, `**` across segments.
    pub path: String,
    pub format: InputFormat,
    /// Directory with the baseline's `statistics.json` and `constraints.json`.
    pub baseline: PathBuf,
    #[serde(default)]
    pub header: bool,
    #[serde(default = "default_output_position")]
    pub output_columns_position: OutputColumnsPosition,
    #[serde(default = "default_array_element_name")]
    pub array_element_name: String,
}

impl MonitorConfig {
    pub fn decode_options(&self) -> DecodeOptions {
        DecodeOptions {
            format: self.format,
            header: self.header,
            output_columns_position: self.output_columns_position,
            array_element_name: self.array_element_name.clone(),
            ..DecodeOptions::default()
        }
    }
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_settle_time() -> Duration {
    Duration::from_secs(2)
}
fn default_window() -> Duration {
    Duration::from_secs(3600)
}
fn default_lateness() -> Duration {
    Duration::from_secs(600)
}
fn default_output_position() -> OutputColumnsPosition {
    OutputColumnsPosition::Start
}
fn default_array_element_name() -> String {
    DecodeOptions::default().array_element_name
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the config file: {error}")]
    Read {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// Reads and validates a config file. Relative paths inside it are taken relative to the
    /// directory the file is in, so a config works from wherever driftd is started.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let mut config: Config = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config.validate().map_err(invalid)?;
        Ok(config)
    }

    /// Each monitor's baseline, in monitor order.
    pub fn load_baselines(&self, path: &Path) -> Result<Vec<Baseline>, ConfigError> {
        self.monitors
            .iter()
            .enumerate()
            .map(|(i, monitor)| {
                Baseline::load(&monitor.baseline).map_err(|e| ConfigError::Invalid {
                    path: path.to_path_buf(),
                    message: format!(
                        "monitor[{i}] ({}).baseline: {e}; point it at a directory holding statistics.json and constraints.json (make one with `driftd baseline`)",
                        monitor.name
                    ),
                })
            })
            .collect()
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut self.input.directory);
        resolve(&mut self.output.directory);
        if let Some(q) = &mut self.output.quarantine {
            resolve(q);
        }
        for monitor in &mut self.monitors {
            resolve(&mut monitor.baseline);
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.monitors.is_empty() {
            return Err(
                "no [[monitor]] section: add at least one monitor (name, path, format, baseline)"
                    .into(),
            );
        }
        if self.window.size.as_secs() == 0 {
            return Err("window.size must be at least 1s (e.g. \"1h\", \"15m\")".into());
        }
        if !self.input.directory.is_dir() {
            return Err(format!(
                "input.directory: {} is not a directory; create it or point input.directory at the directory capture files land in",
                self.input.directory.display()
            ));
        }
        for (i, monitor) in self.monitors.iter().enumerate() {
            let key = format!("monitor[{i}] ({})", monitor.name);
            if monitor.name.is_empty() || monitor.name.contains('/') {
                return Err(format!("{key}.name: must be non-empty and contain no '/'"));
            }
            if self.monitors[..i].iter().any(|m| m.name == monitor.name) {
                return Err(format!(
                    "{key}.name: another monitor has the same name; names must be unique"
                ));
            }
            crate::ingest::local::PathPattern::new(&monitor.path)
                .map_err(|e| format!("{key}.path: {e}"))?;
            if !monitor.array_element_name.contains("{index}") {
                return Err(format!(
                    "{key}.array_element_name: must contain {{index}}, e.g. \"{{key}}_{{index}}\""
                ));
            }
        }
        Ok(())
    }
}
