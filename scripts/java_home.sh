#!/usr/bin/env bash
# Prints the JDK home for the Makefile's Spark runs (docs/design.md §9, "Java version"): JAVA_HOME when the user
# set it, else the newest installed JDK that Spark supports (17, 21 or 25 for Spark 4.2), else nothing, and
# spark-submit runs the `java` on the PATH. With $1, at most that version (21 for Spark 4.0 and for Maven), and a
# JAVA_HOME above it is passed over. JDKs are looked for in the folders of CDP_JDK_DIRS (default: Debian's, macOS's).
set -euo pipefail
newest_supported=${1:-25}
read -r -a jdk_dirs <<< "${CDP_JDK_DIRS:-/usr/lib/jvm /Library/Java/JavaVirtualMachines}"

major_of() { # a JDK home's feature version, from its release file
  sed -n 's/^JAVA_VERSION="\([0-9]*\).*"/\1/p' "$1/release" 2>/dev/null || true
}

if [[ -n "${JAVA_HOME:-}" ]]; then
  major=$(major_of "$JAVA_HOME")
  if [[ -z "$major" || "$major" -le "$newest_supported" ]]; then
    echo "$JAVA_HOME"
    exit 0
  fi  # newer than the cap: look for one within it
fi
best_major=0
best_home=""
for dir in "${jdk_dirs[@]}"; do
  for release in "$dir"/*/release "$dir"/*/Contents/Home/release; do
    [[ -f "$release" ]] || continue
    home=$(readlink -f "$(dirname "$release")")
    [[ -x "$home/bin/java" ]] || continue
    major=$(major_of "$home")
    case "$major" in
      17 | 21 | 25) ;;
      *) continue ;;
    esac
    if ((major <= newest_supported && major > best_major)); then
      best_major=$major
      best_home=$home
    fi
  done
done
echo "$best_home"
