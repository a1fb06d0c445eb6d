#!/usr/bin/env bash
# The fault matrix: runs the whole test command (./test.sh) with RELIABILITY_LOG set, so every
# test that counts records through a fault appends its count (records offered, found by the
# reader, missing, duplicates), then writes docs/RELIABILITY.md from those counts.
#   ./reliability.sh
set -euo pipefail
cd "$(dirname "$0")"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
RELIABILITY_LOG="$log" ./test.sh
python3 scripts/reliability_table.py "$log" > docs/RELIABILITY.md
echo "==> docs/RELIABILITY.md: $(grep -c '^| ' docs/RELIABILITY.md) rows" >&2
