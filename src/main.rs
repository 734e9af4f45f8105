//! The `driftd` command line.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use chrono::Utc;
use clap::{Args, Parser, Subcommand};

use std::sync::Arc;

use driftd::analyze::{self, metrics::MetricScope};
use driftd::attribution::{Aggregation, AttributionSource, AttributionSpec, DEFAULT_THRESHOLD};
use driftd::baseline::Baseline;
use driftd::config::Config;
use driftd::decode::{DecodeOptions, InputFormat, OutputColumnsPosition};
use driftd::estimate::EstimateSpec;
use driftd::model_quality::{ModelQualitySpec, ProblemType};
use driftd::pipeline::{self, ReadReport};
use driftd::sinks::{file, stdout};

/// Exit codes: 0 = success (for `check`: no violations), 1 = error, 2 = bad usage (clap),
/// 3 = `check` found violations.
const EXIT_ERROR: u8 = 1;
const EXIT_VIOLATIONS: u8 = 3;

#[derive(Parser)]
#[command(
    name = "driftd",
    version,
    about = "Data-quality and drift monitoring for models in production, compatible with SageMaker Model Monitor's files"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Profile a baseline dataset and write statistics.json and constraints.json (data quality,
    /// or with --kind model-quality the model-quality metrics of predictions and labels).
    Baseline {
        #[arg(long, value_enum, default_value = "data-quality")]
        kind: Kind,
        #[command(flatten)]
        model_quality: ModelQualityArgs,
        #[command(flatten)]
        attribution: AttributionArgs,
        #[command(flatten)]
        multivariate: MultivariateArgs,
        #[command(flatten)]
        input: InputArgs,
        /// Directory to write statistics.json and constraints.json to (feature attribution:
        /// analysis.json; multivariate drift: multivariate_baseline.json).
        #[arg(long)]
        output: PathBuf,
    },
    /// Check data against a baseline, as one window: statistics, violations, drift, metrics
    /// (with --kind model-quality: model-quality metrics and their violations).
    Check {
        #[arg(long, value_enum, default_value = "data-quality")]
        kind: Kind,
        #[command(flatten)]
        model_quality: ModelQualityArgs,
        #[command(flatten)]
        attribution: AttributionArgs,
        #[command(flatten)]
        multivariate: MultivariateArgs,
        /// Directory with the baseline's statistics.json and constraints.json (feature
        /// attribution: the baseline analysis.json file, Clarify's or driftd's).
        #[arg(long)]
        baseline: PathBuf,
        #[command(flatten)]
        input: InputArgs,
        /// Directory for statistics.json, constraint_violations.json, drift.json and the
        /// CloudWatch metrics file.
        #[arg(long)]
        output: PathBuf,
        /// `Endpoint` dimension of the metrics.
        #[arg(long)]
        endpoint: Option<String>,
        /// `MonitoringSchedule` dimension of the metrics.
        #[arg(long, default_value = "driftd-check")]
        monitoring_schedule: String,
        /// Also raise driftd's is_non_negative_check for negative values of features whose
        /// constraints say `is_non_negative` (Model Monitor raises nothing for them).
        #[arg(long)]
        non_negative_check: bool,
    },
    /// Run the daemon the config describes: with `input.directory`, watch a directory and
    /// write each closed window's outputs (embedded mode); with `input.sqs_queue_url`, read
    /// the S3 objects the queue announces and deliver each window to the local directory, S3
    /// reports, CloudWatch and the rules' SNS/SQS destinations (AWS mode). Exits with an error
    /// when the config is invalid, a queue, bucket or topic it names does not exist, or a
    /// poller dies; SIGTERM stops it cleanly.
    Run {
        #[arg(long)]
        config: PathBuf,
        /// Embedded mode: read the files present now, write every window they fill, and exit.
        #[arg(long)]
        once: bool,
    },
    /// Check a config file (and the baselines it names) without running.
    Validate {
        #[arg(long)]
        config: PathBuf,
    },
    /// Clarify bias metrics of the input (one dataset) → analysis.json, as Clarify writes it.
    Bias {
        /// Clarify's analysis_config.json (label, facets, group_variable, methods, …).
        #[arg(long)]
        analysis_config: PathBuf,
        /// A baseline analysis.json: also check bias drift against it
        /// (constraint_violations.json; exit code 3 when there are violations).
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// `Endpoint` dimension of the metrics.
        #[arg(long)]
        endpoint: Option<String>,
        /// `MonitoringSchedule` dimension of the metrics.
        #[arg(long, default_value = "driftd-bias")]
        monitoring_schedule: String,
        #[command(flatten)]
        input: InputArgs,
        /// Directory to write analysis.json to.
        #[arg(long)]
        output: PathBuf,
    },
    /// Estimate a classifier's performance from its scores alone (CBPE, as NannyML): fit on a
    /// labelled reference, estimate ROC AUC, F1, precision, recall, specificity, accuracy and the
    /// confusion matrix per chunk of input rows → estimated_performance.json (exit code 3 when
    /// an estimate is outside the reference's thresholds).
    Estimate {
        /// Files or directories of the labelled reference data (same format flags as --input).
        #[arg(long, required = true, num_args = 1..)]
        reference: Vec<PathBuf>,
        #[arg(long, value_enum)]
        problem_type: ProblemType,
        /// The column of the model's predicted class.
        #[arg(long)]
        inference_attribute: String,
        /// Binary: the column of the score of class 1. Multiclass: one per class,
        /// comma-separated, as CLASS=COLUMN (or bare columns with --classes).
        #[arg(long, value_delimiter = ',', required = true)]
        probability_attribute: Vec<String>,
        /// Multiclass: the classes of bare --probability-attribute columns, in their order.
        #[arg(long, value_delimiter = ',')]
        classes: Option<Vec<String>>,
        /// The column of the ground truth: required in the reference; when the input has it,
        /// the realized metrics are written beside the estimates.
        #[arg(long)]
        ground_truth_attribute: String,
        /// Rows per chunk (a last incomplete chunk joins the one before); default: ten chunks
        /// per dataset.
        #[arg(long)]
        chunk_size: Option<usize>,
        #[command(flatten)]
        input: InputArgs,
        /// Directory to write estimated_performance.json to.
        #[arg(long)]
        output: PathBuf,
    },
    /// Compliance reports on the windows a monitor wrote.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
}

#[derive(Subcommand)]
enum ReportCommand {
    /// A bias monitor's windows over a period → report.html, report.json, manifest.json
    /// (and manifest.json.sig with --sign).
    Bias {
        #[arg(long)]
        config: PathBuf,
        /// The bias monitor's name in the config.
        #[arg(long)]
        monitor: String,
        /// Only this endpoint's windows (needed when the monitor has several).
        #[arg(long)]
        endpoint: Option<String>,
        /// Where the windows are: a directory, or the S3 report prefix (s3://bucket/prefix, as
        /// sinks.s3_report_uri writes them; read with the config's [aws]). Default: the
        /// config's output.directory.
        #[arg(long)]
        windows: Option<driftd::report::inputs::WindowSource>,
        /// Windows starting at or after this time (RFC 3339).
        #[arg(long)]
        from: chrono::DateTime<Utc>,
        /// Windows starting before this time (RFC 3339).
        #[arg(long)]
        to: chrono::DateTime<Utc>,
        #[arg(long)]
        output: PathBuf,
        /// html, json, pdf (report.json is always written: the chain links to it; pdf needs
        /// headless Chromium).
        #[arg(long, value_delimiter = ',', default_value = "html,json")]
        format: Vec<ReportFormat>,
        /// Ed25519 key file (64 hex digits, the 32-byte seed): sign the manifest.
        #[arg(long)]
        sign: Option<PathBuf>,
        /// The previous report's directory: this report carries its digest (the chain).
        #[arg(long)]
        previous: Option<PathBuf>,
        /// Groups with fewer rows are shown but not judged.
        #[arg(long, default_value_t = 30)]
        min_group_rows: u64,
    },
    /// Check report directories (oldest first: a chain): digests, signature, chain links.
    Verify {
        #[arg(required = true, num_args = 1..)]
        dirs: Vec<PathBuf>,
        /// The signer's public key (64 hex digits); without it, the key the manifest names.
        #[arg(long)]
        public_key: Option<String>,
        /// Also check the inputs (paths relative to this config file's directory).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the public key of a key file (to pin it in `verify --public-key`).
    PublicKey {
        #[arg(long)]
        key: PathBuf,
    },
}

/// What `baseline` and `check` monitor.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Kind {
    /// Feature statistics, data-quality constraints and drift (Model Monitor's data quality).
    DataQuality,
    /// Predictions against ground truth (Model Monitor's model quality).
    ModelQuality,
    /// Global SHAP values and their ranking's NDCG against a baseline (Model Monitor's feature
    /// attribution drift).
    FeatureAttribution,
    /// Drift of the joint distribution: PCA reconstruction error per chunk of rows against
    /// thresholds from the reference's chunks (NannyML's data reconstruction drift).
    MultivariateDrift,
}

/// Multivariate-drift settings (`--kind multivariate-drift`).
#[derive(Args)]
struct MultivariateArgs {
    /// The features (columns), comma-separated; default: every column of the reference.
    #[arg(long, value_delimiter = ',')]
    features: Option<Vec<String>>,
    /// Rows per chunk (a last incomplete chunk joins the one before). Baseline: default a
    /// tenth of the reference; check: the baseline's (thresholds hold for that size only).
    #[arg(long)]
    chunk_size: Option<usize>,
}

impl MultivariateArgs {
    fn check_kind(&self, kind: Kind) -> Result<()> {
        if kind != Kind::MultivariateDrift && (self.features.is_some() || self.chunk_size.is_some())
        {
            bail!("--features and --chunk-size need --kind multivariate-drift");
        }
        Ok(())
    }
}

/// Feature-attribution settings (`--kind feature-attribution`).
#[derive(Args)]
struct AttributionArgs {
    /// Clarify's agg_method for global SHAP values: mean_abs (default), mean_sq, median.
    #[arg(long, value_enum)]
    agg_method: Option<Aggregation>,
    /// A label whose NDCG is below this raises feature_attribution_drift_check (default 0.9).
    #[arg(long)]
    ndcg_threshold: Option<f64>,
    /// Capture: the JSON path (keys joined by '.') of the model's own contributions in its
    /// response (e.g. XGBoost pred_contribs); default: Clarify online explainability's
    /// explanations.kernel_shap.
    #[arg(long)]
    attributions_path: Option<String>,
    /// Names of positional attributions, comma-separated (default _c0, _c1, …).
    #[arg(long, value_delimiter = ',')]
    feature_headers: Option<Vec<String>>,
    /// The label the contributions at --attributions-path explain (default label0).
    #[arg(long)]
    attribution_label: Option<String>,
}

impl AttributionArgs {
    fn given(&self) -> bool {
        self.agg_method.is_some()
            || self.ndcg_threshold.is_some()
            || self.attributions_path.is_some()
            || self.feature_headers.is_some()
            || self.attribution_label.is_some()
    }

    /// The spec and source for `--kind feature-attribution`; `None` for the other kinds.
    fn spec(self, kind: Kind) -> Result<Option<(AttributionSpec, Arc<AttributionSource>)>> {
        if kind != Kind::FeatureAttribution {
            if self.given() {
                bail!(
                    "--agg-method, --ndcg-threshold and the attribution flags need --kind feature-attribution"
                );
            }
            return Ok(None);
        }
        let spec = AttributionSpec {
            aggregation: self.agg_method.unwrap_or_default(),
            threshold: self.ndcg_threshold.unwrap_or(DEFAULT_THRESHOLD),
            ..AttributionSpec::default()
        };
        spec.validate().map_err(anyhow::Error::msg)?;
        let source = AttributionSource::new(
            self.attributions_path.as_deref(),
            self.feature_headers,
            self.attribution_label,
        );
        Ok(Some((spec, Arc::new(source))))
    }
}

/// Model Monitor's model-quality settings (`--kind model-quality`). Attributes name columns,
/// or `_c0`, `_c1`, … of headerless input.
#[derive(Args)]
struct ModelQualityArgs {
    #[arg(long, value_enum)]
    problem_type: Option<ProblemType>,
    /// The column of the model's prediction.
    #[arg(long)]
    inference_attribute: Option<String>,
    /// BinaryClassification: the column of the model's score for label 1 (for the curves and
    /// the AUC).
    #[arg(long)]
    probability_attribute: Option<String>,
    /// BinaryClassification: the predicted label is 1 when the probability is above this.
    #[arg(long)]
    probability_threshold: Option<f64>,
    /// The column of the ground truth.
    #[arg(long)]
    ground_truth_attribute: Option<String>,
}

impl ModelQualityArgs {
    fn given(&self) -> bool {
        self.problem_type.is_some()
            || self.inference_attribute.is_some()
            || self.probability_attribute.is_some()
            || self.probability_threshold.is_some()
            || self.ground_truth_attribute.is_some()
    }

    /// The spec for `--kind model-quality`; `None` for data quality (whose run must not be
    /// given model-quality flags).
    fn spec(self, kind: Kind) -> Result<Option<ModelQualitySpec>> {
        if kind != Kind::ModelQuality {
            if self.given() {
                bail!("--problem-type and the attribute flags need --kind model-quality");
            }
            return Ok(None);
        }
        let (Some(problem_type), Some(ground_truth_attribute)) =
            (self.problem_type, self.ground_truth_attribute)
        else {
            bail!("--kind model-quality needs --problem-type and --ground-truth-attribute");
        };
        let spec = ModelQualitySpec {
            problem_type,
            inference_attribute: self.inference_attribute,
            probability_attribute: self.probability_attribute,
            probability_threshold: self.probability_threshold,
            ground_truth_attribute,
            class_scores: Vec::new(),
        };
        spec.validate().map_err(anyhow::Error::msg)?;
        Ok(Some(spec))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ReportFormat {
    Html,
    Json,
    Pdf,
}

#[derive(Args)]
struct InputArgs {
    /// Files or directories (read recursively) of input data; gzip and zstd are detected.
    #[arg(long, required = true, num_args = 1..)]
    input: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "capture")]
    format: InputFormat,
    /// CSV: the first line holds column names.
    #[arg(long, overrides_with = "no_header")]
    header: bool,
    /// CSV: no header line; columns are named _c0, _c1, … (the default).
    #[arg(long)]
    no_header: bool,
    /// Capture: whether the endpoint's output columns come before (start) or after (end) its
    /// input columns.
    #[arg(long, value_enum, default_value = "start")]
    output_columns_position: OutputColumnsPosition,
    /// JSON: how array elements are named ({key} and {index}).
    #[arg(long, default_value = "{key}_{index}")]
    array_element_name: String,
    /// Where malformed records are written (JSON Lines); default <output>/quarantine.jsonl.
    #[arg(long)]
    quarantine: Option<PathBuf>,
}

impl InputArgs {
    fn decode_options(&self) -> DecodeOptions {
        DecodeOptions {
            format: self.format,
            header: self.header && !self.no_header,
            output_columns_position: self.output_columns_position,
            array_element_name: self.array_element_name.clone(),
            ..DecodeOptions::default()
        }
    }
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DRIFTD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours for a person at a terminal only: in a file or a journal they are noise.
        .with_ansi(
            std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        );
    // One JSON object per line for CloudWatch Logs, Loki and the like.
    if std::env::var("DRIFTD_LOG_FORMAT").is_ok_and(|f| f == "json") {
        logs.json().flatten_event(true).init();
    } else {
        logs.init();
    }
    match execute(Cli::parse().command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn execute(command: Command) -> Result<ExitCode> {
    match command {
        Command::Baseline {
            kind,
            model_quality,
            attribution,
            multivariate,
            input,
            output,
        } => {
            multivariate.check_kind(kind)?;
            if kind == Kind::MultivariateDrift {
                if model_quality.given() || attribution.given() {
                    bail!("--kind multivariate-drift takes no model-quality or attribution flags");
                }
                return run_multivariate_baseline(multivariate, &input, &output);
            }
            let model_quality = model_quality.spec(kind)?;
            if let Some((spec, source)) = attribution.spec(kind)? {
                let scope = MetricScope {
                    endpoint: None,
                    monitoring_schedule: String::new(),
                    timestamp: Utc::now(),
                };
                return run_attribution(&spec, &source, None, &input, &output, &scope);
            }
            if let Some(spec) = model_quality {
                let scope = MetricScope {
                    endpoint: None,
                    monitoring_schedule: String::new(),
                    timestamp: Utc::now(),
                };
                return run_model_quality(&spec, None, &input, &output, &scope);
            }
            let (profile, _) = read_inputs(&input, &output)?;
            let baseline = Baseline::from_profile(&profile);
            baseline.write(&output)?;
            stdout::print(&format!(
                "baseline of {} records and {} features written to {}\n",
                profile.row_count,
                baseline.statistics.features.len(),
                output.display()
            ));
            Ok(ExitCode::SUCCESS)
        }
        Command::Estimate {
            reference,
            problem_type,
            inference_attribute,
            probability_attribute,
            classes,
            ground_truth_attribute,
            chunk_size,
            input,
            output,
        } => {
            let kind = match problem_type {
                ProblemType::BinaryClassification => driftd::cbpe::Kind::Binary,
                ProblemType::MulticlassClassification => driftd::cbpe::Kind::Multiclass,
                ProblemType::Regression => {
                    bail!(
                        "driftd estimate handles BinaryClassification and MulticlassClassification"
                    )
                }
            };
            let chunking = chunk_size.map_or(driftd::cbpe::Chunking::Count(10), |size| {
                driftd::cbpe::Chunking::Size(size)
            });
            let spec = EstimateSpec::new(
                kind,
                inference_attribute,
                probability_attribute,
                classes,
                ground_truth_attribute,
                chunking,
            )
            .map_err(anyhow::Error::msg)?;
            run_estimate(&spec, &reference, &input, &output)
        }
        Command::Check {
            kind,
            model_quality,
            attribution,
            multivariate,
            baseline,
            input,
            output,
            endpoint,
            monitoring_schedule,
            non_negative_check,
        } => {
            multivariate.check_kind(kind)?;
            if kind == Kind::MultivariateDrift {
                if model_quality.given() || attribution.given() || multivariate.features.is_some() {
                    bail!(
                        "--kind multivariate-drift check takes the features from the baseline and no model-quality or attribution flags"
                    );
                }
                return run_multivariate_check(&baseline, multivariate.chunk_size, &input, &output);
            }
            let model_quality = model_quality.spec(kind)?;
            if let Some((spec, source)) = attribution.spec(kind)? {
                let scope = MetricScope {
                    endpoint,
                    monitoring_schedule,
                    timestamp: Utc::now(),
                };
                return run_attribution(&spec, &source, Some(&baseline), &input, &output, &scope);
            }
            if let Some(spec) = model_quality {
                let scope = MetricScope {
                    endpoint,
                    monitoring_schedule,
                    timestamp: Utc::now(),
                };
                return run_model_quality(&spec, Some(&baseline), &input, &output, &scope);
            }
            let baseline = Baseline {
                non_negative_check,
                ..Baseline::load(&baseline)?
            };
            let (profile, report) = read_inputs(&input, &output)?;
            let rows = profile.row_count;
            let profile = analyze::adopt_baseline_names(profile, &baseline.statistics);
            let findings = analyze::analyze(&baseline, &profile);
            let scope = MetricScope {
                endpoint,
                monitoring_schedule,
                timestamp: Utc::now(),
            };
            let metrics = analyze::metrics::data_quality_metrics(&baseline, &findings, &scope);
            file::write_findings(&output, &findings, &metrics)?;
            let title = format!("driftd check ({} objects)", report.objects_read);
            stdout::print(&stdout::summarize(&title, rows, &findings));
            stdout::print(&format!("  → {}\n", output.display()));
            Ok(if findings.violations.violations.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_VIOLATIONS)
            })
        }
        Command::Run { config, once } => {
            let loaded = Config::load(&config)?;
            let summary = driftd::daemon::run(&loaded, &config, once)?;
            stdout::print(&format!(
                "{} objects read, {} failed (see {}), {} refused, {} matched no monitor, {} windows written, {} with violations, {} late records, {} failed receives or scans, {} S3 reports given up\n",
                summary.counts.objects_recorded,
                summary.objects_failed,
                driftd::daemon::DEAD_LETTER_FILE,
                summary.counts.objects_refused,
                summary.counts.objects_unrouted,
                summary.counts.windows,
                summary.counts.windows_with_violations,
                summary.counts.late_rows,
                summary.counts.input_failures,
                summary.counts.reports_failed
            ));
            // A daemon's exit code says whether it ran, not what it found; alerts say that.
            Ok(ExitCode::SUCCESS)
        }
        Command::Bias {
            analysis_config,
            baseline,
            endpoint,
            monitoring_schedule,
            input,
            output,
        } => {
            let scope = MetricScope {
                endpoint,
                monitoring_schedule,
                timestamp: Utc::now(),
            };
            let run = driftd::pipeline::run_bias(
                &analysis_config,
                baseline.as_deref(),
                &input.input,
                &input.decode_options(),
                input.quarantine.clone(),
                &output,
                &scope,
            )?;
            for error in &run.report.failed {
                eprintln!("skipped object: {error}");
            }
            stdout::print(&format!(
                "bias metrics of {} records ({} objects, {} malformed records skipped) → {}\n",
                run.report.rows,
                run.report.objects_read,
                run.rejected_records,
                run.analysis_path.display()
            ));
            let violations = run.violations.map_or(0, |v| {
                for violation in &v.violations {
                    stdout::print(&format!(
                        "  bias drift  {}={}  {}: {}\n",
                        violation.facet,
                        violation.facet_value,
                        violation.metric_name,
                        violation.description
                    ));
                }
                v.violations.len()
            });
            Ok(if violations == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_VIOLATIONS)
            })
        }
        Command::Report { command } => report(command),
        Command::Validate { config } => {
            let loaded = Config::load(&config)?;
            loaded.load_baselines(&config)?;
            loaded.load_rules(&config)?;
            let warnings = loaded.warnings();
            for warning in &warnings {
                stdout::print(&format!("warning: {warning}\n"));
            }
            stdout::print(&format!(
                "{}: valid ({} monitors, {} warnings)\n",
                config.display(),
                loaded.monitors.len(),
                warnings.len()
            ));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `driftd baseline --kind multivariate-drift`.
fn run_multivariate_baseline(
    args: MultivariateArgs,
    input: &InputArgs,
    output: &Path,
) -> Result<ExitCode> {
    let run = driftd::multivariate_run::run_baseline(
        args.features,
        args.chunk_size,
        &input.input,
        &input.decode_options(),
        input.quarantine.clone(),
        output,
    )?;
    let b = &run.baseline;
    if b.reference_chunk_errors.len() < 6 {
        eprintln!(
            "warning: the reference makes only {} chunks of this size; thresholds from so few values are unreliable (choose a smaller --chunk-size)",
            b.reference_chunk_errors.len()
        );
    }
    stdout::print(&format!(
        "multivariate baseline of {} rows and {} features ({} components, {} chunks of {} rows, {} rows refused) → {}\n",
        b.reference_rows,
        b.features.len(),
        b.component_count(),
        b.reference_chunk_errors.len(),
        b.chunk_size,
        b.reference_rows_refused,
        output.display()
    ));
    Ok(ExitCode::SUCCESS)
}

/// `driftd check --kind multivariate-drift`: exit code 3 when a chunk alerts.
fn run_multivariate_check(
    baseline: &Path,
    chunk_size: Option<usize>,
    input: &InputArgs,
    output: &Path,
) -> Result<ExitCode> {
    let run = driftd::multivariate_run::run_check(
        baseline,
        chunk_size,
        &input.input,
        &input.decode_options(),
        input.quarantine.clone(),
        output,
    )?;
    stdout::print(&format!(
        "multivariate drift of {} rows in {} chunks ({} rows refused) → {}\n",
        run.input_rows,
        run.chunks.len(),
        run.rows_refused,
        output.display()
    ));
    let mut alerts = 0;
    for chunk in run.chunks.iter().filter(|c| c.result.alert) {
        alerts += 1;
        let top: Vec<String> = chunk
            .result
            .top_features
            .iter()
            .map(|f| format!("{} {:.0}%", f.feature, 100.0 * f.share))
            .collect();
        stdout::print(&format!(
            "  chunk {} [{}:{}] reconstruction error {:.4} outside ({}, {}); most: {}\n",
            chunk.index,
            chunk.start_row,
            chunk.end_row,
            chunk.result.reconstruction_error.unwrap_or(f64::NAN),
            chunk
                .result
                .lower_threshold
                .map_or("-".into(), |x| format!("{x:.4}")),
            chunk
                .result
                .upper_threshold
                .map_or("-".into(), |x| format!("{x:.4}")),
            top.join(", ")
        ));
    }
    Ok(if alerts == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_VIOLATIONS)
    })
}

/// `driftd estimate`: the file, a summary, exit code 3 when an estimate alerts.
fn run_estimate(
    spec: &EstimateSpec,
    reference: &[PathBuf],
    input: &InputArgs,
    output: &Path,
) -> Result<ExitCode> {
    let run = driftd::estimate::run_estimate(
        spec,
        reference,
        &input.input,
        &input.decode_options(),
        input.quarantine.clone(),
        output,
    )?;
    for error in &run.failed {
        eprintln!("skipped object: {error}");
    }
    if run.reference_chunks < 6 {
        eprintln!(
            "warning: the reference makes only {} chunks of this size; thresholds from so few values are unreliable (choose a smaller --chunk-size)",
            run.reference_chunks
        );
    }
    if run.unlabelled_input_rows > 0 && run.unlabelled_input_rows < run.input_rows as u64 {
        eprintln!(
            "note: {} input rows have no usable ground truth, so no realized values are given",
            run.unlabelled_input_rows
        );
    }
    let calibrated: Vec<&str> = run
        .calibration
        .iter()
        .filter(|c| c.decision.calibrated)
        .map(|c| c.class.as_str())
        .collect();
    stdout::print(&format!(
        "estimated performance of {} input rows in {} chunks (reference {} rows; calibrated classes {:?}; {} rows skipped) → {}\n",
        run.input_rows,
        run.chunks.len(),
        run.reference_rows,
        calibrated,
        run.rows_skipped,
        output.display()
    ));
    let alerts = run.alerts();
    for (chunk, metric) in &alerts {
        let c = &run.chunks[*chunk];
        let m = &c.metrics[*metric];
        stdout::print(&format!(
            "  chunk {} [{}:{}] {metric} {:.4} outside [{:.4}, {:.4}]\n",
            c.index, c.start_row, c.end_row, m.value, m.lower_threshold, m.upper_threshold
        ));
    }
    Ok(if alerts.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_VIOLATIONS)
    })
}

/// `baseline` / `check` with `--kind model-quality`: the files, a summary, the exit code.
fn run_model_quality(
    spec: &ModelQualitySpec,
    baseline: Option<&Path>,
    input: &InputArgs,
    output: &Path,
    scope: &MetricScope,
) -> Result<ExitCode> {
    let run = pipeline::run_model_quality(
        spec,
        baseline,
        &input.input,
        &input.decode_options(),
        input.quarantine.clone(),
        output,
        scope,
    )?;
    for error in &run.report.failed {
        eprintln!("skipped object: {error}");
    }
    stdout::print(&format!(
        "model quality ({:?}) of {} labelled records ({} objects, {} records without a usable value skipped) → {}\n",
        spec.problem_type,
        run.statistics.item_count,
        run.report.objects_read,
        run.skipped_rows,
        output.display()
    ));
    if run.statistics.score_rows_refused > 0 {
        eprintln!(
            "warning: more distinct scores than driftd keeps ({}); no curves and no auc",
            driftd::model_quality::MAX_SCORE_ENTRIES
        );
    }
    let violations = run.violations.map_or(0, |v| {
        for violation in &v.violations {
            stdout::print(&format!("  {}\n", violation.description));
        }
        v.violations.len()
    });
    Ok(if violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_VIOLATIONS)
    })
}

/// `baseline` / `check` with `--kind feature-attribution`: the files, a summary, the exit code.
fn run_attribution(
    spec: &AttributionSpec,
    source: &Arc<AttributionSource>,
    baseline: Option<&Path>,
    input: &InputArgs,
    output: &Path,
    scope: &MetricScope,
) -> Result<ExitCode> {
    let run = pipeline::run_attribution(
        spec,
        source,
        baseline,
        &input.input,
        &input.decode_options(),
        input.quarantine.clone(),
        output,
        scope,
    )?;
    for error in &run.report.failed {
        eprintln!("skipped object: {error}");
    }
    stdout::print(&format!(
        "feature attribution of {} records ({} objects, {} malformed records skipped, {} values past the feature limit, {} unreadable values) → {}\n",
        run.records,
        run.report.objects_read,
        run.rejected_records,
        run.refused_values,
        run.bad_values,
        output.display()
    ));
    for drift in &run.drift {
        match drift.ndcg {
            Some(ndcg) => stdout::print(&format!("  {}: NDCG {ndcg}\n", drift.label)),
            None => stdout::print(&format!(
                "  {}: no NDCG (the window has no ranking for this label)\n",
                drift.label
            )),
        }
    }
    let violations = run.violations.map_or(0, |v| {
        for violation in &v.violations {
            stdout::print(&format!(
                "  {}: {}\n",
                violation.label, violation.description
            ));
        }
        v.violations.len()
    });
    Ok(if violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_VIOLATIONS)
    })
}

fn report(command: ReportCommand) -> Result<ExitCode> {
    use driftd::report::{self, sign};
    match command {
        ReportCommand::Bias {
            config,
            monitor,
            endpoint,
            windows,
            from,
            to,
            output,
            format,
            sign,
            previous,
            min_group_rows,
        } => {
            let written = report::generate(&report::Request {
                config_path: &config,
                monitor: &monitor,
                endpoint: endpoint.as_deref(),
                windows: windows.as_ref(),
                from,
                to,
                output: &output,
                html: format.contains(&ReportFormat::Html),
                pdf: format.contains(&ReportFormat::Pdf),
                key: sign.as_deref(),
                previous: previous.as_deref(),
                min_group_rows,
            })?;
            stdout::print(&format!(
                "bias report {} of {} windows → {}\n",
                written.report.report_id,
                written.windows,
                output.display()
            ));
            for verdict in written
                .report
                .verdicts
                .iter()
                .filter(|v| v.scope == "period")
            {
                stdout::print(&format!(
                    "  {} {}: {}\n",
                    verdict.attribute, verdict.criterion, verdict.verdict
                ));
            }
            Ok(ExitCode::SUCCESS)
        }
        ReportCommand::Verify {
            dirs,
            public_key,
            config,
        } => {
            let base = config
                .as_deref()
                .map(|c| c.parent().unwrap_or(Path::new("")).to_path_buf());
            for verified in sign::verify(&dirs, public_key.as_deref(), base.as_deref())? {
                stdout::print(&format!(
                    "{}: ok (report.json {}, {}, {} inputs checked)\n",
                    verified.dir.display(),
                    verified.report_sha256,
                    verified
                        .signed_by
                        .map_or("unsigned".into(), |k| format!("signed by {k}")),
                    verified.inputs_checked
                ));
            }
            Ok(ExitCode::SUCCESS)
        }
        ReportCommand::PublicKey { key } => {
            let key = sign::read_signing_key(&key)?;
            stdout::print(&format!("{}\n", sign::public_key_hex(&key)));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Decodes and profiles the inputs as one dataset; malformed records go to the quarantine
/// file, undecodable objects are listed on stderr. Fails only when nothing could be read.
fn read_inputs(input: &InputArgs, output: &Path) -> Result<(driftd::profile::Profile, ReadReport)> {
    let mut run = pipeline::RunInputs::open(&input.input, output, input.quarantine.clone())?;
    let (profile, report) =
        pipeline::profile_files(&run.files, &input.decode_options(), &mut run.quarantine);
    for error in &report.failed {
        eprintln!("skipped object: {error}");
    }
    if report.columns_refused > 0 {
        eprintln!(
            "{} columns left out: the objects together have more than limits.max_columns ({})",
            report.columns_refused,
            input.decode_options().limits.max_columns
        );
    }
    if let Some(line) = stdout::summarize_quarantine(&run.quarantine.counts_by_name()) {
        stdout::print(&format!("{line} → {}\n", run.quarantine_path().display()));
    }
    run.finish(&report)?;
    Ok((profile, report))
}
