"""Evidently peer: data drift report of the captured records against the baseline rows (what
`driftd check` does). Evidently's defaults pick the tests (for this size: Wasserstein distance for
numeric, Jensen-Shannon for categorical columns).

Usage: peer_evidently.py BASELINE_CSV CAPTURE_DIR OUT_DIR PHASES_JSON
"""

import json
import os
import sys
import time

t0 = time.perf_counter()
from evidently import DataDefinition, Dataset, Report  # noqa: E402
from evidently.presets import DataDriftPreset  # noqa: E402

from capture_frame import load_baseline, load_capture  # noqa: E402

baseline, capture, out_dir, phases_path = sys.argv[1:5]
t_import = time.perf_counter()
reference = load_baseline(baseline)
current, nbytes = load_capture(capture)
t_parse = time.perf_counter()

# Say which columns are which, as a user would: left to itself Evidently would call integral
# features with few distinct values categorical.
numeric = [c for c in current.columns if current[c].dtype.kind in "if"]
categorical = [c for c in current.columns if c not in numeric]
definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
snapshot = Report([DataDriftPreset()]).run(
    Dataset.from_pandas(current, data_definition=definition),
    Dataset.from_pandas(reference, data_definition=definition),
)
os.makedirs(out_dir, exist_ok=True)
snapshot.save_json(os.path.join(out_dir, "drift.json"))
t_tool = time.perf_counter()

with open(phases_path, "w") as f:
    json.dump({"import_s": t_import - t0, "parse_s": t_parse - t_import, "tool_s": t_tool - t_parse,
               "rows": len(current), "reference_rows": len(reference), "bytes": nbytes,
               "columns": current.shape[1]}, f)
