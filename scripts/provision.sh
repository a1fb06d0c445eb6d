#!/usr/bin/env bash
# Installs, idempotently, what the tests need on a fresh machine, caching it under
# $TWEET_PIPELINE_CACHE (default ~/.cache/tweet-pipeline):
#   - the wasm32-wasip1 Rust target (SmartModules);
#   - the Apache Kafka broker jars from Maven Central (testkit/kafka/pom.xml);
#   - a Python venv with confluent-kafka, jsonschema and pytest;
#   - kcat, from Debian's packages, when apt-get is usable (tests skip visibly without it);
#   - Prometheus and promtool, unpacked from Debian's package into $cache/prometheus (no root
#     needed; the observability test skips visibly without them).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${TWEET_PIPELINE_CACHE:-$HOME/.cache/tweet-pipeline}
mkdir -p "$cache"
say() { printf '==> %s\n' "$*" >&2; }

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
  say "installing the wasm32-wasip1 Rust target"
  rustup target add wasm32-wasip1
fi

kafka_stamp="$cache/kafka/.installed-$(sha256sum "$root/testkit/kafka/pom.xml" | cut -c1-16)"
if [ ! -f "$kafka_stamp" ]; then
  say "installing the Kafka broker jars (Maven Central) into $cache/kafka/libs"
  command -v java >/dev/null || { echo "java is required for the Kafka broker (install a JDK 17+)" >&2; exit 1; }
  command -v mvn >/dev/null || { echo "mvn (Maven) is required to fetch the Kafka jars" >&2; exit 1; }
  rm -rf "$cache/kafka" && mkdir -p "$cache/kafka"
  mvn -q -B -f "$root/testkit/kafka/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$cache/kafka/libs"
  touch "$kafka_stamp"
fi

venv="$cache/venv"
py_stamp="$venv/.installed-$(sha256sum "$root/scripts/requirements-test.txt" | cut -c1-16)"
if [ ! -f "$py_stamp" ]; then
  say "creating the Python venv $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/scripts/requirements-test.txt"
  touch "$py_stamp"
fi

if ! command -v kcat >/dev/null && ! command -v kafkacat >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing kcat (Debian package)"
    (apt-get install -y -qq kcat >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq kcat >/dev/null 2>&1; }) \
      || echo "kcat could not be installed; the kcat checks will be SKIPPED" >&2
  else
    echo "kcat is not installed and apt-get is not usable; the kcat checks will be SKIPPED" >&2
  fi
fi

if ! command -v promtool >/dev/null && [ ! -x "$cache/prometheus/usr/bin/promtool" ]; then
  if command -v apt-get >/dev/null && command -v dpkg >/dev/null; then
    say "unpacking Prometheus and promtool (Debian package) into $cache/prometheus"
    tmp=$(mktemp -d)
    if (cd "$tmp" && { apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get download prometheus >/dev/null 2>&1; }; }); then
      rm -rf "$cache/prometheus" && dpkg -x "$tmp"/prometheus_*.deb "$cache/prometheus"
    else
      echo "the prometheus package could not be downloaded; the Prometheus checks will be SKIPPED" >&2
    fi
    rm -rf "$tmp"
  else
    echo "Prometheus is not installed and apt-get is not usable; the Prometheus checks will be SKIPPED" >&2
  fi
fi
