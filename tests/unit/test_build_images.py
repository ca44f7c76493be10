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
import re
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


# --------------------------------------------------------------------------
# Default selection: llm is opt-in
# --------------------------------------------------------------------------

def test_llm_is_opt_in_and_server_is_default():
    assert bi.default_images() == ["busybox", "sparse", "server"]
    assert bi.selected(None) == ["busybox", "sparse", "server"]
    assert bi.selected(["llm"]) == ["llm"]
    args = bi.make_parser().parse_args(["build", "--only", "llm", "--only", "server"])
    assert bi.selected(args.only) == ["llm", "server"]
    with pytest.raises(SystemExit):
        bi.main(["run"])  # run needs --only


def test_specs_are_json_and_resolve():
    for name in bi.IMAGES:
        spec = bi.resolved_spec(name)
        assert json.loads(bi.canonical_json(spec)) == json.loads(json.dumps(spec))
        assert all(lyr["kind"] in bi.LAYER_KINDS for lyr in spec["layers"])


def test_list_does_not_build_llm(tmp_path, fake_busybox):
    assert bi.main(["list", "--cache", str(tmp_path), "--busybox", fake_busybox]) == 0
    assert not (tmp_path / "llm").exists()


# --------------------------------------------------------------------------
# server
# --------------------------------------------------------------------------

SERVER_TINY = {"files": 4, "file_size": 4096, "read_files": 2}


def test_server_spec_and_layout(tmp_path, fake_busybox):
    rec = bi.build_image("server", cache_dir=str(tmp_path), overrides=SERVER_TINY, busybox=fake_busybox)
    cfg = _config(rec["layout"])
    assert cfg["config"]["Cmd"] == ["/bin/sh", "/app/start.sh"]
    assert cfg["config"]["ExposedPorts"] == {"8080/tcp": {}}
    labels = cfg["config"]["Labels"]
    assert labels["lazypull.image"] == "server"
    assert labels["lazypull.server.port"] == "8080"
    assert labels["lazypull.server.ready-path"] == "/ready"
    assert labels["lazypull.server.startup-delay"] == "2"
    assert labels["lazypull.server.total-bytes"] == str(4 * 4096)
    assert not any(k.startswith("lazypull.sparse.") for k in labels)
    layers = _layer_members(rec["layout"])
    assert len(layers) == 3
    files = {}
    for members in layers:
        files.update({"/" + mem.name: data for mem, data in members if mem.isfile()})
    assert files["/www/ready"] == b"ready\n"
    script = files["/app/start.sh"].decode()
    for p in labels["lazypull.server.read-files"].split(","):
        assert "check %s %s\n" % (p, hashlib.sha256(files[p]).hexdigest()) in script
    bb = {mem.name: mem for mem, _ in layers[0]}
    assert bb["bin/httpd"].issym() and bb["bin/httpd"].linkname == "busybox"
    # the base layer is the busybox image's
    busybox = bi.build_image("busybox", cache_dir=str(tmp_path), busybox=fake_busybox)
    assert busybox["layers"][0]["digest"] == rec["layers"][0]["digest"]


def test_server_start_script():
    params = dict(bi.IMAGES["server"]["params"])
    script, paths = bi.server_start_script(params)
    lines = script.splitlines()
    assert lines[0] == "#!/bin/sh"
    assert len(paths) == 3 and all(p.startswith("/data/l1/") for p in paths)
    assert "sleep 2" in lines
    assert lines[-1] == "exec httpd -f -p 8080 -h /www"
    assert any(line.startswith('echo "server: ready on :8080 ') for line in lines)
    assert lines.index("sleep 2") < len(lines) - 2
    assert max(i for i, line in enumerate(lines) if line.startswith("check /")) < lines.index("sleep 2")
    r = subprocess.run(["sh", "-n"], input=script, text=True, capture_output=True, check=False)
    assert r.returncode == 0, r.stderr


def test_server_delay_param(tmp_path, fake_busybox):
    assert bi.server_delay(2.0) == 2 and isinstance(bi.server_delay(2.0), int)
    assert bi.server_delay(0.5) == 0.5
    for bad in (-1, "2", True, float("nan")):
        with pytest.raises(bi.BuildError):
            bi.server_delay(bad)
    args = bi.make_parser().parse_args(["build", "--server-delay", "5"])
    assert bi.overrides_from_args(args) == {"server": {"startup_delay": 5}}
    with pytest.raises(SystemExit):
        bi.make_parser().parse_args(["build", "--server-delay", "-3"])
    a = bi.build_image("server", cache_dir=str(tmp_path), overrides=dict(SERVER_TINY, startup_delay=5.0),
                       busybox=fake_busybox)
    b = bi.build_image("server", cache_dir=str(tmp_path), overrides=dict(SERVER_TINY, startup_delay=5),
                       busybox=fake_busybox)
    assert b["cached"] is True and a["layout"] == b["layout"]
    assert a["labels"]["lazypull.server.startup-delay"] == "5"


# --------------------------------------------------------------------------
# llm: spec and scripts (the heavy build is not unit-tested)
# --------------------------------------------------------------------------

LLM = bi.IMAGES["llm"]


def test_llm_spec():
    spec = bi.resolved_spec("llm")
    assert spec["default"] is False and spec["tag"] == "1"
    assert [lyr["kind"] for lyr in spec["layers"]] == ["stage-tree", "stage-tree", "stage-tree", "llm-app"]
    assert [lyr.get("stage") for lyr in spec["layers"]] == ["rootfs", "packages", "model", None]
    cfg = spec["config"]
    assert cfg["Cmd"] == ["/app/entrypoint.sh"]
    assert cfg["Env"][0].startswith("PATH=/opt/venv/bin:")
    assert cfg["Labels"] == {"lazypull.image": "llm"}
    p = spec["params"]
    assert p["suite"] == "bookworm" and p["variant"] == "minbase"
    assert set(p["debs"]) == {"python3", "python3-venv", "ca-certificates"}
    assert p["model"]["config"] == {
        "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
        "num_key_value_heads": 2, "vocab_size": 151936, "tie_word_embeddings": True,
        "max_position_embeddings": 32768}
    assert p["model"]["dtype"] == "bfloat16" and p["model"]["tokenizer_vocab"] == 16384
    assert p["max_new_tokens"] == 20
    # every lock entry is pinned, once; the requirements are in it
    names = [bi._req_name(r)[0] for r in p["lock"]]
    assert len(names) == len(set(names)) and all(bi._req_name(r)[1] for r in p["lock"])
    pins = bi.llm_pins(p)
    assert [x.split("==")[0] for x in pins] == ["torch", "transformers", "tokenizers", "safetensors"]
    assert bi._wheel_name("nvidia_cudnn_cu13-9.24.0.43-py3-none-manylinux_2_27_x86_64.whl") == \
        ("nvidia-cudnn-cu13", "9.24.0.43")


def test_llm_params_are_checked():
    p = copy_params()
    p["lock"] = [r.split("==")[0] if r.startswith("torch==") else r for r in p["lock"]]
    with pytest.raises(bi.BuildError, match="pin"):
        bi._check_llm(p)
    p = copy_params()
    p["lock"] = [r for r in p["lock"] if not r.startswith("safetensors==")]
    with pytest.raises(bi.BuildError, match="safetensors"):
        bi._check_llm(p)
    p = copy_params()
    p["model"]["path"] = "models/x"
    with pytest.raises(bi.BuildError):
        bi._check_llm(p)


def copy_params():
    return json.loads(json.dumps(LLM["params"]))


def test_llm_app_layer_and_labels():
    plans, labels = bi.kind_llm_app({}, LLM["params"], {"kind": "llm-app"})
    entries = {e["path"]: e for e in plans[0]["entries"]}
    assert set(entries) == {"app/run.py", "app/entrypoint.sh"}
    assert all(e["mode"] == 0o755 for e in entries.values())
    assert labels["lazypull.llm.expected-output"] == "lazypull-llm: done"
    assert labels["lazypull.llm.model"] == "/models/qwen2-0.5b-random"
    assert labels["lazypull.llm.milestones"].split(",") == [
        "lazypull-llm: start", "lazypull-llm: imported", "lazypull-llm: model loaded",
        "lazypull-llm: first token", "lazypull-llm: generated", "lazypull-llm: done"]


FAKE_TORCH = "__version__ = '0.0-fake'\nfloat32 = 'torch.float32'\n"
FAKE_TRANSFORMERS = '''
import json, os
__version__ = os.environ["FAKE_TRANSFORMERS_VERSION"]


def pipeline(task, model=None, **kw):
    print("FAKE pipeline " + json.dumps({"task": task, "model": model, "kw": sorted(kw)}), flush=True)

    def run(prompt, streamer=None, **gen):
        print("FAKE generate " + json.dumps({"prompt": prompt, "gen": {k: gen[k] for k in sorted(gen)}},
                                            ensure_ascii=False), flush=True)
        streamer.put(Ids(7))
        for _ in range(gen["max_new_tokens"]):
            streamer.put(Ids(1))
        streamer.end()
        return [{"generated_text": " fake"}]
    return run


class Ids:
    def __init__(self, n):
        self.n = n

    def numel(self):
        return self.n
'''


@pytest.mark.parametrize("version,dtype_kw", [("5.25.0", "dtype"), ("4.57.6", "torch_dtype")])
def test_llm_run_py_milestones(tmp_path, version, dtype_kw):
    (tmp_path / "torch.py").write_text(FAKE_TORCH)
    pkg = tmp_path / "transformers"
    (pkg / "generation").mkdir(parents=True)
    (pkg / "__init__.py").write_text(FAKE_TRANSFORMERS)
    (pkg / "generation" / "__init__.py").write_text("")
    (pkg / "generation" / "streamers.py").write_text("class BaseStreamer:\n    pass\n")
    run_py = tmp_path / "run.py"
    run_py.write_text(bi.llm_run_script(LLM["params"]), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(tmp_path), FAKE_TRANSFORMERS_VERSION=version, PYTHONIOENCODING="utf-8")
    r = subprocess.run([sys.executable, str(run_py)], env=env, capture_output=True, text=True,
                       encoding="utf-8", check=False)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    fake = {line.split()[1]: json.loads(line.split(" ", 2)[2]) for line in lines if line.startswith("FAKE ")}
    assert fake["pipeline"] == {"task": "text-generation", "model": "/models/qwen2-0.5b-random", "kw": [dtype_kw]}
    gen = fake["generate"]["gen"]
    assert gen["max_new_tokens"] == 20 and gen["do_sample"] is False
    assert fake["generate"]["prompt"] == LLM["params"]["prompt"]
    marks = [line for line in lines if line.startswith("lazypull-llm: ")]
    order = ["imported", "model loaded", "first token", "generated", "text"]
    assert [next(o for o in order if m.startswith("lazypull-llm: " + o)) for m in marks] == order
    assert marks[3].endswith(" tokens=20")
    assert re.match(r"lazypull-llm: imported \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \+\d+\.\d\ds", marks[0])
    assert marks[4] == 'lazypull-llm: text " fake"'


def _fake_venv(tmp_path, body):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    py = venv / "bin" / "python"
    py.write_text("#!/bin/sh\n" + body)
    py.chmod(0o755)
    params = dict(LLM["params"], venv=str(venv))
    ep = tmp_path / "entrypoint.sh"
    ep.write_text(bi.llm_entrypoint_script(params))
    ep.chmod(0o755)
    return ep


@pytest.mark.skipif(not shutil.which("bash"), reason="needs bash")
def test_llm_entrypoint(tmp_path):
    script = bi.llm_entrypoint_script(LLM["params"])
    assert script.startswith("#!/bin/bash\n")
    assert "time /opt/venv/bin/python /app/run.py" in script
    assert subprocess.run(["bash", "-n"], input=script, text=True, check=False).returncode == 0
    ts = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    # `cd /app` fails outside the image: run it from a copy with /app replaced
    ok = _fake_venv(tmp_path, 'echo "python $*"\n')
    ok.write_text(ok.read_text().replace("cd /app", "cd %s" % tmp_path))
    r = subprocess.run([str(ok)], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert re.fullmatch("lazypull-llm: start " + ts, out[0])
    assert out[1] == "python /app/run.py"
    assert re.fullmatch("lazypull-llm: done " + ts, out[-1])
    assert "real" in r.stderr  # bash's `time`
    bad = _fake_venv(tmp_path / "bad", "exit 3\n")
    bad.write_text(bad.read_text().replace("cd /app", "cd %s" % tmp_path))
    r = subprocess.run([str(bad)], capture_output=True, text=True, check=False)
    assert r.returncode == 3
    assert re.fullmatch("lazypull-llm: failed rc=3 " + ts, r.stdout.splitlines()[-1])
    assert "lazypull-llm: done" not in r.stdout


# --------------------------------------------------------------------------
# Trees as layers (the llm stages), pyc fix-up, stage cache
# --------------------------------------------------------------------------

def _tree(tmp_path):
    root = tmp_path / "root"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "dev").mkdir()
    os.mkfifo(root / "dev" / "fifo")
    (root / "dev" / "x").write_text("not in the layer")
    (root / "usr" / "bin" / "su").write_bytes(b"suid")
    os.chmod(root / "usr" / "bin" / "su", 0o4755)
    (root / "usr" / "bin" / "perl5.36").write_bytes(b"perl")
    os.link(root / "usr" / "bin" / "perl5.36", root / "usr" / "bin" / "perl")
    os.symlink("perl", root / "usr" / "bin" / "perl5")
    os.symlink("usr/bin", root / "bin")
    (root / "opt").mkdir(mode=0o700)
    os.chmod(root / "opt", 0o700)
    os.mkfifo(root / "opt" / "fifo")
    return root


def test_tree_entries_keep_modes_links_and_hardlinks(tmp_path):
    root = _tree(tmp_path)
    entries = bi.complete_entries(bi.tree_entries(str(root), ("dev",)))
    by = {e["path"]: e for e in entries}
    assert set(by) == {"bin", "dev", "opt", "usr", "usr/bin", "usr/bin/su", "usr/bin/perl",
                       "usr/bin/perl5", "usr/bin/perl5.36"}
    assert by["usr/bin/su"]["mode"] == 0o4755
    assert by["opt"]["mode"] == 0o700
    assert by["bin"] == {"path": "bin", "type": "symlink", "mode": 0o777, "target": "usr/bin"}
    assert by["usr/bin/perl"]["type"] == "file"  # sorts before perl5.36
    assert by["usr/bin/perl5.36"] == {"path": "usr/bin/perl5.36", "type": "hardlink", "mode": 0o644,
                                      "target": "usr/bin/perl"}
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    info = bi.write_layer(entries, str(blobs))
    with tarfile.open(blobs / info["digest"].split(":", 1)[1], "r:gz") as t:
        mem = {m.name: m for m in t.getmembers()}
        assert mem["usr/bin/perl5.36"].islnk() and mem["usr/bin/perl5.36"].linkname == "usr/bin/perl"
        assert mem["usr/bin/su"].mode == 0o4755
        assert t.extractfile("usr/bin/perl").read() == b"perl"
        assert all(m.mtime == bi.EPOCH and m.uid == 0 for m in mem.values())


def test_tree_digest_follows_content_and_modes(tmp_path):
    root = _tree(tmp_path)
    d1 = bi.tree_digest(str(root), ("dev",))
    assert d1 == bi.tree_digest(str(root), ("dev",))
    (root / "dev" / "y").write_text("ignored")
    assert d1 == bi.tree_digest(str(root), ("dev",))
    os.chmod(root / "usr" / "bin" / "su", 0o755)
    d2 = bi.tree_digest(str(root), ("dev",))
    assert d2 != d1
    (root / "usr" / "bin" / "su").write_bytes(b"SUID")
    assert bi.tree_digest(str(root), ("dev",)) not in (d1, d2)


def test_hardlink_entries_are_validated():
    with pytest.raises(bi.BuildError):
        bi.complete_entries([bi.hardlink_entry("a", "b")])  # target missing
    with pytest.raises(bi.BuildError):
        bi.complete_entries([bi.file_entry("b", b"x"), bi.hardlink_entry("a", "b")])  # sorts after
    out = bi.complete_entries([bi.file_entry("a", b"x"), bi.hardlink_entry("b", "a")])
    assert [e["type"] for e in out] == ["file", "hardlink"]


def test_fix_pyc_mtimes(tmp_path):
    import importlib.util as ilu
    import py_compile
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    srcs = {}
    for name in ("fresh", "hashed", "stale"):
        src = pkg / (name + ".py")
        src.write_text("X = %r\n" % name)
        os.utime(src, (1_700_000_000, 1_700_000_000))
        mode = py_compile.PycInvalidationMode.CHECKED_HASH if name == "hashed" else \
            py_compile.PycInvalidationMode.TIMESTAMP
        srcs[name] = Path(py_compile.compile(str(src), cfile=ilu.cache_from_source(str(src)),
                                             invalidation_mode=mode, doraise=True))
    before = {n: p.read_bytes() for n, p in srcs.items()}
    (pkg / "stale.py").write_text("X = 'changed'\n")
    assert bi.fix_pyc_mtimes(str(tmp_path)) == 1
    after = {n: p.read_bytes() for n, p in srcs.items()}
    assert after["hashed"] == before["hashed"] and after["stale"] == before["stale"]
    assert after["fresh"][:8] == before["fresh"][:8] and after["fresh"][12:] == before["fresh"][12:]
    assert int.from_bytes(after["fresh"][8:12], "little") == bi.EPOCH
    # as unpacked from a layer (mtime EPOCH), Python accepts the pyc as is
    os.utime(pkg / "fresh.py", (bi.EPOCH, bi.EPOCH))
    mtime_before = srcs["fresh"].stat().st_mtime_ns
    subprocess.run([sys.executable, "-c", "import pkg.fresh"], cwd=tmp_path, check=True,
                   env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"})
    assert srcs["fresh"].stat().st_mtime_ns == mtime_before  # not recompiled
    assert srcs["fresh"].read_bytes() == after["fresh"]


def test_stage_cache(tmp_path):
    calls = []

    def builder(tmp):
        calls.append(tmp)
        os.makedirs(os.path.join(tmp, "root", "x"))
        return {"digest": "d%d" % len(calls)}

    key = bi._stage_key("model", {"a": 1})
    assert bi._ensure_stage(str(tmp_path), "model", key, builder, download=False) is None
    rec = bi._ensure_stage(str(tmp_path), "model", key, builder, download=True)
    assert rec["digest"] == "d1" and rec["path"] == bi._stage_path(str(tmp_path), "model", key)
    assert os.path.isdir(os.path.join(rec["path"], "root", "x"))
    again = bi._ensure_stage(str(tmp_path), "model", key, builder, download=True)
    assert again["digest"] == "d1" and len(calls) == 1
    assert bi._ensure_stage(str(tmp_path), "model", key, builder, download=False)["digest"] == "d1"
    other = bi._stage_key("model", {"a": 2})
    assert other != key
    assert bi._ensure_stage(str(tmp_path), "model", other, builder, download=True)["digest"] == "d2"

    def failing(tmp):
        raise bi.BuildError("boom")

    with pytest.raises(bi.BuildError):
        bi._ensure_stage(str(tmp_path), "rootfs", key, failing, download=True)
    assert not [d for d in os.listdir(tmp_path / "llm") if d.startswith(".")]


def test_stage_tree_kind(tmp_path):
    root = _tree(tmp_path)
    ctx = {"stages": {"rootfs": {"path": str(tmp_path), "digest": "0" * 64, "empty_dirs": ["dev"]}}}
    plans, labels = bi.kind_stage_tree(ctx, {}, {"kind": "stage-tree", "stage": "rootfs", "created_by": "FROM x"})
    assert labels == {} and plans[0]["created_by"] == "FROM x"
    paths = {e["path"] for e in plans[0]["entries"]}
    assert "dev" in paths and "dev/x" not in paths and "usr/bin/su" in paths
    assert root.is_dir()


def test_debian_mirror_override(monkeypatch):
    monkeypatch.setenv("LAZYPULL_DEBIAN_MIRROR", "file:///srv/debian/")
    assert bi.debian_mirror() == "file:///srv/debian"
