#!/usr/bin/env bash
# The fault matrix: runs the whole test command (./test.sh), whose fault tests count the
# records offered, found by the reader, missing and duplicated, and writes their table to
# docs/RELIABILITY.md.
#   ./reliability.sh
set -euo pipefail
cd "$(dirname "$0")"
RELIABILITY_OUT="$(pwd)/docs/RELIABILITY.md" ./test.sh
echo "==> docs/RELIABILITY.md written" >&2
