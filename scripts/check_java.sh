#!/usr/bin/env bash
# Spark 4 needs Java 17 or newer; say so clearly instead of failing deep inside py4j.
set -euo pipefail
java_bin="${JAVA_HOME:+$JAVA_HOME/bin/}java"
if ! command -v "$java_bin" >/dev/null 2>&1; then
  echo "ERROR: Java 17+ is required by Spark 4 but no 'java' was found." >&2
  echo "       Install it (Debian: apt-get install -y openjdk-17-jre-headless) or set JAVA_HOME." >&2
  exit 1
fi
version=$("$java_bin" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
major=${version%%.*}
if [[ -z "$major" || "$major" -lt 17 ]]; then
  echo "ERROR: Java 17+ is required by Spark 4; found Java '$version' at $(command -v "$java_bin")." >&2
  exit 1
fi
