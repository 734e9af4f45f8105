//! Rule actions as messages: an alert goes to an SNS topic, a retrain trigger to an SNS topic
//! or an SQS queue. A [`Delivery`] is complete in itself (destination, body, attributes, keys),
//! so it can be kept durably and sent later, after a restart or an outage.

use std::collections::BTreeMap;

use aws_sdk_sns::types::MessageAttributeValue as SnsAttribute;
use aws_sdk_sqs::types::MessageAttributeValue as SqsAttribute;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::retry::with_retries;
use super::sns::{self, AlertFinding, ReportLinks, WindowContext};
use crate::rules::{Action, Evidence};
use crate::sinks::retry::attempt;

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Destination {
    Topic(String),
    Queue(String),
}

impl Destination {
    /// FIFO topics and queues need a group and deduplicate by id: a resend within five minutes
    /// is dropped by AWS itself.
    fn is_fifo(&self) -> bool {
        match self {
            Destination::Topic(arn) => arn.ends_with(".fifo"),
            Destination::Queue(url) => url.ends_with(".fifo"),
        }
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Topic(arn) => write!(f, "topic {arn}"),
            Destination::Queue(url) => write!(f, "queue {url}"),
        }
    }
}

/// One message to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub destination: Destination,
    /// SNS only.
    pub subject: Option<String>,
    pub body: String,
    /// String message attributes, for subscription filter policies.
    pub attributes: BTreeMap<String, String>,
    /// The same for a resend of this message (FIFO deduplication id).
    pub deduplication_id: String,
    /// Messages of one monitor and endpoint stay in order on FIFO destinations.
    pub group_id: String,
}

impl Delivery {
    /// The same message without links to the window's S3 report (which could not be written,
    /// or not in time).
    pub fn without_report_links(&self) -> Delivery {
        let mut body: serde_json::Value =
            serde_json::from_str(&self.body).expect("deliveries carry JSON bodies");
        if let Some(report) = body.get_mut("report") {
            *report = serde_json::Value::Null;
        }
        Delivery {
            body: body.to_string(),
            ..self.clone()
        }
    }
}

/// Where actions go when a rule names no destination of its own (`[sinks]`).
#[derive(Debug, Clone, Default)]
pub struct Routes {
    pub alert_topic: Option<String>,
    pub retrain: Option<Destination>,
    /// Per monitor name: the model identifiers retrain triggers carry.
    pub models: BTreeMap<String, BTreeMap<String, String>>,
}

/// What a retraining pipeline receives.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RetrainTrigger {
    pub version: u32,
    /// One per episode of the rule on this monitor and endpoint: act on a key once.
    pub idempotency_key: String,
    pub rule: String,
    pub monitor: String,
    pub endpoint: Option<String>,
    /// From the monitor's `[monitor.model]` table.
    pub model: BTreeMap<String, String>,
    /// One line for humans.
    pub reason: String,
    /// The windows the rule looked at: from the first of the firing persistence test to the
    /// end of the current one.
    pub windows: TimeRange,
    pub evidence: Evidence,
    /// The current window's violations.
    pub findings: Vec<AlertFinding>,
    pub report: Option<ReportLinks>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TimeRange {
    pub start: String,
    pub end: String,
}

/// The message for `action` decided on `window`, or `None` when it has nowhere to go (an
/// alert without any topic: it is still recorded in the local actions file).
pub fn delivery(
    action: &Action,
    window: &WindowContext,
    rule_alert_topic: Option<&str>,
    rule_retrain: Option<Destination>,
    routes: &Routes,
) -> Option<Delivery> {
    let group_id = format!(
        "{}/{}",
        window.monitor,
        window.endpoint.as_deref().unwrap_or("-")
    );
    match action {
        Action::Alert {
            rule,
            kind,
            dedup_key,
            severity,
            evidence,
            ..
        } => {
            let topic = rule_alert_topic.or(routes.alert_topic.as_deref())?;
            let alert = sns::alert(action, window).expect("an alert action");
            let mut attributes = common_attributes(rule, window);
            attributes.insert("kind".into(), sns::name(kind));
            attributes.insert("severity".into(), sns::name(severity));
            attributes.insert("dedup_key".into(), dedup_key.clone());
            Some(Delivery {
                destination: Destination::Topic(topic.to_string()),
                subject: Some(sns::subject(&alert)),
                body: serde_json::to_string(&alert).expect("an alert serializes"),
                attributes,
                deduplication_id: format!(
                    "{dedup_key}/{}/{}",
                    sns::name(kind),
                    evidence.window_start
                ),
                group_id,
            })
        }
        Action::Retrain {
            rule,
            monitor,
            endpoint,
            idempotency_key,
            from,
            to,
            evidence,
        } => {
            let destination = rule_retrain.or_else(|| routes.retrain.clone())?;
            let trigger = RetrainTrigger {
                version: 1,
                idempotency_key: idempotency_key.clone(),
                rule: rule.clone(),
                monitor: monitor.clone(),
                endpoint: endpoint.clone(),
                model: routes.models.get(monitor).cloned().unwrap_or_default(),
                reason: reason(rule, evidence),
                windows: TimeRange {
                    start: rfc3339(*from),
                    end: rfc3339(*to),
                },
                evidence: evidence.clone(),
                findings: window.findings.clone(),
                report: window.report.clone(),
            };
            let mut attributes = common_attributes(rule, window);
            attributes.insert("idempotency_key".into(), idempotency_key.clone());
            Some(Delivery {
                subject: matches!(destination, Destination::Topic(_)).then(|| {
                    let text = format!("driftd retrain: {monitor} ({rule})");
                    text.chars().filter(char::is_ascii).take(100).collect()
                }),
                destination,
                body: serde_json::to_string(&trigger).expect("a trigger serializes"),
                attributes,
                deduplication_id: idempotency_key.clone(),
                group_id,
            })
        }
    }
}

fn common_attributes(rule: &str, window: &WindowContext) -> BTreeMap<String, String> {
    let mut attributes = BTreeMap::from([
        ("rule".to_string(), rule.to_string()),
        ("monitor".to_string(), window.monitor.clone()),
    ]);
    if let Some(endpoint) = &window.endpoint {
        attributes.insert("endpoint".into(), endpoint.clone());
    }
    attributes
}

/// `sustained drift: linf_robust of age 0.31, income 0.25` style: what matched, briefly.
fn reason(rule: &str, evidence: &Evidence) -> String {
    let matched: Vec<String> = evidence
        .matches
        .iter()
        .take(5)
        .map(|m| {
            let mut text = m.what.clone();
            if let Some(subject) = &m.subject {
                text = format!("{text} of {subject}");
            }
            if let Some(value) = m.value {
                text = format!("{text} = {value:.4}");
            }
            text
        })
        .collect();
    let more = evidence.matches.len().saturating_sub(matched.len());
    let mut text = format!("rule {rule}: {}", matched.join(", "));
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}

fn rfc3339(seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| seconds.to_string())
}

/// FIFO deduplication ids allow 128 characters of ASCII punctuation and alphanumerics; a key
/// outside that is replaced by its hash (still the same for a resend).
fn fifo_id(key: &str) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c.is_ascii_punctuation();
    if key.len() <= 128 && key.chars().all(allowed) {
        key.to_string()
    } else {
        format!("h{:016x}", twox_hash::XxHash64::oneshot(0, key.as_bytes()))
    }
}

/// Sends deliveries with retries (backoff with jitter).
pub struct MessageSink {
    sns: aws_sdk_sns::Client,
    sqs: aws_sdk_sqs::Client,
    max_attempts: u32,
}

impl MessageSink {
    pub fn new(sns: aws_sdk_sns::Client, sqs: aws_sdk_sqs::Client, max_attempts: u32) -> Self {
        Self {
            sns,
            sqs,
            max_attempts,
        }
    }

    /// Whether a destination exists and is reachable (at start-up).
    pub async fn check(&self, destination: &Destination) -> Result<(), super::retry::Attempt> {
        match destination {
            Destination::Topic(arn) => self
                .sns
                .get_topic_attributes()
                .topic_arn(arn)
                .send()
                .await
                .map(|_| ())
                .map_err(attempt),
            Destination::Queue(url) => self
                .sqs
                .get_queue_attributes()
                .queue_url(url)
                .send()
                .await
                .map(|_| ())
                .map_err(attempt),
        }
    }

    pub async fn send(&self, delivery: &Delivery) -> Result<(), String> {
        let fifo = delivery.destination.is_fifo();
        let dedup = fifo.then(|| fifo_id(&delivery.deduplication_id));
        let group = fifo.then(|| fifo_id(&delivery.group_id));
        let result = match &delivery.destination {
            Destination::Topic(arn) => {
                with_retries("SNS Publish", self.max_attempts, || async {
                    let mut request = self
                        .sns
                        .publish()
                        .topic_arn(arn)
                        .message(&delivery.body)
                        .set_subject(delivery.subject.clone())
                        .set_message_deduplication_id(dedup.clone())
                        .set_message_group_id(group.clone());
                    // String attributes only: a Binary one breaks raw delivery to SQS.
                    for (name, value) in &delivery.attributes {
                        request = request.message_attributes(
                            name,
                            SnsAttribute::builder()
                                .data_type("String")
                                .string_value(value)
                                .build()
                                .expect("data type is set"),
                        );
                    }
                    request.send().await.map(|_| ()).map_err(attempt)
                })
                .await
            }
            Destination::Queue(url) => {
                with_retries("SQS SendMessage", self.max_attempts, || async {
                    let mut request = self
                        .sqs
                        .send_message()
                        .queue_url(url)
                        .message_body(&delivery.body)
                        .set_message_deduplication_id(dedup.clone())
                        .set_message_group_id(group.clone());
                    for (name, value) in &delivery.attributes {
                        request = request.message_attributes(
                            name,
                            SqsAttribute::builder()
                                .data_type("String")
                                .string_value(value)
                                .build()
                                .expect("data type is set"),
                        );
                    }
                    request.send().await.map(|_| ()).map_err(attempt)
                })
                .await
            }
        };
        result.map_err(|e| format!("{e} ({})", delivery.destination))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Match;

    #[test]
    fn fifo_ids_keep_valid_keys_and_hash_the_rest() {
        assert_eq!(
            fifo_id("rule/m/ep/2026-11-01T01:00:00Z"),
            "rule/m/ep/2026-11-01T01:00:00Z"
        );
        let hashed = fifo_id("rule/mönitor/ep");
        assert!(hashed.starts_with('h') && hashed.len() == 17, "{hashed}");
        assert_eq!(hashed, fifo_id("rule/mönitor/ep"));
        assert_ne!(fifo_id(&"x".repeat(129)), "x".repeat(129));
    }

    #[test]
    fn the_reason_names_what_matched() {
        let evidence = Evidence {
            window_start: 0,
            window_end: 3600,
            matches: vec![
                Match {
                    subject: Some("age".into()),
                    what: "linf_robust".into(),
                    value: Some(0.31),
                },
                Match {
                    subject: None,
                    what: "drifted_features".into(),
                    value: Some(3.0),
                },
            ],
        };
        assert_eq!(
            reason("retrain-on-drift", &evidence),
            "rule retrain-on-drift: linf_robust of age = 0.3100, drifted_features = 3.0000"
        );
    }
}
