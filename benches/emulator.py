"""What the benchmarks against the AWS emulator share: moto from the test venv on a free port,
a capture bucket whose S3 events go to an SQS queue, an SNS topic and a reports bucket, and
driftd in AWS mode with a JSON log. Used by latency.py and soak.py; run them with the venv's
Python (`.tools/venv/bin/python`), which `scripts/test.sh` makes.
"""

import contextlib
import os
import pathlib
import socket
import subprocess
import sys
import time

import boto3

REPO = pathlib.Path(__file__).resolve().parent.parent

# What driftd and boto3 need to talk to the emulator and nothing else.
ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "PATH": "/usr/bin:/bin",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"moto did not listen on {port}")


@contextlib.contextmanager
def moto():
    """Runs moto_server (from the venv this Python belongs to) on a free port; yields its
    endpoint URL, with boto3's credentials in this process's environment."""
    port = free_port()
    venv_bin = pathlib.Path(sys.executable).parent
    server = subprocess.Popen(
        [str(venv_bin / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        os.environ.update({k: v for k, v in ENV.items() if k != "PATH"})
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def create_resources(endpoint):
    """Buckets `capture` (its ObjectCreated events go to the queue `capture-events`) and
    `reports`, and the topic `alerts`. Returns the S3 client, the queue URL and the topic ARN."""
    client = lambda name: boto3.client(name, endpoint_url=endpoint, region_name="us-east-1")
    s3, sqs, sns = client("s3"), client("sqs"), client("sns")
    for bucket in ("capture", "reports"):
        s3.create_bucket(Bucket=bucket)
    queue = sqs.create_queue(QueueName="capture-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    s3.put_bucket_notification_configuration(
        Bucket="capture",
        NotificationConfiguration={
            "QueueConfigurations": [
                {"QueueArn": arn["Attributes"]["QueueArn"], "Events": ["s3:ObjectCreated:*"]}
            ]
        },
    )
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    return s3, queue, topic


def aws_config(endpoint, queue, topic, size, lateness):
    """driftd.toml's AWS-mode sections (no monitors): the queue, `size`-second windows with
    `lateness` seconds of allowed lateness, CloudWatch, the SNS topic and the S3 report."""
    return f"""
[aws]
region = "us-east-1"
endpoint_url = "{endpoint}"

[input]
sqs_queue_url = "{queue}"
allowed_buckets = ["capture"]
wait_time = "1s"

[output]
directory = "out"

[window]
size = "{size}s"
allowed_lateness = "{lateness}s"

[sinks]
cloudwatch = true
sns_topic_arn = "{topic}"
s3_report_uri = "s3://reports/monitoring"
"""


def start_driftd(binary, work, log_name="driftd.log"):
    """`driftd run --config driftd.toml` in `work`, its JSON log (info) in `work/log_name`."""
    log = open(work / log_name, "w")
    return subprocess.Popen(
        [str(binary), "run", "--config", "driftd.toml"],
        cwd=work,
        env={**ENV, "DRIFTD_LOG_FORMAT": "json", "DRIFTD_LOG": "info"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def stop(process, seconds=60):
    """SIGTERM, then wait: driftd stops cleanly on it."""
    if process is not None and process.poll() is None:
        process.terminate()
        process.wait(timeout=seconds)
