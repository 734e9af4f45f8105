"""Capture JSONL -> pandas DataFrame, the way a peer tool's user would have to do it.

Shared by the peer scripts so every Python tool pays the same, reasonably fast parsing cost:
json.loads per line, then pandas' C CSV parser over the joined CSV payloads. Columns are named
like a headerless baseline CSV (_c0 = the model's score, then the features), the order driftd
uses with output columns at the START.
"""

import io
import json
import os

import pandas as pd


def capture_files(root):
    """Every capture file under root (a file or a SageMaker-style directory tree), sorted."""
    if os.path.isfile(root):
        return [root]
    found = []
    for dirpath, _dirs, files in os.walk(root):
        found.extend(os.path.join(dirpath, f) for f in files if f.endswith(".jsonl"))
    return sorted(found)


def load_capture(root):
    """Returns (DataFrame, bytes read)."""
    rows = []
    nbytes = 0
    for path in capture_files(root):
        with open(path, "rb") as f:
            for line in f:
                nbytes += len(line)
                if not line.strip():
                    continue
                cap = json.loads(line)["captureData"]
                out = cap.get("endpointOutput", {}).get("data", "")
                rows.append(out + "," + cap["endpointInput"]["data"])
    frame = pd.read_csv(io.StringIO("\n".join(rows)), header=None)
    frame.columns = [f"_c{i}" for i in range(frame.shape[1])]
    return frame, nbytes


def load_baseline(path):
    frame = pd.read_csv(path, header=None)
    frame.columns = [f"_c{i}" for i in range(frame.shape[1])]
    return frame
