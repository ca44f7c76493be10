#!/usr/bin/env bash
# Host prerequisites of the local lab on Debian/Ubuntu (run as root).
# Idempotent: installs only what is missing, writes containers.conf once.
set -euo pipefail
# netavark/aardvark-dns/iptables: podman's network stack (only recommended
# by Debian's packages, and CNI without iptables gives containers no NAT).
packages=(podman runc netavark aardvark-dns iptables catatonit mmdebstrap gpg fuse3 uidmap
          slirp4netns skopeo iproute2 openssl curl ca-certificates unzip apache2-utils
          python3-venv git make)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  # With recommends, as on the machines this was measured on.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# crun refuses hybrid cgroups here, and the default rlimits cannot be set in
# this sandbox: pin runc and explicit ulimits (see shared lab notes).
conf=/etc/containers/containers.conf
want='# managed by lazypull lab (tests/lab/host-prereqs.sh)
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"'
if [[ ! -f $conf ]] || ! grep -q 'managed by lazypull lab' "$conf"; then
  [[ -f $conf ]] && cp -a "$conf" "$conf.lazypull-backup"
  mkdir -p "$(dirname "$conf")"
  printf '%s\n' "$want" > "$conf.tmp" && mv "$conf.tmp" "$conf"
  echo "wrote $conf"
fi
[[ -e /dev/fuse ]] || { echo "ERROR: /dev/fuse missing: the lab needs FUSE" >&2; exit 1; }
echo "host prerequisites OK"
