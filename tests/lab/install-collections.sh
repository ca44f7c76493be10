#!/usr/bin/env bash
# Install the collections this project depends on without Ansible Galaxy:
# they are unpacked from the `ansible` community wheel on PyPI (one download,
# cached), and this repository is linked in as lazypull.snapshotters.
# Usage: install-collections.sh DEST_COLLECTIONS_PATH PIP
set -euo pipefail
dest=${1:?collections path}
pip=${2:?pip executable}
cache=${LAZYPULL_CACHE:-/var/cache/lazypull}/wheels
wanted=(containers/podman ansible/posix amazon/aws community/general community/docker)
repo_root=$(cd "$(dirname "$0")/../.." && pwd)

mkdir -p "$cache" "$dest/ansible_collections/lazypull"
wheel=$(ls "$cache"/ansible-12.*-py3-none-any.whl 2>/dev/null | sort -V | tail -n1 || true)
if [[ -z "$wheel" ]]; then
  "$pip" download --quiet --no-deps 'ansible>=12,<13' -d "$cache"
  wheel=$(ls "$cache"/ansible-12.*-py3-none-any.whl | sort -V | tail -n1)
fi
stamp="$dest/ansible_collections/.from-$(basename "$wheel")"
if [[ ! -e "$stamp" ]]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  patterns=()
  for c in "${wanted[@]}"; do patterns+=("ansible_collections/$c/*"); done
  unzip -q "$wheel" "${patterns[@]}" -d "$tmp"
  for c in "${wanted[@]}"; do
    rm -rf "${dest:?}/ansible_collections/$c"
    mkdir -p "$dest/ansible_collections/${c%/*}"
    cp -a "$tmp/ansible_collections/$c" "$dest/ansible_collections/$c"
  done
  touch "$stamp"
fi
ln -sfn "$repo_root" "$dest/ansible_collections/lazypull/snapshotters"
echo "collections in $dest: ${wanted[*]} + lazypull/snapshotters -> $repo_root"
