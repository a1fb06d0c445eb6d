#!/usr/bin/env bash
# The whole pipeline, one command:
#   ./pipeline.sh          start (or reuse) a local Fluvio cluster and a Kafka broker, register the
#                          SmartModules, deploy the Twitter source and the Kafka bridge, and show
#                          the pipeline alive: a live line of rates per stage, then what the ML
#                          consumer receives. Offline (the X API emulator replaying real recorded
#                          tweets) unless TWITTER_BEARER_TOKEN is set, then the live X API.
#   ./pipeline.sh --stop   stop everything it started, and nothing else.
#   ./pipeline.sh --install-fluvio   when the Fluvio CLI is missing, install it with Fluvio's own
#                          installer without asking (a terminal is asked; otherwise it is named).
# Run state (pids, configs, logs) lives in $TWEET_PIPELINE_CACHE/run (default ~/.cache/tweet-pipeline/run).
# Settings (environment):
#   PIPELINE_KAFKA_PORT=9092  PIPELINE_EMULATOR_PORT=8089  PIPELINE_METRICS_PORT=9101 (source; bridge +1)
#   PIPELINE_WATCH_SECS=20    how long the live line runs (every tick checks each process started)
#   PIPELINE_FLUVIO_INSTALLER Fluvio's installer (default https://hub.infinyon.cloud/install/install.sh)
#   PIPELINE_RUN_DIR          where run state goes
#   PIPELINE_BIN_DIR          use connector binaries built already (skips the release build)
#   PIPELINE_DEPLOY           cdk (default when cdk is on PATH: cdk deploy start) or binary
#   PIPELINE_SOURCE           x (default: Connector.yaml) or bluesky (Bluesky.yaml, on the
#                             emulator's Jetstream: posts instead of tweets, same record)
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)
cache=${TWEET_PIPELINE_CACHE:-$HOME/.cache/tweet-pipeline}
run=${PIPELINE_RUN_DIR:-$cache/run}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$cache/target}
bin=${PIPELINE_BIN_DIR:-$CARGO_TARGET_DIR/release}
kafka_port=${PIPELINE_KAFKA_PORT:-9092}
emulator_port=${PIPELINE_EMULATOR_PORT:-8089}
source_metrics=${PIPELINE_METRICS_PORT:-9101}
bridge_metrics=$((source_metrics + 1))
watch_secs=${PIPELINE_WATCH_SECS:-20}
source_kind=${PIPELINE_SOURCE:-x}
case "$source_kind" in
  x) stream_label="X stream"; unit=tweets ;;
  bluesky) stream_label="Bluesky"; unit=posts ;;
  *) echo "PIPELINE_SOURCE is x or bluesky, not '$source_kind'" >&2; exit 2 ;;
esac
fluvio=${FLUVIO_BIN_DIR:+$FLUVIO_BIN_DIR/}fluvio
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

stop_all() {
  [ -d "$run" ] || { echo "nothing to stop"; return 0; }
  for name in twitter-source kafka-bridge emulator kafka; do
    rm -f "$run/$name.logpath" "$run/$name.cdk-start"
    if [ -f "$run/$name.pid" ]; then
      pid=$(cat "$run/$name.pid")
      if kill -0 "$pid" 2>/dev/null; then
        say "stopping $name ($pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      fi
      rm -f "$run/$name.pid"
    fi
    if [ -f "$run/$name.cdk" ]; then
      say "stopping $name (cdk)"
      cdk deploy shutdown --name "$(cat "$run/$name.cdk")" >/dev/null 2>&1 || true
      rm -f "$run/$name.cdk"
    fi
  done
  if [ -f "$run/fluvio.started" ]; then
    say "stopping the local Fluvio cluster this script started"
    "$fluvio" cluster shutdown >/dev/null 2>&1 || true
    rm -f "$run/fluvio.started"
  fi
}

install_fluvio=""
case "${1:-}" in
  --stop) stop_all; exit 0 ;;
  --install-fluvio) install_fluvio=yes ;;
  "") ;;
  *) echo "usage: ./pipeline.sh [--stop | --install-fluvio]" >&2; exit 2 ;;
esac
if [ -f "$run/twitter-source.cdk" ] || { [ -f "$run/twitter-source.pid" ] && kill -0 "$(cat "$run/twitter-source.pid")" 2>/dev/null; }; then
  echo "the pipeline is already running (./pipeline.sh --stop to stop it)"; exit 1
fi

# Prerequisites, each with how to get it.
missing=0
need() { command -v "$1" >/dev/null 2>&1 || { echo "missing: $1 — $2" >&2; missing=1; }; }
need cargo "install Rust with rustup"
need java "install a JDK 17+ (Debian: apt-get install openjdk-17-jre-headless)"
need mvn "install Maven (Debian: apt-get install maven), used once to fetch the Kafka jars"
need python3 "install Python 3.10+"
installer=${PIPELINE_FLUVIO_INSTALLER:-https://hub.infinyon.cloud/install/install.sh}
have_fluvio() { command -v "$fluvio" >/dev/null 2>&1 && command -v "${FLUVIO_BIN_DIR:+$FLUVIO_BIN_DIR/}fluvio-run" >/dev/null 2>&1; }
if ! have_fluvio; then
  if [ -z "$install_fluvio" ] && [ -t 0 ] && [ -t 2 ]; then
    printf 'The Fluvio CLI (fluvio, fluvio-run) is missing. Install it now with Fluvio'"'"'s installer (fvm, into ~/.fluvio)? [y/N] ' >&2
    read -r answer; case "$answer" in y|Y|yes) install_fluvio=yes ;; esac
  fi
  if [ -n "$install_fluvio" ]; then
    say "installing the Fluvio CLI with Fluvio's installer ($installer)"
    if curl -fsS "$installer" | bash >&2; then
      export PATH="$HOME/.fluvio/bin:$HOME/.fvm/bin:$PATH"
    else
      echo "Fluvio's installer could not be reached or failed ($installer)." >&2
    fi
  fi
  if ! have_fluvio; then
    echo "missing: fluvio and fluvio-run — install the Fluvio CLI with Fluvio's own installer (./pipeline.sh --install-fluvio, or curl -fsS $installer | bash), or set FLUVIO_BIN_DIR" >&2
    echo "  where that installer cannot be reached: run the whole stack in Docker (compose/README.md), or build fluvio and fluvio-run from Fluvio's source (cargo build --release -p fluvio-cli -p fluvio-run in a clone of github.com/fluvio-community/fluvio) and set FLUVIO_BIN_DIR" >&2
    missing=1
  fi
fi
[ "$missing" = 0 ] || exit 1

mkdir -p "$run"
# A start-up that fails at any step stops what it had started.
started_ok=""
on_exit() { [ -n "$started_ok" ] || { echo "start-up failed; stopping what started" >&2; stop_all; }; }
trap on_exit EXIT
say "installing what is missing (Kafka jars, Python client) and building"
./scripts/provision.sh
[ -n "${PIPELINE_BIN_DIR:-}" ] || cargo build --release --locked -p twitter-source -p kafka-bridge-sink -p x-emulator -p testkit >&2

# Fluvio: reuse a running cluster, or start a local one (and remember we did).
if "$fluvio" topic list >/dev/null 2>&1; then
  say "using the running Fluvio cluster (current profile)"
else
  say "starting a local Fluvio cluster"
  "$fluvio" cluster start --local >"$run/fluvio-start.log" 2>&1 || { cat "$run/fluvio-start.log" >&2; exit 1; }
  touch "$run/fluvio.started"
fi

say "registering the SmartModules tweet-filter and tweet-shape"
./scripts/register-smartmodules.sh >/dev/null

# Kafka on 127.0.0.1:$kafka_port, unless one already answers there.
brokers="127.0.0.1:$kafka_port"
if (exec 3<>"/dev/tcp/127.0.0.1/$kafka_port") 2>/dev/null; then
  say "using the Kafka broker on $brokers"
else
  say "starting a Kafka broker on $brokers"
  nohup "$bin/test-kafka-broker" --port "$kafka_port" --stay >"$run/kafka.log" 2>&1 &
  echo $! >"$run/kafka.pid"
  for _ in $(seq 1 600); do
    grep -q '^bootstrap=' "$run/kafka.log" 2>/dev/null && break
    kill -0 "$(cat "$run/kafka.pid")" 2>/dev/null || break
    sleep 0.1
  done
  grep -q '^bootstrap=' "$run/kafka.log" || { cat "$run/kafka.log" >&2; exit 1; }
fi

# The source: the shipped Connector.yaml, pointed at the emulator when offline.
secrets="$run/secrets.env"
if [ "$source_kind" = bluesky ]; then
  say "offline mode: the emulator's Bluesky Jetstream publishes realistic generated posts for as long as it runs (deploy Bluesky.yaml as it is for the real network)"
  nohup "$bin/x-emulator" --addr "127.0.0.1:$emulator_port" --jetstream-rate 40 >"$run/emulator.log" 2>&1 &
  echo $! >"$run/emulator.pid"
  : >"$secrets"
  sed 's|^    wanted_collections: \[app.bsky.feed.post\]|    instances: [ws://127.0.0.1:'"$emulator_port"']\n&|' Bluesky.yaml >"$run/source.yaml"
  grep -q "instances: \[ws://127.0.0.1:$emulator_port\]" "$run/source.yaml" || { echo "Bluesky.yaml: no wanted_collections line to point at the emulator" >&2; exit 1; }
elif [ -n "${TWITTER_BEARER_TOKEN:-}" ]; then
  say "live mode: the X API with your bearer token"
  printf 'TWITTER_BEARER_TOKEN=%s\n' "$TWITTER_BEARER_TOKEN" >"$secrets"
  cp Connector.yaml "$run/source.yaml"
else
  say "offline mode: the X API emulator streams realistic generated tweets for as long as it runs (set TWITTER_BEARER_TOKEN for the live API)"
  nohup "$bin/x-emulator" --addr "127.0.0.1:$emulator_port" --rate 40 --keepalive-secs 5 >"$run/emulator.log" 2>&1 &
  echo $! >"$run/emulator.pid"
  printf 'TWITTER_BEARER_TOKEN=emulator-bearer-token\n' >"$secrets"
  sed 's|^  mode: filtered|  mode: filtered\n  base_url: http://127.0.0.1:'"$emulator_port"'|' Connector.yaml >"$run/source.yaml"
  # The recorded tweets are about many things: offline rules that match them.
  python3 - "$run/source.yaml" <<'PY'
import re, sys
p = sys.argv[1]; s = open(p).read()
s = re.sub(r"  rules:\n(    .*\n)+", "  rules:\n    - value: \"the OR a OR de OR la\"\n      tag: common-words\n    - value: \"data OR rust OR music OR coffee\"\n      tag: interests\n", s)
open(p, "w").write(s)
PY
fi
sed "s|brokers: 127.0.0.1:9092|brokers: $brokers|" kafka-bridge/config.yaml >"$run/bridge.yaml"

deploy() { # name config metrics-port binary
  if [ "$deploy_with" = cdk ]; then
    # cdk builds the package, starts its binary with --config/--secrets and logs to ./<meta.name>.log.
    (cd "$root" && CONNECTOR_METRICS_ADDR="127.0.0.1:$3" cdk deploy -p "$4" start --config "$2" --secrets "$secrets") >"$run/$1.cdk-start" 2>&1 \
      || { cat "$run/$1.cdk-start" >&2; exit 1; }
    cat "$run/$1.cdk-start" >&2
    sed -n 's/^  name: //p' "$2" | head -1 >"$run/$1.cdk"
    sed -n 's/^Connector runs with process id: //p' "$run/$1.cdk-start" >"$run/$1.pid"
    sed -n 's/^Log file: //p' "$run/$1.cdk-start" >"$run/$1.logpath"
  else
    # What `cdk deploy start` does: the release binary with --config, logs to ./<name>.log.
    nohup "$bin/$4" --config "$2" --secrets "$secrets" --metrics-addr "127.0.0.1:$3" >"$run/$1.log" 2>&1 &
    echo $! >"$run/$1.pid"
    echo "$run/$1.log" >"$run/$1.logpath"
  fi
}
deploy_with=${PIPELINE_DEPLOY:-$(command -v cdk >/dev/null 2>&1 && echo cdk || echo binary)}
say "deploying twitter-source and kafka-bridge with $deploy_with (logs in $run)"
deploy twitter-source "$run/source.yaml" "$source_metrics" twitter-source
deploy kafka-bridge "$run/bridge.yaml" "$bridge_metrics" kafka-bridge-sink
started_ok=1

# What users watch: the metrics both connectors serve (one scrape per connector per tick).
scrape() { # port -> "name value" lines, summed over labels
  python3 - "$1" <<'PY' 2>/dev/null || true
import sys, urllib.request
totals = {}
for line in urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=2).read().decode().splitlines():
    if line and not line.startswith("#"):
        name = line.split("{", 1)[0].split(" ", 1)[0]
        totals[name] = totals.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
for name, v in totals.items():
    print(name, int(v) if v == int(v) else f"{v:.3f}")
PY
}
pick() { awk -v n="$2" '$1 == n { print $2; found = 1 } END { if (!found) print 0 }' <<<"$1"; }
# A process that died: its last log lines and what usually causes what they say.
died() { # name
  local log; log=$(cat "$run/$1.logpath" 2>/dev/null || echo "$run/$1.log")
  echo "$1 stopped (its log: $log); its last 20 lines:" >&2
  tail -n 20 "$log" >&2 2>/dev/null || true
  if grep -qiE '401|403|unauthori[sz]ed|forbidden|bearer|token' "$log" 2>/dev/null; then
    echo "hint: X refused the credentials: check TWITTER_BEARER_TOKEN (or the four OAuth 1.0a secrets) in secrets.env" >&2
  elif grep -qiE 'address (already )?in use|EADDRINUSE' "$log" 2>/dev/null; then
    echo "hint: a port is taken: set PIPELINE_KAFKA_PORT, PIPELINE_EMULATOR_PORT or PIPELINE_METRICS_PORT" >&2
  elif grep -iE 'error|refused|unreachable' "$log" 2>/dev/null | grep -qiE 'fluvio|cluster|spu'; then
    echo "hint: the Fluvio cluster may be down: fluvio cluster status (then ./pipeline.sh --stop and start again)" >&2
  fi
  echo "stopping the rest of the pipeline" >&2
  stop_all >&2
  exit 1
}
check_alive() {
  for name in twitter-source kafka-bridge emulator kafka; do
    [ -f "$run/$name.pid" ] || continue
    kill -0 "$(cat "$run/$name.pid")" 2>/dev/null || died "$name"
  done
}

say "the pipeline is running; live counts for $watch_secs s (Ctrl-C to skip):"
prev_src=0; prev_br=0
for _ in $(seq 1 $(( (watch_secs + 1) / 2 ))); do
  sleep 2
  check_alive
  s=$(scrape "$source_metrics"); b=$(scrape "$bridge_metrics")
  src=$(pick "$s" twitter_source_tweets_total); prod=$(pick "$s" twitter_source_records_produced_total)
  filt=$(pick "$s" twitter_source_records_filtered_total); spend=$(pick "$s" twitter_source_estimated_cost_usd_total)
  reconnects=$(pick "$s" twitter_source_reconnects_total)
  errors=$(( $(pick "$s" twitter_source_errors_total) + $(pick "$s" twitter_source_transform_errors_total) + $(pick "$b" kafka_bridge_sink_dead_lettered_total) ))
  br=$(pick "$b" kafka_bridge_sink_records_mirrored_total); lag=$(pick "$b" kafka_bridge_sink_in_flight)
  printf '  %s %6s %s (%4s/s, $%s at pay-per-use, %s reconnects) | SmartModules: %6s kept, %6s filtered out | Kafka: %6s mirrored (%4s/s), %s in flight | %s errors\n' \
    "$stream_label" "$src" "$unit" $(( (src - prev_src) / 2 )) "$spend" "$reconnects" "$prod" "$filt" "$br" $(( (br - prev_br) / 2 )) "$lag" "$errors"
  prev_src=$src; prev_br=$br
done
say "what the ML consumer receives from Kafka topic tweets (5 records):"
timeout 120 "$cache/venv/bin/python" consumer/ml_consumer.py --brokers "$brokers" --group pipeline-demo --max 5 \
  || { check_alive; echo "no 5 records reached Kafka in 120 s: see the logs in $run" >&2; exit 1; }
check_alive
s=$(scrape "$source_metrics"); b=$(scrape "$bridge_metrics")
say "counts per stage so far: $stream_label $(pick "$s" twitter_source_tweets_total) $unit -> SmartModules kept $(pick "$s" twitter_source_records_produced_total), filtered out $(pick "$s" twitter_source_records_filtered_total) -> Fluvio topic tweets -> Kafka mirrored $(pick "$b" kafka_bridge_sink_records_mirrored_total) -> ML consumer read 5"
say "still running: fluvio consume tweets | python consumer/ml_consumer.py | ./pipeline.sh --stop"
