#!/usr/bin/env bash
# Regenerates the feature-attribution example's data, deterministically: an endpoint `churn`
# with SageMaker Clarify online explainability, whose captured responses carry each record's
# SHAP values. The baseline (baselines/churn-attribution/analysis.json) is made by `driftd
# baseline --kind feature-attribution` from 1,000 such records; hours 00 and 02 rank the features
# as the baseline does, hour 01 swaps the two most and the two least important ones.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

gen() { cargo run --quiet --example generate_attributions -- "$@"; }

rm -rf "$here/data" "$repo/baselines/churn-attribution/analysis.json"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
gen --out "$tmp/baseline" --records 1000 --start 2026-10-31T00:00:00Z --seed 1
cargo run --quiet -- baseline --kind feature-attribution --input "$tmp/baseline" \
    --output "$repo/baselines/churn-attribution"

gen --out "$here/data/capture" --records 200 --start 2026-11-01T00:00:00Z --seed 2
gen --out "$here/data/capture" --records 200 --start 2026-11-01T01:00:00Z --seed 3 --flip
gen --out "$here/data/capture" --records 200 --start 2026-11-01T02:00:00Z --seed 4
