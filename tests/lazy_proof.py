"""Proof that a pull was lazy, shared by the Molecule and integration tests.

The run itself is the coldstart module's (verified cold reset, pull, run);
it counts as lazy only if FUSE mounts of the snapshotter exist, its
snapshots carry the remote label, and the registry served under 20% of the
image's compressed size to this host. `host` is a testinfra host.
"""

import json
import os
import subprocess
import sys
import time

HOSTS_DIR = "--hosts-dir /etc/containerd/certs.d"
SERVICES = {"stargz": "stargz-snapshotter", "soci": "soci-snapshotter"}
LAZY_FRACTION = 0.20
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def host_ip(host):
    name = host.backend.get_hostname()
    out = subprocess.check_output(["podman", "inspect", "--format",
                                   "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", name], text=True)
    return out.split()[0]


def registry_bytes(registry_container, client_ip, since, until, repo):
    """Blob bytes the registry served to client_ip in [since, until] (lab.py bytes)."""
    out = subprocess.check_output([sys.executable, os.path.join(REPO, "tests", "lab", "lab.py"), "bytes",
                                   "--registry", registry_container, "--client", client_ip,
                                   "--since", since, "--until", until, "--repo", repo], text=True)
    return json.loads(out)["bytes"]


def coldstart(host_name, **args):
    """One run of the coldstart module (cold reset verified by the module) on a podman host."""
    env = dict(os.environ, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json")
    proc = subprocess.run(["ansible", "all", "-i", host_name + ",", "-c", "containers.podman.podman",
                           "-m", "lazypull.snapshotters.coldstart", "-a", json.dumps(args)],
                          capture_output=True, text=True, env=env, check=False)
    try:
        result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"][host_name]
    except (ValueError, KeyError, IndexError):
        raise AssertionError("coldstart gave no result: %s %s" % (proc.stdout[-2000:], proc.stderr[-2000:]))
    assert not result.get("failed"), result.get("msg")
    return result


def lazy_pull_and_run(host, snapshotter, ref, registry_container, compressed_size):
    """Cold pull + run with the coldstart module; returns the evidence (also printed as an EVIDENCE line)."""
    repo = ref.split("/", 1)[1].split("@", 1)[0].rsplit(":", 1)[0]
    res = coldstart(host.backend.get_hostname(), image=ref, snapshotter=snapshotter, ready="exit")
    time.sleep(2)  # let the registry log the last responses
    fetched = registry_bytes(registry_container, host_ip(host), res["started_at"], res["finished_at"], repo)
    evidence = {"snapshotter": snapshotter, "ref": ref, "pull_s": res["pull_seconds"], "run_s": res["run_seconds"],
                "fuse_mounts": res["fuse_mounts"], "remote_snapshots": res["remote_snapshots"],
                "bytes_fetched": fetched, "compressed_size": compressed_size,
                "fraction": round(fetched / compressed_size, 4), "reset": res["reset"],
                "output": (res["output_tail"] or [""])[-1].strip()}
    print("EVIDENCE " + json.dumps(evidence))
    return evidence


def is_lazy(evidence):
    return (evidence["fuse_mounts"] > 0 and evidence["remote_snapshots"] > 0
            and evidence["fraction"] < LAZY_FRACTION)
