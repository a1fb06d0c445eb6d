#!/usr/bin/env bash
# Build the SmartModules to wasm (what `smdk build` does): wasm32-wasip1, profile release-lto.
# Prints the folder holding tweet_filter.wasm, tweet_shape.wasm, passthrough.wasm and the test
# fixture upstream_macro_map.wasm.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
cargo build --locked --target wasm32-wasip1 --profile release-lto \
  -p tweet-filter -p tweet-shape -p passthrough -p upstream-macro-map >&2
echo "$target/wasm32-wasip1/release-lto"
