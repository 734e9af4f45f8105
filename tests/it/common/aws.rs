//! The AWS end-to-end harness: a moto server with a capture bucket notifying a queue, a
//! dead-letter queue, a report bucket and an alert topic; `driftd` started as a real process
//! on a config for it; and readers for what comes out.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::types::{Dimension, DimensionFilter, Metric, MetricDataQuery, MetricStat};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::types::QueueAttributeName;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::MotoServer;

pub const MONITOR: &str = "churn-data-quality";
pub const CAPTURE_PATTERN: &str = "capture/{endpoint}/{variant}/{yyyy}/{mm}/{dd}/{hh}/*.jsonl";
pub const NAMESPACE: &str = "aws/sagemaker/Endpoints/data-metrics";

/// Windows in these tests are short, so that one closes seconds after its data arrives (a row
/// for a window that already closed is late and not counted, as in production).
pub const WINDOW_S: i64 = 10;

/// The window the next upload should fill: the current one if at least 4 s of it remain (time
/// to upload), else the next.
pub fn upcoming_window() -> DateTime<Utc> {
    let now = Utc::now().timestamp();
    let mut start = now.div_euclid(WINDOW_S) * WINDOW_S;
    if start + WINDOW_S - now < 4 {
        start += WINDOW_S;
    }
    DateTime::from_timestamp(start, 0).unwrap()
}

/// `n` capture records (inputs age, state; output score) spread over the window from `start`.
pub fn capture_lines(n: usize, start: DateTime<Utc>, age_shift: i64, id: &str) -> String {
    (0..n)
        .map(|i| {
            let inputs = vec![
                (30 + age_shift + (i % 20) as i64).to_string(),
                ["CA", "NY"][i % 2].to_string(),
            ];
            super::capture_record(
                &inputs,
                Some("0.5"),
                &format!("{id}-{i}"),
                start + chrono::Duration::seconds(i as i64 % WINDOW_S),
            )
            .to_string()
                + "\n"
        })
        .collect()
}

pub fn make_baseline(dir: &Path) -> PathBuf {
    let mut csv = String::from("score,age,state\n");
    for i in 0..200 {
        csv.push_str(&format!("0.5,{},{}\n", 30 + i % 20, ["CA", "NY"][i % 2]));
    }
    std::fs::write(dir.join("baseline.csv"), csv).unwrap();
    let baseline = dir.join("baseline");
    let status = super::driftd()
        .args(["baseline", "--format", "csv", "--header", "--input"])
        .arg(dir.join("baseline.csv"))
        .arg("--output")
        .arg(&baseline)
        .status()
        .unwrap();
    assert!(status.success());
    baseline
}

/// Polls `check` every 200 ms until it gives a value, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Everything one test needs in the emulator: a capture bucket notifying a queue (with a
/// dead-letter queue after two receives), a report bucket, an alert topic with a queue
/// subscribed to it, and a config for driftd.
pub struct Stack {
    pub moto: MotoServer,
    pub dir: tempfile::TempDir,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub bucket: String,
    pub report_bucket: String,
    pub queue_url: String,
    pub dlq_url: String,
    pub alert_queue_url: String,
    pub topic_arn: String,
    /// Unique per test: moto matches metrics on dimensions across namespaces.
    pub endpoint: String,
}

#[derive(Clone, Copy, PartialEq)]
pub enum Delivery {
    /// S3 → SQS.
    Direct,
    /// S3 → SNS → SQS (the SNS envelope).
    ViaSns,
}

impl Stack {
    pub async fn new(name: &str, visibility_timeout_s: u32, delivery: Delivery) -> Self {
        Self::with_receives(name, visibility_timeout_s, delivery, 2).await
    }

    /// A stack whose queue moves a message to the dead-letter queue after `max_receives`.
    pub async fn with_receives(
        name: &str,
        visibility_timeout_s: u32,
        delivery: Delivery,
        max_receives: u32,
    ) -> Self {
        let moto = MotoServer::start();
        let s3 = moto.s3().await;
        let sqs = moto.sqs().await;
        let sns = moto.sns().await;
        let cloudwatch = moto.cloudwatch().await;
        let bucket = format!("{name}-capture");
        let report_bucket = format!("{name}-reports");
        for b in [&bucket, &report_bucket] {
            s3.create_bucket().bucket(b).send().await.unwrap();
        }
        let dlq_url = sqs
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let dlq_arn = queue_arn(&sqs, &dlq_url).await;
        let redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives.to_string()});
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("{name}-events"))
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                visibility_timeout_s.to_string(),
            )
            .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let queue = queue_arn(&sqs, &queue_url).await;
        let topic_arn = sns
            .create_topic()
            .name(format!("{name}-alerts"))
            .send()
            .await
            .unwrap()
            .topic_arn
            .unwrap();
        let alert_queue_url = sqs
            .create_queue()
            .queue_name(format!("{name}-alert-inbox"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        sns.subscribe()
            .topic_arn(&topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn(&sqs, &alert_queue_url).await)
            .send()
            .await
            .unwrap();
        let prefix_filter = aws_sdk_s3::types::NotificationConfigurationFilter::builder()
            .key(
                aws_sdk_s3::types::S3KeyFilter::builder()
                    .filter_rules(
                        aws_sdk_s3::types::FilterRule::builder()
                            .name(aws_sdk_s3::types::FilterRuleName::Prefix)
                            .value("capture/")
                            .build(),
                    )
                    .build(),
            )
            .build();
        let notification = match delivery {
            Delivery::Direct => aws_sdk_s3::types::NotificationConfiguration::builder()
                .queue_configurations(
                    aws_sdk_s3::types::QueueConfiguration::builder()
                        .queue_arn(&queue)
                        .events(aws_sdk_s3::types::Event::S3ObjectCreated)
                        .filter(prefix_filter)
                        .build()
                        .unwrap(),
                )
                .build(),
            Delivery::ViaSns => {
                let events_topic = sns
                    .create_topic()
                    .name(format!("{name}-s3-events"))
                    .send()
                    .await
                    .unwrap()
                    .topic_arn
                    .unwrap();
                sns.subscribe()
                    .topic_arn(&events_topic)
                    .protocol("sqs")
                    .endpoint(&queue)
                    .send()
                    .await
                    .unwrap();
                aws_sdk_s3::types::NotificationConfiguration::builder()
                    .topic_configurations(
                        aws_sdk_s3::types::TopicConfiguration::builder()
                            .topic_arn(events_topic)
                            .events(aws_sdk_s3::types::Event::S3ObjectCreated)
                            .filter(prefix_filter)
                            .build()
                            .unwrap(),
                    )
                    .build()
            }
        };
        s3.put_bucket_notification_configuration()
            .bucket(&bucket)
            .notification_configuration(notification)
            .send()
            .await
            .unwrap();
        Self {
            moto,
            dir: tempfile::tempdir().unwrap(),
            s3,
            sqs,
            sns,
            cloudwatch,
            bucket,
            report_bucket,
            queue_url,
            dlq_url,
            alert_queue_url,
            topic_arn,
            endpoint: format!("{name}-endpoint"),
        }
    }

    /// Writes the config and a baseline; returns the config's path. `lateness_s` is the
    /// window's allowed lateness, `pattern` the monitor's path pattern.
    pub fn config(&self, visibility_timeout_s: u32, lateness_s: u32, pattern: &str) -> PathBuf {
        let baseline = self.dir.path().join("baseline");
        if !baseline.exists() {
            make_baseline(self.dir.path());
        }
        self.config_with_monitor(
            visibility_timeout_s,
            lateness_s,
            &format!(
                r#"name = "{MONITOR}"
path = "{pattern}"
format = "capture"
baseline = "baseline""#
            ),
        )
    }

    /// Writes the config with one `[[monitor]]` section holding `monitor`.
    pub fn config_with_monitor(
        &self,
        visibility_timeout_s: u32,
        lateness_s: u32,
        monitor: &str,
    ) -> PathBuf {
        let path = self.dir.path().join("driftd.toml");
        std::fs::write(
            &path,
            format!(
                r#"
[aws]
region = "us-east-1"
endpoint_url = "{url}"

[input]
sqs_queue_url = "{queue}"
allowed_buckets = ["{bucket}"]
allowed_prefixes = ["capture/", "eventbridge/"]
visibility_timeout = "{visibility_timeout_s}s"
wait_time = "1s"

[output]
directory = "out"

[window]
size = "{WINDOW_S}s"
allowed_lateness = "{lateness_s}s"

[sinks]
cloudwatch = true
sns_topic_arn = "{topic}"
s3_report_uri = "s3://{reports}/monitoring"
max_attempts = 3

[daemon]
shutdown_timeout = "10s"

[[monitor]]
{monitor}
"#,
                url = self.moto.endpoint_url,
                queue = self.queue_url,
                bucket = self.bucket,
                topic = self.topic_arn,
                reports = self.report_bucket,
            ),
        )
        .unwrap();
        path
    }

    /// Starts `driftd run` on the config; its log (DRIFTD_LOG=info) goes to a file. Each
    /// daemon serves `/metrics` on a port of its own (a copy of the config gets an
    /// `[observability]` section unless it has one), so replicas of one config can be watched
    /// apart.
    pub fn start_driftd(&self, config: &Path, log_name: &str) -> Daemon {
        let log = self.dir.path().join(log_name);
        let text = std::fs::read_to_string(config).unwrap();
        let (config, metrics_port) = match listen_port(&text) {
            Some(port) => (config.to_path_buf(), port),
            None => {
                let port = super::free_port();
                let own = config.with_file_name(format!(".{log_name}.toml"));
                std::fs::write(
                    &own,
                    format!("{text}\n[observability]\nlisten = \"127.0.0.1:{port}\"\n"),
                )
                .unwrap();
                (own, port)
            }
        };
        let mut command = super::driftd();
        self.moto.driftd_env(&mut command);
        command
            .args(["run", "--config"])
            .arg(config)
            .env("DRIFTD_LOG", "info")
            .stdout(std::fs::File::create(log.with_extension("stdout")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap());
        Daemon {
            child: Some(command.spawn().unwrap()),
            log,
            metrics_port,
        }
    }

    /// Starts `driftd run` and waits until it is ready: it has polled the queue and reached
    /// the state store.
    pub async fn start_polling(&self, config: &Path, log_name: &str) -> Daemon {
        let daemon = self.start_driftd(config, log_name);
        let port = daemon.metrics_port;
        eventually("driftd ready", Duration::from_secs(30), || async move {
            (super::http_get(port, "/readyz")?.0 == 200).then_some(())
        })
        .await;
        daemon
    }

    pub fn capture_key(&self, start: DateTime<Utc>, name: &str) -> String {
        self.key_under("capture", start, name)
    }

    /// A key in SageMaker's capture layout under `prefix`.
    pub fn key_under(&self, prefix: &str, start: DateTime<Utc>, name: &str) -> String {
        format!(
            "{prefix}/{}/AllTraffic/{}/{name}",
            self.endpoint,
            start.format("%Y/%m/%d/%H")
        )
    }

    pub async fn put(&self, key: &str, body: impl Into<ByteStream>) {
        self.put_in(&self.bucket, key, body).await;
    }

    pub async fn put_in(&self, bucket: &str, key: &str, body: impl Into<ByteStream>) {
        self.s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.into())
            .send()
            .await
            .unwrap();
    }

    /// The SampleCount of `feature_data_{feature}` for this test's endpoint, summed over the
    /// last day, once CloudWatch has it.
    pub async fn sample_count(&self, feature: &str) -> Option<f64> {
        let now = Utc::now();
        let points = self
            .metric_points(
                NAMESPACE,
                &format!("feature_data_{feature}"),
                &[("MonitoringSchedule", MONITOR)],
                "SampleCount",
                3600,
                (
                    now - chrono::Duration::days(1),
                    now + chrono::Duration::hours(1),
                ),
            )
            .await;
        (!points.is_empty()).then(|| points.iter().map(|(_, v)| v).sum())
    }

    /// GetMetricData of one metric of this test's endpoint (plus `dimensions`): the
    /// (timestamp, value) points of `stat` per `period` seconds within `range`.
    pub async fn metric_points(
        &self,
        namespace: &str,
        name: &str,
        dimensions: &[(&str, &str)],
        stat: &str,
        period: i32,
        range: (DateTime<Utc>, DateTime<Utc>),
    ) -> Vec<(i64, f64)> {
        let dimensions = std::iter::once(("Endpoint", self.endpoint.as_str()))
            .chain(dimensions.iter().copied())
            .map(|(name, value)| Dimension::builder().name(name).value(value).build())
            .collect();
        let stat = MetricStat::builder()
            .metric(
                Metric::builder()
                    .namespace(namespace)
                    .metric_name(name)
                    .set_dimensions(Some(dimensions))
                    .build(),
            )
            .period(period)
            .stat(stat)
            .build();
        let time =
            |t: DateTime<Utc>| aws_sdk_cloudwatch::primitives::DateTime::from_secs(t.timestamp());
        let out = self
            .cloudwatch
            .get_metric_data()
            .metric_data_queries(MetricDataQuery::builder().id("m").metric_stat(stat).build())
            .start_time(time(range.0))
            .end_time(time(range.1))
            .send()
            .await
            .unwrap();
        let result = &out.metric_data_results()[0];
        result
            .timestamps()
            .iter()
            .map(|t| t.secs())
            .zip(result.values().iter().copied())
            .collect()
    }

    pub async fn metric_names(&self) -> Vec<String> {
        let out = self
            .cloudwatch
            .list_metrics()
            .namespace(NAMESPACE)
            .dimensions(
                DimensionFilter::builder()
                    .name("Endpoint")
                    .value(&self.endpoint)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let mut names: Vec<String> = out
            .metrics()
            .iter()
            .filter_map(|m| m.metric_name().map(str::to_string))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    pub async fn send(&self, body: &str) {
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    pub async fn receive(&self, queue_url: &str) -> Vec<aws_sdk_sqs::types::Message> {
        self.sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default()
    }

    /// Visible plus in-flight messages on a queue.
    pub async fn queue_depth(&self, queue_url: &str) -> u64 {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap();
        out.attributes()
            .map(|a| a.values().filter_map(|v| v.parse::<u64>().ok()).sum())
            .unwrap_or(0)
    }

    pub async fn report_keys(&self) -> Vec<String> {
        let out = self
            .s3
            .list_objects_v2()
            .bucket(&self.report_bucket)
            .send()
            .await
            .unwrap();
        let mut keys: Vec<String> = out
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect();
        keys.sort();
        keys
    }

    pub async fn read_report(&self, key: &str) -> Value {
        let out = self
            .s3
            .get_object()
            .bucket(&self.report_bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        serde_json::from_slice(&out.body.collect().await.unwrap().into_bytes()).unwrap()
    }
}

pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .unwrap()
}

/// The port of a config's `[observability] listen = "127.0.0.1:PORT"`, if it has one.
fn listen_port(config: &str) -> Option<u16> {
    let line = config
        .lines()
        .find(|l| l.trim_start().starts_with("listen"))?;
    line.trim()
        .trim_end_matches('"')
        .rsplit(':')
        .next()?
        .parse()
        .ok()
}

/// A running `driftd`; killed if the test ends without stopping it.
pub struct Daemon {
    pub child: Option<Child>,
    pub log: PathBuf,
    /// Where it serves `/metrics` and `/readyz`.
    pub metrics_port: u16,
}

impl Daemon {
    /// Waits until the samples of the metric series starting with `series` (a name, and
    /// labels in their sorted order, e.g. `driftd_objects_total{event="read"`) sum to at
    /// least `at_least`.
    pub async fn wait_for_metric(&self, series: &str, at_least: f64, timeout: Duration) {
        let port = self.metrics_port;
        eventually(
            &format!("{series} ≥ {at_least} on /metrics"),
            timeout,
            || async move {
                let (_, metrics) = super::http_get(port, "/metrics")?;
                let total: f64 = metrics
                    .lines()
                    .filter(|line| line.starts_with(series))
                    .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum();
                (total >= at_least).then_some(())
            },
        )
        .await;
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let log = self.log.clone();
        let needle_owned = needle.to_string();
        eventually(&format!("{needle:?} in driftd's log"), timeout, || {
            let found = std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains(&needle_owned);
            async move { found.then_some(()) }
        })
        .await;
    }

    /// Waits until `needle` is in the log at least `count` times.
    pub async fn wait_for_count(&self, needle: &str, count: usize, timeout: Duration) {
        let log = self.log.clone();
        let needle_owned = needle.to_string();
        eventually(
            &format!("{count}× {needle:?} in driftd's log"),
            timeout,
            || {
                let found = std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .matches(&needle_owned)
                    .count()
                    >= count;
                async move { found.then_some(()) }
            },
        )
        .await;
    }

    /// Sends SIGTERM and waits for the exit; returns the exit status and how long it took.
    pub fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        let mut child = self.child.take().expect("running");
        let started = Instant::now();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            assert!(
                Instant::now() < deadline,
                "driftd did not exit within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            if std::thread::panicking() {
                eprintln!(
                    "--- driftd log ---\n{}\n--- stdout ---\n{}",
                    self.log(),
                    std::fs::read_to_string(self.log.with_extension("stdout")).unwrap_or_default()
                );
            }
        }
    }
}

/// S3's own notification body for one object, as S3 writes it (key URL-encoded).
pub fn s3_event(bucket: &str, key: &str) -> String {
    let encoded: String = key
        .split('/')
        .map(|part| {
            percent_encoding::utf8_percent_encode(part, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("%2F");
    serde_json::json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": Utc::now().to_rfc3339(),
        "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket}, "object": {"key": encoded, "size": 1}}
    }]})
    .to_string()
}

/// Every file below `dir`, except the store's own bookkeeping (dot-names).
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

pub fn signal(which: &str, pid: &str) {
    let status = std::process::Command::new("kill")
        .args([which, pid])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The rows of every window written below `out` (the output directory): the sum of their
/// statistics' item counts.
pub fn rows_in_windows(out: &Path) -> u64 {
    walk(out)
        .iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "statistics.json"))
        .map(|p| {
            let stats: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
            stats["dataset"]["item_count"].as_u64().unwrap()
        })
        .sum()
}

/// The rows that the ledger entries (JSON) say were counted late.
pub fn late_rows<'a>(ledger: impl IntoIterator<Item = &'a Value>) -> u64 {
    ledger
        .into_iter()
        .map(|entry| entry["late_rows"].as_u64().unwrap())
        .sum()
}

/// The ledger entries of a local state store.
pub fn local_ledger(state: &Path) -> Vec<Value> {
    walk(&state.join("ledger"))
        .iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect()
}
