#!/usr/bin/env bash
# `make dist`: what a cluster needs to run cdp-spark with spark-submit, in $DIST (default dist/):
#   cdp_spark-<version>-py3-none-any.whl   the package (Databricks job libraries, pip install)
#   cdp-spark-env.tar.gz                   relocatable Python environment (venv-pack) with the wheel and its
#                                          dependencies, for `--archives cdp-spark-env.tar.gz#environment`
#   conf.zip                               conf/ (base, overlays, expectations), for `--archives conf.zip#conf`
#   jobs/                                  the spark-submit entry points
# pyspark itself is left out of the environment: the cluster's Spark provides it (spark-submit puts its
# pyspark.zip on the PYTHONPATH of the driver and the Python workers). DIST_WITH_PYSPARK=1 keeps it.
# venv-pack links bin/python to this machine's interpreter; when the cluster's Python lives elsewhere
# (EMR: /usr), set DIST_PYTHON_PREFIX to that prefix. The Python minor version must match.
set -euo pipefail
cd "$(dirname "$0")/.."

DIST=$(realpath -m "${DIST:-dist}")
PYTHON=${PYTHON:-python3}
BUILD_ENV=$(realpath -m "${DIST_BUILD_ENV:-build/dist-env}")
WITH_PYSPARK=${DIST_WITH_PYSPARK:-0}
PYTHON_PREFIX=${DIST_PYTHON_PREFIX:-}
PIP_QUIET=(--quiet --disable-pip-version-check)

rm -rf "$DIST" "$BUILD_ENV"
mkdir -p "$DIST"

echo "building the wheel"
.venv/bin/pip wheel "${PIP_QUIET[@]}" --no-deps -w "$DIST" .
wheel=$(ls "$DIST"/cdp_spark-*.whl)

echo "installing $wheel into a fresh environment ($BUILD_ENV)"
"$PYTHON" -m venv "$BUILD_ENV"
if [[ "$WITH_PYSPARK" == 1 ]]; then
  "$BUILD_ENV/bin/pip" install "${PIP_QUIET[@]}" "$wheel[local]"
else
  # the wheel's requirements (no pyspark: that is the `local` extra), and delta-spark (whose only other requirement is
  # importlib-metadata) without its dependencies: pip never fetches or unpacks pyspark
  "$BUILD_ENV/bin/python" - "$wheel" "$BUILD_ENV" <<'PY'
import email, sys, zipfile
from pathlib import Path
with zipfile.ZipFile(sys.argv[1]) as wheel:
    metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    requirements = email.message_from_bytes(wheel.read(metadata)).get_all("Requires-Dist") or []
runtime = [r for r in requirements if "extra ==" not in r]
without_deps = [r.split(";")[0] for r in requirements if 'extra == "local"' in r and r.startswith("delta-spark")]
with_deps = runtime + ["importlib-metadata"]
Path(sys.argv[2], "requirements.txt").write_text("\n".join(with_deps) + "\n")
Path(sys.argv[2], "requirements-no-deps.txt").write_text("\n".join(without_deps + [sys.argv[1]]) + "\n")
PY
  "$BUILD_ENV/bin/pip" install "${PIP_QUIET[@]}" -r "$BUILD_ENV/requirements.txt"
  "$BUILD_ENV/bin/pip" install "${PIP_QUIET[@]}" --no-deps -r "$BUILD_ENV/requirements-no-deps.txt"
  rm "$BUILD_ENV"/requirements*.txt
fi

echo "packing the environment"
pack_args=(-p "$BUILD_ENV" -o "$DIST/cdp-spark-env.tar.gz" --compress-level 1 --force --quiet)
if [[ -n "$PYTHON_PREFIX" ]]; then
  pack_args+=(--python-prefix "$PYTHON_PREFIX")
fi
.venv/bin/venv-pack "${pack_args[@]}"

echo "packing conf/ and jobs/"
(cd conf && ../.venv/bin/python -m zipfile -c "$DIST/conf.zip" ./*)
mkdir -p "$DIST/jobs"
cp jobs/*.py "$DIST/jobs/"

echo "dist ready in $DIST/:"
ls -l "$DIST"
