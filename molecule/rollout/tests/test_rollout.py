"""The rollout scenario, checked on the hosts and in the summaries.

Order of runs (molecule.yml): check (check mode), converge (halt on the first
failed batch), idempotence (the same again), side_effect (carry on past
failures). Host 2's probe image is not lazy: its post-check fails.
"""

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import testinfra

HOSTS = ["lazypull-roll-1", "lazypull-roll-2", "lazypull-roll-3"]
RESULTS = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "rollout-results"
SCENARIO = Path(__file__).resolve().parents[1]


def on(name):
    return testinfra.get_host("podman://" + name)


def summaries():
    """run dir name -> summary.json, plus the check / converge / idempotence / side-effect runs by order."""
    runs = {}
    for path in sorted(RESULTS.glob("*/summary.json")):
        runs[path.parent.name] = json.loads(path.read_text())
    timed = [name for name in sorted(runs) if re.match(r"^\d{8}T\d{6}Z$", name)]
    check = [name for name in timed if runs[name]["check_mode"]]
    real = [name for name in timed if not runs[name]["check_mode"]]
    return runs, check, real


def by_host(summary):
    return {h["host"]: h for h in summary["hosts"]}


def test_check_mode_run_would_roll_every_host_out_and_changed_nothing():
    runs, check, _real = summaries()
    assert len(check) == 1, sorted(runs)
    hosts = by_host(runs[check[0]])
    assert {h: hosts[h]["outcome"] for h in HOSTS} == {h: "would_roll_out" for h in HOSTS}
    assert runs[check[0]]["final"] is True


def test_first_rollout_halted_after_the_failed_batch():
    runs, _check, real = summaries()
    assert len(real) == 2, sorted(runs)
    summary = runs[real[0]]
    hosts = by_host(summary)
    print("SUMMARY first run:\n" + (RESULTS / real[0] / "summary.md").read_text())
    assert hosts["lazypull-roll-1"]["outcome"] == "ok"
    assert hosts["lazypull-roll-1"]["runs"] == "stargz 0.14.3"
    assert hosts["lazypull-roll-1"]["probe"]["lazy"] is True
    assert hosts["lazypull-roll-1"]["probe"]["layers_fetched"] == 0
    assert hosts["lazypull-roll-2"]["outcome"] == "rolled_back"
    assert "not lazy" in hosts["lazypull-roll-2"]["reason"], hosts["lazypull-roll-2"]
    assert hosts["lazypull-roll-2"]["runs"] == "overlayfs only"
    assert hosts["lazypull-roll-2"]["probe"]["fallback"] is True
    assert hosts["lazypull-roll-3"]["outcome"] == "not_started"
    assert hosts["lazypull-roll-3"]["reason"].startswith("halted after batch 2 (lazypull-roll-2)")
    assert summary["halted"].startswith("halted after batch 2")
    assert [h["batch"] for h in summary["hosts"][:2]] == [["lazypull-roll-1"], ["lazypull-roll-2"]]


def test_second_run_held_the_rolled_back_host_and_stayed_halted():
    runs, _check, real = summaries()
    hosts = by_host(runs[real[1]])
    assert {h: hosts[h]["outcome"] for h in HOSTS} == {
        "lazypull-roll-1": "ok", "lazypull-roll-2": "held", "lazypull-roll-3": "not_started"}
    assert "rolled back from stargz" in hosts["lazypull-roll-2"]["reason"]


def test_carrying_on_rolled_soci_out_to_host_3_as_cri_default():
    runs, _check, _real = summaries()
    summary = runs["side-effect"]
    print("SUMMARY side effect:\n" + (RESULTS / "side-effect" / "summary.md").read_text())
    hosts = by_host(summary)
    assert summary["halted"] == ""
    assert {h: hosts[h]["outcome"] for h in HOSTS} == {
        "lazypull-roll-1": "ok", "lazypull-roll-2": "held", "lazypull-roll-3": "ok"}
    assert hosts["lazypull-roll-3"]["runs"] == "soci 0.4.1"
    assert hosts["lazypull-roll-3"]["cri_snapshotter"] == "soci"
    assert hosts["lazypull-roll-3"]["probe"]["lazy"] is True
    assert hosts["lazypull-roll-1"]["cri_snapshotter"] == "overlayfs"


@pytest.mark.parametrize("name", HOSTS)
def test_the_workload_container_survived_every_restart(name):
    tasks = on(name).check_output("ctr -n workload tasks ls")
    assert re.search(r"^sentinel\s+\d+\s+RUNNING$", tasks, re.M), tasks


def test_rolled_out_hosts_run_their_snapshotter():
    for name, service, plugin in (("lazypull-roll-1", "stargz-snapshotter", "stargz"),
                                  ("lazypull-roll-3", "soci-snapshotter", "soci")):
        h = on(name)
        assert h.service(service).is_running and h.service(service).is_enabled
        plugins = h.check_output("ctr plugins ls")
        assert re.search(r"^io\.containerd\.snapshotter\.v1\s+%s\s+\S+\s+ok\s*$" % plugin, plugins, re.M), plugins
        record = json.loads(h.file("/etc/lazypull/rollout.json").content_string)
        assert record == {"state": "rolled_out", "snapshotter": plugin, "cri_default": plugin == "soci"}


def test_rolled_back_host_is_as_before_and_runs_containers_on_overlayfs():
    h = on("lazypull-roll-2")
    assert not h.service("stargz-snapshotter").is_running
    assert not h.service("stargz-snapshotter").is_enabled
    assert h.file("/etc/containerd/config.toml").sha256sum == h.file("/root/containerd-config.before-rollout.toml").sha256sum
    assert not h.file("/etc/containerd/proxy-plugins.d/stargz.json").exists
    assert "stargz" not in h.check_output("ctr plugins ls")
    assert h.check_output("findmnt -rn -t fuse.rawBridge,fuse -o TARGET || true") == ""
    record = json.loads(h.file("/etc/lazypull/rollout.json").content_string)
    assert record["state"] == "rolled_back" and record["target"] == "stargz"
    assert "not lazy" in record["reason"]
    image = json.loads(Path(os.environ.get("LAZYPULL_LAB_STATE", "/var/lib/lazypull-lab"), "lab.json").read_text())[
        "images"]["busybox"]["ref"]
    h.check_output("ctr -n verify image pull --hosts-dir /etc/containerd/certs.d %s", image)
    try:
        out = h.check_output("ctr -n verify run --rm --snapshotter overlayfs %s verify-1 echo overlayfs-works", image)
        assert out == "overlayfs-works"
    finally:
        h.run("ctr -n verify images rm --sync %s", image)


def test_a_second_carry_on_rollout_changes_nothing():
    """The side effect's rollout again, all hosts in one batch (the idempotence
    step already reran the default batches): no host changes; prints its wall time."""
    # Plain output: the recap is parsed below (a coloured terminal adds escape codes).
    env = dict(os.environ, LAZYPULL_ROLLOUT_RUN_ID="rerun", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    start = time.monotonic()
    proc = subprocess.run(["ansible-playbook", "-i", inventory, "-e", '{"rollout_serial": [3]}', str(SCENARIO / "side_effect.yml")],
                          env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    print("WALL second carry-on rollout: %.1f s" % elapsed)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    recap = dict(re.findall(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", proc.stdout, re.M))
    assert set(HOSTS) <= set(recap), proc.stdout[-2000:]
    assert {h: recap[h] for h in HOSTS} == {h: "0" for h in HOSTS}, proc.stdout[-3000:]
    hosts = by_host(json.loads((RESULTS / "rerun" / "summary.json").read_text()))
    assert {h: hosts[h]["outcome"] for h in HOSTS} == {
        "lazypull-roll-1": "ok", "lazypull-roll-2": "held", "lazypull-roll-3": "ok"}


def test_cri_images_were_unpacked_for_soci_in_the_kubernetes_namespace():
    image = json.loads(Path(os.environ.get("LAZYPULL_LAB_STATE", "/var/lib/lazypull-lab"), "lab.json").read_text())[
        "images"]["busybox"]["ref"]
    h = on("lazypull-roll-3")
    assert h.run("ctr -n k8s.io images usage --snapshotter soci %s", image).rc == 0
    assert h.run("ctr -n k8s.io images usage --snapshotter soci %s", image + "-nope").rc != 0
