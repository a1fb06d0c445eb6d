#!/usr/bin/env bash
# The whole test suite. Installs what it needs first (idempotent, cached under
# $TWEET_PIPELINE_CACHE, default ~/.cache/tweet-pipeline), builds the SmartModules to wasm,
# starts a private Fluvio cluster when `fluvio` and `fluvio-run` are installed, runs every Rust
# and Python test, and stops what it started. Tests that need an absent Fluvio print SKIPPED.
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)
export TWEET_PIPELINE_CACHE=${TWEET_PIPELINE_CACHE:-$HOME/.cache/tweet-pipeline}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$TWEET_PIPELINE_CACHE/target}
export REQUIRE_KAFKA=1
export PIPELINE_PYTHON="$TWEET_PIPELINE_CACHE/venv/bin/python"
if [ -z "${TWEETS_DATA_DIR:-}" ] && [ -d "$root/../shared/data/tweets" ]; then
  export TWEETS_DATA_DIR="$root/../shared/data/tweets"
fi

./scripts/provision.sh
./scripts/build-smartmodules.sh

started_fluvio=""
if profile=$(./scripts/fluvio-test-cluster.sh start 2>/dev/null); then
  export FLV_PROFILE_PATH="$profile"
  started_fluvio=1
  echo "==> Fluvio cluster for the tests: profile $FLV_PROFILE_PATH" >&2
else
  echo "==> SKIPPED: no Fluvio cluster (fluvio and fluvio-run are not installed, PATH or FLUVIO_BIN_DIR); tests that need one say SKIPPED" >&2
fi
cleanup() { [ -n "$started_fluvio" ] && ./scripts/fluvio-test-cluster.sh stop; true; }
trap cleanup EXIT

# The fault-matrix tests append their counts here (testkit::reliability); the table goes to
# $RELIABILITY_OUT (./reliability.sh: docs/RELIABILITY.md), else only its summary is shown.
matrix_log=$(mktemp)
export RELIABILITY_LOG="$matrix_log"
cargo test --workspace --locked --lib --bins --tests
python3 scripts/reliability_table.py "$matrix_log" > "${RELIABILITY_OUT:-$matrix_log.md}"
echo "==> fault matrix: $(tail -n 1 "${RELIABILITY_OUT:-$matrix_log.md}")" >&2
rm -f "$matrix_log" "$matrix_log.md"
# The Python tests run the debug binaries (the Kafka harness, and pipeline.sh's connectors).
cargo build --workspace --locked --bins
"$PIPELINE_PYTHON" -m pytest -q -rs -p no:cacheprovider consumer/tests compose/tests scripts/tests e2e/tests
