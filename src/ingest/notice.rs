//! S3 event notifications as they reach driftd's SQS queue, parsed (pure, no I/O).
//!
//! Three shapes reach the queue: S3's own notification (`{"Records": [...]}`), the same wrapped
//! in an SNS envelope (`{"Type": "Notification", "Message": "<json>"}`, when the bucket notifies
//! a topic the queue subscribes to without raw delivery), and EventBridge's "Object Created"
//! event. Kept apart from [`super::sqs`], which does the I/O, so that it builds without the AWS
//! SDK (the fuzz targets, issue 18).

use serde::Deserialize;
use serde_json::Value;

/// One object an event says was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEvent {
    pub bucket: String,
    /// Decoded: the key to pass to GetObject.
    pub key: String,
    pub etag: Option<String>,
    pub size: Option<u64>,
    /// e.g. `ObjectCreated:Put`, or EventBridge's `Object Created`.
    pub event_name: String,
    /// Why the key cannot name an S3 object (see [`key_problem`]): such an event is forged or
    /// corrupt, and is refused before any request.
    pub refused: Option<String>,
}

/// What one SQS message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Objects to read (a message may carry several records).
    Objects(Vec<ObjectEvent>),
    /// `s3:TestEvent`, sent once when a notification is configured: acknowledge and skip.
    Test,
    /// A well-formed event that is not about a created object (e.g. `ObjectRemoved:Delete`).
    Ignored(String),
}

/// A message driftd cannot read. It is left on the queue, so the redrive policy moves it to
/// the dead-letter queue where a person can look at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("message body is not JSON: {0}")]
    NotJson(String),
    #[error("unsupported S3 event version {0:?} (driftd reads 2.x)")]
    UnsupportedVersion(String),
    #[error("unsupported EventBridge detail version {0:?} (driftd reads 0)")]
    UnsupportedDetailVersion(String),
    #[error("not an S3 event, an SNS envelope of one, or an EventBridge S3 event: {0}")]
    Unrecognized(String),
    #[error("malformed S3 event: {0}")]
    Malformed(String),
}

#[derive(Deserialize)]
struct S3Record {
    #[serde(rename = "eventVersion")]
    event_version: String,
    #[serde(rename = "eventName")]
    event_name: String,
    s3: S3Entity,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: Named,
    object: S3Object,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
struct S3Object {
    key: String,
    size: Option<u64>,
    #[serde(rename = "eTag", alias = "etag")]
    etag: Option<String>,
}

/// Parses an SQS message body.
pub fn parse_message(body: &str) -> Result<Notice, EventError> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| EventError::NotJson(e.to_string()))?;
    parse_value(&value, true)
}

fn parse_value(value: &Value, unwrap_sns: bool) -> Result<Notice, EventError> {
    if value.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Notice::Test);
    }
    if let Some(records) = value.get("Records") {
        return parse_records(records);
    }
    if unwrap_sns
        && value.get("Type").and_then(Value::as_str) == Some("Notification")
        && let Some(message) = value.get("Message").and_then(Value::as_str)
    {
        let inner: Value = serde_json::from_str(message)
            .map_err(|e| EventError::NotJson(format!("SNS Message: {e}")))?;
        return parse_value(&inner, false);
    }
    if value.get("source").and_then(Value::as_str) == Some("aws.s3")
        && let Some(detail) = value.get("detail")
    {
        let detail_type = value
            .get("detail-type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return parse_eventbridge(detail_type, detail);
    }
    Err(EventError::Unrecognized(shorten(&value.to_string())))
}

fn parse_records(records: &Value) -> Result<Notice, EventError> {
    let records: Vec<S3Record> = serde_json::from_value(records.clone())
        .map_err(|e| EventError::Malformed(e.to_string()))?;
    let mut objects = Vec::new();
    let mut ignored = Vec::new();
    for record in records {
        // Version 2.x only: 2.0, 2.1 (adds ObjectRestore, Replication), 2.2 (Glacier). A major
        // version change would mean fields driftd does not know.
        if record.event_version.split('.').next() != Some("2") {
            return Err(EventError::UnsupportedVersion(record.event_version));
        }
        let name = record.event_name.trim_start_matches("s3:");
        if !name.starts_with("ObjectCreated:") {
            ignored.push(record.event_name);
            continue;
        }
        let (key, refused) = match decode_key(&record.s3.object.key) {
            Ok(key) => {
                let refused = key_problem(&key);
                (key, refused)
            }
            Err(problem) => (record.s3.object.key, Some(problem)),
        };
        objects.push(ObjectEvent {
            bucket: record.s3.bucket.name,
            key,
            etag: record.s3.object.etag.filter(|e| !e.is_empty()),
            size: record.s3.object.size,
            event_name: record.event_name,
            refused,
        });
    }
    if objects.is_empty() {
        return Ok(Notice::Ignored(if ignored.is_empty() {
            "no records".into()
        } else {
            format!("not an object creation: {}", ignored.join(", "))
        }));
    }
    Ok(Notice::Objects(objects))
}

fn parse_eventbridge(detail_type: &str, detail: &Value) -> Result<Notice, EventError> {
    let version = detail
        .get("version")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if version != "0" {
        return Err(EventError::UnsupportedDetailVersion(version.to_string()));
    }
    if detail_type != "Object Created" {
        return Ok(Notice::Ignored(format!(
            "not an object creation: {detail_type}"
        )));
    }
    let text = |path: &[&str]| {
        path.iter()
            .try_fold(detail, |v, k| v.get(*k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let bucket = text(&["bucket", "name"])
        .ok_or_else(|| EventError::Malformed("EventBridge detail without bucket.name".into()))?;
    // EventBridge carries the key as written, not URL-encoded like S3's own notifications.
    let key = text(&["object", "key"])
        .ok_or_else(|| EventError::Malformed("EventBridge detail without object.key".into()))?;
    Ok(Notice::Objects(vec![ObjectEvent {
        bucket,
        refused: key_problem(&key),
        key,
        etag: text(&["object", "etag"]),
        size: detail
            .get("object")
            .and_then(|o| o.get("size"))
            .and_then(Value::as_u64),
        event_name: detail_type.to_string(),
    }]))
}

/// S3 notifications URL-encode keys, with `+` for a space (`red flower.jpg` → `red+flower.jpg`).
/// `Err` when the bytes are not UTF-8, which no S3 key is.
pub fn decode_key(key: &str) -> Result<String, String> {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| "the key is not UTF-8".to_string())
}

/// S3's longest key, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// Why `key` cannot be an S3 object's key, or a key driftd reads: empty, longer than S3
/// allows, or holding control characters (S3 allows some, but no capture writer makes them,
/// and they would forge lines wherever the key is written). `None` when it can.
pub fn key_problem(key: &str) -> Option<String> {
    if key.is_empty() {
        return Some("the key is empty".into());
    }
    if key.len() > MAX_KEY_BYTES {
        return Some(format!(
            "the key is {} bytes, more than S3's {MAX_KEY_BYTES}",
            key.len()
        ));
    }
    key.chars()
        .any(char::is_control)
        .then(|| "the key holds control characters".into())
}

/// `text` cut after 200 characters, for logs and errors.
pub fn shorten(text: &str) -> String {
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// Which buckets and key prefixes driftd may read. Anything else named by a message is refused
/// without being fetched: a queue is an input anyone with SendMessage can write to.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    pub buckets: Vec<String>,
    /// Empty: any key in an allowed bucket.
    pub prefixes: Vec<String>,
}

impl AllowList {
    /// `Err(reason)` when the object is not allowed.
    pub fn check(&self, bucket: &str, key: &str) -> Result<(), String> {
        if !self.buckets.iter().any(|b| b == bucket) {
            return Err(format!("bucket {bucket:?} is not in input.allowed_buckets"));
        }
        if !self.prefixes.is_empty() && !self.prefixes.iter().any(|p| key.starts_with(p)) {
            return Err(format!(
                "key {key:?} is under none of input.allowed_prefixes"
            ));
        }
        if key.split('/').any(|part| part == "..") {
            return Err(format!("key {key:?} has a '..' segment"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(notice: Notice) -> Vec<ObjectEvent> {
        match notice {
            Notice::Objects(objects) => objects,
            other => panic!("expected objects, got {other:?}"),
        }
    }

    const S3_EVENT: &str = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1","eventTime":"2026-11-01T00:05:00.000Z","eventName":"ObjectCreated:Put","s3":{"s3SchemaVersion":"1.0","configurationId":"driftd","bucket":{"name":"capture-bucket","arn":"arn:aws:s3:::capture-bucket"},"object":{"key":"capture%2Fmy-endpoint%2FAllTraffic%2F2026%2F11%2F01%2F00%2Fred+flower%2B1.jsonl","size":1024,"eTag":"0123abcd","sequencer":"0055AED6DCD90281E5"}}}]}"#;

    #[test]
    fn a_direct_s3_event_gives_its_object_with_the_key_url_decoded() {
        let objects = objects(parse_message(S3_EVENT).unwrap());
        assert_eq!(
            objects,
            [ObjectEvent {
                bucket: "capture-bucket".into(),
                key: "capture/my-endpoint/AllTraffic/2026/11/01/00/red flower+1.jsonl".into(),
                etag: Some("0123abcd".into()),
                size: Some(1024),
                event_name: "ObjectCreated:Put".into(),
                refused: None,
            }]
        );
    }

    #[test]
    fn an_sns_envelope_is_unwrapped() {
        let envelope = serde_json::json!({
            "Type": "Notification",
            "MessageId": "5f1c",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:capture-events",
            "Subject": "Amazon S3 Notification",
            "Message": S3_EVENT,
            "Timestamp": "2026-11-01T00:05:01.000Z",
        });
        let objects = objects(parse_message(&envelope.to_string()).unwrap());
        assert_eq!(objects[0].bucket, "capture-bucket");
        assert!(objects[0].key.ends_with("red flower+1.jsonl"));
    }

    #[test]
    fn an_eventbridge_object_created_event_is_read_without_decoding_its_key() {
        let event = r#"{"version":"0","id":"17793124-05d4-b198-2fde-7ededc63b103","detail-type":"Object Created","source":"aws.s3","account":"123456789012","time":"2026-11-01T00:05:00Z","region":"us-east-1","resources":["arn:aws:s3:::capture-bucket"],"detail":{"version":"0","bucket":{"name":"capture-bucket"},"object":{"key":"capture/ep/a+b.jsonl","size":5,"etag":"b1946ac9","sequencer":"00617F08299329D189"},"request-id":"N4N7GDK58NMKJ12R","requester":"123456789012","reason":"PutObject"}}"#;
        let objects = objects(parse_message(event).unwrap());
        assert_eq!(objects[0].key, "capture/ep/a+b.jsonl");
        assert_eq!(objects[0].etag.as_deref(), Some("b1946ac9"));
        assert_eq!(objects[0].event_name, "Object Created");
        let deleted = event.replace("Object Created", "Object Deleted");
        assert!(matches!(
            parse_message(&deleted).unwrap(),
            Notice::Ignored(_)
        ));
        let v1 = event.replace(r#"{"version":"0","bucket""#, r#"{"version":"1","bucket""#);
        assert_eq!(
            parse_message(&v1),
            Err(EventError::UnsupportedDetailVersion("1".into()))
        );
    }

    #[test]
    fn the_test_event_is_recognised_directly_and_inside_sns() {
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-01T00:00:00.000Z","Bucket":"capture-bucket","RequestId":"5582815E1AEA5ADF","HostId":"8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"}"#;
        assert_eq!(parse_message(test), Ok(Notice::Test));
        let wrapped = serde_json::json!({"Type": "Notification", "Message": test});
        assert_eq!(parse_message(&wrapped.to_string()), Ok(Notice::Test));
    }

    #[test]
    fn only_object_creation_is_read_and_other_versions_are_refused() {
        let removed = S3_EVENT.replace("ObjectCreated:Put", "ObjectRemoved:Delete");
        assert!(matches!(parse_message(&removed), Ok(Notice::Ignored(_))));
        let multipart =
            S3_EVENT.replace("ObjectCreated:Put", "ObjectCreated:CompleteMultipartUpload");
        assert_eq!(objects(parse_message(&multipart).unwrap()).len(), 1);
        let v3 = S3_EVENT.replace(r#""eventVersion":"2.1""#, r#""eventVersion":"3.0""#);
        assert_eq!(
            parse_message(&v3),
            Err(EventError::UnsupportedVersion("3.0".into()))
        );
        let error = parse_message(&v3).unwrap_err().to_string();
        assert!(error.contains("3.0") && error.contains("2.x"), "{error}");
    }

    #[test]
    fn bodies_that_are_no_s3_event_are_errors() {
        assert!(matches!(
            parse_message("not json"),
            Err(EventError::NotJson(_))
        ));
        assert!(matches!(
            parse_message(r#"{"hello": "world"}"#),
            Err(EventError::Unrecognized(_))
        ));
        assert!(matches!(
            parse_message(r#"{"Records": [{"eventVersion": "2.1"}]}"#),
            Err(EventError::Malformed(_))
        ));
    }

    #[test]
    fn the_allow_list_refuses_other_buckets_prefixes_and_dot_dot() {
        let allow = AllowList {
            buckets: vec!["capture-bucket".into()],
            prefixes: vec!["capture/".into()],
        };
        assert_eq!(allow.check("capture-bucket", "capture/ep/x.jsonl"), Ok(()));
        assert!(
            allow
                .check("other", "capture/ep/x.jsonl")
                .unwrap_err()
                .contains("allowed_buckets")
        );
        assert!(
            allow
                .check("capture-bucket", "secrets/x")
                .unwrap_err()
                .contains("allowed_prefixes")
        );
        assert!(
            allow
                .check("capture-bucket", "capture/../secrets/x")
                .is_err()
        );
        let any_key = AllowList {
            buckets: vec!["capture-bucket".into()],
            prefixes: vec![],
        };
        assert_eq!(any_key.check("capture-bucket", "anything"), Ok(()));
    }

    #[test]
    fn decode_key_turns_plus_into_space_and_percent_escapes_into_bytes() {
        assert_eq!(decode_key("a%2Fb+c%2Bd%C3%A9").unwrap(), "a/b c+dé");
        assert_eq!(decode_key("plain/key.jsonl").unwrap(), "plain/key.jsonl");
        assert!(decode_key("bad%FF%FEbytes").is_err());
    }

    #[test]
    fn keys_s3_cannot_have_are_refused_in_every_event_shape() {
        let long = format!("capture/{}", "k".repeat(1017));
        assert_eq!(long.len(), 1025);
        let fine = &long[..1024];
        let cases = [
            ("capture%2Fx%FF.jsonl", Some("not UTF-8")),
            ("capture%2Fa%0Afake+log+line", Some("control characters")),
            ("capture%2Fa%1B%5B31m", Some("control characters")),
            (long.as_str(), Some("1025 bytes, more than S3's 1024")),
            (fine, None),
        ];
        for (key, problem) in cases {
            let event = S3_EVENT.replace(
                "capture%2Fmy-endpoint%2FAllTraffic%2F2026%2F11%2F01%2F00%2Fred+flower%2B1.jsonl",
                key,
            );
            let refused = objects(parse_message(&event).unwrap())[0].refused.clone();
            match problem {
                Some(text) => assert!(
                    refused.as_deref().is_some_and(|r| r.contains(text)),
                    "{key}: {refused:?}"
                ),
                None => assert_eq!(refused, None, "{key}"),
            }
        }
        let bridge = r#"{"version":"0","detail-type":"Object Created","source":"aws.s3","detail":{"version":"0","bucket":{"name":"b"},"object":{"key":"capture/a\nb"}}}"#;
        assert!(objects(parse_message(bridge).unwrap())[0].refused.is_some());
    }
}
