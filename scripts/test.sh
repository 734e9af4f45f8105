#!/usr/bin/env bash
# The README's test command, and what CI runs (.ci/run). Works from any directory.
#
# 1. Installs the Python test oracles (scripts/requirements-test.txt) into .tools/venv, a folder
#    git ignores, but only when that file changed since the last install, so reruns are fast.
# 2. Runs every Rust test: unit, integration and doc tests, plus each bench and example built
#    (criterion benches run each routine once in test mode, so they stay cheap here).
# 3. With DRIFTD_FUZZ=1 and the nightly toolchain, runs each fuzz target of fuzz/ briefly
#    (scripts/fuzz.sh smoke); says so when it skips. Every seed and crash regression runs
#    through the same target bodies in the unit tests (src/fuzz.rs) either way.
#
# Environment:
#   PYTHON3            the interpreter to build the venv from (default: python3)
#   DRIFTD_TEST_ARGS   extra arguments for `cargo test`, e.g. a test name filter
#   DRIFTD_FUZZ=1      also runs the fuzz smoke runs. Their cold build (instrumented, optimised,
#                      driftd without the AWS SDK) takes about 20 CPU-minutes, ~10 min on 2 idle
#                      cores; the runs themselves about a minute.
set -euo pipefail

echo "==> driftd tests: installing pinned Python test oracles into .tools/venv if needed, then cargo test"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

requirements="$repo/scripts/requirements-test.txt"
venv="$repo/.tools/venv"
stamp="$venv/.requirements.sha256"
bootstrap_python="${PYTHON3:-python3}"

die() {
    echo "error: $*" >&2
    exit 1
}

# A venv whose interpreter or pip no longer runs (repo moved, Python upgraded, a venv half made
# without ensurepip) is rebuilt from scratch.
if [[ -d "$venv" ]] && ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    echo "==> $venv is broken; recreating it"
    rm -rf "$venv"
fi

if [[ ! -x "$venv/bin/python" ]]; then
    command -v "$bootstrap_python" >/dev/null 2>&1 ||
        die "'$bootstrap_python' not found. The tests need CPython 3.11+ with venv and pip (Debian: apt-get install python3 python3-venv python3-pip)."
    # Debian splits ensurepip out of python3; without it `python3 -m venv` fails half-way.
    "$bootstrap_python" -c 'import venv, ensurepip' >/dev/null 2>&1 ||
        die "'$bootstrap_python' cannot create virtual environments (no venv/ensurepip module). Debian: apt-get install python3-venv"
    echo "==> creating $venv with $("$bootstrap_python" --version 2>&1)"
    mkdir -p "$(dirname "$venv")"
    "$bootstrap_python" -m venv "$venv"
fi

# The stamp holds the hash of the requirements file that was last installed successfully; it is
# written only after pip succeeds, so an interrupted install is retried on the next run.
want="$("$venv/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$requirements")"
have="$(cat "$stamp" 2>/dev/null || true)"
if [[ "$want" != "$have" ]]; then
    echo "==> installing test oracles from scripts/requirements-test.txt"
    "$venv/bin/python" -m pip install --disable-pip-version-check --progress-bar off -r "$requirements"
    echo "$want" >"$stamp"
else
    echo "==> test oracles up to date (scripts/requirements-test.txt unchanged)"
fi

# NannyML's synthetic datasets, on which tests/it/cbpe.rs checks driftd estimate against
# the expected values of NannyML's own test suite. They ship inside the nannyml 0.13.1 wheel (a
# zip); the wheel is downloaded pinned by version and sha256 (without installing nannyml, whose
# dependencies are 2 GB) and the six CSV files extracted to .tools/nannyml-data, only when missing.
nannyml_data="$repo/.tools/nannyml-data"
nannyml_wheel_sha256="cf5f4a33489834ae6773cb1baa33a0f98c0a3ee6ed9b43049478b25ce22fe869"
if [[ ! -f "$nannyml_data/.complete" ]]; then
    echo "==> fetching NannyML 0.13.1's synthetic datasets into $nannyml_data"
    wheel_dir="$repo/.tools/nannyml-wheel"
    mkdir -p "$wheel_dir" "$nannyml_data"
    wheel="$wheel_dir/nannyml-0.13.1-py3-none-any.whl"
    if [[ ! -f "$wheel" ]]; then
        "$venv/bin/python" -m pip download --disable-pip-version-check --no-deps --progress-bar off \
            --only-binary=:all: -d "$wheel_dir" "nannyml==0.13.1" >/dev/null
    fi
    "$venv/bin/python" - "$wheel" "$nannyml_wheel_sha256" "$nannyml_data" <<'PYTHON'
import hashlib, sys, zipfile
wheel, want, out = sys.argv[1:]
have = hashlib.sha256(open(wheel, "rb").read()).hexdigest()
if have != want:
    sys.exit(f"{wheel}: sha256 {have}, expected {want}")
names = ["synthetic_sample_reference.csv", "synthetic_sample_analysis.csv",
         "synthetic_sample_analysis_gt.csv", "mc_reference.csv", "mc_analysis.csv",
         "mc_analysis_gt.csv"]
with zipfile.ZipFile(wheel) as archive:
    for name in names:
        with open(f"{out}/{name}", "wb") as f:
            f.write(archive.read(f"nannyml/datasets/data/{name}"))
PYTHON
    touch "$nannyml_data/.complete"
fi

# promtool (Debian's `prometheus` package, pinned) validates the /metrics exposition in
# tests/it/observability.rs. Installed when missing and this is root with apt-get; otherwise that
# one check says it was skipped.
promtool_version="2.42.0+ds-5+b6"
if ! command -v promtool >/dev/null 2>&1; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "==> installing promtool (Debian package prometheus=$promtool_version)"
        install_promtool() {
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
                "prometheus=$promtool_version" >/dev/null 2>&1
        }
        install_promtool || { apt-get update >/dev/null 2>&1 && install_promtool; } ||
            echo "==> could not install prometheus=$promtool_version; /metrics is tested without promtool"
    else
        echo "==> promtool not found and cannot be installed here (needs root and apt-get); /metrics is tested without it"
    fi
fi

# Debian's PACKAGE, pinned at VERSION (security updates replace old versions on the mirror, so
# the newest is taken when the pin is gone), installed when COMMAND is missing and this is root
# with apt-get; otherwise, or when that fails, says which checks go without it.
install_pinned() {
    local command="$1" package="$2" version="$3" skipped="$4"
    command -v "$command" >/dev/null 2>&1 && return 0
    if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        echo "==> $command not found and cannot be installed here (needs root and apt-get); $skipped"
        return 0
    fi
    echo "==> installing $command (Debian package $package=$version)"
    apt_install() {
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1
    }
    apt_install "$package=$version" ||
        { apt-get update >/dev/null 2>&1 && apt_install "$package=$version"; } ||
        apt_install "$package" ||
        echo "==> could not install $package; $skipped"
}

# Chromium renders the compliance report in tests/it/report_bias.rs: a real browser opens the
# HTML offline, and prints the PDF.
install_pinned chromium chromium "148.0.7778.167-1~deb12u1" \
    "the report's browser and PDF checks are skipped"

# pdftotext (poppler-utils) reads the text of that PDF (its page count is checked without it).
install_pinned pdftotext poppler-utils "22.12.0-2+deb12u1" "the report's PDF text check is skipped"

# Integration tests find the oracles through this (tests/it/common/mod.rs).
export DRIFTD_PYTHON="$venv/bin/python"

# --all-targets: lib, bin, integration tests, examples and benches (benches run once, as tests).
# It leaves out doc tests, hence the second command.
echo "==> cargo test --all-targets"
# shellcheck disable=SC2086 # DRIFTD_TEST_ARGS is meant to split into words
cargo test --all-targets ${DRIFTD_TEST_ARGS:-}
echo "==> cargo test --doc"
# shellcheck disable=SC2086
cargo test --doc ${DRIFTD_TEST_ARGS:-}
# Each fuzz target for a bounded number of runs from its seeds (fuzz/, issue 18), with
# DRIFTD_FUZZ=1. fuzz/ builds driftd without its `aws` feature (no AWS SDK).
if [[ "${DRIFTD_FUZZ:-0}" != 1 ]]; then
    echo "==> fuzz smoke runs skipped (DRIFTD_FUZZ=1 runs them; their cold build takes ~10 min on 2 cores); seeds and regressions ran in the unit tests"
elif ! cargo +nightly --version >/dev/null 2>&1; then
    echo "==> fuzz smoke runs skipped: no nightly toolchain (rustup toolchain install nightly)"
else
    echo "==> scripts/fuzz.sh smoke"
    scripts/fuzz.sh smoke
fi
if [[ "${DRIFTD_FUZZ:-0}" != 1 ]] || ! cargo +nightly --version >/dev/null 2>&1; then
    # fuzz/ builds the library without the `aws` feature; this keeps that build working when
    # the fuzz build did not run.
    echo "==> cargo check --lib --no-default-features"
    cargo check --lib --no-default-features
fi
