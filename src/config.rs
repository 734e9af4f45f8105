//! `driftd run` configuration (TOML). Unknown keys are rejected, and every error names the file,
//! the key and what to change: a daemon that starts with a typo in its config watches nothing.

use crate::s3_uri::S3Uri;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::attribution::{Aggregation, AttributionAnalysis, AttributionSource, AttributionSpec};
use crate::baseline::Baseline;
use crate::bias::{Analysis, BiasSpec};
use crate::decode::{DecodeOptions, InputFormat, Limits, OutputColumnsPosition};
use crate::model_quality::{ModelQualityConstraints, ModelQualitySpec, ProblemType};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// AWS mode's client settings; credentials come from the SDK's default chain.
    #[serde(default)]
    pub aws: AwsConfig,
    pub input: InputConfig,
    pub output: OutputConfig,
    #[serde(default)]
    pub window: WindowConfig,
    #[serde(default)]
    pub sinks: SinksConfig,
    #[serde(default)]
    pub daemon: DaemonConfig,
    /// AWS mode: where the durable state lives.
    #[serde(default)]
    pub state: StateConfig,
    /// Sizes and ratios past which a record or an object is refused.
    #[serde(default)]
    pub limits: Limits,
    /// The operators' HTTP endpoint: `/metrics`, `/healthz`, `/readyz`.
    #[serde(default)]
    pub observability: ObservabilityConfig,
    /// Alert and retrain rules. Without this section, embedded mode applies none and AWS mode
    /// applies the shipped `rules/default.toml` (an alert per episode of violations).
    pub rules: Option<RulesConfig>,
    /// The daemon's periodic compliance reports on its bias monitors.
    pub report: Option<ReportConfig>,
    #[serde(rename = "monitor")]
    pub monitors: Vec<MonitorConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservabilityConfig {
    /// Address to serve `/metrics`, `/healthz` and `/readyz` on, e.g. `127.0.0.1:9464`
    /// (Prometheus' port range); off when absent.
    pub listen: Option<std::net::SocketAddr>,
}

/// `[report]`: each bias monitor's compliance report for every closed period (what `driftd
/// report bias` writes), to `{output.directory}/reports/` and, with an S3 report sink, its
/// prefix.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    /// The period, a whole number of windows (e.g. "1d").
    #[serde(with = "humantime_serde")]
    pub every: Duration,
    /// Ed25519 key file (64 hex digits) to sign each report with.
    pub sign: Option<PathBuf>,
    /// Groups with fewer rows are shown but not judged.
    #[serde(default = "default_min_group_rows")]
    pub min_group_rows: u64,
}

fn default_min_group_rows() -> u64 {
    30
}

/// AWS mode's rules when the config names none.
const DEFAULT_RULES: &str = include_str!("../rules/default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// Every `*.toml` file in it holds `[[rule]]` tables (see rules/default.toml).
    pub directory: PathBuf,
}

/// The input of `driftd run`, resolved: embedded mode's directory or AWS mode's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputSource<'a> {
    Directory(&'a Path),
    Queue(&'a str),
}

/// Where objects come from: a local directory (embedded mode) or, with `sqs_queue_url`, S3
/// event notifications on an SQS queue (AWS mode). Exactly one of the two.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    pub directory: Option<PathBuf>,
    /// How often the directory is scanned for new files.
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// A file is read only once it has not changed for this long, so that a file still being
    /// written is not read half. Writers that rename finished files into place can set 0s.
    #[serde(default = "default_settle_time", with = "humantime_serde")]
    pub settle_time: Duration,
    /// AWS mode: the queue S3 event notifications arrive on (directly, via SNS or EventBridge).
    pub sqs_queue_url: Option<String>,
    /// AWS mode: the only buckets driftd reads. A message naming another is refused and deleted.
    #[serde(default)]
    pub allowed_buckets: Vec<String>,
    /// AWS mode: if set, the only key prefixes driftd reads.
    #[serde(default)]
    pub allowed_prefixes: Vec<String>,
    /// AWS mode: concurrent long-polling receivers, each working on its messages in turn.
    #[serde(default = "default_pollers")]
    pub pollers: usize,
    /// AWS mode: how long a received message stays invisible; extended while it is worked on.
    #[serde(default = "default_visibility_timeout", with = "humantime_serde")]
    pub visibility_timeout: Duration,
    /// AWS mode: long-poll wait per ReceiveMessage call (at most 20s).
    #[serde(default = "default_wait_time", with = "humantime_serde")]
    pub wait_time: Duration,
}

impl InputConfig {
    /// AWS mode: objects come from S3 through SQS.
    pub fn is_aws(&self) -> bool {
        self.sqs_queue_url.is_some()
    }

    /// Where objects come from: exactly one of `directory` and `sqs_queue_url`.
    pub fn source(&self) -> Result<InputSource<'_>, String> {
        match (&self.directory, &self.sqs_queue_url) {
            (Some(_), Some(_)) => Err("input: set either directory (embedded mode) or sqs_queue_url (AWS mode), not both".into()),
            (None, None) => Err("input: set directory (embedded mode: a local directory) or sqs_queue_url (AWS mode: S3 events on an SQS queue)".into()),
            (Some(directory), None) => Ok(InputSource::Directory(directory)),
            (None, Some(url)) => Ok(InputSource::Queue(url)),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    /// Default: the SDK's (AWS_REGION, the profile's region, instance metadata).
    pub region: Option<String>,
    /// An emulator or a VPC endpoint; S3 is then addressed path-style.
    pub endpoint_url: Option<String>,
    /// A named profile from ~/.aws/config for the credential chain.
    pub profile: Option<String>,
    /// CloudWatch's endpoint alone (e.g. a VPC interface endpoint for `monitoring`); takes
    /// precedence over `endpoint_url` for CloudWatch.
    pub cloudwatch_endpoint_url: Option<String>,
    /// SNS's endpoint alone (e.g. a VPC interface endpoint for `sns`); takes precedence over
    /// `endpoint_url` for the SNS messages (alerts, retrain triggers to topics).
    pub sns_endpoint_url: Option<String>,
    /// How long to wait for a connection to an AWS service.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long one AWS call may take before it is abandoned (and retried): a stalled
    /// connection must not hang driftd. A long poll gets `input.wait_time` on top; an object's
    /// body may pause this long between two pieces.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
}

impl AwsConfig {
    /// How the AWS clients connect.
    pub fn connection(&self) -> crate::aws::Connection<'_> {
        crate::aws::Connection {
            region: self.region.as_deref(),
            profile: self.profile.as_deref(),
            endpoint_url: self.endpoint_url.as_deref(),
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
        }
    }
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self {
            region: None,
            endpoint_url: None,
            profile: None,
            cloudwatch_endpoint_url: None,
            sns_endpoint_url: None,
            connect_timeout: default_connect_timeout(),
            request_timeout: default_request_timeout(),
        }
    }
}

/// AWS mode's destinations, beside the local output directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinksConfig {
    /// Publish each window's metrics with PutMetricData (Model Monitor's namespaces and names).
    #[serde(default)]
    pub cloudwatch: bool,
    /// Put before the namespace, e.g. `"staging/"` gives `staging/aws/sagemaker/Endpoints/data-metrics`.
    #[serde(default)]
    pub cloudwatch_namespace_prefix: String,
    /// The topic rules' alerts go to, unless a rule names its own.
    pub sns_topic_arn: Option<String>,
    /// How long a window's alerts wait for its S3 report (they link to it) before they go
    /// without the links.
    #[serde(default = "default_report_wait", with = "humantime_serde")]
    pub report_wait: Duration,
    /// The topic rules' retrain triggers go to, unless a rule names its own topic or queue.
    pub retrain_topic_arn: Option<String>,
    /// Instead of a topic: the SQS queue retrain triggers go to.
    pub retrain_queue_url: Option<String>,
    /// Upload each window's outputs under this `s3://bucket/prefix` in Model Monitor's layout.
    pub s3_report_uri: Option<S3Uri>,
    /// Attempts per sink call (exponential backoff with jitter between them).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

impl Default for SinksConfig {
    fn default() -> Self {
        Self {
            cloudwatch: false,
            cloudwatch_namespace_prefix: String::new(),
            sns_topic_arn: None,
            report_wait: default_report_wait(),
            retrain_topic_arn: None,
            retrain_queue_url: None,
            s3_report_uri: None,
            max_attempts: default_attempts(),
        }
    }
}

/// AWS mode's durable state: the ledger of objects counted, each object's partial windows,
/// the outbox of deliveries and the rules' state. Replicas on one queue share it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// A local directory (one machine); default `{output.directory}/state`.
    pub directory: Option<PathBuf>,
    /// Instead: `s3://bucket/prefix`, shared by every replica (the production store).
    pub s3_uri: Option<S3Uri>,
    /// How long a replica's claim on a series (to finalise and deliver its windows) lasts
    /// without renewal: after a crash, another replica carries on this much later.
    #[serde(default = "default_lease_timeout", with = "humantime_serde")]
    pub lease_timeout: Duration,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            directory: None,
            s3_uri: None,
            lease_timeout: default_lease_timeout(),
        }
    }
}

fn default_lease_timeout() -> Duration {
    Duration::from_secs(60)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// On SIGTERM/SIGINT: time to flush sinks and release messages before exiting anyway.
    #[serde(default = "default_shutdown_timeout", with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// AWS mode: when this many finalised windows wait in the outbox (sinks down or slow),
    /// pollers stop taking new messages until deliveries catch up.
    #[serde(default = "default_max_undelivered")]
    pub max_undelivered_windows: usize,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            shutdown_timeout: default_shutdown_timeout(),
            max_undelivered_windows: default_max_undelivered(),
        }
    }
}

fn default_max_undelivered() -> usize {
    1000
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
    /// What the monitor computes per window.
    #[serde(default)]
    pub kind: MonitorKind,
    /// Data quality: directory with the baseline's `statistics.json` and `constraints.json`.
    /// Bias: the baseline `analysis.json` file.
    pub baseline: PathBuf,
    /// Bias: Clarify's `analysis_config.json` (label, facets, predicted label, methods).
    pub analysis_config: Option<PathBuf>,
    /// Model quality: Model Monitor's `problem_type`.
    pub problem_type: Option<ProblemType>,
    /// Model quality: the column of the model's prediction (a label, or a number).
    pub inference_attribute: Option<String>,
    /// Model quality, binary: the column of the model's score for label 1.
    pub probability_attribute: Option<String>,
    /// Model quality, binary: the predicted label is 1 when the score is above this.
    pub probability_threshold: Option<f64>,
    /// Model quality: the column of the ground truth.
    pub ground_truth_attribute: Option<String>,
    /// Feature attribution: Clarify's `agg_method` (`mean_abs`, default; `mean_sq`; `median`).
    pub agg_method: Option<Aggregation>,
    /// Feature attribution: a label whose NDCG is below this has drifted (default 0.9).
    pub ndcg_threshold: Option<f64>,
    /// Feature attribution, capture: the JSON path of the model's own contributions in its
    /// response (keys joined by `.`); default: Clarify online explainability's
    /// `explanations.kernel_shap`.
    pub attributions_path: Option<String>,
    /// Feature attribution: names of positional attributions (default `_c0`, `_c1`, …).
    pub feature_headers: Option<Vec<String>>,
    /// Feature attribution: the label that `attributions_path` explains (default `label0`).
    pub attribution_label: Option<String>,
    /// Feature attribution: features a window keeps per label (default 1,000); values of
    /// further ones are refused and counted.
    pub max_attribution_features: Option<usize>,
    /// Model quality on live traffic: which files hold the labels (SageMaker's ground-truth
    /// JSON Lines), a pattern like `path`. The monitor then reads its `path` files as capture
    /// (predictions) and joins them with these labels by `inferenceId`, else `eventId`.
    pub ground_truth_path: Option<String>,
    /// With `ground_truth_path`: how long after a window's end (and the allowed lateness) its
    /// predictions wait for labels before the window is finalised (default 1h).
    #[serde(default, with = "humantime_serde::option")]
    pub label_lateness: Option<Duration>,
    /// With `ground_truth_path`: how long a finalised window's unlabelled predictions stay
    /// pending, so that a later label is counted late for its window (default 7d).
    #[serde(default, with = "humantime_serde::option")]
    pub label_ttl: Option<Duration>,
    /// With `ground_truth_path`: how long a label waits for its prediction before it is
    /// counted as an orphan (default 1d, or longer when a window takes longer to close for
    /// labels: at least `window.size + window.allowed_lateness + label_lateness`).
    #[serde(default, with = "humantime_serde::option")]
    pub orphan_ttl: Option<Duration>,
    /// With `ground_truth_path`: a label that comes after its window closed restates the
    /// window — its files are written again, with the label, as the window's next revision.
    #[serde(default)]
    pub restate: bool,
    /// driftd's addition for a label-joined classification monitor: each window's
    /// performance estimated from its scores before the labels come (CBPE).
    pub estimate: Option<EstimateConfig>,
    /// Data quality: also raise driftd's `is_non_negative_check` (Model Monitor does not).
    #[serde(default)]
    pub non_negative_check: bool,
    #[serde(default)]
    pub header: bool,
    #[serde(default = "default_output_position")]
    pub output_columns_position: OutputColumnsPosition,
    #[serde(default = "default_array_element_name")]
    pub array_element_name: String,
    /// AWS mode: the matching objects are batch transform capture manifests
    /// (`[{"prefix": "s3://…/"}, "key", …]`); the objects they list are read in `format`.
    #[serde(default)]
    pub manifest: bool,
    /// Identifiers of the model behind this monitor (e.g. `model_name`, `model_package_arn`),
    /// copied into retrain triggers so the retraining pipeline knows what to retrain.
    #[serde(default)]
    pub model: std::collections::BTreeMap<String, String>,
}

/// `[monitor.estimate]`: what CBPE learns its calibration, sampling errors and thresholds
/// from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EstimateConfig {
    /// A labelled reference: the monitor's prediction columns (`inference_attribute`,
    /// `probability_attribute`) and `ground_truth_attribute`, by those names, one row each.
    pub reference: PathBuf,
    /// The thresholds are mean ± 3 std of each metric over the reference's chunks of this
    /// many rows: a window should hold about as many predictions.
    pub chunk_size: usize,
    #[serde(default = "default_reference_format")]
    pub format: InputFormat,
    /// CSV: the reference's first line names its columns.
    #[serde(default = "default_true")]
    pub header: bool,
    /// MulticlassClassification: per class, the column holding the model's score of it
    /// (`{ cat = "_c1", dog = "_c2" }`), in the capture and the reference alike.
    #[serde(default)]
    pub probability_attributes: std::collections::BTreeMap<String, String>,
}

impl EstimateConfig {
    /// The class score columns as a multiclass spec keeps them: (class, column), class names
    /// as the join reads them (`1.0` is class `1`), sorted. `Err` names a class given twice.
    fn class_scores(&self) -> Result<Vec<(String, String)>, String> {
        let mut pairs: Vec<(String, String)> = (self.probability_attributes.iter())
            .map(|(class, column)| {
                (
                    crate::model_quality::canonical_class(class.trim()),
                    column.clone(),
                )
            })
            .collect();
        pairs.sort();
        match pairs.windows(2).find(|w| w[0].0 == w[1].0) {
            Some(w) => Err(format!(
                "class {:?} is named twice in probability_attributes",
                w[0].0
            )),
            None => Ok(pairs),
        }
    }
}

fn default_reference_format() -> InputFormat {
    InputFormat::Csv
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MonitorKind {
    /// Model Monitor's data quality: profile, constraints, baseline drift.
    #[default]
    DataQuality,
    /// Clarify's bias metrics and bias drift against a baseline `analysis.json`. Rows need the
    /// label and predicted label columns the analysis config names: batch files (CSV, JSON
    /// Lines, Parquet) that carry both work. Capture records carry no labels until a
    /// ground-truth join exists: on capture data the post-training metrics come out as errors
    /// and the label-based pre-training ones mean nothing.
    Bias,
    /// Model Monitor's model quality against a baseline's `constraints.json`. Rows need the
    /// prediction and the ground truth (files that carry both, e.g. batch outputs joined
    /// with their labels).
    ModelQuality,
    /// Model Monitor's feature attribution drift: global SHAP values per window and the NDCG of
    /// their ranking against a baseline explainability `analysis.json`.
    FeatureAttribution,
    /// driftd's multivariate drift (NannyML's data reconstruction drift): each window's mean
    /// PCA reconstruction error against the thresholds of a `multivariate_baseline.json`.
    #[serde(alias = "multivariate-drift")]
    MultivariateDrift,
}

/// What a monitor's windows are checked against, loaded at start-up.
#[derive(Debug, Clone)]
pub enum MonitorBaseline {
    DataQuality(Baseline),
    Bias {
        spec: Arc<BiasSpec>,
        baseline: Analysis,
    },
    ModelQuality {
        spec: Arc<ModelQualitySpec>,
        constraints: ModelQualityConstraints,
        /// With `[monitor.estimate]`: CBPE fitted on its reference.
        estimator: Option<Arc<crate::estimate::WindowEstimator>>,
    },
    FeatureAttribution {
        spec: Arc<AttributionSpec>,
        baseline: AttributionAnalysis,
    },
    /// The baseline's features, encoding, PCA and thresholds.
    MultivariateDrift(Arc<crate::multivariate::MultivariateSpec>),
}

/// How a model-quality monitor joins labels with its predictions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelJoin {
    pub label_lateness: Duration,
    pub label_ttl: Duration,
    pub orphan_ttl: Duration,
    pub restate: bool,
}

impl MonitorConfig {
    /// The label join's settings, for a monitor with `ground_truth_path` (`window`: the
    /// config's windows).
    pub fn label_join(&self, window: &WindowConfig) -> Option<LabelJoin> {
        self.ground_truth_path.as_ref()?;
        let label_lateness = self.label_lateness.unwrap_or(Duration::from_secs(3600));
        Some(LabelJoin {
            label_lateness,
            label_ttl: self.label_ttl.unwrap_or(Duration::from_secs(7 * 24 * 3600)),
            orphan_ttl: self.orphan_ttl.unwrap_or_else(|| {
                Duration::from_secs(24 * 3600)
                    .max(window.size + window.allowed_lateness + label_lateness)
            }),
            restate: self.restate,
        })
    }

    fn load_baseline(&self, key: &str, limits: Limits) -> Result<MonitorBaseline, String> {
        let baseline = &self.baseline;
        match self.kind {
            MonitorKind::DataQuality => Baseline::load(baseline)
                .map(|baseline| {
                    MonitorBaseline::DataQuality(Baseline {
                        non_negative_check: self.non_negative_check,
                        ..baseline
                    })
                })
                .map_err(|e| format!(
                    "{key}.baseline: {e}; point it at a directory holding statistics.json and constraints.json (make one with `driftd baseline`)"
                )),
            MonitorKind::Bias => {
                if baseline.is_dir() {
                    return Err(format!(
                        "{key}.baseline: {} is a directory; a bias monitor's baseline is an analysis.json file (make one with `driftd bias`)",
                        baseline.display()
                    ));
                }
                let analysis_config = self.analysis_config.as_ref().ok_or_else(|| {
                    format!("{key}.analysis_config: required for a bias monitor (Clarify's analysis_config.json)")
                })?;
                let spec = BiasSpec::load(analysis_config)
                    .map_err(|e| format!("{key}.analysis_config: {e}"))?;
                let baseline = crate::json_file::read_json(baseline).map_err(|e| format!(
                    "{key}.baseline: {e}; a bias monitor's baseline is an analysis.json file (make one with `driftd bias`)"
                ))?;
                Ok(MonitorBaseline::Bias {
                    spec: Arc::new(spec),
                    baseline,
                })
            }
            MonitorKind::ModelQuality => {
                let spec = self.model_quality_spec(key)?;
                let constraints =
                    crate::pipeline::read_model_quality_constraints(baseline, spec.problem_type)
                        .map_err(|e| format!(
                            "{key}.baseline: {e}; point it at a directory holding a model-quality constraints.json (make one with `driftd baseline --kind model-quality`)"
                        ))?;
                let estimator = (self.estimate.as_ref())
                    .map(|settings| {
                        crate::estimate::WindowEstimator::fit(&spec, settings, limits)
                            .map(Arc::new)
                            .map_err(|e| format!("{key}.estimate.reference: {e}"))
                    })
                    .transpose()?;
                Ok(MonitorBaseline::ModelQuality {
                    spec: Arc::new(spec),
                    constraints,
                    estimator,
                })
            }
            MonitorKind::FeatureAttribution => {
                let baseline = AttributionAnalysis::load(baseline).map_err(|e| format!(
                    "{key}.baseline: {e}; a feature-attribution monitor's baseline is an explainability analysis.json file (Clarify's, or one from `driftd baseline --kind feature-attribution`)"
                ))?;
                Ok(MonitorBaseline::FeatureAttribution {
                    spec: Arc::new(self.attribution_spec(key)?),
                    baseline,
                })
            }
            MonitorKind::MultivariateDrift => {
                let spec = crate::multivariate::MultivariateSpec::load(baseline).map_err(|e| format!(
                    "{key}.baseline: {e}; a multivariate-drift monitor's baseline is a multivariate_baseline.json file, or the folder holding one (make it with `driftd baseline --kind multivariate-drift`)"
                ))?;
                Ok(MonitorBaseline::MultivariateDrift(Arc::new(spec)))
            }
        }
    }

    /// What a feature-attribution monitor computes; `key` names the monitor in errors.
    fn attribution_spec(&self, key: &str) -> Result<AttributionSpec, String> {
        let defaults = AttributionSpec::default();
        let spec = AttributionSpec {
            aggregation: self.agg_method.unwrap_or(defaults.aggregation),
            threshold: self.ndcg_threshold.unwrap_or(defaults.threshold),
            max_features: self
                .max_attribution_features
                .unwrap_or(defaults.max_features),
        };
        spec.validate().map_err(|e| format!("{key}: {e}"))?;
        Ok(spec)
    }

    /// Where a feature-attribution monitor finds each record's attributions in a capture.
    fn attribution_source(&self) -> Option<Arc<AttributionSource>> {
        (self.kind == MonitorKind::FeatureAttribution).then(|| {
            Arc::new(AttributionSource::new(
                self.attributions_path.as_deref(),
                self.feature_headers.clone(),
                self.attribution_label.clone(),
            ))
        })
    }

    /// What a model-quality monitor reads from each row; `key` names the monitor in errors.
    fn model_quality_spec(&self, key: &str) -> Result<ModelQualitySpec, String> {
        let missing = |setting: &str| {
            format!("{key}.{setting}: required for a monitor with kind = \"model_quality\"")
        };
        let spec = ModelQualitySpec {
            problem_type: self.problem_type.ok_or_else(|| missing("problem_type"))?,
            inference_attribute: self.inference_attribute.clone(),
            probability_attribute: self.probability_attribute.clone(),
            probability_threshold: self.probability_threshold,
            ground_truth_attribute: self
                .ground_truth_attribute
                .clone()
                .ok_or_else(|| missing("ground_truth_attribute"))?,
            class_scores: match &self.estimate {
                Some(estimate) => estimate
                    .class_scores()
                    .map_err(|e| format!("{key}.estimate: {e}"))?,
                None => Vec::new(),
            },
        };
        spec.validate().map_err(|e| format!("{key}: {e}"))?;
        Ok(spec)
    }

    /// `[monitor.estimate]` needs what CBPE works on: a classifier's scores, with labels that
    /// come later.
    fn validate_estimate(&self, key: &str, estimate: &EstimateConfig) -> Result<(), String> {
        let classes = estimate.probability_attributes.len();
        let problem = if self.kind != MonitorKind::ModelQuality {
            "only model-quality monitors estimate their performance; add kind = \"model_quality\" or remove it".to_string()
        } else if self.problem_type == Some(ProblemType::Regression) {
            "CBPE estimates classifiers; a Regression monitor cannot have [monitor.estimate]".into()
        } else if self.problem_type == Some(ProblemType::BinaryClassification)
            && self.probability_attribute.is_none()
        {
            "CBPE works on the model's score: set probability_attribute".into()
        } else if self.problem_type == Some(ProblemType::BinaryClassification) && classes > 0 {
            "probability_attributes is for MulticlassClassification; a binary monitor's score is its probability_attribute".into()
        } else if self.problem_type == Some(ProblemType::MulticlassClassification) && classes < 2 {
            "a multiclass monitor's estimate needs each class's score column: probability_attributes = { CLASS = \"COLUMN\", … }, at least 2".into()
        } else if classes > crate::cbpe::MAX_CLASSES {
            format!(
                "{classes} probability_attributes, more than the {} classes CBPE handles",
                crate::cbpe::MAX_CLASSES
            )
        } else if self.ground_truth_path.is_none() {
            "the estimate stands in for labels that come later: set ground_truth_path (the label join), or remove [monitor.estimate] (rows with labels give the realized metrics)".into()
        } else if estimate.chunk_size == 0 {
            "chunk_size must be at least 1 (rows per reference chunk; about a window's predictions)"
                .into()
        } else {
            return Ok(());
        };
        Err(format!("{key}.estimate: {problem}"))
    }

    /// How to decode this monitor's objects; `limits` from the config's `[limits]`.
    pub fn decode_options(&self, limits: Limits) -> DecodeOptions {
        DecodeOptions {
            format: self.format,
            header: self.header,
            output_columns_position: self.output_columns_position,
            array_element_name: self.array_element_name.clone(),
            limits,
            attributions: self.attribution_source(),
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
fn default_pollers() -> usize {
    1
}
fn default_visibility_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_wait_time() -> Duration {
    Duration::from_secs(20)
}
/// What `warnings` allows for a crashed driftd to be restarted.
const RESTART_ALLOWANCE: Duration = Duration::from_secs(60);

fn default_report_wait() -> Duration {
    Duration::from_secs(60)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_attempts() -> u32 {
    5
}
fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(30)
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

    /// What a valid config may still get wrong, in words for the operator: `validate`
    /// prints these and `run` logs them at start-up.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if !self.input.is_aws() {
            return warnings;
        }
        let lateness = self.window.allowed_lateness;
        let visibility = self.input.visibility_timeout;
        if lateness < visibility + RESTART_ALLOWANCE {
            warnings.push(format!(
                "window.allowed_lateness ({}s) is shorter than input.visibility_timeout ({}s) \
                 plus {}s for a restart: a message a crashed driftd had taken reappears only \
                 after its visibility timeout, and its rows would then be late (counted, not in \
                 their window); set allowed_lateness to at least \"{}s\"",
                lateness.as_secs(),
                visibility.as_secs(),
                RESTART_ALLOWANCE.as_secs(),
                (visibility + RESTART_ALLOWANCE).as_secs(),
            ));
        }
        let sinks = &self.sinks;
        if !sinks.cloudwatch
            && sinks.sns_topic_arn.is_none()
            && sinks.s3_report_uri.is_none()
            && sinks.retrain_topic_arn.is_none()
            && sinks.retrain_queue_url.is_none()
        {
            warnings.push(
                "no sink in [sinks]: results go only to output.directory on this machine; set \
                 sinks.cloudwatch, sinks.sns_topic_arn or sinks.s3_report_uri"
                    .into(),
            );
        }
        warnings
    }

    /// AWS mode's local state directory.
    pub fn state_directory(&self) -> PathBuf {
        self.state
            .directory
            .clone()
            .unwrap_or_else(|| self.output.directory.join("state"))
    }

    /// The rules of `rules.directory`; without that section none in embedded mode and the
    /// shipped defaults in AWS mode (where they replace Model Monitor's alert per violation).
    pub fn load_rules(&self, path: &Path) -> Result<Option<crate::rules::RuleSet>, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let rules = match &self.rules {
            Some(rules) => crate::rules::RuleSet::load_dir(&rules.directory)
                .map_err(|e| invalid(format!("rules.directory: {e}")))?,
            None if self.input.is_aws() => crate::rules::RuleSet::from_toml(
                Path::new("(built-in rules/default.toml)"),
                DEFAULT_RULES,
            )
            .expect("the shipped default rules are valid"),
            None => return Ok(None),
        };
        if self.input.is_aws() {
            self.check_destinations(&rules).map_err(invalid)?;
        }
        Ok(Some(rules))
    }

    /// In AWS mode every retrain trigger needs somewhere to go.
    fn check_destinations(&self, rules: &crate::rules::RuleSet) -> Result<(), String> {
        let sinks = &self.sinks;
        for rule in &rules.rules {
            if let Some(retrain) = &rule.retrain
                && retrain.topic_arn.is_none()
                && retrain.queue_url.is_none()
                && sinks.retrain_topic_arn.is_none()
                && sinks.retrain_queue_url.is_none()
            {
                return Err(format!(
                    "rule {:?} sends retrain triggers, but there is nowhere to send them: set sinks.retrain_topic_arn or sinks.retrain_queue_url, or topic_arn / queue_url in the rule's [rule.retrain]",
                    rule.name
                ));
            }
        }
        Ok(())
    }

    /// Each monitor's baseline (and for bias monitors its analysis config), in monitor order.
    pub fn load_baselines(&self, path: &Path) -> Result<Vec<MonitorBaseline>, ConfigError> {
        self.monitors
            .iter()
            .enumerate()
            .map(|(i, monitor)| {
                let key = format!("monitor[{i}] ({})", monitor.name);
                monitor
                    .load_baseline(&key, self.limits)
                    .map_err(|message| ConfigError::Invalid {
                        path: path.to_path_buf(),
                        message,
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
        if let Some(d) = &mut self.input.directory {
            resolve(d);
        }
        resolve(&mut self.output.directory);
        if let Some(q) = &mut self.output.quarantine {
            resolve(q);
        }
        if let Some(rules) = &mut self.rules {
            resolve(&mut rules.directory);
        }
        if let Some(state) = &mut self.state.directory {
            resolve(state);
        }
        if let Some(key) = self.report.as_mut().and_then(|r| r.sign.as_mut()) {
            resolve(key);
        }
        for monitor in &mut self.monitors {
            resolve(&mut monitor.baseline);
            if let Some(a) = &mut monitor.analysis_config {
                resolve(a);
            }
            if let Some(estimate) = &mut monitor.estimate {
                resolve(&mut estimate.reference);
            }
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.monitors.is_empty() {
            return Err(
                "no [[monitor]] section: add at least one monitor (name, path, format, baseline)"
                    .into(),
            );
        }
        self.limits.validate()?;
        if self.window.size.as_secs() == 0 {
            return Err("window.size must be at least 1s (e.g. \"1h\", \"15m\")".into());
        }
        if let Some(report) = &self.report {
            if self.state.s3_uri.is_some() && self.sinks.s3_report_uri.is_none() {
                return Err("report: with state.s3_uri each replica keeps only the windows it finalised; set sinks.s3_report_uri, from which the reports read every window".into());
            }
            let (every, size) = (report.every.as_secs(), self.window.size.as_secs());
            if every == 0 || every % size != 0 {
                return Err(format!(
                    "report.every: must be a whole number of windows (window.size is {size} s), e.g. \"1d\""
                ));
            }
        }
        match self.input.source()? {
            InputSource::Directory(directory) => {
                if !directory.is_dir() {
                    return Err(format!(
                        "input.directory: {} is not a directory; create it or point input.directory at the directory capture files land in",
                        directory.display()
                    ));
                }
                self.validate_embedded()?;
            }
            InputSource::Queue(_) => self.validate_aws()?,
        }
        for (i, monitor) in self.monitors.iter().enumerate() {
            let key = format!("monitor[{i}] ({})", monitor.name);
            // The name is a folder of every window's output.
            if let Some(problem) = crate::safe_name::problem(&monitor.name) {
                return Err(format!(
                    "{key}.name: {problem}; use letters, digits, '-', '_', '.'"
                ));
            }
            if self.monitors[..i].iter().any(|m| m.name == monitor.name) {
                return Err(format!(
                    "{key}.name: another monitor has the same name; names must be unique"
                ));
            }
            crate::ingest::local::PathPattern::new(&monitor.path)
                .map_err(|e| format!("{key}.path: {e}"))?;
            if monitor.manifest && monitor.format == InputFormat::Parquet {
                return Err(format!(
                    "{key}.manifest: manifests list text objects; Parquet is not supported there"
                ));
            }
            match (monitor.kind, &monitor.analysis_config) {
                (MonitorKind::Bias, None) => {
                    return Err(format!(
                        "{key}.analysis_config: a monitor with kind = \"bias\" needs analysis_config = \"path/analysis_config.json\" (Clarify's analysis config: label, facets, predicted label)"
                    ));
                }
                (
                    MonitorKind::DataQuality
                    | MonitorKind::ModelQuality
                    | MonitorKind::FeatureAttribution,
                    Some(_),
                ) => {
                    return Err(format!(
                        "{key}.analysis_config: only used by bias monitors; add kind = \"bias\" or remove it"
                    ));
                }
                _ => {}
            }
            let model_quality_settings = [
                ("problem_type", monitor.problem_type.is_some()),
                ("inference_attribute", monitor.inference_attribute.is_some()),
                (
                    "probability_attribute",
                    monitor.probability_attribute.is_some(),
                ),
                (
                    "probability_threshold",
                    monitor.probability_threshold.is_some(),
                ),
                (
                    "ground_truth_attribute",
                    monitor.ground_truth_attribute.is_some(),
                ),
            ];
            let join_settings = [
                ("label_lateness", monitor.label_lateness.is_some()),
                ("label_ttl", monitor.label_ttl.is_some()),
                ("orphan_ttl", monitor.orphan_ttl.is_some()),
                ("restate", monitor.restate),
            ];
            if monitor.ground_truth_path.is_none()
                && let Some((setting, _)) = join_settings.iter().find(|(_, set)| *set)
            {
                return Err(format!(
                    "{key}.{setting}: only used with ground_truth_path (the label join); set ground_truth_path or remove it"
                ));
            }
            if !matches!(monitor.kind, MonitorKind::ModelQuality | MonitorKind::Bias)
                && monitor.ground_truth_path.is_some()
            {
                return Err(format!(
                    "{key}.ground_truth_path: only used by model-quality and bias monitors (the label join); add kind = \"model_quality\" or \"bias\", or remove it"
                ));
            }
            if monitor.kind == MonitorKind::ModelQuality {
                monitor.model_quality_spec(&key)?;
            } else if let Some((setting, _)) = model_quality_settings.iter().find(|(_, set)| *set) {
                return Err(format!(
                    "{key}.{setting}: only used by model-quality monitors; add kind = \"model_quality\" or remove it"
                ));
            }
            if let Some(estimate) = &monitor.estimate {
                monitor.validate_estimate(&key, estimate)?;
            }
            if let Some(labels) = &monitor.ground_truth_path {
                let pattern = crate::ingest::local::PathPattern::new(labels)
                    .map_err(|e| format!("{key}.ground_truth_path: {e}"))?;
                let captures = crate::ingest::local::PathPattern::new(&monitor.path)
                    .map_err(|e| format!("{key}.path: {e}"))?;
                if captures.names_endpoint() && !pattern.names_endpoint() {
                    return Err(format!(
                        "{key}.ground_truth_path: the capture path names {{endpoint}}, so the labels must say whose they are: put {{endpoint}} in ground_truth_path too"
                    ));
                }
                let window = &self.window;
                let join = monitor
                    .label_join(window)
                    .expect("ground_truth_path is set");
                if join.label_ttl < join.label_lateness {
                    return Err(format!(
                        "{key}.label_ttl: shorter than label_lateness; a window's predictions must stay pending at least until it closes for labels"
                    ));
                }
                let closing = window.size + window.allowed_lateness + join.label_lateness;
                if join.orphan_ttl < closing {
                    return Err(format!(
                        "{key}.orphan_ttl: {} is shorter than a window takes to close for labels (window.size + window.allowed_lateness + label_lateness = {}); a label could expire while its prediction's window is still open. Raise orphan_ttl to at least that",
                        humantime_serde::re::humantime::format_duration(join.orphan_ttl),
                        humantime_serde::re::humantime::format_duration(closing)
                    ));
                }
            }
            let attribution_settings = [
                ("agg_method", monitor.agg_method.is_some()),
                ("ndcg_threshold", monitor.ndcg_threshold.is_some()),
                ("attributions_path", monitor.attributions_path.is_some()),
                ("feature_headers", monitor.feature_headers.is_some()),
                ("attribution_label", monitor.attribution_label.is_some()),
                (
                    "max_attribution_features",
                    monitor.max_attribution_features.is_some(),
                ),
            ];
            if monitor.kind == MonitorKind::FeatureAttribution {
                monitor.attribution_spec(&key)?;
            } else if let Some((setting, _)) = attribution_settings.iter().find(|(_, set)| *set) {
                return Err(format!(
                    "{key}.{setting}: only used by feature-attribution monitors; add kind = \"feature_attribution\" or remove it"
                ));
            }
            if monitor.kind == MonitorKind::MultivariateDrift && monitor.analysis_config.is_some() {
                return Err(format!(
                    "{key}.analysis_config: only used by bias monitors; add kind = \"bias\" or remove it"
                ));
            }
            if !monitor.array_element_name.contains("{index}") {
                return Err(format!(
                    "{key}.array_element_name: must contain {{index}}, e.g. \"{{key}}_{{index}}\""
                ));
            }
        }
        Ok(())
    }

    /// Settings that mean something only in AWS mode are refused in embedded mode, so a
    /// half-converted config does not silently ignore them.
    fn validate_embedded(&self) -> Result<(), String> {
        let input = &self.input;
        let aws_only = [
            ("input.allowed_buckets", !input.allowed_buckets.is_empty()),
            ("input.allowed_prefixes", !input.allowed_prefixes.is_empty()),
            ("sinks.cloudwatch", self.sinks.cloudwatch),
            ("sinks.sns_topic_arn", self.sinks.sns_topic_arn.is_some()),
            (
                "sinks.retrain_topic_arn",
                self.sinks.retrain_topic_arn.is_some(),
            ),
            (
                "sinks.retrain_queue_url",
                self.sinks.retrain_queue_url.is_some(),
            ),
            ("sinks.s3_report_uri", self.sinks.s3_report_uri.is_some()),
            ("state.s3_uri", self.state.s3_uri.is_some()),
        ];
        if let Some((key, _)) = aws_only.iter().find(|(_, set)| *set) {
            return Err(format!(
                "{key}: only used in AWS mode (input.sqs_queue_url); remove it or replace input.directory with input.sqs_queue_url"
            ));
        }
        if let Some(monitor) = self.monitors.iter().find(|m| m.manifest) {
            return Err(format!(
                "monitor ({}).manifest: manifests name S3 objects; only used in AWS mode",
                monitor.name
            ));
        }
        Ok(())
    }

    fn validate_aws(&self) -> Result<(), String> {
        for (key, url) in [
            (
                "aws.cloudwatch_endpoint_url",
                &self.aws.cloudwatch_endpoint_url,
            ),
            ("aws.sns_endpoint_url", &self.aws.sns_endpoint_url),
        ] {
            if let Some(url) = url
                && !(url.starts_with("https://") || url.starts_with("http://"))
            {
                return Err(format!(
                    "{key}: {url:?} is not an endpoint URL (https://HOST or http://HOST:PORT)"
                ));
            }
        }
        let input = &self.input;
        let url = input.sqs_queue_url.as_deref().unwrap_or_default();
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(format!(
                "input.sqs_queue_url: {url:?} is not a queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE)"
            ));
        }
        if input.allowed_buckets.is_empty() {
            return Err("input.allowed_buckets: list the buckets driftd may read (messages naming any other are refused)".into());
        }
        if !(1..=64).contains(&input.pollers) {
            return Err("input.pollers: must be between 1 and 64".into());
        }
        let visibility = input.visibility_timeout.as_secs();
        if !(1..=43_200).contains(&visibility) {
            return Err(
                "input.visibility_timeout: must be between 1s and 12h (SQS's limits)".into(),
            );
        }
        if input.wait_time.as_secs() > 20 {
            return Err("input.wait_time: SQS long polls wait at most 20s".into());
        }
        for (key, arn) in [
            ("sinks.sns_topic_arn", &self.sinks.sns_topic_arn),
            ("sinks.retrain_topic_arn", &self.sinks.retrain_topic_arn),
        ] {
            if let Some(arn) = arn
                && !arn.starts_with("arn:")
            {
                return Err(format!(
                    "{key}: {arn:?} is not a topic ARN (arn:aws:sns:REGION:ACCOUNT:TOPIC)"
                ));
            }
        }
        match (&self.sinks.retrain_topic_arn, &self.sinks.retrain_queue_url) {
            (Some(_), Some(_)) => {
                return Err("sinks.retrain_queue_url: retrain triggers go to a topic or a queue; set retrain_topic_arn or retrain_queue_url, not both".into());
            }
            (None, Some(url)) if !(url.starts_with("https://") || url.starts_with("http://")) => {
                return Err(format!(
                    "sinks.retrain_queue_url: {url:?} is not a queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE)"
                ));
            }
            _ => {}
        }
        if self.sinks.max_attempts == 0 {
            return Err("sinks.max_attempts: must be at least 1".into());
        }
        if self.state.directory.is_some() && self.state.s3_uri.is_some() {
            return Err(
                "state: set directory (one machine) or s3_uri (shared by replicas), not both"
                    .into(),
            );
        }
        if self.daemon.max_undelivered_windows == 0 {
            return Err("daemon.max_undelivered_windows: must be at least 1".into());
        }
        if self.state.lease_timeout < Duration::from_secs(1) {
            return Err("state.lease_timeout: must be at least 1s".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MONITOR: &str = r#"
[[monitor]]
name = "m"
path = "capture/{endpoint}/{variant}/{yyyy}/{mm}/{dd}/{hh}/*.jsonl"
format = "capture"
baseline = "baseline"
"#;

    fn load(text: &str) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("capture")).unwrap();
        let path = dir.path().join("driftd.toml");
        std::fs::write(&path, format!("{text}\n{MONITOR}")).unwrap();
        Config::load(&path).map_err(|e| e.to_string())
    }

    const AWS: &str = r#"
[aws]
region = "us-east-1"
endpoint_url = "http://127.0.0.1:4566"

[input]
sqs_queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/events"
allowed_buckets = ["capture-bucket"]

[output]
directory = "out"

[sinks]
cloudwatch = true
sns_topic_arn = "arn:aws:sns:us-east-1:123456789012:alerts"
s3_report_uri = "s3://reports/monitoring"
"#;

    #[test]
    fn an_aws_config_loads_with_its_defaults() {
        let config = load(AWS).unwrap();
        assert!(config.input.is_aws());
        assert_eq!(config.input.pollers, 1);
        assert_eq!(config.input.visibility_timeout, Duration::from_secs(300));
        assert_eq!(config.input.wait_time, Duration::from_secs(20));
        assert_eq!(config.sinks.max_attempts, 5);
        assert_eq!(config.daemon.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(config.aws.region.as_deref(), Some("us-east-1"));
    }

    #[test]
    fn a_multivariate_monitor_is_spelt_either_way_and_takes_no_analysis_config() {
        for spelling in ["multivariate_drift", "multivariate-drift"] {
            let monitor = (MONITOR.replace("name = \"m\"", "name = \"joint\"")).replace(
                "baseline = ",
                &format!("kind = \"{spelling}\"\nbaseline = "),
            );
            let config = load(&format!("{AWS}\n{monitor}")).unwrap();
            assert_eq!(config.monitors[0].kind, MonitorKind::MultivariateDrift);
        }
        let monitor = (MONITOR.replace("name = \"m\"", "name = \"joint\"")).replace(
            "baseline = ",
            "kind = \"multivariate_drift\"\nanalysis_config = \"a.json\"\nbaseline = ",
        );
        let error = load(&format!("{AWS}\n{monitor}")).unwrap_err();
        assert!(
            error.contains("analysis_config: only used by bias monitors"),
            "{error}"
        );
    }

    #[test]
    fn a_monitor_name_that_is_not_one_safe_folder_is_refused() {
        for (name, problem) in [
            ("..", "is '.' or '..'"),
            ("/etc", "contains a path separator"),
            ("a\\\\b", "contains a path separator"),
            ("a\\u0000b", "contains a control character"),
            ("%2E%2E", "contains '%'"),
        ] {
            let monitor = MONITOR.replace("name = \"m\"", &format!("name = \"{name}\""));
            let error = load(&format!("{AWS}\n{monitor}")).unwrap_err();
            assert!(
                error.contains(".name: ") && error.contains(problem),
                "{name}: {error}"
            );
        }
    }

    #[test]
    fn aws_mode_errors_name_the_key_and_what_to_change() {
        let cases = [
            (
                AWS.replace("region =", "regoin ="),
                "unknown field `regoin`",
            ),
            (
                AWS.replace(r#"allowed_buckets = ["capture-bucket"]"#, ""),
                "input.allowed_buckets",
            ),
            (
                AWS.replace("[input]", "[input]\ndirectory = \"capture\""),
                "either directory (embedded mode) or sqs_queue_url",
            ),
            (AWS.replace("https://sqs", "sqs"), "input.sqs_queue_url"),
            (
                AWS.replace("s3://reports", "reports"),
                "s3_report_uri = \"reports/monitoring\"\n   |                 ^^^^^^^^^^^^^^^^^^^^\n\"reports/monitoring\" is not an s3://bucket/prefix URI",
            ),
            (AWS.replace("arn:aws:sns", "aws:sns"), "sinks.sns_topic_arn"),
            (
                AWS.replace("[input]", "[input]\npollers = 0"),
                "input.pollers",
            ),
            (
                AWS.replace("[input]", "[input]\nwait_time = \"30s\""),
                "input.wait_time",
            ),
            (
                format!("{AWS}\n[state]\ns3_uri = \"bucket/state\""),
                "\"bucket/state\" is not an s3://bucket/prefix URI",
            ),
            (
                format!("{AWS}\n[limits]\nmax_decompression_ratio = 0.5"),
                "limits.max_decompression_ratio must be a number of at least 1",
            ),
            (
                format!("{AWS}\n[limits]\nmax_record_byte = 5"),
                "unknown field `max_record_byte`",
            ),
            (
                AWS.replace(
                    "[sinks]",
                    "[sinks]\nretrain_topic_arn = \"arn:aws:sns:us-east-1:1:r\"\nretrain_queue_url = \"https://q\"",
                ),
                "sinks.retrain_queue_url: retrain triggers go to a topic or a queue",
            ),
            (
                AWS.replace("[sinks]", "[sinks]\nretrain_queue_url = \"sqs/q\""),
                "sinks.retrain_queue_url: \"sqs/q\" is not a queue URL",
            ),
        ];
        for (text, expected) in cases {
            let error = load(&text).unwrap_err();
            assert!(error.contains(expected), "{expected:?} not in {error:?}");
        }
    }

    /// Writes `rules/r.toml` beside the config and loads the rules as `driftd run` does.
    fn load_rules(config: &str, rules: &str) -> Result<Option<crate::rules::RuleSet>, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("capture")).unwrap();
        std::fs::create_dir(dir.path().join("rules")).unwrap();
        std::fs::write(dir.path().join("rules/r.toml"), rules).unwrap();
        let path = dir.path().join("driftd.toml");
        std::fs::write(&path, format!("{config}\n{MONITOR}")).unwrap();
        let config = Config::load(&path).map_err(|e| e.to_string())?;
        config.load_rules(&path).map_err(|e| e.to_string())
    }

    #[test]
    fn aws_mode_applies_the_shipped_rules_and_needs_a_place_for_retrain_triggers() {
        let defaults = load_rules(AWS, "").unwrap().unwrap();
        assert_eq!(defaults.rules[0].name, "any-violation");
        let retrain = "[[rule]]\nname = \"r\"\nseverity = \"info\"\n[rule.condition.no_data]\n[rule.retrain]\n";
        let with_rules = format!("{AWS}\n[rules]\ndirectory = \"rules\"\n");
        let error = load_rules(&with_rules, retrain).unwrap_err();
        assert!(
            error.contains("rule \"r\" sends retrain triggers, but there is nowhere to send them: set sinks.retrain_topic_arn"),
            "{error}"
        );
        let routed = with_rules.replace(
            "[sinks]",
            "[sinks]\nretrain_queue_url = \"https://sqs.us-east-1.amazonaws.com/1/retrain\"",
        );
        assert_eq!(
            load_rules(&routed, retrain).unwrap().unwrap().rules.len(),
            1
        );
        // Embedded mode without [rules] applies none.
        let embedded = "[input]\ndirectory = \"capture\"\n[output]\ndirectory = \"out\"\n";
        assert!(load_rules(embedded, retrain).unwrap().is_none());
    }

    #[test]
    fn cloudwatch_and_sns_may_have_endpoints_of_their_own() {
        let text = AWS.replace(
            "[input]",
            "cloudwatch_endpoint_url = \"https://monitoring.vpce.example\"\nsns_endpoint_url = \"http://127.0.0.1:9\"\n\n[input]",
        );
        let config = load(&text).unwrap();
        assert_eq!(
            config.aws.cloudwatch_endpoint_url.as_deref(),
            Some("https://monitoring.vpce.example")
        );
        assert_eq!(
            config.aws.sns_endpoint_url.as_deref(),
            Some("http://127.0.0.1:9")
        );
        assert_eq!(load(AWS).unwrap().aws.sns_endpoint_url, None);
        for key in ["cloudwatch_endpoint_url", "sns_endpoint_url"] {
            let text = AWS.replace("[input]", &format!("{key} = \"vpce.example\"\n\n[input]"));
            let error = load(&text).unwrap_err();
            assert!(
                error.contains(&format!(
                    "aws.{key}: \"vpce.example\" is not an endpoint URL"
                )),
                "{error}"
            );
        }
    }

    #[test]
    fn model_quality_settings_belong_to_model_quality_monitors() {
        let error = |settings: &str| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir(dir.path().join("in")).unwrap();
            let path = dir.path().join("driftd.toml");
            let text = format!(
                "[input]\ndirectory = \"in\"\n[output]\ndirectory = \"out\"\n[[monitor]]\nname = \"m\"\npath = \"*.csv\"\nformat = \"csv\"\nbaseline = \"b\"\n{settings}\n"
            );
            std::fs::write(&path, text).unwrap();
            Config::load(&path).unwrap_err().to_string()
        };
        let mq = "kind = \"model_quality\"\n";
        let joined = format!(
            "{mq}problem_type = \"Regression\"\ninference_attribute = \"p\"\nground_truth_attribute = \"y\"\n"
        );
        for (settings, expected) in [
            (
                format!("{mq}inference_attribute = \"p\"\nground_truth_attribute = \"y\""),
                "monitor[0] (m).problem_type: required for a monitor with kind = \"model_quality\"",
            ),
            (
                format!("{mq}problem_type = \"Regression\"\ninference_attribute = \"p\""),
                "monitor[0] (m).ground_truth_attribute: required",
            ),
            (
                format!("{mq}problem_type = \"Regression\"\nground_truth_attribute = \"y\""),
                "Regression needs inference_attribute",
            ),
            (
                "ground_truth_attribute = \"y\"".to_string(),
                "monitor[0] (m).ground_truth_attribute: only used by model-quality monitors",
            ),
            (
                format!("{joined}label_lateness = \"1h\"\n"),
                "monitor[0] (m).label_lateness: only used with ground_truth_path",
            ),
            (
                format!("{joined}restate = true\n"),
                "monitor[0] (m).restate: only used with ground_truth_path",
            ),
            (
                format!("{joined}ground_truth_path = \"labels/*.jsonl\"\norphan_ttl = \"30m\""),
                "monitor[0] (m).orphan_ttl: 30m is shorter than a window takes to close for labels (window.size + window.allowed_lateness + label_lateness = 2h 10m)",
            ),
            (
                format!("{joined}ground_truth_path = \"labels/*.jsonl\"\nlabel_ttl = \"10m\""),
                "monitor[0] (m).label_ttl: shorter than label_lateness",
            ),
        ] {
            let error = error(&settings);
            assert!(error.contains(expected), "{settings}: {error}");
        }
    }

    #[test]
    fn aws_settings_are_refused_in_embedded_mode() {
        let embedded = "[input]\ndirectory = \"capture\"\n[output]\ndirectory = \"out\"\n";
        assert!(load(embedded).is_ok());
        let error = load(&format!("{embedded}[sinks]\ncloudwatch = true\n")).unwrap_err();
        assert!(
            error.contains("sinks.cloudwatch: only used in AWS mode"),
            "{error}"
        );
        let error = load("[output]\ndirectory = \"out\"\n[input]\n").unwrap_err();
        assert!(error.contains("set directory (embedded mode"), "{error}");
    }

    #[test]
    fn a_lateness_shorter_than_a_crash_takes_and_no_sink_are_warned_about() {
        assert_eq!(load(AWS).unwrap().warnings(), Vec::<String>::new());
        let short = load(&format!("{AWS}\n[window]\nallowed_lateness = \"5m\"\n")).unwrap();
        let warnings = short.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("window.allowed_lateness (300s) is shorter than input.visibility_timeout (300s) plus 60s")
                && warnings[0].contains("at least \"360s\""),
            "{warnings:?}"
        );
        let no_sinks = AWS
            .replace("cloudwatch = true", "")
            .replace("sns_topic_arn", "# sns_topic_arn")
            .replace("s3_report_uri", "# s3_report_uri");
        let warnings = load(&no_sinks).unwrap().warnings();
        assert!(
            warnings.len() == 1 && warnings[0].starts_with("no sink in [sinks]"),
            "{warnings:?}"
        );
    }
}
