#!/usr/bin/env bash
# Adds the pipeline step to an EMR cluster with an explicit as-of date (default: today in UTC), so a re-run
# of the step computes the same day:  deploy/emr/add_steps.sh j-XXXXXXXX [YYYY-MM-DD]
set -euo pipefail
cluster_id=${1:?usage: add_steps.sh CLUSTER_ID [AS_OF]}
as_of=${2:-$(date -u +%F)}
[[ "$as_of" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]] || { echo "as-of must be YYYY-MM-DD, got '$as_of'" >&2; exit 2; }
steps=$(sed "s/{{AS_OF}}/$as_of/" "$(dirname "$0")/steps.json")
exec aws emr add-steps --cluster-id "$cluster_id" --steps "$steps"
