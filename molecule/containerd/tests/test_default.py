"""containerd hosts after converge + idempotence + the bad-input side effect."""

import json
import os
import re
import uuid

import pytest

LAB = json.load(open(os.path.join(os.environ.get("LAZYPULL_LAB_STATE", "/var/lib/lazypull-lab"),
                                  "lab.json")))
REGISTRY = LAB["registry"]["host"]
BUSYBOX = "%s/lazypull/busybox:1" % REGISTRY
EXPECTED = {
    "lazypull-ctd-trixie-pkg": ("1.7.24", "/usr/bin"),
    "lazypull-ctd-bookworm-pkg": ("1.6.20", "/usr/bin"),
    "lazypull-ctd-bookworm-rel": ("1.7.24", "/usr/local/bin"),
}


def _expected(host):
    return EXPECTED[host.backend.get_hostname()]


def test_containerd_service_active_and_enabled(host):
    svc = host.service("containerd")
    assert svc.is_running
    assert svc.is_enabled


def test_installed_version_and_method(host):
    version, bin_dir = _expected(host)
    out = host.check_output("%s/containerd --version" % bin_dir)
    assert re.search(r"\b%s\b" % re.escape(version), out), out


def test_config_dump_shows_the_values_set(host):
    bin_dir = _expected(host)[1]
    dump = host.check_output("%s/containerd config dump" % bin_dir)
    assert re.search(r"^oom_score = -500$", dump, re.M)
    assert re.search(r"^\s*max_container_log_line_size = 32768$", dump, re.M)
    assert re.search(r'^\s*config_path = "/etc/containerd/certs.d"$', dump, re.M)
    assert re.search(r'^\s*snapshotter = "overlayfs"$', dump, re.M)
    assert host.file("/etc/containerd/config.toml").contains("Managed by Ansible")


def test_registry_hosts_file_trusts_the_lab_ca(host):
    d = "/etc/containerd/certs.d/%s" % REGISTRY
    hosts_toml = host.file(d + "/hosts.toml")
    assert hosts_toml.contains('server = "https://%s"' % REGISTRY)
    assert hosts_toml.contains('ca = "%s/ca.crt"' % d)
    assert host.file(d + "/ca.crt").contains("BEGIN CERTIFICATE")


def test_release_host_uses_release_runc(host):
    if host.backend.get_hostname() != "lazypull-ctd-bookworm-rel":
        pytest.skip("runc from the release only on the release host")
    assert host.file("/usr/local/sbin/runc").mode == 0o755
    assert "runc version" in host.check_output("/usr/local/sbin/runc --version")


def test_pull_over_tls_and_run(host):
    bin_dir = _expected(host)[1]
    ctr = "%s/ctr -n lazypull-verify" % bin_dir
    name = "verify-%s" % uuid.uuid4().hex[:8]
    try:
        host.check_output(ctr + " image pull --hosts-dir /etc/containerd/certs.d %s", BUSYBOX)
        out = host.check_output(ctr + " run --rm %s %s", BUSYBOX, name)
        assert out.strip() == "hello from lazypull busybox"
    finally:
        host.run(ctr + " task kill -s KILL %s", name)
        host.run(ctr + " container rm %s", name)
        host.run(ctr + " image rm --sync %s", BUSYBOX)


def test_pull_without_the_lab_ca_is_refused(host):
    """Proves the pull above really used TLS with the lab CA."""
    bin_dir = _expected(host)[1]
    res = host.run(bin_dir + "/ctr -n lazypull-verify image pull --hosts-dir /nonexistent %s", BUSYBOX)
    assert res.rc != 0
    assert re.search(r"x509|certificate", res.stderr + res.stdout), res.stderr
