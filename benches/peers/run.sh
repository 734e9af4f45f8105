#!/usr/bin/env bash
# Peer comparison: driftd vs whylogs vs Evidently on the same generated SageMaker capture data.
# Everything it needs is installed or generated here: benches/peers/.venv (pinned peers),
# benches/peers/data (generator output, reused while the parameters are unchanged) and
# benches/peers/results (logs, outputs, results.md). All three are git-ignored.
#
# Environment (defaults in brackets):
#   PEER_RECORDS [1000000]          capture records, with drift
#   PEER_BASELINE_RECORDS [200000]  baseline CSV rows, another seed, no drift
#   PEER_DRIFT [0.5]                drift in standard deviations (see examples/generate_capture.rs)
#   PEER_TOOLS [driftd,whylogs,evidently,parse]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

records="${PEER_RECORDS:-1000000}"
baseline_records="${PEER_BASELINE_RECORDS:-200000}"
drift="${PEER_DRIFT:-0.5}"
venv="$here/.venv"
data="$here/data"
target="${CARGO_TARGET_DIR:-$repo/target}"

echo "==> peer benchmark: $records capture records vs $baseline_records baseline rows (drift $drift)"

# Same install-once-per-requirements-change rule as scripts/test.sh.
start=$SECONDS
if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
want="$("$venv/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$here/requirements.txt")"
if [[ "$want" != "$(cat "$venv/.requirements.sha256" 2>/dev/null || true)" ]]; then
    "$venv/bin/python" -m pip install --disable-pip-version-check --progress-bar off -r "$here/requirements.txt"
    echo "$want" >"$venv/.requirements.sha256"
fi
echo "==> peer venv ready ($((SECONDS - start)) s)"

start=$SECONDS
cargo build --release --example generate_capture
# The driftd CLI may be mid-rewrite; its row is then marked failed and the peers still run.
cargo build --release --bin driftd || echo "==> WARNING: driftd failed to build; its rows will fail"
echo "==> release build ready ($((SECONDS - start)) s)"

# Regenerate only when the parameters (or the generator) changed: 1M records take a while.
params="records=$records baseline=$baseline_records drift=$drift generator=$(sha256sum examples/generate_capture.rs | cut -c1-16)"
if [[ "$(cat "$data/.params" 2>/dev/null || true)" != "$params" ]]; then
    start=$SECONDS
    rm -rf "$data"
    mkdir -p "$data"
    "$target/release/examples/generate_capture" --csv "$data/baseline.csv" --records "$baseline_records" --seed 1
    "$target/release/examples/generate_capture" --out "$data/capture" --endpoint peer-bench \
        --records "$records" --hours 24 --records-per-file 10000 --drift "$drift" --seed 2
    echo "$params" >"$data/.params"
    echo "==> data generated ($((SECONDS - start)) s)"
fi

exec "$venv/bin/python" "$here/bench.py" --driftd "$target/release/driftd" --data "$data" \
    --results "$here/results" --records "$records" --baseline-records "$baseline_records" \
    --tools "${PEER_TOOLS:-driftd,whylogs,evidently,parse}"
