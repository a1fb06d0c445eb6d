"""Write docs/RELIABILITY.md (to stdout) from the JSON lines the fault-matrix tests append to
RELIABILITY_LOG (see testkit/src/reliability.rs): reliability_table.py LOG."""
import json
import platform
import subprocess
import sys
from datetime import datetime, timezone

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                        text=True).stdout.strip() or "unknown"
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
print("# Reliability: the fault matrix\n")
print(f"Written by `./reliability.sh` at {commit} on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC "
      f"({platform.machine()}, {cores} cores, every service on this machine). Each row is one "
      "test of the test command: records offered, records the reader found, and how many of "
      "the offered ones are missing or there more than once. The guarantee is 0 missing and "
      "0 duplicates for the readers it names (`read_committed` for the bridge); rows marked "
      "\"not guaranteed\" show what other readers see.\n")
print("| component | fault | reader | offered | found | missing | duplicates | |")
print("|---|---|---|---:|---:|---:|---:|---|")
failed = 0
for r in rows:
    guaranteed = "not guaranteed" not in r["reader"]
    ok = r["missing"] == 0 and r["duplicates"] == 0
    mark = "ok" if ok else ("**FAILED**" if guaranteed else "(seen)")
    failed += guaranteed and not ok
    print(f"| {r['component']} | {r['scenario']} | {r['reader']} | {r['offered']:,} | "
          f"{r['found']:,} | {r['missing']:,} | {r['duplicates']:,} | {mark} |")
skipped = "" if rows else "\nNo rows: the tests were skipped (see the test output).\n"
print(skipped)
print(f"{len(rows)} rows, {failed} failing the guarantee.")
