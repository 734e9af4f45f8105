//! AWS mode's connections: the queue and S3 client the pollers read with, the sinks `[sinks]`
//! asks for, and the start-up check that each exists.

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;

use super::Sinks;
use super::queue::QueueInput;
use crate::config::Config;
use crate::daemon::RunError;
use crate::ingest::sqs::{AllowList, SqsQueue};
use crate::sinks::actions::{Destination, MessageSink, Routes};
use crate::sinks::cloudwatch::CloudWatchSink;
use crate::sinks::s3_report::S3ReportSink;

pub(super) struct Connected {
    pub input: QueueInput,
    pub sinks: Sinks,
    /// For the state store, when it is in S3.
    pub s3: aws_sdk_s3::Client,
}

/// Builds the clients and checks the resources the config names.
pub(super) async fn connect(config: &Config, queue_url: &str) -> Result<Connected, RunError> {
    let sdk = crate::aws::sdk_config(&config.aws.connection()).await;
    // Emulators and VPC endpoints are addressed by URL, so S3 goes path-style there.
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(config.aws.endpoint_url.is_some())
            .build(),
    );
    // A long poll waits `wait_time` before it answers: its attempts get that on top.
    let queue = SqsQueue::new(
        aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&sdk)
                .timeout_config(
                    TimeoutConfig::builder()
                        .operation_attempt_timeout(
                            config.input.wait_time + config.aws.request_timeout,
                        )
                        .build(),
                )
                .build(),
        ),
        queue_url.to_string(),
        config.input.visibility_timeout,
        config.input.wait_time,
    );
    let sinks = build_sinks(config, &sdk);
    check_resources(config, &queue, &sinks).await?;
    crate::events::telemetry().set_ready("queue", Err("not polled yet".into()));
    Ok(Connected {
        input: QueueInput {
            queue,
            s3: s3.clone(),
            allow: AllowList {
                buckets: config.input.allowed_buckets.clone(),
                prefixes: config.input.allowed_prefixes.clone(),
            },
        },
        sinks,
        s3,
    })
}

/// Checks at start-up that the queue, the report bucket and the topics and queues the config
/// names exist. One that does not (or that driftd may not use) stops the start with an error
/// naming its config key; one that cannot be reached now (an outage) is only logged, so that a
/// restart during an outage still starts and catches up later.
async fn check_resources(config: &Config, queue: &SqsQueue, sinks: &Sinks) -> Result<(), RunError> {
    let mut checks = vec![(
        "input.sqs_queue_url",
        queue.url().to_string(),
        queue.check().await,
    )];
    if let (Some(sink), Some(uri)) = (&sinks.s3_report, &config.sinks.s3_report_uri) {
        checks.push(("sinks.s3_report_uri", uri.to_string(), sink.check().await));
    }
    let destinations = [
        (
            "sinks.sns_topic_arn",
            config.sinks.sns_topic_arn.clone().map(Destination::Topic),
        ),
        (
            "sinks.retrain_topic_arn",
            config
                .sinks
                .retrain_topic_arn
                .clone()
                .map(Destination::Topic),
        ),
        (
            "sinks.retrain_queue_url",
            config
                .sinks
                .retrain_queue_url
                .clone()
                .map(Destination::Queue),
        ),
    ];
    for (key, destination) in destinations {
        if let Some(destination) = destination {
            let Some(messages) = &sinks.messages else {
                continue;
            };
            let outcome = messages.check(&destination).await;
            checks.push((key, destination.to_string(), outcome));
        }
    }
    for (key, value, outcome) in checks {
        match outcome {
            Ok(()) => {}
            Err(failure) if !failure.retryable => {
                return Err(RunError::Usage(format!(
                    "{key} = {value:?}: {} (does it exist, and may driftd use it?)",
                    failure.message
                )));
            }
            Err(failure) => tracing::warn!(
                key,
                value,
                error = failure.message,
                "cannot check at start-up that this exists (unreachable now); starting anyway"
            ),
        }
    }
    Ok(())
}

/// Where rule actions go unless a rule says otherwise.
pub(super) fn routes(config: &Config) -> Routes {
    let sinks = &config.sinks;
    Routes {
        alert_topic: sinks.sns_topic_arn.clone(),
        retrain: sinks
            .retrain_topic_arn
            .clone()
            .map(Destination::Topic)
            .or_else(|| sinks.retrain_queue_url.clone().map(Destination::Queue)),
        models: config
            .monitors
            .iter()
            .map(|m| (m.name.clone(), m.model.clone()))
            .collect(),
    }
}

/// The sinks `[sinks]` asks for. They retry on their own (backoff with jitter), so their
/// clients do not: the SDK's retries would multiply the attempts.
fn build_sinks(config: &Config, sdk: &aws_config::SdkConfig) -> Sinks {
    let no_retry = RetryConfig::disabled();
    Sinks {
        s3_report: config.sinks.s3_report_uri.as_ref().map(|uri| {
            S3ReportSink::new(
                aws_sdk_s3::Client::from_conf(
                    aws_sdk_s3::config::Builder::from(sdk)
                        .force_path_style(config.aws.endpoint_url.is_some())
                        .retry_config(no_retry.clone())
                        .build(),
                ),
                uri,
                config.sinks.max_attempts,
            )
        }),
        cloudwatch: config.sinks.cloudwatch.then(|| {
            CloudWatchSink::new(
                aws_sdk_cloudwatch::Client::from_conf({
                    let mut builder = aws_sdk_cloudwatch::config::Builder::from(sdk)
                        .retry_config(no_retry.clone());
                    if let Some(url) = &config.aws.cloudwatch_endpoint_url {
                        builder = builder.endpoint_url(url);
                    }
                    builder.build()
                }),
                config.sinks.cloudwatch_namespace_prefix.clone(),
                config.sinks.max_attempts,
            )
        }),
        messages: Some(MessageSink::new(
            aws_sdk_sns::Client::from_conf({
                let mut builder =
                    aws_sdk_sns::config::Builder::from(sdk).retry_config(no_retry.clone());
                if let Some(url) = &config.aws.sns_endpoint_url {
                    builder = builder.endpoint_url(url);
                }
                builder.build()
            }),
            aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(sdk)
                    .retry_config(no_retry)
                    .build(),
            ),
            config.sinks.max_attempts,
        )),
    }
}
