"""Runs driftd and the peer tools on the same generated data and prints a markdown table.
Called by run.sh, which prepares the venv, the release build and the data.

Each tool runs as its own process, so wall time and peak RSS are that process's alone: measured
with `/usr/bin/time -v` when present, else with os.wait4 (the per-child form of
getrusage(RUSAGE_CHILDREN), whose maximum would otherwise carry over from an earlier, bigger
child). A tool that fails is marked in the table and the run goes on.
"""

import argparse
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TIME = "/usr/bin/time"


def measure(cmd, log_path):
    """Runs cmd; returns (exit code, wall s, peak RSS MiB). stdout+stderr go to log_path."""
    env = dict(os.environ, PYTHONPATH=HERE,
               # No analytics calls to the network from the peers.
               WHYLOGS_NO_ANALYTICS="True", DO_NOT_TRACK="1", EVIDENTLY_DISABLE_TELEMETRY="1")
    with open(log_path, "w") as log:
        if os.access(TIME, os.X_OK):
            with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
                start = time.perf_counter()
                code = subprocess.call([TIME, "-v", "-o", tf.name] + cmd, stdout=log,
                                       stderr=subprocess.STDOUT, env=env)
                wall = time.perf_counter() - start
                report = tf.read()
            m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report)
            rss = int(m.group(1)) / 1024 if m else float("nan")
            m = re.search(r"Exit status: (\d+)", report)
            code = int(m.group(1)) if m else code
        else:
            start = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
            code = os.waitstatus_to_exitcode(status)
            rss = usage.ru_maxrss / 1024  # KiB on Linux
    return code, wall, rss


def tail(path, n=6):
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-n:]).strip()


def version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driftd", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--records", type=int, required=True)
    ap.add_argument("--baseline-records", type=int, required=True)
    ap.add_argument("--tools", default="driftd,whylogs,evidently,parse")
    args = ap.parse_args()

    baseline_csv = os.path.join(args.data, "baseline.csv")
    capture = os.path.join(args.data, "capture")
    capture_bytes = sum(os.path.getsize(os.path.join(d, f))
                        for d, _, fs in os.walk(capture) for f in fs)
    res = args.results
    shutil.rmtree(res, ignore_errors=True)
    os.makedirs(res)
    py = sys.executable
    tools = args.tools.split(",")

    driftd_version = "?"
    try:
        driftd_version = subprocess.run([args.driftd, "--version"], capture_output=True,
                                        text=True, timeout=30).stdout.strip() or "?"
    except OSError:
        pass

    # (name, version, what it does, command, records it reads for records/s, bytes for MB/s,
    #  output it must leave behind: an exit code alone proves nothing while the CLI is a stub)
    runs = []
    if "driftd" in tools:
        runs.append(("driftd baseline", driftd_version, f"profile {args.baseline_records:,} baseline CSV rows",
                     [args.driftd, "baseline", "--input", baseline_csv, "--format", "csv", "--no-header",
                      "--output", f"{res}/driftd-baseline"],
                     args.baseline_records, os.path.getsize(baseline_csv),
                     f"{res}/driftd-baseline/statistics.json"))
        runs.append(("driftd check", driftd_version, "decode capture + profile + drift vs baseline",
                     [args.driftd, "check", "--baseline", f"{res}/driftd-baseline", "--input", capture,
                      "--format", "capture", "--output", f"{res}/driftd-check"],
                     args.records, capture_bytes, f"{res}/driftd-check"))
        # Scaling: the same check pinned to one core (taskset), beside the row above on all.
        if shutil.which("taskset"):
            runs.append(("driftd check 1 core", driftd_version, "the same check, pinned to one core",
                         ["taskset", "-c", "0", args.driftd, "check", "--baseline",
                          f"{res}/driftd-baseline", "--input", capture, "--format", "capture",
                          "--output", f"{res}/driftd-check-1-core"],
                         args.records, capture_bytes, f"{res}/driftd-check-1-core"))
    if "parse" in tools:
        runs.append(("pandas parse only", f"pandas {version('pandas')}", "capture JSONL → DataFrame",
                     [py, "-c", "import sys, capture_frame; capture_frame.load_capture(sys.argv[1])", capture],
                     args.records, capture_bytes, None))
    if "whylogs" in tools:
        runs.append(("whylogs", f"whylogs {version('whylogs')}", "parse capture + why.log profile",
                     [py, f"{HERE}/peer_whylogs.py", capture, f"{res}/whylogs", f"{res}/whylogs.phases.json"],
                     args.records, capture_bytes, f"{res}/whylogs/profile.bin"))
    if "evidently" in tools:
        runs.append(("evidently", f"evidently {version('evidently')}",
                     "parse capture + baseline CSV, DataDriftPreset report",
                     [py, f"{HERE}/peer_evidently.py", baseline_csv, capture, f"{res}/evidently",
                      f"{res}/evidently.phases.json"],
                     args.records, capture_bytes, f"{res}/evidently/drift.json"))

    rows = []
    for name, ver, what, cmd, records, nbytes, expect in runs:
        slug = name.replace(" ", "-")
        print(f"==> {name}: {' '.join(cmd)}", flush=True)
        code, wall, rss = measure(cmd, f"{res}/{slug}.log")
        phases = {}
        phases_path = f"{res}/{slug}.phases.json"
        if os.path.exists(phases_path):
            with open(phases_path) as f:
                phases = json.load(f)
        # `driftd check` exits 3 when it found violations, which with drifted input is success.
        ok_codes = (0, 3) if name.startswith("driftd check") else (0,)
        if code not in ok_codes:
            status = f"FAILED (exit {code}): {tail(f'{res}/{slug}.log', 1)[:120]}"
        elif expect and not (os.path.isfile(expect) or (os.path.isdir(expect) and os.listdir(expect))):
            code, status = -1, f"FAILED: exit {code} but no {os.path.relpath(expect, res)} written"
        else:
            code, status = 0, "ok" if code == 0 else f"ok (exit {code}: violations found)"
        print(f"    {status}; {wall:.1f} s, peak RSS {rss:.0f} MiB", flush=True)
        rows.append(dict(tool=name, version=ver, what=what, code=code, wall=wall, rss=rss,
                         records=records, bytes=nbytes, status=status,
                         **{k: v for k, v in phases.items() if k.endswith("_s")}))

    with open(f"{res}/results.json", "w") as f:
        json.dump(rows, f, indent=2)

    def fmt(x, spec):
        return format(x, spec) if isinstance(x, (int, float)) else "–"

    lines = [
        f"Input: {args.records:,} capture records ({capture_bytes / 1e6:.0f} MB JSONL, 20 numeric + "
        f"5 categorical features + score); baseline {args.baseline_records:,} CSV rows. "
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}.",
        "",
        "| tool | version | what | wall s | import s | parse s | tool s | records/s | MB/s | peak RSS MiB | status |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        ok = r["code"] == 0
        lines.append(
            f"| {r['tool']} | {r['version']} | {r['what']} | {r['wall']:.1f} | "
            f"{fmt(r.get('import_s'), '.1f')} | {fmt(r.get('parse_s'), '.1f')} | {fmt(r.get('tool_s'), '.1f')} | "
            f"{fmt(r['records'] / r['wall'] if ok else None, ',.0f')} | "
            f"{fmt(r['bytes'] / 1e6 / r['wall'] if ok else None, '.1f')} | {r['rss']:.0f} | {r['status']} |")
    lines += ["", "wall s is the whole process (start-up, imports, parsing, work, writing results); "
              "records/s and MB/s divide the records and bytes the row reads by it. "
              "import/parse/tool s are the peer's own phases."]
    table = "\n".join(lines)
    with open(f"{res}/results.md", "w") as f:
        f.write(table + "\n")
    print()
    print(table)


if __name__ == "__main__":
    main()
