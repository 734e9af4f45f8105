#!/usr/bin/env python3
"""Window close -> delivery latency of a running driftd against the AWS emulator (issue 15).

Starts moto (from the test venv) on a free port, creates a capture bucket whose S3 events go to
an SQS queue, an SNS topic and a reports bucket, runs driftd in AWS mode with short windows,
and uploads one capture object a second (the quickstart's drifted records, so every window is
in violation and alerts) with its event times set to now. From driftd's JSON log it then
prints, per sink, the time from a window's close (its end plus the allowed lateness) to the
window's delivery, and from the PutObject of the window's last object to its CloudWatch
delivery: p50, p99 and max over the windows. From driftd's /metrics it also prints the
state-store operations of the run (driftd_state_operations_total): those of an object per
object, those of a window per window, and the finaliser's listings and watermark reads per
second of the run.

    .tools/venv/bin/python benches/latency.py [--windows 100] [--size 10] [--lateness 2]
        [--state local|s3] [--driftd target/release/driftd]

`--state s3` keeps driftd's state store in a bucket of the emulator (as replicas share it in
production) instead of a local directory: every state-store operation is then a request.

Build driftd first (`cargo build --release`); the venv is the one `scripts/test.sh` makes.
Run it on an otherwise idle machine: it measures wall-clock time.
"""

import argparse
import datetime
import json
import pathlib
import shutil
import statistics
import tempfile
import time
import urllib.request

from emulator import REPO, aws_config, create_resources, free_port, moto, start_driftd, stop

RECORDS = REPO / "examples/quickstart/data/capture/driftd-demo/AllTraffic/2026/11/01/01"
BASELINE = REPO / "baselines/driftd-demo-data-quality"


def config(endpoint, queue, topic, size, lateness, metrics_port, state):
    store = '\n[state]\ns3_uri = "s3://state/driftd"\n' if state == "s3" else ""
    return aws_config(endpoint, queue, topic, size, lateness) + store + f"""
[observability]
listen = "127.0.0.1:{metrics_port}"

[[monitor]]
name = "latency"
path = "capture/{{endpoint}}/{{variant}}/{{yyyy}}/{{mm}}/{{dd}}/{{hh}}/*.jsonl"
format = "capture"
baseline = "{BASELINE}"
"""


def state_operations(port):
    """{(op, area): count} from driftd's /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    counts = {}
    for line in text.splitlines():
        if line.startswith("driftd_state_operations_total{"):
            labels, value = line[len("driftd_state_operations_total{"):].split("} ")
            fields = dict(item.split("=") for item in labels.split(","))
            counts[(fields["op"].strip('"'), fields["area"].strip('"'))] = float(value)
    return counts


# What an object costs (see README, "State store"); every finaliser tick lists the work areas
# and reads the replicas' watermarks; the rest is a window's (fence, open mark, its parts
# listed and deleted, lease, rules, outbox, done).
PER_OBJECT = {("get", "ledger"), ("put_new", "ledger"), ("put", "parts"), ("get", "fence"),
              ("put", "watermark"), ("get", "parts")}


def per_tick(op, area):
    return (op == "list" and area != "parts") or (op, area) == ("get", "watermark")


def print_state_operations(counts, objects, windows, seconds):
    """The run's state-store operations: an object's per object, a window's per window, the
    finaliser's listings and watermark reads per second."""
    print(f"state-store operations: {objects} objects, {windows} windows, {seconds:.0f} s")
    ticks = {k for k in counts if per_tick(*k)}
    groups = [
        ("object", objects, PER_OBJECT),
        ("window", windows, set(counts) - PER_OBJECT - ticks),
        ("second", seconds, ticks),
    ]
    for unit, n, keys in groups:
        total = 0.0
        for op, area in sorted(keys, key=lambda k: (k[1], k[0])):
            count = counts.get((op, area), 0.0)
            total += count
            print(f"  {op:<13} {area:<10} {count:>8.0f}  {count / n:>6.2f} per {unit}")
        print(f"  {'together':<24} {total:>8.0f}  {total / n:>6.2f} per {unit}")


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=100)
    parser.add_argument("--size", type=int, default=10, help="window size, seconds")
    parser.add_argument("--lateness", type=int, default=2, help="allowed lateness, seconds")
    parser.add_argument("--state", choices=["local", "s3"], default="local",
                        help="where driftd keeps its state store")
    parser.add_argument("--driftd", default=str(REPO / "target/release/driftd"))
    args = parser.parse_args()
    args.driftd = pathlib.Path(args.driftd).resolve()

    lines = [
        json.loads(line)
        for path in sorted(RECORDS.glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ][:20]
    work = pathlib.Path(tempfile.mkdtemp(prefix="driftd-latency-"))
    driftd = None
    with moto() as endpoint:
        try:
            s3, queue, topic = create_resources(endpoint)
            if args.state == "s3":
                s3.create_bucket(Bucket="state")
            metrics_port = free_port()
            (work / "driftd.toml").write_text(
                config(endpoint, queue, topic, args.size, args.lateness, metrics_port, args.state)
            )
            driftd = start_driftd(args.driftd, work)
            started = time.time()
            time.sleep(2)
            # Start at a window boundary, then one object a second for the given number of
            # windows.
            now = time.time()
            first = (int(now) // args.size + 1) * args.size
            time.sleep(first - now)
            last_put = {}
            until = first + args.windows * args.size
            sent = 0
            # Past the last measured window's close, so that it too closes on an event (the
            # way every window of a live stream does), not on the clock at the end of the run.
            while time.time() < until + args.lateness + 1:
                at = datetime.datetime.now(datetime.timezone.utc)
                for record in lines:
                    record["eventMetadata"]["inferenceTime"] = at.strftime(
                        "%Y-%m-%dT%H:%M:%S.%fZ"
                    )
                body = "\n".join(json.dumps(r) for r in lines).encode() + b"\n"
                key = at.strftime(f"capture/ep/AllTraffic/%Y/%m/%d/%H/{sent:06d}.jsonl")
                s3.put_object(Bucket="capture", Key=key, Body=body)
                window = int(at.timestamp()) // args.size * args.size
                last_put[window] = time.time()
                sent += 1
                time.sleep(max(0.0, 1.0 - (time.time() - at.timestamp())))
            time.sleep(args.lateness + 5)
            operations = state_operations(metrics_port)
            run_seconds = time.time() - started
        finally:
            stop(driftd)

    delivered = {}
    for line in (work / "driftd.log").read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") != "delivered":
            continue
        stamp = datetime.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
        # The window's folder ends in its start: …/yyyy/mm/dd/hh/mm/ss for short windows.
        parts = event["window"].rstrip("/").split("/")[-6:]
        start = datetime.datetime(*map(int, parts), tzinfo=datetime.timezone.utc).timestamp()
        delivered.setdefault(event["sink"], {}).setdefault(start, stamp.timestamp())

    print(f"{args.windows} windows of {args.size} s, allowed lateness {args.lateness} s, "
          f"{args.state} state store; "
          f"{sent} objects; log {work / 'driftd.log'}")
    print(f"{'from':<28} {'to':<12} {'windows':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    rows = []
    for sink, times in sorted(delivered.items()):
        closes = [t - (start + args.size + args.lateness) for start, t in times.items()
                  if first <= start < until]
        rows.append(("window close", sink, closes))
    cloudwatch = delivered.get("cloudwatch", {})
    puts = [cloudwatch[w] - last_put[w] for w in last_put if w in cloudwatch and w < until]
    rows.append(("last PutObject of window", "cloudwatch", puts))
    for origin, sink, values in rows:
        if values:
            print(f"{origin:<28} {sink:<12} {len(values):>7} "
                  f"{1000 * statistics.median(values):>8.0f} "
                  f"{1000 * percentile(values, 0.99):>8.0f} {1000 * max(values):>8.0f}")
    print_state_operations(operations, sent, args.windows, run_seconds)
    shutil.rmtree(work / "out", ignore_errors=True)


if __name__ == "__main__":
    main()
