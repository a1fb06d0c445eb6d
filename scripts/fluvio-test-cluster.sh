#!/usr/bin/env bash
# Start or stop a private local Fluvio cluster for the tests, under its own HOME
# ($TWEET_PIPELINE_CACHE/fluvio-home), so a user's ~/.fluvio profile and data are never touched.
# Needs `fluvio` and `fluvio-run` (PATH or $FLUVIO_BIN_DIR); prints the profile path on start.
#   scripts/fluvio-test-cluster.sh start|stop
set -euo pipefail
cache=${TWEET_PIPELINE_CACHE:-$HOME/.cache/tweet-pipeline}
home="$cache/fluvio-home"
bin_dir=${FLUVIO_BIN_DIR:-}
fluvio=${bin_dir:+$bin_dir/}fluvio
export HOME="$home"
export PATH="${bin_dir:+$bin_dir:}$PATH"
case "${1:-}" in
  start)
    mkdir -p "$home"
    # Answering means the SC and the SPU: the SC may run with no SPU behind it (its SPU
    # metadata unreadable after a kill while it wrote it).
    answers() {
      "$fluvio" topic list >/dev/null 2>&1 && (exec 3<>/dev/tcp/127.0.0.1/9010) 2>/dev/null
    }
    fresh() {
      "$fluvio" cluster delete --force >>"$home/start.log" 2>&1 || true
      rm -rf "$home/data"   # `cluster delete` keeps a --data-dir
      "$fluvio" cluster start --local --data-dir "$home/data" >>"$home/start.log" 2>&1 \
        || { cat "$home/start.log" >&2; exit 1; }
      answers || { cat "$home/start.log" >&2; exit 1; }
    }
    : >"$home/start.log"
    if answers; then
      echo "$home/.fluvio/config"; exit 0
    fi
    if "$fluvio" topic list >/dev/null 2>&1; then
      fresh   # ours, without its SPU
    else
      # A local cluster uses fixed ports (SC 9003, SPU 9010): refuse to fight another one.
      if (exec 3<>/dev/tcp/127.0.0.1/9003) 2>/dev/null; then
        echo "port 9003 is taken by another Fluvio cluster; not starting a private one" >&2; exit 3
      fi
      # A cluster left by an earlier run (not deleted) is resumed; else a new one is started.
      # (`cluster resume` exits 0 even when it resumed nothing: check that the cluster answers.)
      "$fluvio" cluster resume >>"$home/start.log" 2>&1 || true
      for _ in $(seq 20); do answers && break; sleep 0.5; done
      answers || fresh
    fi
    echo "$home/.fluvio/config"
    ;;
  stop)
    # Test data is not kept: the next run starts from an empty cluster.
    "$fluvio" cluster delete --force >/dev/null 2>&1 \
      || "$fluvio" cluster shutdown >/dev/null 2>&1 || true
    rm -rf "$home/data"
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
