#!/usr/bin/env bash
# Regenerates the quickstart's data, deterministically:
# - data quality: a baseline from 1,000 clean records, and three hours of capture for the
#   endpoint `driftd-demo` — hour 00 clean, hour 01 with injected drift (the first three numeric
#   features shifted by 1.5 standard deviations, the first category skewed), hour 02 clean;
# - bias: a loan model's labelled batch decisions — a fair baseline (Clarify analysis.json made
#   by `driftd bias`), then hours 00 and 02 fair and hour 01 where the model rejects 70 % of the
#   applicants of sex 0 it would have approved.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

gen() { cargo run --quiet --example generate_capture -- --numeric 8 --categorical 2 "$@"; }
loans() { cargo run --quiet --example generate_loans -- "$@"; }

baselines="$repo/baselines"
rm -rf "$here/data" "$baselines/driftd-demo-data-quality/statistics.json" \
    "$baselines/driftd-demo-data-quality/constraints.json" "$baselines/loans-bias/analysis.json"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
gen --csv "$tmp/rows.csv" --records 1000 --seed 1
# Name the columns (score first, as captured rows line up); capture columns take these names by
# position.
{ echo "score,tenure,monthly_charges,total_charges,age,calls,data_gb,sms,support_tickets,plan,region"; cat "$tmp/rows.csv"; } >"$tmp/baseline.csv"
cargo run --quiet -- baseline --format csv --header --input "$tmp/baseline.csv" --output "$baselines/driftd-demo-data-quality"

gen --out "$here/data/capture" --endpoint driftd-demo --records 400 --start 2026-11-01T00:00:00Z --records-per-file 200 --seed 2
gen --out "$here/data/capture" --endpoint driftd-demo --records 400 --start 2026-11-01T01:00:00Z --records-per-file 200 --seed 3 --drift 1.5
gen --out "$here/data/capture" --endpoint driftd-demo --records 400 --start 2026-11-01T02:00:00Z --records-per-file 200 --seed 4

loans --out "$tmp/loans-baseline.csv" --rows 2000 --seed 10
cargo run --quiet -- bias --format csv --header --analysis-config "$baselines/loans-bias/analysis_config.json" \
    --input "$tmp/loans-baseline.csv" --output "$tmp/bias-baseline"
cp "$tmp/bias-baseline/analysis.json" "$baselines/loans-bias/analysis.json"
batch="$here/data/batch/loans/2026/11/01"
loans --out "$batch/00/decisions.csv" --rows 4000 --seed 11
loans --out "$batch/01/decisions.csv" --rows 4000 --seed 12 --reject-sex0 0.7
loans --out "$batch/02/decisions.csv" --rows 4000 --seed 13
