#!/usr/bin/env bash
# Regenerates the quickstart's data, deterministically:
# - data quality: a baseline from 1,000 clean records, and three hours of capture for the
#   endpoint `driftd-demo` — hour 00 clean, hour 01 with injected drift (the first three numeric
#   features shifted by 1.5 standard deviations, the first category skewed), hour 02 clean;
# - model quality: three hours of capture for the endpoint `churn-model`, a calibrated model
#   mostly sure the customer stays, made unsure by the same drift in hour 01; a labelled
#   reference of 4,000 rows for its constraints and for CBPE, and ground truth for hour 00 only:
#   the labels of hours 01 and 02 have not come yet, so their performance is estimated;
# - bias: a loan model's labelled batch decisions — a fair baseline (Clarify analysis.json made
#   by `driftd bias`), then hours 00 and 02 fair and hour 01 where the model rejects 70 % of the
#   applicants of sex 0 it would have approved.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

gen() { cargo run --quiet --example generate_capture -- --numeric 8 --categorical 2 "$@"; }
# The churn model: mostly sure a customer stays (base logit -2.25); hour 01's drift makes it unsure.
churn() { gen --endpoint churn-model --intercept -2.25 "$@"; }
loans() { cargo run --quiet --example generate_loans -- "$@"; }

baselines="$repo/baselines"
rm -rf "$here/data" "$baselines/driftd-demo-data-quality/statistics.json" \
    "$baselines/driftd-demo-data-quality/constraints.json" "$baselines/loans-bias/analysis.json" \
    "$baselines/churn-model-quality"
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

churn --out "$here/data/churn-capture" --records 400 --start 2026-11-01T00:00:00Z --records-per-file 200 --seed 21 \
    --ground-truth "$here/data/ground-truth"
churn --out "$here/data/churn-capture" --records 400 --start 2026-11-01T01:00:00Z --records-per-file 200 --seed 22 --drift 1.5
churn --out "$here/data/churn-capture" --records 400 --start 2026-11-01T02:00:00Z --records-per-file 200 --seed 23
# The model-quality reference: score (named _c0, as the capture's output column is) and label.
churn --csv "$tmp/mq.csv" --records 4000 --seed 5 --ground-truth yes
mkdir -p "$baselines/churn-model-quality"
{ echo "_c0,label"; cut -d, -f1,12 "$tmp/mq.csv"; } >"$baselines/churn-model-quality/reference.csv"
cargo run --quiet -- baseline --kind model-quality --problem-type BinaryClassification \
    --probability-attribute _c0 --probability-threshold 0.5 --ground-truth-attribute label \
    --format csv --header --input "$baselines/churn-model-quality/reference.csv" \
    --output "$baselines/churn-model-quality"
