#!/usr/bin/env bash
# Runs the suite; pytest's exit code 5 (no test collected) is a failure here, not a pass.
set -uo pipefail
cd "$(dirname "$0")/.."
# Three workers, each with its own Spark session, PostgreSQL and S3 endpoint: a test on small data leaves a core
# idle much of the time (driver-side Python, JVM round trips, single-threaded commits), so several streams of
# tests overlap on two cores; a third keeps the cores busy until the long tests at the end (benchmarks/README,
# "Test suite time"). TEST_WORKERS=0 runs in this process, one test after another.
workers="${TEST_WORKERS:-3}"
if [[ "$workers" == "0" ]]; then
  .venv/bin/python -m pytest "$@"
else
  .venv/bin/python -m pytest -n "$workers" --dist worksteal "$@"
fi
rc=$?
if [[ $rc -eq 5 ]]; then
  echo "ERROR: pytest collected no tests" >&2
  exit 1
fi
exit $rc
