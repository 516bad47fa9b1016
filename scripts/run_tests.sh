#!/usr/bin/env bash
# Runs the suite; pytest's exit code 5 (no test collected) is a failure here, not a pass.
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest "$@"
rc=$?
if [[ $rc -eq 5 ]]; then
  echo "ERROR: pytest collected no tests" >&2
  exit 1
fi
exit $rc
