#!/usr/bin/env bash
# shellcheck disable=SC2317  # functions run from EXIT traps look unreachable to shellcheck
# ansible-test sanity for lazypull.snapshotters, offline-safe.
#
# Usage: tests/ci/sanity.sh [extra ansible-test sanity args, e.g. --test pylint]
# Env:   VENV            virtualenv with ansible-core (default: <repo>/.venv)
#        SANITY_PYTHON   Python version to test (default: 3.11)
#        LAZYPULL_CACHE  cache root for the wheel house (default: /var/cache/lazypull)
#
# What it does
# 1. Copies the collection (the files `git ls-files --cached --others
#    --exclude-standard` lists, minus EXCLUDES below) to
#    .build/sanity/ansible_collections/lazypull/snapshotters: ansible-test
#    needs that layout, and the copy keeps .venv/.build/caches out of its view.
# 2. Makes ansible-test's requirement installs work without the internet
#    hosts it normally needs. ansible-test creates one virtualenv per sanity
#    test, bootstraps pip into it with a get-pip script downloaded from
#    ci-files.testing.ansible.com (not reachable here), and drops all PIP_*
#    variables, so a pip.conf via the environment cannot help. Instead:
#    - a wheel house of pip==<the version ansible-test pins> plus every
#      _data/requirements/sanity.*.txt of the installed ansible-test, built
#      once with `pip wheel` (ordinary pip + PyPI) and cached under
#      $LAZYPULL_CACHE/wheelhouse-<hash of ansible-core version, Python
#      version/arch, pip pin and those requirement files>;
#    - a stand-in ~/.ansible/test/cache/get_pip_<X_Y>.py (the exact name
#      ansible-test looks for before downloading) that installs pip from the
#      wheel house and writes a *venv-local* pip.conf ($VIRTUAL_ENV/pip.conf:
#      pip's "site" config, which overrides user/global config) with
#      `no-index` + `find-links` = wheel house. The following `pip install`s
#      ansible-test runs in that venv then resolve offline. No user or global
#      pip config is written; the stand-in is removed (and a pre-existing
#      real get-pip script restored) when this script exits.
# 3. Runs `ansible-test sanity --local --python 3.11` (all tests) on the copy,
#    prints the elapsed time, exits non-zero on any failure.
#
# Tests that ansible-test skips by itself when the tool is missing: pslint
# (needs pwsh) and shellcheck (needs the shellcheck binary; install the
# `shellcheck` package to have it run).
set -euo pipefail

start=$(date +%s)
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv=${VENV:-$repo/.venv}
py_version=${SANITY_PYTHON:-3.11}
cache=${LAZYPULL_CACHE:-/var/cache/lazypull}
export PATH="$venv/bin:$PATH"

# Paths left out of the sanity copy (they are not collection content):
#   tests/lab/  lab/CI helper scripts (host set-up, image builder, lab driver);
#               they are not plugins, are never imported by the collection,
#               and are not meant to follow collection rules (Python 2.7
#               compile, module boilerplate, shebang policy).
#   tests/ci/   these CI driver scripts themselves.
#   tests/unit/test_build_images.py  unit tests of tests/lab/build_images.py
#               (loads it by path, so it cannot work without tests/lab/).
EXCLUDES=(tests/lab/ tests/ci/ tests/unit/test_build_images.py)

elapsed() { echo "sanity.sh: elapsed $(( $(date +%s) - start )) s"; }
trap elapsed EXIT

command -v ansible-test >/dev/null || { echo "ansible-test not found (run make venv)" >&2; exit 2; }
venv_python=$venv/bin/python

# ---- 1. the copy -------------------------------------------------------------
dest=$repo/.build/sanity/ansible_collections/lazypull/snapshotters
rm -rf "$dest"
mkdir -p "$dest"
cd "$repo"
n=0
while IFS= read -r -d '' f; do
  for ex in "${EXCLUDES[@]}"; do [[ $f == "$ex"* ]] && continue 2; done
  [[ -e $f || -L $f ]] || continue            # tracked but deleted in the work tree
  case $f in .venv/*|.build/*|tests/output/*) continue ;; esac   # belt and braces
  mkdir -p "$dest/$(dirname "$f")"
  cp -P --preserve=mode,timestamps "$f" "$dest/$f"
  n=$((n + 1))
done < <(git ls-files -z --cached --others --exclude-standard)
# ansible-test lists content with git when it finds a .git at or above the
# content root; without one of its own it would find /work/main's and see the
# (ignored) copy as empty. A bare `git init` is enough: it lists untracked,
# non-ignored files (`--others --exclude-standard`).
git -C "$dest" init -q
echo "sanity.sh: copied $n files to $dest"

# ---- 2. offline pip bootstrap --------------------------------------------------
at_data=$("$venv_python" -c 'import ansible_test, os; print(os.path.join(os.path.dirname(ansible_test.__file__), "_data"))')
at_lib=$(dirname "$at_data")
core_version=$("$venv_python" -c 'from ansible.release import __version__; print(__version__)')
# The pip version ansible-test bootstraps into its venvs (get_venv_packages()).
pip_version=$("$venv_python" - "$at_lib" "$py_version" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1] + '/..')
from ansible_test._internal.python_requirements import get_venv_packages
class Python:  # minimal stand-in for PythonConfig
    version = sys.argv[2]
print(get_venv_packages(Python())['pip'])
EOF
)
reqs=("$at_data"/requirements/sanity.*.txt)
key=$( { echo "ansible-core $core_version"; echo "pip $pip_version"; echo "python $py_version $(uname -m)";
         for r in "${reqs[@]}"; do echo "== $(basename "$r")"; cat "$r"; done; } | sha256sum | cut -c1-16)
wheelhouse=$cache/wheelhouse-$key

if [[ ! -f $wheelhouse/.complete ]]; then
  echo "sanity.sh: building wheel house $wheelhouse (ansible-core $core_version, pip $pip_version)"
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.wheelhouse-$key.XXXXXX")
  # pip wheel: wheels as-is from the index, sdists built into wheels, so the
  # offline installs later never need build back-ends.
  "$venv_python" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$tmp" "pip==$pip_version"
  for r in "${reqs[@]}"; do
    "$venv_python" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$tmp" -r "$r"
  done
  touch "$tmp/.complete"
  rm -rf "$wheelhouse"
  mv "$tmp" "$wheelhouse"
fi
pip_wheels=("$wheelhouse"/pip-"$pip_version"-*.whl)
pip_wheel=${pip_wheels[0]}
[[ -f $pip_wheel ]] || { echo "no pip $pip_version wheel in $wheelhouse" >&2; exit 2; }
case $wheelhouse in *[\'\\\"]*) echo "LAZYPULL_CACHE must not contain quotes or backslashes" >&2; exit 2 ;; esac

getpip=$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py
marker='# lazypull.snapshotters stand-in get-pip'
backup=$getpip.lazypull-backup
mkdir -p "$(dirname "$getpip")"
if [[ -f $getpip ]] && ! grep -qF "$marker" "$getpip"; then
  mv "$getpip" "$backup"          # a real get-pip script: put it back afterwards
fi
cleanup_getpip() {
  local stem
  stem=$(basename "$getpip" .py)
  rm -f "$getpip" "$(dirname "$getpip")/__pycache__/$stem".*.pyc   # quiet_pip imports it
  rmdir "$(dirname "$getpip")/__pycache__" "$(dirname "$getpip")" 2>/dev/null || true   # only if empty
  if [[ -f $backup ]]; then mv "$backup" "$getpip"; fi
}
trap 'cleanup_getpip; elapsed' EXIT

cat > "$getpip" <<EOF
$marker (tests/ci/sanity.sh; removed when it exits)
# Installs pip $pip_version from the wheel house instead of the network, then
# gives this virtualenv a venv-local pip.conf so ansible-test's following
# 'pip install' runs resolve from the wheel house too.
import os
import sys

WHEELHOUSE = '$wheelhouse'
PIP_WHEEL = '$pip_wheel'

# get-pip.py's own options; with an empty venv there is nothing to do for them.
args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel', '--no-pip')]
sys.path.insert(0, PIP_WHEEL)
from pip._internal.cli.main import main as pip_main  # noqa: E402

rc = pip_main(['install', '--no-index', '--find-links', WHEELHOUSE] + args)
if rc == 0 and sys.prefix != getattr(sys, 'base_prefix', sys.prefix):
    # pip's "site" config file: only this virtualenv reads it.
    with open(os.path.join(sys.prefix, 'pip.conf'), 'w') as conf:
        conf.write('[global]\nno-index = true\nfind-links = %s\n' % WHEELHOUSE)
sys.exit(rc)
EOF

# ---- 3. run ------------------------------------------------------------------------
cd "$dest"
echo "sanity.sh: ansible-test sanity --local --python $py_version $*"
rc=0
ansible-test sanity --local --python "$py_version" "$@" || rc=$?
if [[ $rc -ne 0 ]]; then
  echo "sanity.sh: FAILED (rc=$rc); results in $dest/tests/output" >&2
else
  echo "sanity.sh: all sanity tests passed"
fi
exit $rc
