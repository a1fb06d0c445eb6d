#!/bin/sh
# The compose stack's setup step (service `setup`): wait for the SC, register the SPU with a
# public address for the host and a local one for the compose network, create the topics and
# register the SmartModules. Each step says what failed; any failure exits non-zero, so the
# connectors (which wait for this step to succeed) do not start on a half-made cluster.
set -eu
: "${FLUVIO_SC:=sc:9003}" "${SPU_PUBLIC:=localhost:9010}" "${SPU_LOCAL:=spu:9010}" "${SPU_PRIVATE:=spu:9011}"
: "${SETUP_TRIES:=60}" "${SMARTMODULE_DIR:=/smartmodules}"

fluvio profile add docker "$FLUVIO_SC" docker >/dev/null
tries=0
until fluvio topic list >/dev/null 2>&1; do
  tries=$((tries + 1))
  [ "$tries" -lt "$SETUP_TRIES" ] || { echo "setup: the SC at $FLUVIO_SC did not answer in $SETUP_TRIES s" >&2; exit 1; }
  sleep 1
done
echo "setup: the SC at $FLUVIO_SC answers"

if fluvio cluster spu list 2>/dev/null | grep -q 5001; then
  echo "setup: SPU 5001 already registered"
else
  fluvio cluster spu register --id 5001 --public-server "$SPU_PUBLIC" --public-server-local "$SPU_LOCAL" --private-server "$SPU_PRIVATE"
  echo "setup: SPU 5001 registered (public $SPU_PUBLIC, local $SPU_LOCAL)"
fi
tries=0
until fluvio cluster spu list 2>/dev/null | grep 5001 | grep -q Online; do
  tries=$((tries + 1))
  [ "$tries" -lt "$SETUP_TRIES" ] || { echo "setup: SPU 5001 did not come online in $SETUP_TRIES s" >&2; exit 1; }
  sleep 1
done

for topic in tweets tweet-events; do
  fluvio topic list 2>/dev/null | grep -q "^ *$topic " || fluvio topic create "$topic"
done
for module in tweet-filter tweet-shape; do
  fluvio smartmodule delete "$module" >/dev/null 2>&1 || true  # a re-run replaces them
  fluvio smartmodule create "$module" --wasm-file "$SMARTMODULE_DIR/$(echo "$module" | tr - _).wasm"
done
echo "setup: topics tweets, tweet-events and SmartModules tweet-filter, tweet-shape ready"
