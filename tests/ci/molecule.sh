#!/usr/bin/env bash
# Run Molecule scenarios against the lab; always destroy their hosts and
# volumes, also when a scenario fails. Usage: molecule.sh [SCENARIO...]
set -euo pipefail
cd "$(dirname "$0")/../.."
scenarios=("$@")
((${#scenarios[@]})) || scenarios=(containerd)

cleanup() {
  for s in "${scenarios[@]}"; do
    molecule destroy -s "$s" >/dev/null 2>&1 || true
    # Named volumes the scenario's platforms mounted (host dirs for /var/lib/containerd).
    mapfile -t vols < <(python3 - "$s" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(f"molecule/{sys.argv[1]}/molecule.yml"))
for p in doc.get("platforms", []):
    for v in p.get("volumes", []):
        src = v.split(":", 1)[0]
        if not src.startswith("/"):
            print(src)
PY
    )
    for v in "${vols[@]}"; do podman volume rm -f "$v" >/dev/null 2>&1 || true; done
  done
}
trap cleanup EXIT

rc=0
for s in "${scenarios[@]}"; do
  start=$SECONDS
  if molecule test -s "$s"; then
    echo "[molecule] scenario $s passed in $((SECONDS - start)) s"
  else
    echo "[molecule] scenario $s FAILED after $((SECONDS - start)) s" >&2
    rc=1
  fi
done
exit $rc
