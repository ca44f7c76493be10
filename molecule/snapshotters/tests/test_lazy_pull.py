"""Real lazy pulling from the lab's TLS registry, with proof (tests/lazy_proof.py).

The fallback test shows the same check fails on a silent full pull.
"""

import json
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "tests"))
import lazy_proof  # noqa: E402  (tests/lazy_proof.py, shared with tests/integration)

LAB = json.load(open(os.path.join(os.environ.get("LAZYPULL_LAB_STATE", "/var/lib/lazypull-lab"),
                                  "lab.json")))
REG = LAB["registry"]["host"]
SPARSE = LAB["images"]["sparse"]
SRC = "%s/lazypull/sparse:1" % REG
ESGZ = "%s/lazypull/sparse:1-esgz" % REG
EXPECTED = SPARSE["labels"]["lazypull.sparse.expected-output"]
COMPRESSED = SPARSE["compressed_size"]
HOSTS_DIR = lazy_proof.HOSTS_DIR
SERVICES = lazy_proof.SERVICES
is_lazy = lazy_proof.is_lazy


def lazy_pull_and_run(host, snapshotter, ref):
    return lazy_proof.lazy_pull_and_run(host, snapshotter, ref, LAB["registry"]["name"], COMPRESSED)


@pytest.fixture(scope="module")
def prepared(host):
    """eStargz and SOCI variants of the sparse image, made in the host."""
    host.check_output("ctr image pull %s %s" % (HOSTS_DIR, SRC))
    host.check_output("ctr-remote image convert --estargz --oci %s %s" % (SRC, ESGZ))
    host.check_output("ctr image push %s %s" % (HOSTS_DIR, ESGZ))
    host.check_output("soci create %s" % SRC)
    # soci push reads the CA from the system store the role filled.
    host.check_output("soci push --existing-index skip %s" % SRC)
    return True


def test_daemons_healthy_and_registered(host):
    plugins = host.check_output("ctr plugins ls")
    for name, svc in SERVICES.items():
        assert host.service(svc).is_running and host.service(svc).is_enabled
        assert re.search(r"io\.containerd\.snapshotter\.v1\s+%s\s+\S+\s+ok" % name, plugins), plugins
        assert host.file("/etc/containerd/proxy-plugins.d/%s.json" % name).exists


def test_stargz_pulls_lazily(host, prepared):
    ev = lazy_pull_and_run(host, "stargz", ESGZ)
    assert ev["output"].endswith(EXPECTED)
    assert is_lazy(ev), ev


def test_soci_pulls_lazily(host, prepared):
    ev = lazy_pull_and_run(host, "soci", SRC)
    assert ev["output"].endswith(EXPECTED)
    assert is_lazy(ev), ev


def test_silent_fallback_is_detected(host, prepared):
    """stargz on a plain (non-eStargz) image exits 0 and runs, but is a full pull."""
    ev = lazy_pull_and_run(host, "stargz", SRC)
    assert ev["output"].endswith(EXPECTED)
    assert not is_lazy(ev), ev
    assert ev["fraction"] > 0.9, ev


def test_stargz_is_the_cri_default_snapshotter(host):
    dump = host.check_output("containerd config dump")
    assert re.search(r'^\s*snapshotter = "stargz"$', dump, re.M), dump
    assert re.search(r"^\s*disable_snapshot_annotations = false$", dump, re.M)


def test_registry_credentials_file_is_private(host):
    f = host.file("/root/.docker/config.json")
    assert f.mode == 0o600 and f.user == "root"
    auths = json.loads(f.content_string)["auths"]
    assert list(auths) == ["other-registry.example.internal:5000"]
    assert "auth" in auths["other-registry.example.internal:5000"]
