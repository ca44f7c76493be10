#!/usr/bin/env bash
# Integration tests of the modules on the lab: one lab host converged with
# the roles (playbooks/lab.yml), then tests/integration (real containerd,
# ctr-remote, soci, TLS registries with and without htpasswd auth).
# The lab host goes away with `lab.py down` (tests/ci/test.sh does that).
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 tests/lab/lab.py up --hosts 1
ansible-playbook -i inventories/lab playbooks/lab.yml
python -m pytest -v -s -p no:cacheprovider tests/integration
