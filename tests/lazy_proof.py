"""Proof that a pull was lazy, shared by the Molecule and integration tests.

A run counts as lazy only if FUSE mounts of the snapshotter exist, its
snapshots carry the remote label, and the registry served under 20% of the
image's compressed size to this host. `host` is a testinfra host.
"""

import json
import re
import subprocess
import time
import uuid
from datetime import datetime, timezone

HOSTS_DIR = "--hosts-dir /etc/containerd/certs.d"
ROOTS = {"stargz": "/var/lib/containerd-stargz-grpc", "soci": "/var/lib/soci-snapshotter-grpc"}
SERVICES = {"stargz": "stargz-snapshotter", "soci": "soci-snapshotter"}
SOCKETS = {"stargz": "/run/containerd-stargz-grpc/containerd-stargz-grpc.sock",
           "soci": "/run/soci-snapshotter-grpc/soci-snapshotter-grpc.sock"}
LAZY_FRACTION = 0.20

# Replaced by the coldstart module (issue 5); verified by its last line.
COLD_RESET = r"""
set -u
for c in $(ctr c ls -q); do ctr t kill -s KILL $c 2>/dev/null; ctr t rm -f $c 2>/dev/null; ctr c rm $c; done
imgs=$(ctr i ls -q); [ -n "$imgs" ] && ctr i rm --sync $imgs >/dev/null
for sn in overlayfs stargz soci; do
  for i in 1 2 3 4 5 6 7 8; do
    keys=$(ctr snapshots --snapshotter $sn ls | awk 'NR>1 {print $1}')
    [ -z "$keys" ] && break
    for k in $keys; do ctr snapshots --snapshotter $sn rm $k 2>/dev/null; done
  done
done
dg=$(ctr content ls -q); [ -n "$dg" ] && ctr content rm $dg >/dev/null
systemctl stop stargz-snapshotter soci-snapshotter
awk '$3 ~ /^fuse\./ {print $2}' /proc/mounts | sort -r | while read m; do umount -l "$m"; done
rm -rf /var/lib/containerd-stargz-grpc/* /var/lib/soci-snapshotter-grpc/*
systemctl start stargz-snapshotter soci-snapshotter
sync; echo 3 > /proc/sys/vm/drop_caches
echo "images=$(ctr i ls -q | wc -l) content=$(ctr content ls -q | wc -l) fuse=$(awk '$3 ~ /^fuse\./' /proc/mounts | wc -l)"
"""


def host_ip(host):
    name = host.backend.get_hostname()
    out = subprocess.check_output(["podman", "inspect", "--format",
                                   "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", name], text=True)
    return out.split()[0]


def registry_bytes(registry_container, client_ip, since, repo):
    """Bytes of blob GETs the registry served to client_ip since `since`."""
    logs = subprocess.run(["podman", "logs", "--since", since.strftime("%Y-%m-%dT%H:%M:%SZ"),
                           registry_container], capture_output=True, text=True, check=True)
    total = 0
    for line in (logs.stdout + logs.stderr).splitlines():
        if 'msg="response completed"' not in line:
            continue
        fields = dict((k, v.strip('"')) for k, v in re.findall(r'([\w.]+)=("(?:[^"\\]|\\.)*"|\S+)', line))
        if (fields.get("http.request.method") == "GET"
                and "/v2/%s/blobs/" % repo in fields.get("http.request.uri", "")
                and fields.get("http.request.remoteaddr", "").startswith(client_ip + ":")):
            total += int(fields.get("http.response.written", 0))
    return total


def _quote(script):
    return "'" + script.replace("'", "'\\''") + "'"


def cold_reset(host):
    out = host.check_output("bash -c %s" % _quote(COLD_RESET))
    assert out.strip().endswith("images=0 content=0 fuse=0"), out
    for name, svc in SERVICES.items():
        host.run_expect([0], "timeout 30 bash -c 'until systemctl is-active -q %s && test -S %s; do sleep 0.5; done'"
                        % (svc, SOCKETS[name]))


def lazy_pull_and_run(host, snapshotter, ref, registry_container, compressed_size):
    """Cold pull + run; returns the evidence (also printed as an EVIDENCE line)."""
    cold_reset(host)
    ip = host_ip(host)
    repo = ref.split("/", 1)[1].split("@", 1)[0].rsplit(":", 1)[0]
    since = datetime.now(timezone.utc)
    time.sleep(1)  # registry log timestamps have second resolution
    cli = "ctr-remote image rpull" if snapshotter == "stargz" else "soci image rpull"
    started = time.monotonic()
    host.check_output("%s %s --snapshotter %s %s" % (cli, HOSTS_DIR, snapshotter, ref))
    pull_s = time.monotonic() - started
    fuse = host.check_output("awk '$3 == \"fuse.rawBridge\" {print $2}' /proc/mounts").split()
    fuse = [m for m in fuse if m.startswith(ROOTS[snapshotter] + "/")]
    keys = host.check_output("ctr snapshots --snapshotter %s ls | awk 'NR>1 {print $1}'" % snapshotter).split()
    remote = sum(1 for k in keys if "containerd.io/snapshot/remote" in
                 host.check_output("ctr snapshots --snapshotter %s info %s" % (snapshotter, k)))
    name = "lazy-%s" % uuid.uuid4().hex[:8]
    started = time.monotonic()
    out = host.check_output("ctr run --rm --snapshotter %s %s %s" % (snapshotter, ref, name))
    run_s = time.monotonic() - started
    time.sleep(2)  # let the registry log the last responses
    fetched = registry_bytes(registry_container, ip, since, repo)
    evidence = {"snapshotter": snapshotter, "ref": ref, "pull_s": round(pull_s, 2), "run_s": round(run_s, 2),
                "fuse_mounts": len(fuse), "remote_snapshots": remote, "bytes_fetched": fetched,
                "compressed_size": compressed_size, "fraction": round(fetched / compressed_size, 4),
                "output": out.strip()}
    print("EVIDENCE " + json.dumps(evidence))
    return evidence


def is_lazy(evidence):
    return (evidence["fuse_mounts"] > 0 and evidence["remote_snapshots"] > 0
            and evidence["fraction"] < LAZY_FRACTION)
