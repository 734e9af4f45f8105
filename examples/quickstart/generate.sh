#!/usr/bin/env bash
# Regenerates the quickstart's data: a baseline from 1,000 clean records, and three hours of
# capture for the endpoint `driftd-demo` — hour 00 clean, hour 01 with injected drift (the first
# three numeric features shifted by 1.5 standard deviations, the first category skewed), hour 02
# clean again. Deterministic: the same files every time.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

gen() { cargo run --quiet --example generate_capture -- --numeric 8 --categorical 2 "$@"; }

rm -rf "$here/capture" "$here/baseline"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
gen --csv "$tmp/rows.csv" --records 1000 --seed 1
# Name the columns (score first, as captured rows line up); capture columns take these names by
# position.
{ echo "score,tenure,monthly_charges,total_charges,age,calls,data_gb,sms,support_tickets,plan,region"; cat "$tmp/rows.csv"; } >"$tmp/baseline.csv"
cargo run --quiet -- baseline --format csv --header --input "$tmp/baseline.csv" --output "$here/baseline"

gen --out "$here/capture" --endpoint driftd-demo --records 400 --start 2026-11-01T00:00:00Z --records-per-file 200 --seed 2
gen --out "$here/capture" --endpoint driftd-demo --records 400 --start 2026-11-01T01:00:00Z --records-per-file 200 --seed 3 --drift 1.5
gen --out "$here/capture" --endpoint driftd-demo --records 400 --start 2026-11-01T02:00:00Z --records-per-file 200 --seed 4
