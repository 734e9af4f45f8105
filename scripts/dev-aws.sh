#!/usr/bin/env bash
# AWS mode on this machine, no AWS account: starts the AWS emulator (moto, from the test venv),
# creates what driftd needs, runs driftd against it and uploads sample capture data.
#
#   scripts/dev-aws.sh            # Ctrl-C stops driftd (gracefully) and the emulator
#
# Creates: buckets driftd-capture and driftd-reports; queue driftd-capture-events with a
# dead-letter queue (driftd-capture-events-dlq, after 3 receives); the S3 → SQS notification
# for capture/; topic driftd-alerts with queue driftd-alert-inbox subscribed (read alerts
# there). Writes .tools/dev-aws/driftd.toml (1-minute windows closed 90 s late, so results show
# within about three minutes) and uploads one hour of the quickstart's drifted capture with its times moved to now.
#
# Environment: DRIFTD_DEV_PORT (default 4566), PYTHON3 (to create the venv).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
port="${DRIFTD_DEV_PORT:-4566}"
venv="$repo/.tools/venv"
work="$repo/.tools/dev-aws"
endpoint="http://127.0.0.1:$port"
mkdir -p "$work"

if [[ ! -x "$venv/bin/python" ]]; then
    "${PYTHON3:-python3}" -m venv "$venv"
fi
if [[ ! -x "$venv/bin/moto_server" ]]; then
    echo "==> installing the AWS emulator into $venv"
    # The same pin as the tests use.
    "$venv/bin/python" -m pip install --disable-pip-version-check --progress-bar off \
        "$(grep -E '^moto\[server\]==' scripts/requirements-test.txt)"
fi

echo "==> building driftd"
cargo build --quiet
driftd="$repo/target/debug/driftd"

echo "==> starting moto on $endpoint (log: $work/moto.log)"
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto_pid=$!
driftd_pid=""
cleanup() {
    if [[ -n "$driftd_pid" ]] && kill -0 "$driftd_pid" 2>/dev/null; then
        kill -TERM "$driftd_pid" && wait "$driftd_pid" || true
    fi
    kill "$moto_pid" 2>/dev/null || true
}
trap cleanup EXIT INT TERM
for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.2
done

export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true

echo "==> creating buckets, queues, topic and the S3 notification"
queue_url="$("$venv/bin/python" - "$endpoint" <<'PY'
import json, sys
import boto3
endpoint = sys.argv[1]
client = lambda name: boto3.client(name, endpoint_url=endpoint, region_name="us-east-1")
s3, sqs, sns = client("s3"), client("sqs"), client("sns")
for bucket in ("driftd-capture", "driftd-reports"):
    s3.create_bucket(Bucket=bucket)
arn = lambda url: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
dlq = sqs.create_queue(QueueName="driftd-capture-events-dlq")["QueueUrl"]
queue = sqs.create_queue(
    QueueName="driftd-capture-events",
    Attributes={
        "VisibilityTimeout": "60",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn(dlq), "maxReceiveCount": "3"}),
    },
)["QueueUrl"]
topic = sns.create_topic(Name="driftd-alerts")["TopicArn"]
inbox = sqs.create_queue(QueueName="driftd-alert-inbox")["QueueUrl"]
sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn(inbox))
s3.put_bucket_notification_configuration(
    Bucket="driftd-capture",
    NotificationConfiguration={"QueueConfigurations": [{
        "QueueArn": arn(queue),
        "Events": ["s3:ObjectCreated:*"],
        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "capture/"}]}},
    }]},
)
print(queue)
PY
)"

cat >"$work/driftd.toml" <<TOML
# Written by scripts/dev-aws.sh for the local emulator.
[aws]
region = "us-east-1"
endpoint_url = "$endpoint"

[input]
sqs_queue_url = "$queue_url"
allowed_buckets = ["driftd-capture"]
allowed_prefixes = ["capture/"]
# A crashed driftd's message reappears after this; the lateness below waits for it.
visibility_timeout = "30s"

[output]
directory = "out"

[window]
size = "1m"
# At least visibility_timeout plus a restart: shorter, and a crash turns rows into late rows.
allowed_lateness = "90s"

[sinks]
cloudwatch = true
sns_topic_arn = "arn:aws:sns:us-east-1:123456789012:driftd-alerts"
s3_report_uri = "s3://driftd-reports/monitoring"

[[monitor]]
name = "driftd-demo-data-quality"
path = "capture/{endpoint}/{variant}/{yyyy}/{mm}/{dd}/{hh}/*.jsonl"
format = "capture"
baseline = "$repo/baselines/driftd-demo-data-quality"
TOML

echo "==> starting driftd (config: $work/driftd.toml, outputs: $work/out)"
DRIFTD_LOG="${DRIFTD_LOG:-info}" "$driftd" run --config "$work/driftd.toml" &
driftd_pid=$!
sleep 2

echo "==> uploading the quickstart's drifted hour with its times moved to now"
"$venv/bin/python" - "$endpoint" "$repo/examples/quickstart/data/capture/driftd-demo/AllTraffic/2026/11/01/01" <<'PY'
import datetime, json, pathlib, sys
import boto3
endpoint, folder = sys.argv[1], pathlib.Path(sys.argv[2])
now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
lines = []
for path in sorted(folder.glob("*.jsonl")):
    for line in path.read_text().splitlines():
        record = json.loads(line)
        record["eventMetadata"]["inferenceTime"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(json.dumps(record))
key = now.strftime("capture/driftd-demo/AllTraffic/%Y/%m/%d/%H/dev-%M-%S.jsonl")
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
s3.put_object(Bucket="driftd-capture", Key=key, Body="\n".join(lines).encode() + b"\n")
print(f"    s3://driftd-capture/{key}: {len(lines)} records; the window closes about two and a half minutes from now")
PY

cat <<MSG
==> running. In another shell (same AWS_* variables, endpoint $endpoint):
    alerts:  the SQS queue driftd-alert-inbox
    metrics: namespace aws/sagemaker/Endpoints/data-metrics (Endpoint=driftd-demo)
    reports: s3://driftd-reports/monitoring/driftd-demo/driftd-demo-data-quality/
    upload more objects under s3://driftd-capture/capture/driftd-demo/AllTraffic/yyyy/mm/dd/hh/
Ctrl-C stops driftd (SIGTERM: it releases in-flight messages) and the emulator.
MSG
wait "$driftd_pid"
