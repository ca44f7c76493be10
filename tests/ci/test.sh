#!/usr/bin/env bash
# Everything `make test` runs, stage by stage, with the time of each stage.
# Brings the lab up if it is not running and takes it down again at the end
# (also on failure); Molecule hosts are destroyed by tests/ci/molecule.sh.
set -uo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
export PATH="$repo/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH=${ANSIBLE_COLLECTIONS_PATH:-$repo/.build/collections}
export ANSIBLE_CONFIG=$repo/ansible.cfg
export ANSIBLE_FORCE_COLOR=false PY_COLORS=0 NO_COLOR=1
scenarios=(${MOLECULE_SCENARIOS:-containerd snapshotters rollout})

lab_was_up=false
[[ -f ${LAZYPULL_LAB_STATE:-/var/lib/lazypull-lab}/lab.json ]] && podman container exists lazypull-registry 2>/dev/null && lab_was_up=true

declare -a summary=()
passed=0 failed=0
stage() {
  local name=$1; shift
  local start=$SECONDS
  echo "=== stage $name: $*"
  if "$@"; then
    summary+=("$(printf '%-10s %5d s  ok' "$name" $((SECONDS - start)))"); passed=$((passed + 1))
  else
    summary+=("$(printf '%-10s %5d s  FAILED' "$name" $((SECONDS - start)))"); failed=$((failed + 1))
  fi
}

finish() {
  if [[ $lab_was_up == false ]]; then
    python3 tests/lab/lab.py down || true
  fi
  echo "=== summary (total $SECONDS s)"
  printf '%s\n' "${summary[@]}"
  echo "stages: $passed passed, $failed failed"
}
trap finish EXIT

stage lint bash tests/ci/lint.sh
stage sanity bash tests/ci/sanity.sh
stage docs bash tests/ci/docs.sh
stage units python -m pytest -q -p no:cacheprovider tests/unit
stage lab python3 tests/lab/lab.py up
if [[ ${summary[-1]} == *ok ]]; then
  stage integration bash tests/ci/integration.sh
  stage molecule bash tests/ci/molecule.sh "${scenarios[@]}"
fi
((failed == 0))
