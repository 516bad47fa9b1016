#!/usr/bin/env bash
# Installs the PostgreSQL server and its JDBC driver, and Chromium (the HTML report's browser test), from
# Debian's packages when they are missing. The test suite starts its own private PostgreSQL cluster on
# 127.0.0.1 and a headless Chromium with no network; nothing is configured system-wide.
set -euo pipefail
need=()
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && ! command -v initdb >/dev/null; then
  need+=(postgresql)
fi
command -v psql >/dev/null || need+=(postgresql-client)
[[ -f /usr/share/java/postgresql.jar ]] || need+=(libpostgresql-jdbc-java)
command -v chromium >/dev/null || need+=(chromium)
if [[ ${#need[@]} -eq 0 ]]; then
  exit 0
fi
echo "Installing from Debian: ${need[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then sudo_cmd=(sudo); else
    echo "ERROR: need root or sudo to install ${need[*]}" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
