#!/usr/bin/env bash
# Every benchmark, then docs/BENCHMARKS.md: each figure with its baseline and ratio from this
# run, and the machine it ran on. Uses a Fluvio cluster when one answers (or starts the private
# test cluster when fluvio and fluvio-run are installed); Fluvio-only figures are skipped without.
set -euo pipefail
cd "$(dirname "$0")"
export TWEET_PIPELINE_CACHE=${TWEET_PIPELINE_CACHE:-$HOME/.cache/tweet-pipeline}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$TWEET_PIPELINE_CACHE/target}
./scripts/provision.sh
./scripts/build-smartmodules.sh >/dev/null
started=""
if [ -z "${FLV_PROFILE_PATH:-}" ] && profile=$(./scripts/fluvio-test-cluster.sh start 2>/dev/null); then
  export FLV_PROFILE_PATH="$profile"; started=1
fi
trap '[ -n "$started" ] && ./scripts/fluvio-test-cluster.sh stop; true' EXIT
results=$(mktemp)
export BENCH_RESULTS="$results"
# One package at a time, so a failing bench does not hide the others; e2e last (it runs the
# connector binaries the others built).
failed=()
for package in twitter-source smartmodule-engine-tests kafka-bridge-sink e2e; do
  status=0
  cargo bench --locked -p "$package" 2>&1 | grep -v '^BENCH' || status=$?
  [ "$status" -eq 0 ] || failed+=("$package")
done
# The example ML consumer against a bare confluent-kafka loop (Python; the broker of testkit).
cargo build --locked -p testkit --bins >&2
"$TWEET_PIPELINE_CACHE/venv/bin/python" consumer/bench_consumer.py || failed+=("consumer")

# The SmartModule leak check at full size: 5 million records through each module in a 32 MiB
# store, one per call and in batches, must never exhaust it (the test suite runs 200,000).
leak_records=5000000
if SMARTMODULE_LEAK_RECORDS=$leak_records cargo test --locked --release -p smartmodule-engine-tests \
     --test engine --test batches -- our_modules_keep_guest_memory_flat batches_keep_guest_memory_flat >&2; then
  leak="passed"
else
  leak="FAILED"; failed+=("smartmodule leak check")
fi

out=docs/BENCHMARKS.md
mkdir -p docs
{
  echo "# Benchmarks"
  echo
  echo "Written by \`./bench.sh\` on $(date -u +%Y-%m-%d) — $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr)."
  if [ -n "${FLV_PROFILE_PATH:-}" ]; then fl="measured with a local Fluvio cluster"; else fl="skipped (no Fluvio cluster)"; fi
  echo "Each figure is measured against its baseline in the same run. Fluvio figures: $fl."
  echo
  echo
  echo "![throughput per stage against its baseline](bench-throughput.png)"
  echo "![latency percentiles against their targets](bench-latency.png)"
  echo
  # The table with a `met` column, and the two charts beside this file.
  "$TWEET_PIPELINE_CACHE/venv/bin/python" scripts/bench_report.py "$results" --charts docs
  echo
  echo "SmartModule memory: $leak_records records through each of tweet-filter and tweet-shape in a 32 MiB store, none re-initialised: $leak."
  if [ ${#failed[@]} -gt 0 ]; then
    echo
    echo "Benchmarks that failed in this run (their rows are missing): ${failed[*]}."
  fi
} >"$out"
rm -f "$results"
echo "wrote $out" >&2
cat "$out"
