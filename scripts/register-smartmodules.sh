#!/usr/bin/env bash
# Build the tweet SmartModules and register them in the current Fluvio cluster as
# `tweet-filter` and `tweet-shape` (what `uses:` names in Connector.yaml). Re-registering
# replaces them.
set -euo pipefail
cd "$(dirname "$0")/.."
fluvio=${FLUVIO_BIN_DIR:+$FLUVIO_BIN_DIR/}fluvio
dir=$(./scripts/build-smartmodules.sh)
for m in tweet-filter tweet-shape; do
  "$fluvio" smartmodule delete "$m" >/dev/null 2>&1 || true
  "$fluvio" smartmodule create "$m" --wasm-file "$dir/${m//-/_}.wasm"
done
"$fluvio" smartmodule list
