#!/usr/bin/env bash
# Bring the compose stack up, wait for shaped tweets in Kafka, tear it down. Exit 0 only if
# tweets arrived. Needs Docker with the compose plugin.
set -euo pipefail
cd "$(dirname "$0")/.."
compose=(docker compose -f compose/docker-compose.yml)
trap '"${compose[@]}" down -v >/dev/null 2>&1 || true' EXIT
"${compose[@]}" up --build --wait --wait-timeout 600
out=$("${compose[@]}" exec -T kafka /opt/kafka/bin/kafka-console-consumer.sh --bootstrap-server localhost:19092 \
  --topic tweets --isolation-level read_committed --from-beginning --max-messages 5 --timeout-ms 120000)
echo "$out"
n=$(grep -c '"id"' <<<"$out" || true)
[ "$n" -ge 5 ] || { echo "smoke: $n tweets reached Kafka in 120 s" >&2; "${compose[@]}" logs --tail 50 >&2; exit 1; }
echo "smoke: tweets flow from the emulator through Fluvio and the SmartModules into Kafka"
