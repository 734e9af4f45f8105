#!/usr/bin/env python3
"""Soak test (issue 18): continuous traffic through the AWS emulator into a running driftd;
its memory, open files and outbox must stay flat.

Starts moto and driftd in AWS mode (benches/emulator.py) with 1-minute windows and two
monitors, each on its own capture folder (an object goes to the first monitor whose path
matches it): data quality on `AllTraffic/`, and on `Labelled/` model quality joined with
ground-truth labels that arrive a second or two after their predictions (so the label join's
waiting labels, pending predictions and their expiry are exercised: label_ttl 5m, orphan_ttl
2m). Uploads `--rate` capture objects a second of `--records` records each (inputs from the
quickstart's capture, output `label,score`), alternating between the two folders, and once a
second one ground-truth object for the model-quality predictions of the second before: 90% of
them labelled (one label in seven disagrees), plus two labels for predictions that never come
(orphans). Every `--every` seconds it samples driftd's resident memory (VmRSS of
/proc/PID/status, and its two parts: RssAnon, the heap, and RssFile, the binary's pages,
which grow as more of its code runs), its open file descriptors (entries of /proc/PID/fd),
the state store's outbox depth (keys under outbox/: windows committed but not yet delivered
to every sink), its parts/ and labels/ keys, and the windows delivered so far. At the end it
prints the table and a verdict comparing the first and the last 10 minutes (RSS and its
anonymous part within 10%, fds within 2, outbox no deeper than max(2, first), windows still
delivered).

    .tools/venv/bin/python benches/soak.py [--minutes 30] [--rate 2] [--records 200]
        [--driftd target/release/driftd]

Build driftd first (`cargo build --release`, or pass --driftd target/debug/driftd).
"""

import argparse
import datetime
import json
import pathlib
import signal
import subprocess
import tempfile
import threading
import time

import boto3

from emulator import REPO, aws_config, create_resources, moto, start_driftd, stop

RECORDS = REPO / "examples/quickstart/data/capture/driftd-demo/AllTraffic/2026/11/01/01"
WINDOW_S = 60
LATENESS_S = 10


def monitors(work):
    return f"""
[[monitor]]
name = "soak-quality"
path = "capture/{{endpoint}}/AllTraffic/{{yyyy}}/{{mm}}/{{dd}}/{{hh}}/*.jsonl"
format = "capture"
baseline = "{work / 'dq-baseline'}"

[[monitor]]
name = "soak-labels"
path = "capture/{{endpoint}}/Labelled/{{yyyy}}/{{mm}}/{{dd}}/{{hh}}/*.jsonl"
ground_truth_path = "groundtruth/{{endpoint}}/{{yyyy}}/{{mm}}/{{dd}}/{{hh}}/*.jsonl"
format = "capture"
kind = "model_quality"
baseline = "{work / 'mq-baseline'}"
problem_type = "BinaryClassification"
inference_attribute = "_c0"
probability_attribute = "_c1"
ground_truth_attribute = "label"
label_lateness = "30s"
label_ttl = "5m"
orphan_ttl = "2m"
"""


class Traffic:
    """Capture records built from the quickstart's inputs: output `label,score` with label 1
    when the score is above 0.5; the truth disagrees for one record in seven."""

    def __init__(self):
        self.inputs = [
            json.loads(line)["captureData"]
            for path in sorted(RECORDS.glob("*.jsonl"))
            for line in path.read_text().splitlines()
        ]

    def prediction(self, n):
        data = self.inputs[n % len(self.inputs)]
        score = float(data["endpointOutput"]["data"])
        label = int(score > 0.5)
        truth = 1 - label if n % 7 == 0 else label
        return data["endpointInput"]["data"], label, score, truth

    def capture(self, first, count, at, run):
        lines = []
        for n in range(first, first + count):
            features, label, score, _ = self.prediction(n)
            lines.append(json.dumps({
                "captureData": {
                    "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                      "data": features, "encoding": "CSV"},
                    "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT",
                                       "data": f"{label},{score}", "encoding": "CSV"},
                },
                "eventMetadata": {"eventId": f"{run}-{n}",
                                  "inferenceTime": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
                "eventVersion": "0",
            }))
        return "\n".join(lines) + "\n"

    def labels(self, first, count, run):
        lines = []
        ids = [(f"{run}-{n}", self.prediction(n)[3]) for n in range(first, first + count)
               if n % 10 != 9]
        ids += [(f"{run}-orphan-{first}-{k}", 1) for k in range(2)]
        for event_id, truth in ids:
            lines.append(json.dumps({
                "groundTruthData": {"data": str(truth), "encoding": "CSV"},
                "eventMetadata": {"eventId": event_id},
                "eventVersion": "0",
            }))
        return "\n".join(lines) + "\n"


def baselines(driftd, work, traffic):
    """A data-quality baseline of 2,000 of the records and a model-quality one of their
    predictions with their truth, made by driftd itself."""
    at = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    (work / "baseline.jsonl").write_text(traffic.capture(0, 2000, at, "baseline"))
    rows = ["prediction,probability,label"]
    for n in range(2000):
        _, label, score, truth = traffic.prediction(n)
        rows.append(f"{label},{score},{truth}")
    (work / "mq-baseline.csv").write_text("\n".join(rows) + "\n")
    for command in (
        ["baseline", "--input", "baseline.jsonl", "--format", "capture",
         "--output", "dq-baseline"],
        ["baseline", "--kind", "model-quality", "--problem-type", "BinaryClassification",
         "--inference-attribute", "prediction", "--probability-attribute", "probability",
         "--ground-truth-attribute", "label", "--input", "mq-baseline.csv", "--format", "csv",
         "--header", "--output", "mq-baseline"],
    ):
        subprocess.run([str(driftd), *command], cwd=work, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def upload(endpoint, traffic, rate, records, stop_at, counts):
    """`rate` capture objects a second until `stop_at`, even ones for the data-quality monitor
    and odd ones for the model-quality monitor, and each second the labels of the second
    before's model-quality predictions."""
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    run = format(int(time.time()), "x")
    sent, tick, unlabelled = 0, time.time(), []
    while tick < stop_at:
        at = datetime.datetime.now(datetime.timezone.utc)
        # The previous second's predictions, in by now.
        if unlabelled:
            key = at.strftime(f"groundtruth/ep/%Y/%m/%d/%H/{sent:07d}.jsonl")
            body = "".join(traffic.labels(first, records, run) for first in unlabelled)
            s3.put_object(Bucket="capture", Key=key, Body=body.encode())
            unlabelled = []
        for _ in range(rate):
            folder = "Labelled" if sent % 2 else "AllTraffic"
            key = at.strftime(f"capture/ep/{folder}/%Y/%m/%d/%H/{sent:07d}.jsonl")
            body = traffic.capture(sent * records, records, at, run)
            s3.put_object(Bucket="capture", Key=key, Body=body.encode())
            if sent % 2:
                unlabelled.append(sent * records)
            sent += 1
        counts["objects"], counts["records"] = sent, sent * records
        tick += 1.0
        time.sleep(max(0.0, tick - time.time()))


def keys_under(folder):
    """Keys of the local state store under a prefix (its temporary files start with '.')."""
    if not folder.exists():
        return 0
    return sum(1 for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


class Log:
    """Reads driftd's JSON log as it grows: windows delivered (to any sink), warnings, errors."""

    def __init__(self, path):
        self.file = open(path)
        self.windows = set()
        self.levels = {"WARN": 0, "ERROR": 0}

    def read(self):
        for line in self.file.readlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "delivered":
                self.windows.add(event["window"])
            level = event.get("level")
            if level in self.levels:
                self.levels[level] += 1


def sample(pid, work, log):
    status = dict(line.split(":", 1) for line in
                  pathlib.Path(f"/proc/{pid}/status").read_text().splitlines())
    megabytes = lambda field: int(status[field].split()[0]) / 1024
    state = work / "out/state"
    log.read()
    return {
        "rss_mb": megabytes("VmRSS"),
        "anon_mb": megabytes("RssAnon"),
        "file_mb": megabytes("RssFile"),
        "fds": len(list(pathlib.Path(f"/proc/{pid}/fd").iterdir())),
        "outbox": keys_under(state / "outbox"),
        "parts": keys_under(state / "parts"),
        "labels": keys_under(state / "labels"),
        "windows": len(log.windows),
    }


def verdict(rows, minutes):
    """First vs last 10 minutes (or thirds, for shorter runs)."""
    span = min(600, minutes * 60 / 3)
    end = rows[-1]["t"]
    first = [r for r in rows if r["t"] <= span]
    last = [r for r in rows if r["t"] >= end - span]
    high = lambda rs, k: max(r[k] for r in rs)
    checks = [
        ("RSS flat (last max within 10% of first max)",
         high(last, "rss_mb") <= 1.10 * high(first, "rss_mb"),
         f"{high(first, 'rss_mb'):.1f} -> {high(last, 'rss_mb'):.1f} MB"),
        ("anonymous RSS flat (last max within 10% of first max)",
         high(last, "anon_mb") <= 1.10 * high(first, "anon_mb"),
         f"{high(first, 'anon_mb'):.1f} -> {high(last, 'anon_mb'):.1f} MB"),
        ("fds flat (last max within 2 of first max)",
         high(last, "fds") <= high(first, "fds") + 2,
         f"{high(first, 'fds')} -> {high(last, 'fds')}"),
        ("outbox not growing (last max <= max(2, first max))",
         high(last, "outbox") <= max(2, high(first, "outbox")),
         f"{high(first, 'outbox')} -> {high(last, 'outbox')}"),
        ("windows still delivered in the last span",
         last[-1]["windows"] > last[0]["windows"],
         f"{last[0]['windows']} -> {last[-1]['windows']}"),
    ]
    return checks, span


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=int, default=2, help="capture objects a second")
    parser.add_argument("--records", type=int, default=200, help="records per capture object")
    parser.add_argument("--every", type=float, default=30, help="seconds between samples")
    parser.add_argument("--driftd", default=str(REPO / "target/release/driftd"))
    args = parser.parse_args()
    args.driftd = pathlib.Path(args.driftd).resolve()
    # A SIGTERM ends the run as Ctrl-C does, through the `finally` that stops driftd and moto.
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    work = pathlib.Path(tempfile.mkdtemp(prefix="driftd-soak-"))
    traffic = Traffic()
    baselines(args.driftd, work, traffic)
    rows, counts, driftd = [], {"objects": 0, "records": 0}, None
    with moto() as endpoint:
        try:
            s3, queue, topic = create_resources(endpoint)
            (work / "driftd.toml").write_text(
                aws_config(endpoint, queue, topic, WINDOW_S, LATENESS_S) + monitors(work)
            )
            driftd = start_driftd(args.driftd, work)
            time.sleep(2)
            log = Log(work / "driftd.log")
            begin = time.time()
            stop_at = begin + args.minutes * 60
            uploader = threading.Thread(
                target=upload,
                args=(endpoint, traffic, args.rate, args.records, stop_at, counts),
                daemon=True,
            )
            uploader.start()
            print(f"driftd {args.driftd} (pid {driftd.pid}); work {work}", flush=True)
            print(f"{'t s':>6} {'RSS MB':>8} {'anon':>6} {'file':>6} {'fds':>5} {'outbox':>6} {'parts':>6} "
                  f"{'labels':>6} {'windows':>7} {'objects':>8}", flush=True)
            while True:
                if driftd.poll() is not None:
                    raise SystemExit(f"driftd exited with {driftd.returncode}; see its log")
                row = {"t": round(time.time() - begin), **sample(driftd.pid, work, log),
                       "objects": counts["objects"]}
                rows.append(row)
                print(f"{row['t']:>6} {row['rss_mb']:>8.1f} {row['anon_mb']:>6.1f} "
                      f"{row['file_mb']:>6.1f} {row['fds']:>5} "
                      f"{row['outbox']:>6} {row['parts']:>6} {row['labels']:>6} "
                      f"{row['windows']:>7} {row['objects']:>8}", flush=True)
                if time.time() >= stop_at:
                    break
                time.sleep(max(0.0, begin + len(rows) * args.every - time.time()))
            uploader.join()
        finally:
            stop(driftd)
    log.read()
    print(f"{counts['objects']} capture objects ({counts['records']} records) in "
          f"{args.minutes:g} min; {len(log.windows)} windows delivered; log lines: "
          f"{log.levels['WARN']} WARN, {log.levels['ERROR']} ERROR ({work / 'driftd.log'})")
    checks, span = verdict(rows, args.minutes)
    print(f"verdict, first vs last {span / 60:g} min:")
    for name, ok, detail in checks:
        print(f"  {'ok  ' if ok else 'FAIL'} {name}: {detail}")
    raise SystemExit(0 if all(ok for _, ok, _ in checks) else 1)


if __name__ == "__main__":
    main()
