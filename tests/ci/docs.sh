#!/usr/bin/env bash
# Every module, filter and role entry point must render with ansible-doc.
set -euo pipefail
cd "$(dirname "$0")/../.."
fqcn=lazypull.snapshotters
fail=0
check() {
  local type=$1 name=$2
  if out=$(ansible-doc -t "$type" "$fqcn.$name" 2>&1) && [[ $out != *ERROR* ]]; then
    echo "docs: $type $fqcn.$name ok"
  else
    echo "docs: $type $fqcn.$name FAILED: $out" >&2
    fail=1
  fi
}
for f in plugins/modules/*.py; do check module "$(basename "$f" .py)"; done
for f in plugins/filter/*.yml; do check filter "$(basename "$f" .yml)"; done
for d in roles/*/; do check role "$(basename "$d")"; done
exit $fail
