#!/usr/bin/env bash
# shellcheck disable=SC2317  # functions run from EXIT traps look unreachable to shellcheck
# Lint lazypull.snapshotters: ansible-lint (production profile, offline) and
# yamllint, both configured at the repository root (.ansible-lint, .yamllint).
#
# Usage: tests/ci/lint.sh [extra ansible-lint args]
# Env:   VENV  virtualenv with ansible-lint and yamllint (default: <repo>/.venv)
#
# Needs `make venv` first: the collections the roles and playbooks use
# (community.general, containers.podman, ...) are resolved from
# .build/collections, never from Ansible Galaxy. `--offline` (also set in
# .ansible-lint) keeps ansible-lint from installing requirements.yml and from
# refreshing its schemas over the network.
set -euo pipefail

start=$(date +%s)
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv=${VENV:-$repo/.venv}
export PATH="$venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH=${ANSIBLE_COLLECTIONS_PATH:-$repo/.build/collections}
export ANSIBLE_CONFIG=${ANSIBLE_CONFIG:-$repo/ansible.cfg}
elapsed() { echo "lint.sh: elapsed $(( $(date +%s) - start )) s"; }
trap elapsed EXIT
cd "$repo"

if [[ ! -e $ANSIBLE_COLLECTIONS_PATH/ansible_collections/lazypull/snapshotters ]]; then
  echo "lint.sh: $ANSIBLE_COLLECTIONS_PATH has no collections; run 'make venv' first" >&2
  exit 2
fi

rc=0

echo "lint.sh: yamllint"
yamllint --strict . || rc=1

echo "lint.sh: ansible-lint --offline --profile production"
ansible-lint --offline --profile production "$@" || rc=1

if [[ $rc -ne 0 ]]; then echo "lint.sh: FAILED" >&2; else echo "lint.sh: passed"; fi
exit $rc
