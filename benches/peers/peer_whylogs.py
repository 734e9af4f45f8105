"""whylogs peer: profile the captured records (what driftd's profile stage does).

Usage: peer_whylogs.py CAPTURE_DIR OUT_DIR PHASES_JSON
"""

import json
import os
import sys
import time

t0 = time.perf_counter()
import whylogs as why  # noqa: E402  (import time is part of the tool's cost, timed apart)

from capture_frame import load_capture  # noqa: E402

capture, out_dir, phases_path = sys.argv[1:4]
t_import = time.perf_counter()
frame, nbytes = load_capture(capture)
t_parse = time.perf_counter()
view = why.log(pandas=frame).view()
os.makedirs(out_dir, exist_ok=True)
view.write(os.path.join(out_dir, "profile.bin"))
t_tool = time.perf_counter()

with open(phases_path, "w") as f:
    json.dump({"import_s": t_import - t0, "parse_s": t_parse - t_import, "tool_s": t_tool - t_parse,
               "rows": len(frame), "bytes": nbytes, "columns": frame.shape[1]}, f)
