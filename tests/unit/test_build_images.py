"""Unit tests for tests/lab/build_images.py (no apt, no network, no daemons).

A fake busybox file stands in for Debian's busybox-static; the images are
built tiny (2 data layers x 3 files x 4 KiB) into temporary cache dirs.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

BUILDER = Path(__file__).resolve().parents[1] / "lab" / "build_images.py"
TINY = {"layers": 2, "files": 3, "file_size": 4096}


def _load_builder():
    spec = importlib.util.spec_from_file_location("lazypull_build_images", BUILDER)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


bi = _load_builder()


@pytest.fixture(scope="module")
def fake_busybox(tmp_path_factory):
    p = tmp_path_factory.mktemp("bb") / "busybox"
    p.write_bytes(b"#!/bin/sh\necho fake busybox\n")
    p.chmod(0o755)
    return str(p)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, fake_busybox):
    cache = tmp_path_factory.mktemp("cache1")
    return bi.build_image("sparse", cache_dir=str(cache), overrides=TINY, busybox=fake_busybox)


def _blob(layout, digest):
    return Path(layout, "blobs", "sha256", digest.split(":", 1)[1])


def _manifest(layout):
    index = json.loads(Path(layout, "index.json").read_text())
    assert len(index["manifests"]) == 1
    desc = index["manifests"][0]
    return desc, json.loads(_blob(layout, desc["digest"]).read_bytes())


def _config(layout):
    _, m = _manifest(layout)
    return json.loads(_blob(layout, m["config"]["digest"]).read_bytes())


def _layer_members(layout):
    _, m = _manifest(layout)
    out = []
    for d in m["layers"]:
        with tarfile.open(fileobj=io.BytesIO(_blob(layout, d["digest"]).read_bytes()), mode="r:gz") as t:
            out.append([(mem, t.extractfile(mem).read() if mem.isfile() else None) for mem in t.getmembers()])
    return out


def test_layout_structure(tiny):
    layout = tiny["layout"]
    assert json.loads(Path(layout, "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    desc, m = _manifest(layout)
    assert desc["mediaType"] == bi.MT_MANIFEST
    assert desc["annotations"]["org.opencontainers.image.ref.name"] == "1"
    assert desc["platform"] == {"architecture": "amd64", "os": "linux"}
    assert desc["digest"] == tiny["manifest_digest"]
    assert m["schemaVersion"] == 2 and m["mediaType"] == bi.MT_MANIFEST
    assert m["config"]["mediaType"] == bi.MT_CONFIG
    assert {lyr["mediaType"] for lyr in m["layers"]} == {bi.MT_LAYER_GZIP}
    # busybox base + 2 data layers + app layer
    assert len(m["layers"]) == 4
    cfg = _config(layout)
    assert cfg["architecture"] == "amd64" and cfg["os"] == "linux"
    assert cfg["created"] == "2025-01-01T00:00:00Z"
    assert cfg["config"]["Cmd"] == ["/bin/sh", "/app/run.sh"]
    assert cfg["config"]["Env"] == ["PATH=/bin"]
    assert len(cfg["history"]) == len(m["layers"])
    assert all(h["created"] == "2025-01-01T00:00:00Z" and h["created_by"] for h in cfg["history"])
    assert tiny["compressed_size"] == sum(lyr["size"] for lyr in m["layers"])


def test_blob_digests_match_content(tiny):
    layout = tiny["layout"]
    blobs = list(Path(layout, "blobs", "sha256").iterdir())
    assert blobs
    for b in blobs:
        assert hashlib.sha256(b.read_bytes()).hexdigest() == b.name
    desc, m = _manifest(layout)
    for d in [desc, m["config"]] + m["layers"]:
        assert _blob(layout, d["digest"]).stat().st_size == d["size"]


def test_diff_ids_match_uncompressed_tar(tiny):
    layout = tiny["layout"]
    _, m = _manifest(layout)
    cfg = _config(layout)
    assert cfg["rootfs"]["type"] == "layers"
    assert len(cfg["rootfs"]["diff_ids"]) == len(m["layers"])
    total = 0
    for d, diff_id in zip(m["layers"], cfg["rootfs"]["diff_ids"]):
        raw = _blob(layout, d["digest"]).read_bytes()
        assert raw[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # gzip, mtime 0, no name
        tar = gzip.decompress(raw)
        total += len(tar)
        assert "sha256:" + hashlib.sha256(tar).hexdigest() == diff_id
    assert total == tiny["uncompressed_size"]


def test_every_parent_directory_has_an_entry(tiny):
    for members in _layer_members(tiny["layout"]):
        names = {mem.name.rstrip("/"): mem for mem, _ in members}
        assert len(names) == len(members), "duplicate entries"
        for name in names:
            parts = name.split("/")
            for i in range(1, len(parts)):
                parent = "/".join(parts[:i])
                assert parent in names, "%s lacks parent entry %s" % (name, parent)
                assert names[parent].isdir()
        ordered = [mem.name.rstrip("/") for mem, _ in members]
        assert ordered == sorted(ordered, key=lambda n: tuple(n.split("/")))


def test_tar_metadata_is_normalised(tiny):
    for members in _layer_members(tiny["layout"]):
        for mem, _ in members:
            assert mem.uid == 0 and mem.gid == 0
            assert mem.mtime == bi.EPOCH
            assert not mem.name.startswith(("/", "./"))
            if mem.isdir():
                assert mem.mode in (0o755, 0o700, 0o1777)
            elif mem.isfile():
                expected = 0o755 if mem.name in ("bin/busybox", "app/run.sh") else 0o644
                assert mem.mode == expected, mem.name
            else:
                assert mem.issym() and mem.linkname == "busybox"


def test_busybox_layer_contents(tiny, fake_busybox):
    base = {mem.name.rstrip("/"): (mem, data) for mem, data in _layer_members(tiny["layout"])[0]}
    assert base["bin/busybox"][1] == Path(fake_busybox).read_bytes()
    for applet in bi.BUSYBOX_APPLETS:
        assert base["bin/" + applet][0].issym()
    assert base["tmp"][0].mode == 0o1777
    assert base["etc/passwd"][1].startswith(b"root:x:0:0:")
    assert base["etc/group"][1].startswith(b"root:x:0:")


def test_deterministic_across_cache_dirs(tiny, tmp_path, fake_busybox):
    again = bi.build_image("sparse", cache_dir=str(tmp_path), overrides=TINY, busybox=fake_busybox)
    assert again["cached"] is False
    assert again["manifest_digest"] == tiny["manifest_digest"]
    assert os.path.basename(again["layout"]) == os.path.basename(tiny["layout"])
    assert [lyr["digest"] for lyr in again["layers"]] == [lyr["digest"] for lyr in tiny["layers"]]


def test_busybox_image_shares_the_base_layer(tiny, tmp_path, fake_busybox):
    bb = bi.build_image("busybox", cache_dir=str(tmp_path), busybox=fake_busybox)
    assert [lyr["digest"] for lyr in bb["layers"]] == [tiny["layers"][0]["digest"]]
    cfg = _config(bb["layout"])
    assert cfg["config"]["Cmd"] == ["/bin/echo", "hello from lazypull busybox"]
    assert cfg["rootfs"]["diff_ids"] == [tiny["layers"][0]["diff_id"]]


def test_read_files_label_lists_existing_files(tiny):
    labels = _config(tiny["layout"])["config"]["Labels"]
    read = labels["lazypull.sparse.read-files"].split(",")
    assert len(read) == bi.IMAGES["sparse"]["params"]["read_files"] == 5
    assert len(set(read)) == len(read)
    files = {}
    for members in _layer_members(tiny["layout"]):
        files.update({"/" + mem.name: data for mem, data in members if mem.isfile()})
    script = files["/app/run.sh"].decode()
    for p in read:
        assert p in files, p
        assert len(files[p]) == TINY["file_size"]
        # run.sh checks each file against its real sha256
        assert "check %s %s\n" % (p, hashlib.sha256(files[p]).hexdigest()) in script
    layers_read = {p.split("/")[2] for p in read}
    assert layers_read == {"l1", "l2"}, "reads are spread over the data layers"
    assert script.rstrip().endswith('echo "sparse: read 5 files OK"')
    assert labels["lazypull.sparse.expected-output"] == "sparse: read 5 files OK"
    assert labels["lazypull.sparse.total-bytes"] == str(2 * 3 * 4096)
    data_files = [p for p in files if p.startswith("/data/")]
    assert len(data_files) == 6 and sum(len(files[p]) for p in data_files) == 2 * 3 * 4096


def test_data_is_incompressible_and_distinct(tiny):
    files = {}
    for members in _layer_members(tiny["layout"])[1:3]:
        files.update({mem.name: data for mem, data in members if mem.isfile()})
    assert len({hashlib.sha256(d).digest() for d in files.values()}) == len(files)
    blob = b"".join(files.values())
    assert len(gzip.compress(blob, 6)) > 0.99 * len(blob)


def test_cache_reuse_and_invalidation(tmp_path, fake_busybox):
    first = bi.build_image("sparse", cache_dir=str(tmp_path), overrides=TINY, busybox=fake_busybox)
    second = bi.build_image("sparse", cache_dir=str(tmp_path), overrides=TINY, busybox=fake_busybox)
    assert second["cached"] is True and second["manifest_digest"] == first["manifest_digest"]
    assert second["layout"] == first["layout"]
    # other params -> other recipe -> other layout dir
    other = bi.build_image("sparse", cache_dir=str(tmp_path), overrides=dict(TINY, files=2),
                           busybox=fake_busybox)
    assert other["layout"] != first["layout"] and other["manifest_digest"] != first["manifest_digest"]
    # another busybox binary is another input
    bb2 = tmp_path / "bb2"
    bb2.write_bytes(b"other")
    third = bi.build_image("sparse", cache_dir=str(tmp_path), overrides=TINY, busybox=str(bb2))
    assert third["layout"] != first["layout"]
    # an incomplete layout is rebuilt, not trusted
    _blob(first["layout"], first["layers"][1]["digest"]).unlink()
    rebuilt = bi.build_image("sparse", cache_dir=str(tmp_path), overrides=TINY, busybox=fake_busybox)
    assert rebuilt["cached"] is False and rebuilt["manifest_digest"] == first["manifest_digest"]
    assert _blob(first["layout"], first["layers"][1]["digest"]).is_file()
    # no temp dirs are left behind
    assert not [d for d in os.listdir(tmp_path / "images") if d.startswith(".")]


def test_env_overrides(tmp_path, fake_busybox, monkeypatch):
    monkeypatch.setenv("LAZYPULL_CACHE", str(tmp_path))
    monkeypatch.setenv("LAZYPULL_BUSYBOX", fake_busybox)
    rec = bi.build_image("busybox")
    assert rec["layout"].startswith(str(tmp_path / "images") + os.sep)
    assert rec["inputs"]["busybox_sha256"] == hashlib.sha256(Path(fake_busybox).read_bytes()).hexdigest()


def test_complete_entries_adds_parents_and_sorts():
    out = bi.complete_entries([
        bi.file_entry("opt/a/b/c.txt", b"x"),
        bi.dir_entry("tmp", 0o1777),
        bi.file_entry("opt/a-b", b"y"),
        bi.symlink_entry("opt/a/link", "b/c.txt"),
    ])
    assert [e["path"] for e in out] == ["opt", "opt/a", "opt/a/b", "opt/a/b/c.txt", "opt/a/link", "opt/a-b", "tmp"]
    assert out[-1]["mode"] == 0o1777
    with pytest.raises(bi.BuildError):
        bi.complete_entries([bi.file_entry("a", b""), bi.file_entry("a/b", b"")])
    with pytest.raises(bi.BuildError):
        bi.complete_entries([bi.file_entry("a", b"1"), bi.file_entry("/a", b"2")])
    with pytest.raises(ValueError):
        bi.file_entry("../etc/passwd", b"")


def test_read_set_spread_and_distinct():
    params = dict(bi.IMAGES["sparse"]["params"])
    assert bi.sparse_read_set(params) == [(1, 0), (2, 20), (3, 40), (1, 60), (2, 80)]
    params.update(layers=1, files=2, read_files=5)
    assert sorted(bi.sparse_read_set(params)) == [(1, 0), (1, 1)]  # clamped to what exists


def test_bad_params_are_rejected(tmp_path, fake_busybox):
    with pytest.raises(bi.BuildError):
        bi.build_image("sparse", cache_dir=str(tmp_path), overrides={"layers": 0}, busybox=fake_busybox)
    with pytest.raises(bi.BuildError):
        bi.build_image("sparse", cache_dir=str(tmp_path), overrides={"nope": 1}, busybox=fake_busybox)
    with pytest.raises(bi.BuildError):
        bi.build_image("nope", cache_dir=str(tmp_path), busybox=fake_busybox)
    assert not (tmp_path / "images").exists() or not os.listdir(tmp_path / "images")


def test_cli_build_and_list_print_json(tmp_path, fake_busybox, capsys):
    argv = ["--cache", str(tmp_path), "--busybox", fake_busybox]
    rc = bi.main(["build", "--only", "sparse", "--sparse-layers", "2", "--sparse-files", "3",
                  "--sparse-file-size", "4096"] + argv)
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out) == 1
    rec = out[0]
    assert rec["name"] == "sparse" and rec["tag"] == "1"
    assert rec["ref"] == "oci:%s:1" % rec["layout"]
    assert rec["manifest_digest"].startswith("sha256:")
    assert rec["compressed_size"] > 0 and rec["uncompressed_size"] > 2 * 3 * 4096
    assert bi.main(["list"] + argv) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["manifest_digest"]) for r in listed] == [("sparse", rec["manifest_digest"])]
    assert listed[0]["current_default"] is False  # tiny params are not the defaults


def test_push_command_keeps_credentials_off_the_command_line():
    cmd = bi.skopeo_push_cmd("/c/images/sparse-x", "1", "reg:5000/lazypull/sparse:1",
                             cert_dir="/etc/lab/certs", authfile="/root/auth.json", digestfile="/tmp/d")
    assert cmd[:3] == ["skopeo", "copy", "--preserve-digests"]
    assert cmd[-2:] == ["oci:/c/images/sparse-x:1", "docker://reg:5000/lazypull/sparse:1"]
    assert "--dest-cert-dir" in cmd and "--dest-authfile" in cmd
    assert not any(a.startswith(("--creds", "--dest-creds", "--password")) for a in cmd)
    insecure = bi.skopeo_push_cmd("/l", "1", "h:1/p/n:1", tls_verify=False)
    assert "--dest-tls-verify=false" in insecure


def _real_busybox():
    path = os.path.join(bi.cache_root(), "build", "busybox", "busybox")
    return path if os.path.isfile(path) else None


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("chroot") or _real_busybox() is None,
                    reason="needs root, chroot and the cached busybox-static binary")
def test_run_sh_passes_in_a_chroot(tmp_path):
    rec = bi.build_image("sparse", cache_dir=str(tmp_path / "cache"), overrides=TINY, busybox=_real_busybox())
    root = tmp_path / "root"
    root.mkdir()
    for lyr in rec["layers"]:
        with tarfile.open(_blob(rec["layout"], lyr["digest"]), "r:gz") as t:
            kw = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
            t.extractall(root, **kw)
    r = subprocess.run(["chroot", str(root), "/bin/sh", "/app/run.sh"], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "sparse: read 5 files OK"


def test_stale_temp_dirs_of_dead_builders_are_removed(tmp_path, fake_busybox):
    images = tmp_path / "images"
    images.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = images / (".tmp-sparse-%s-abcd1234" % dead)
    live = images / (".tmp-sparse-%d-efgh5678" % os.getppid())
    stale.mkdir()
    live.mkdir()
    bi.build_image("busybox", cache_dir=str(tmp_path), busybox=fake_busybox)
    assert not stale.exists()
    assert live.exists()
