#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ (issue 18: every parser of outside input).
#
#   scripts/fuzz.sh smoke            each target for a bounded number of runs from its seeds
#                                    (what scripts/test.sh runs)
#   scripts/fuzz.sh long SECONDS     each target for SECONDS, keeping what it finds in
#                                    fuzz/corpus/ (git-ignored)
#   scripts/fuzz.sh long SECONDS T   only target T
#
# Needs a nightly toolchain (`cargo +nightly`); installs cargo-fuzz (pinned) into .tools/cargo,
# which git ignores. Without either it says so and exits 0: fuzzing is a check on top of the
# tests, not a requirement to build driftd. Seeds are the test fixtures, the real SageMaker
# files in ../shared/sagemaker-real (when present), fuzz/seeds/ and fuzz/regressions/. A crash
# fails the run; libFuzzer writes the input to fuzz/artifacts/TARGET/. Keep it as a regression:
# copy it to fuzz/regressions/TARGET/ (named after what it broke) and fix the bug; the stable
# tests (src/fuzz.rs) then replay it on every run, nightly or not.
#
# fuzz/ builds driftd without its `aws` feature, so the AWS SDK is not compiled for it.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

mode="${1:-smoke}"
cargo_fuzz_version="0.13.1"
# Runs per target in smoke mode: enough to pass every seed and mutate a little.
smoke_runs="${FUZZ_SMOKE_RUNS:-2000}"
# Per-input bounds: a hang or a huge allocation is a finding, as a crash is.
limits=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 -max_len=65536)
targets=(capture csv jsonl ground_truth sqs_event json_files rules config window_codec model_quality_codec attribution)

skip() {
    echo "==> fuzz: skipped: $*"
    exit 0
}

cargo +nightly --version >/dev/null 2>&1 || skip "no nightly toolchain (rustup toolchain install nightly)"
tools="$repo/.tools/cargo"
export PATH="$tools/bin:$PATH"
if ! cargo-fuzz --version 2>/dev/null | grep -q "$cargo_fuzz_version"; then
    echo "==> fuzz: installing cargo-fuzz $cargo_fuzz_version into .tools/cargo"
    cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked --root "$tools" ||
        skip "cargo-fuzz $cargo_fuzz_version could not be installed"
fi

# seeds TARGET: the files a target starts from, each under max_len.
seeds() {
    local shared="$repo/../shared/sagemaker-real"
    local roots=("$repo/tests/fixtures" "$repo/examples" "$repo/rules")
    [[ -d "$shared" ]] && roots+=("$shared")
    local pattern
    case "$1" in
        capture | jsonl | attribution) pattern='*.jsonl' ;;
        ground_truth) pattern='*.jsonl' ;;
        csv) pattern='*.csv' ;;
        json_files) pattern='*.json' ;;
        rules | config) pattern='*.toml' ;;
        *) pattern='' ;;
    esac
    if [[ -n "$pattern" ]]; then
        find "${roots[@]}" -type f -name "$pattern" -size -64k
    fi
    local folder
    for folder in "$repo/fuzz/seeds/$1" "$repo/fuzz/regressions/$1"; do
        if [[ -d "$folder" ]]; then
            find "$folder" -type f
        fi
    done
}

echo "==> fuzz: building targets (cargo +nightly fuzz build -O)"
build_start=$SECONDS
cargo +nightly fuzz build -O
echo "==> fuzz: built in $((SECONDS - build_start)) s"

for target in "${targets[@]}"; do
    if [[ "$mode" == long && -n "${3:-}" && "$3" != "$target" ]]; then
        continue
    fi
    corpus="$repo/fuzz/corpus/$target"
    mkdir -p "$corpus"
    seeds "$target" | while read -r file; do
        cp "$file" "$corpus/seed-$(sha256sum "$file" | cut -c1-16)"
    done
    case "$mode" in
        smoke) run=(-runs="$smoke_runs" -seed=1 -print_final_stats=1) ;;
        long) run=(-max_total_time="${2:?usage: scripts/fuzz.sh long SECONDS [TARGET]}" -print_final_stats=1) ;;
        *) echo "usage: scripts/fuzz.sh smoke | long SECONDS [TARGET]" >&2; exit 2 ;;
    esac
    echo "==> fuzz: $target ($mode)"
    log="$repo/fuzz/corpus/$target.log"
    status=0
    target_start=$SECONDS
    cargo +nightly fuzz run -O "$target" "$corpus" -- "${limits[@]}" "${run[@]}" >"$log" 2>&1 || status=$?
    grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" || true
    echo "==> fuzz: $target took $((SECONDS - target_start)) s"
    if [[ "$status" != 0 ]]; then
        tail -n 40 "$log" >&2
        echo "==> fuzz: $target failed (exit $status); the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
echo "==> fuzz: every target ran clean"
