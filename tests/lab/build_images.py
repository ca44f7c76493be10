"""Build the lab's workload images without docker, as OCI image layouts.

Stdlib only, Python >= 3.9.  Every image is written as an OCI image layout
(``oci-layout``, ``index.json``, ``blobs/sha256/...``) that skopeo, ctr,
ctr-remote and soci can consume, and it is *deterministic*: the same spec and
the same inputs give byte-identical blobs and therefore the same digests
(fixed mtimes, uid/gid 0, sorted tar entries, a tar entry for every parent
directory, gzip level 6 with a zero mtime and a fixed header).

Layouts are cached under ``${LAZYPULL_CACHE:-/var/cache/lazypull}/images/``
as ``<name>-<recipehash[:16]>/``, where the recipe hash covers the image spec
(after command-line overrides), this file's own source and the digests of
external inputs (the busybox binary; the llm image's prepared stages).  A
layout is written into a temporary
directory next to its final place and renamed into place when complete; a
layout whose ``build.json`` exists and whose blobs are all present is reused.

Images: ``busybox``, ``sparse`` and ``server`` are small and built by default
(CI).  ``llm`` (the seed's workload, ~4 GB compressed) is opt-in: only
``--only llm`` builds it; it needs root, mmdebstrap, python3.11, network to
Debian and PyPI once (then offline from <cache>/llm/) and ~20 GB of disk.

Usage::

    build_images.py build [--only NAME] [--sparse-layers N --sparse-files M
                          --sparse-file-size BYTES --sparse-read-files R]
                          [--server-delay SECONDS]
    build_images.py push --registry HOST:PORT [--cert-dir DIR | --tls-verify=false]
                         [--authfile FILE] [--only NAME] [--repo-prefix lazypull]
    build_images.py list
    build_images.py run --only NAME [--timeout S] [--keep]   # chroot smoke test (root)

``build``, ``push`` and ``run`` print JSON on stdout; progress goes to stderr.

Environment:
    LAZYPULL_CACHE    cache root (default /var/cache/lazypull)
    LAZYPULL_BUSYBOX  use this (static, amd64) busybox binary instead of the
                      one from Debian's busybox-static package (unit tests use
                      a fake file here so they need no apt)
    LAZYPULL_DEBIAN_MIRROR  Debian archive URI for the llm rootfs (default:
                      the one in /etc/apt/sources.list*)

The module can be imported by path (tests/lab is not a package)::

    spec = importlib.util.spec_from_file_location("build_images", PATH)
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    mod.build_image("sparse", cache_dir=..., overrides={...}, busybox=...)

To add an image, add an entry to ``IMAGES``; to add a new kind of layer,
write a function ``(ctx, params, layer_spec) -> (plans, labels)`` and register
it in ``LAYER_KINDS``.
"""

from __future__ import annotations

import argparse
import copy
import errno
import hashlib
import io
import json
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

# --------------------------------------------------------------------------
# Image specs: one data structure, easy to extend.  Specs must stay
# JSON-serialisable: they are hashed into the cache key.
# --------------------------------------------------------------------------

MiB = 1024 * 1024

IMAGES = {
    "busybox": {
        "tag": "1",
        "platform": {"os": "linux", "architecture": "amd64"},
        "params": {},
        "layers": [
            {"kind": "busybox-base"},
        ],
        "config": {
            "Env": ["PATH=/bin"],
            "Cmd": ["/bin/echo", "hello from lazypull busybox"],
            "WorkingDir": "/",
            "Labels": {"lazypull.image": "busybox"},
        },
    },
    "sparse": {
        "tag": "1",
        "platform": {"os": "linux", "architecture": "amd64"},
        # Overridable from the command line (--sparse-*).
        "params": {
            "layers": 3,          # number of data layers
            "files": 100,         # files per data layer
            "file_size": 1 * MiB,  # bytes per file (incompressible)
            "read_files": 5,      # files read by /app/run.sh, spread over layers
            "seed": "lazypull-sparse-v1",
        },
        "layers": [
            {"kind": "busybox-base"},   # byte-identical to the busybox image's layer
            {"kind": "sparse-data"},    # expands to params.layers layers
            {"kind": "sparse-app"},
        ],
        "config": {
            "Env": ["PATH=/bin"],
            "Cmd": ["/bin/sh", "/app/run.sh"],
            "WorkingDir": "/",
            "Labels": {"lazypull.image": "sparse"},
        },
    },
    # A small HTTP server whose readiness is measured by URL: the start script
    # reads a few files of a data layer, sleeps a warm-up delay, then serves
    # /www with busybox httpd.  Built by default (it is for CI).
    "server": {
        "tag": "1",
        "platform": {"os": "linux", "architecture": "amd64"},
        "params": {
            "startup_delay": 2,    # seconds of simulated warm-up (--server-delay)
            "layers": 1,           # data layers, as in sparse
            "files": 20,
            "file_size": 1 * MiB,
            "read_files": 3,       # files read (and checked) during warm-up
            "seed": "lazypull-server-v1",
        },
        "layers": [
            {"kind": "busybox-base"},   # byte-identical to the busybox image's layer
            {"kind": "sparse-data", "label_prefix": "lazypull.server"},
            {"kind": "server-app"},
        ],
        "config": {
            "Env": ["PATH=/bin"],
            "Cmd": ["/bin/sh", "/app/start.sh"],
            "WorkingDir": "/",
            "ExposedPorts": {"8080/tcp": {}},
            "Labels": {"lazypull.image": "server"},
        },
    },
    # The seed's workload (transformers text-generation pipeline on a model of
    # Qwen2-0.5B-Instruct's shape with random weights), built offline from a
    # Debian rootfs, a pip wheelhouse and a locally generated model.  Opt-in:
    # ~4 GB compressed, needs root, mmdebstrap, python3.11 and ~20 GB of cache.
    "llm": {
        "tag": "1",
        "default": False,   # only `build --only llm`
        "platform": {"os": "linux", "architecture": "amd64"},
        "params": {
            "suite": "bookworm",
            "variant": "minbase",
            "debs": ["python3", "python3-venv", "ca-certificates"],
            "venv": "/opt/venv",
            # What the Dockerfile asks for ...
            "requirements": ["torch", "transformers", "tokenizers", "safetensors"],
            # ... and what pip chose for it (python 3.11, x86_64, plain `torch`
            # from PyPI = the CUDA build with the nvidia-* wheels, like the
            # seed's image).  Changing a pin changes the recipe.
            "lock": [
                "annotated-doc==0.0.7", "annotated-types==0.8.0", "anyio==4.16.0",
                "click==8.5.1", "cuda-bindings==13.5.0", "cuda-pathfinder==1.9.1",
                "cuda-toolkit==13.0.3.0", "filelock==4.3.2", "fsspec==2026.9.0",
                "h11==0.16.0", "hf-xet==1.8.0", "httpcore2==2.17.0", "httpx2==2.17.0",
                "huggingface-hub==2.4.0", "idna==3.20", "jinja2==3.1.6",
                "kernels==0.19.1", "markdown-it-py==4.3.0", "markupsafe==3.0.4",
                "mdurl==0.1.2", "mpmath==1.3.0", "networkx==3.6.1", "numpy==2.4.6",
                "nvidia-cublas==13.1.1.3", "nvidia-cuda-cupti==13.0.85",
                "nvidia-cuda-nvrtc==13.0.88", "nvidia-cuda-runtime==13.0.96",
                "nvidia-cudnn-cu13==9.24.0.43", "nvidia-cufft==12.0.0.61",
                "nvidia-cufile==1.15.1.6", "nvidia-curand==10.4.0.35",
                "nvidia-cusolver==12.0.4.66", "nvidia-cusparse==12.6.3.3",
                "nvidia-cusparselt-cu13==0.8.1", "nvidia-nccl-cu13==2.30.7",
                "nvidia-nvjitlink==13.5.37", "nvidia-nvshmem-cu13==3.4.5",
                "nvidia-nvtx==13.0.85", "packaging==26.4", "pydantic==2.14.4",
                "pydantic-core==2.50.5", "pygments==2.21.0", "pyyaml==6.0.4",
                "regex==2026.12.2", "rich==15.0.0", "safetensors==0.8.0",
                "setuptools==84.2.1", "shellingham==1.5.4", "sympy==1.14.0",
                "tokenizers==0.23.3", "tomlkit==0.15.3", "torch==2.14.1",
                "tqdm==4.70.1", "transformers==5.25.0", "triton==3.8.0",
                "truststore==0.10.5", "typer==0.29.2", "typing-extensions==4.16.0",
                "typing-inspection==0.4.5",
            ],
            "model": {
                "path": "/models/qwen2-0.5b-random",
                # Qwen2-0.5B-Instruct's architecture and size, random weights.
                "config": {
                    "hidden_size": 896, "intermediate_size": 4864,
                    "num_hidden_layers": 24, "num_attention_heads": 14,
                    "num_key_value_heads": 2, "vocab_size": 151936,
                    "tie_word_embeddings": True, "max_position_embeddings": 32768,
                },
                "dtype": "bfloat16",
                "seed": 0,
                # Byte-level BPE trained locally on the pinned transformers
                # wheel's own Python sources (no download, no chat template).
                "tokenizer_vocab": 16384,
                "corpus_bytes": 8 * MiB,
            },
            # The seed's prompt was Japanese; so is this one.
            "prompt": "コンテナイメージの遅延プルについて簡単に説明してください。",
            "max_new_tokens": 20,
        },
        "layers": [
            {"kind": "stage-tree", "stage": "rootfs",
             "created_by": "FROM scratch: mmdebstrap --variant=minbase --include=python3,python3-venv,"
                           "ca-certificates bookworm"},
            {"kind": "stage-tree", "stage": "packages",
             "created_by": "RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir "
                           "torch transformers tokenizers safetensors (pinned)"},
            {"kind": "stage-tree", "stage": "model",
             "created_by": "RUN save_pretrained Qwen2 0.5B-shaped random bf16 model + local BPE tokenizer "
                           "to /models/qwen2-0.5b-random"},
            {"kind": "llm-app"},
        ],
        "config": {
            "Env": ["PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "LANG=C.UTF-8", "PYTHONUNBUFFERED=1", "HF_HUB_OFFLINE=1", "TRANSFORMERS_OFFLINE=1"],
            "Cmd": ["/app/entrypoint.sh"],
            "WorkingDir": "/app",
            "Labels": {"lazypull.image": "llm"},
        },
    },
}

# Command-line flags that override spec params: flag dest -> (image, param).
PARAM_FLAGS = {
    "sparse_layers": ("sparse", "layers"),
    "sparse_files": ("sparse", "files"),
    "sparse_file_size": ("sparse", "file_size"),
    "sparse_read_files": ("sparse", "read_files"),
    "server_delay": ("server", "startup_delay"),
}

BUSYBOX_APPLETS = (
    "sh", "echo", "cat", "ls", "sleep", "head", "sha256sum", "wc", "true",
    "date", "env", "mkdir", "httpd", "wget",
)

CREATED = "2025-01-01T00:00:00Z"
EPOCH = 1735689600  # CREATED as a Unix timestamp; every tar entry's mtime
GZIP_LEVEL = 6
COPY_BUFSIZE = 1 * MiB

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
ANN_REF_NAME = "org.opencontainers.image.ref.name"

DEFAULT_CACHE = "/var/cache/lazypull"
BUILD_RECORD = "build.json"


class BuildError(Exception):
    """A clear, user-facing build/push failure."""


def log(msg: str) -> None:
    print("[build_images] " + msg, file=sys.stderr, flush=True)


def cache_root(cache_dir: str | None = None) -> str:
    return os.path.abspath(cache_dir or os.environ.get("LAZYPULL_CACHE") or DEFAULT_CACHE)


def canonical_json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(COPY_BUFSIZE), b""):
            h.update(chunk)
    return h.hexdigest()


def builder_source_digest() -> str:
    with open(os.path.abspath(__file__), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# --------------------------------------------------------------------------
# Layer entries
# --------------------------------------------------------------------------
# An entry is a dict: {"path": "bin/busybox", "type": "file"|"dir"|"symlink"|
#  "hardlink", "mode": int, and for files "size" plus "data" (bytes) or "open"
#  (callable returning a binary file-like object with .read(n)); for symlinks
#  "target" (link text); for hardlinks "target" (layer path of a file entry
#  that sorts before it)}.

def dir_entry(path: str, mode: int = 0o755) -> dict:
    return {"path": _norm(path), "type": "dir", "mode": mode}


def file_entry(path: str, data: bytes | None = None, mode: int = 0o644,
               size: int | None = None, opener=None) -> dict:
    if data is not None:
        return {"path": _norm(path), "type": "file", "mode": mode, "size": len(data), "data": data}
    if opener is None or size is None:
        raise ValueError("file_entry needs data, or opener and size")
    return {"path": _norm(path), "type": "file", "mode": mode, "size": size, "open": opener}


def symlink_entry(path: str, target: str) -> dict:
    return {"path": _norm(path), "type": "symlink", "mode": 0o777, "target": target}


def hardlink_entry(path: str, target: str, mode: int = 0o644) -> dict:
    return {"path": _norm(path), "type": "hardlink", "mode": mode, "target": _norm(target)}


def _norm(path: str) -> str:
    p = path.strip("/")
    while p.startswith("./"):
        p = p[2:]
    parts = [x for x in p.split("/") if x not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError("bad layer path: %r" % path)
    return "/".join(parts)


def _entry_sort_key(path: str):
    # Component-wise sort: a directory precedes its contents, and all of a
    # directory's contents are contiguous.
    return tuple(path.split("/"))


def complete_entries(entries: list[dict]) -> list[dict]:
    """Add a directory entry for every missing parent directory and sort.

    Trap from the lab: ``ctr-remote image optimize`` fails with
    ``failed to sort tar entries: file: "opt": not found`` when a layer lacks
    the entry of a parent directory, so every layer carries all of them.
    """
    by_path: dict[str, dict] = {}
    for e in entries:
        p = e["path"]
        if p in by_path:
            old = by_path[p]
            if old["type"] == "dir" and e["type"] == "dir" and old["mode"] == e["mode"]:
                continue
            raise BuildError("duplicate layer entry %r" % p)
        by_path[p] = e
    for p in list(by_path):
        parts = p.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            pe = by_path.get(parent)
            if pe is None:
                by_path[parent] = dir_entry(parent)
            elif pe["type"] != "dir":
                raise BuildError("%r is a parent of %r but not a directory" % (parent, p))
    for p, e in by_path.items():
        if e["type"] == "hardlink":
            t = by_path.get(e["target"])
            if t is None or t["type"] != "file" or _entry_sort_key(e["target"]) >= _entry_sort_key(p):
                raise BuildError("hardlink %r: target %r must be a file entry that sorts before it"
                                 % (p, e["target"]))
    return [by_path[p] for p in sorted(by_path, key=_entry_sort_key)]


# --------------------------------------------------------------------------
# Deterministic tar+gzip layer writer
# --------------------------------------------------------------------------

class _GzipLayerSink:
    """File-like sink for tarfile: hashes the tar stream (diff_id), gzips it
    with a fixed header (mtime 0, no name, OS=255, level 6) into ``out`` and
    hashes the compressed bytes (blob digest)."""

    def __init__(self, out):
        self._out = out
        self._tar_sha = hashlib.sha256()
        self._tar_size = 0
        self._crc = 0
        self._gz_sha = hashlib.sha256()
        self._gz_size = 0
        self._z = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS, 8, zlib.Z_DEFAULT_STRATEGY)
        # ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=255 (same bytes as
        # Python's GzipFile writes for level 6 and mtime=0, but pinned here).
        self._emit(b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x00\xff")

    def _emit(self, b: bytes) -> None:
        if b:
            self._gz_sha.update(b)
            self._gz_size += len(b)
            self._out.write(b)

    def write(self, b) -> int:
        b = bytes(b) if not isinstance(b, bytes) else b
        self._tar_sha.update(b)
        self._tar_size += len(b)
        self._crc = zlib.crc32(b, self._crc)
        self._emit(self._z.compress(b))
        return len(b)

    def tell(self) -> int:
        return self._tar_size

    def flush(self) -> None:
        pass

    def finish(self) -> dict:
        self._emit(self._z.flush(zlib.Z_FINISH))
        self._emit(struct.pack("<II", self._crc & 0xFFFFFFFF, self._tar_size & 0xFFFFFFFF))
        return {
            "digest": "sha256:" + self._gz_sha.hexdigest(),
            "size": self._gz_size,
            "diff_id": "sha256:" + self._tar_sha.hexdigest(),
            "uncompressed_size": self._tar_size,
        }


def _tarinfo(e: dict) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(e["path"])
    ti.mtime = EPOCH
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    ti.mode = e["mode"]
    if e["type"] == "dir":
        ti.type = tarfile.DIRTYPE
    elif e["type"] == "symlink":
        ti.type = tarfile.SYMTYPE
        ti.linkname = e["target"]
    elif e["type"] == "hardlink":
        ti.type = tarfile.LNKTYPE
        ti.linkname = e["target"]
    elif e["type"] == "file":
        ti.type = tarfile.REGTYPE
        ti.size = e["size"]
    else:
        raise BuildError("unknown entry type %r" % e["type"])
    return ti


def write_layer(entries: list[dict], blobs_dir: str) -> dict:
    """Write one layer blob into ``blobs_dir`` (…/blobs/sha256) and return
    its descriptor facts (digest, size, diff_id, uncompressed_size)."""
    entries = complete_entries(entries)
    fd, tmp = tempfile.mkstemp(prefix=".layer-", dir=blobs_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            sink = _GzipLayerSink(out)
            tar = tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT,
                               encoding="utf-8", copybufsize=COPY_BUFSIZE)
            for e in entries:
                ti = _tarinfo(e)
                if e["type"] != "file":
                    tar.addfile(ti)
                elif "data" in e:
                    tar.addfile(ti, io.BytesIO(e["data"]))
                else:
                    with e["open"]() as f:
                        tar.addfile(ti, f)
            tar.close()
            info = sink.finish()
        final = os.path.join(blobs_dir, info["digest"].split(":", 1)[1])
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; blobs must be readable by other users
        os.replace(tmp, final)
        tmp = None
        return info
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def write_blob(data: bytes, blobs_dir: str) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(blobs_dir, digest)
    with open(path, "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)


# --------------------------------------------------------------------------
# Deterministic incompressible data
# --------------------------------------------------------------------------

DATA_CHUNK = 1 * MiB


def data_chunks(seed: str, size: int):
    """Yield ``size`` bytes of incompressible pseudo-random data derived from
    ``seed``: SHAKE-256 of "<seed>/<chunk index>" per 1 MiB chunk.  Stable
    across Python versions (unlike random.randbytes) and ~200 MB/s."""
    i = 0
    left = size
    while left > 0:
        n = min(DATA_CHUNK, left)
        yield hashlib.shake_256(("%s/%d" % (seed, i)).encode("utf-8")).digest(n)
        left -= n
        i += 1


class _ChunkReader(io.RawIOBase):
    def __init__(self, chunks):
        self._it = iter(chunks)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            out = self._buf + b"".join(self._it)
            self._buf = b""
            return out
        while len(self._buf) < n:
            nxt = next(self._it, None)
            if nxt is None:
                break
            self._buf = self._buf + nxt if self._buf else nxt
        out, self._buf = self._buf[:n], self._buf[n:]
        return out


def data_digest(seed: str, size: int) -> str:
    h = hashlib.sha256()
    for c in data_chunks(seed, size):
        h.update(c)
    return h.hexdigest()


# --------------------------------------------------------------------------
# busybox binary (Debian busybox-static)
# --------------------------------------------------------------------------

def resolve_busybox(cache_dir: str, override: str | None = None, download: bool = True) -> dict | None:
    """Return {"path", "sha256", "source", "version"} for the busybox binary.

    Order: ``override`` argument, $LAZYPULL_BUSYBOX, the cached binary under
    <cache>/build/busybox/, else ``apt-get download busybox-static`` +
    ``dpkg-deb -x`` (only if ``download``; otherwise return None)."""
    override = override or os.environ.get("LAZYPULL_BUSYBOX")
    if override:
        if not os.path.isfile(override):
            raise BuildError("busybox override %r is not a file" % override)
        return {"path": os.path.abspath(override), "sha256": sha256_file(override),
                "source": "override", "version": None}
    bdir = os.path.join(cache_dir, "build", "busybox")
    binary = os.path.join(bdir, "busybox")
    meta_path = os.path.join(bdir, "busybox.json")
    if os.path.isfile(binary) and os.path.isfile(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        digest = sha256_file(binary)
        if digest == meta.get("sha256"):
            return {"path": binary, "sha256": digest, "source": "debian",
                    "version": meta.get("version")}
        log("cached busybox does not match its record; fetching it again")
    if not download:
        return None
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=False)
    if arch.returncode != 0 or arch.stdout.strip() != "amd64":
        raise BuildError("the images are linux/amd64 but this host's dpkg architecture is %r; "
                         "set LAZYPULL_BUSYBOX to a static amd64 busybox" % arch.stdout.strip())
    os.makedirs(bdir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=bdir) as tmp:
        log("apt-get download busybox-static")
        # APT::Sandbox::User=root: the temp dir is not readable by _apt.
        r = subprocess.run(["apt-get", "download", "-o", "APT::Sandbox::User=root", "busybox-static"],
                           cwd=tmp, capture_output=True, text=True, check=False)
        debs = [x for x in os.listdir(tmp) if x.endswith(".deb")]
        if r.returncode != 0 or len(debs) != 1:
            raise BuildError("apt-get download busybox-static failed (rc=%d): %s\n"
                             "hint: run `apt-get update`, or set LAZYPULL_BUSYBOX"
                             % (r.returncode, (r.stderr or r.stdout).strip()))
        deb = os.path.join(tmp, debs[0])
        version = subprocess.run(["dpkg-deb", "-f", deb, "Version"], capture_output=True,
                                 text=True, check=True).stdout.strip()
        subprocess.run(["dpkg-deb", "-x", deb, os.path.join(tmp, "x")], check=True)
        src = os.path.join(tmp, "x", "bin", "busybox")
        if not os.path.isfile(src):
            raise BuildError("busybox-static %s has no /bin/busybox" % version)
        digest = sha256_file(src)
        os.chmod(src, 0o755)
        os.replace(src, binary)
        with open(meta_path + ".tmp", "w") as f:
            json.dump({"package": "busybox-static", "version": version, "sha256": digest,
                       "deb": debs[0]}, f, indent=1, sort_keys=True)
        os.replace(meta_path + ".tmp", meta_path)
    log("busybox-static %s cached at %s" % (version, binary))
    return {"path": binary, "sha256": digest, "source": "debian", "version": version}


# --------------------------------------------------------------------------
# Layer kinds: (ctx, params, layer_spec) -> (list of plans, labels)
# A plan is {"created_by": str, "comment": str, "entries": [entries]}.
# ctx: {"busybox": resolve_busybox() result}
# --------------------------------------------------------------------------

def kind_busybox_base(ctx, params, layer):
    bb = ctx["busybox"]
    path = bb["path"]
    size = os.path.getsize(path)
    entries = [
        dir_entry("bin"),
        file_entry("bin/busybox", mode=0o755, size=size, opener=lambda: open(path, "rb")),
        dir_entry("etc"),
        file_entry("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
        file_entry("etc/group", b"root:x:0:\n"),
        dir_entry("root", 0o700),
        dir_entry("tmp", 0o1777),
    ]
    entries += [symlink_entry("bin/" + a, "busybox") for a in BUSYBOX_APPLETS]
    return ([{"created_by": "COPY busybox-static /bin/busybox + applet symlinks, /etc/passwd, /etc/group, /tmp",
              "comment": "lazypull busybox base layer",
              "entries": entries}], {})


def sparse_file_path(k: int, i: int, files: int) -> str:
    width = max(3, len(str(files - 1)))
    return "data/l%d/f%0*d.bin" % (k, width, i)


def sparse_file_seed(params, k: int, i: int) -> str:
    return "%s/l%d/f%d" % (params["seed"], k, i)


def sparse_read_set(params) -> list[tuple[int, int]]:
    """(layer k 1-based, file index) pairs read by run.sh: spread round-robin
    over the data layers and evenly over the file indexes."""
    n, m = params["layers"], params["files"]
    r = min(params["read_files"], n * m)
    out: list[tuple[int, int]] = []
    i = 0
    while len(out) < r:
        cand = (i % n + 1, (i * m // r) % m)
        j = 0
        while cand in out:  # only for degenerate tiny shapes
            j += 1
            cand = (cand[0], (cand[1] + j) % m)
        out.append(cand)
        i += 1
    return out


def _check_sparse(params, what="sparse"):
    for key in ("layers", "files", "file_size", "read_files"):
        v = params.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < (0 if key == "read_files" else 1):
            raise BuildError("%s param %s must be a positive integer, got %r" % (what, key, v))


def kind_sparse_data(ctx, params, layer):
    """Data layers of incompressible files; also used by the server image
    (``label_prefix`` in the layer spec names its labels)."""
    prefix = layer.get("label_prefix", "lazypull.sparse")
    _check_sparse(params, prefix.rsplit(".", 1)[-1])
    n, m, size = params["layers"], params["files"], params["file_size"]
    plans = []
    for k in range(1, n + 1):
        entries = []
        for i in range(m):
            seed = sparse_file_seed(params, k, i)
            entries.append(file_entry(sparse_file_path(k, i, m), size=size,
                                      opener=(lambda s=seed: _ChunkReader(data_chunks(s, size)))))
        plans.append({"created_by": "COPY data/l%d/ (%d files x %d bytes, incompressible)" % (k, m, size),
                      "comment": "lazypull %s data layer %d/%d" % (prefix.rsplit(".", 1)[-1], k, n),
                      "entries": entries})
    return plans, {prefix + ".total-bytes": str(n * m * size),
                   prefix + ".layers": str(n),
                   prefix + ".files-per-layer": str(m),
                   prefix + ".file-size": str(size)}


def _check_lines(params, who: str) -> tuple[list[str], list[str]]:
    """Shell lines defining check() and checking the read set of ``params``
    against the files' real sha256; and the paths read."""
    reads = sparse_read_set(params)
    paths = ["/" + sparse_file_path(k, i, params["files"]) for k, i in reads]
    lines = [
        "check() {",
        '  got=$(cat "$1" | sha256sum)',
        '  got=${got%% *}',
        '  if [ "$got" != "$2" ]; then',
        '    echo "%s: checksum mismatch for $1: $got" >&2' % who,
        "    exit 1",
        "  fi",
        "}",
    ]
    for (k, i), p in zip(reads, paths):
        lines.append("check %s %s" % (p, data_digest(sparse_file_seed(params, k, i), params["file_size"])))
    return lines, paths


def sparse_run_script(params) -> tuple[str, list[str]]:
    checks, paths = _check_lines(params, "sparse")
    lines = [
        "#!/bin/sh",
        "# generated by lazypull tests/lab/build_images.py: reads a few files of a",
        "# large image and checks their sha256, to measure lazy pulling.",
        "set -e",
    ] + checks
    lines.append('echo "%s"' % sparse_expected_output(params))
    return "\n".join(lines) + "\n", paths


def sparse_expected_output(params) -> str:
    return "sparse: read %d files OK" % len(sparse_read_set(params))


def kind_sparse_app(ctx, params, layer):
    _check_sparse(params)
    script, paths = sparse_run_script(params)
    entries = [file_entry("app/run.sh", script.encode("utf-8"), mode=0o755)]
    return ([{"created_by": "COPY app/run.sh", "comment": "lazypull sparse entrypoint",
              "entries": entries}],
            {"lazypull.sparse.read-files": ",".join(paths),
             "lazypull.sparse.expected-output": sparse_expected_output(params)})


def kind_files(ctx, params, layer):
    """Generic inline files: {"kind": "files", "files": {"/path": {"content": str,
    "mode": int}}, "dirs": {"/path": mode}, "created_by": str}."""
    entries = [dir_entry(p, mode) for p, mode in sorted(layer.get("dirs", {}).items())]
    for p, f in sorted(layer.get("files", {}).items()):
        entries.append(file_entry(p, f["content"].encode("utf-8"), mode=f.get("mode", 0o644)))
    return ([{"created_by": layer.get("created_by", "COPY files"), "comment": layer.get("comment", ""),
              "entries": entries}], {})


# --------------------------------------------------------------------------
# Directory trees as layers (the llm image's stages)
# --------------------------------------------------------------------------

def tree_entries(root: str, empty_dirs: tuple = ()) -> list[dict]:
    """Entries for every directory, regular file, symlink and hard link under
    ``root`` (paths relative to it), keeping permission bits (setuid too) and
    symlink targets.  Hard-linked files become one file entry (the path that
    sorts first) plus hardlink entries.  Device nodes, fifos and sockets are
    skipped; the directories in ``empty_dirs`` (e.g. "dev") are kept empty, as
    a container runtime mounts them."""
    entries: list[dict] = []
    links: dict = {}
    skipped = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = name if rel_dir == "." else rel_dir + "/" + name
            st = os.lstat(full)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                entries.append(dir_entry(rel, mode))
            elif stat.S_ISLNK(st.st_mode):
                entries.append(symlink_entry(rel, os.readlink(full)))
            elif stat.S_ISREG(st.st_mode):
                e = file_entry(rel, mode=mode, size=st.st_size, opener=(lambda p=full: open(p, "rb")))
                if st.st_nlink > 1:
                    links.setdefault((st.st_dev, st.st_ino), []).append(e)
                else:
                    entries.append(e)
            else:
                skipped.append(rel)
        # do not descend into symlinked dirs (os.walk lists them in dirnames)
        # nor into the directories kept empty
        dirnames[:] = [d for d in dirnames
                       if not os.path.islink(os.path.join(dirpath, d))
                       and (d if rel_dir == "." else rel_dir + "/" + d) not in empty_dirs]
    for group in links.values():
        group.sort(key=lambda e: _entry_sort_key(e["path"]))
        entries.append(group[0])
        entries += [hardlink_entry(e["path"], group[0]["path"], e["mode"]) for e in group[1:]]
    if skipped:
        log("%s: skipped %d special files (%s)" % (root, len(skipped), ", ".join(skipped[:5])))
    return entries


def tree_digest(root: str, empty_dirs: tuple = ()) -> str:
    """sha256 over the layer-relevant facts of a tree (path, type, mode,
    content sha256 / link target): what its layer will contain."""
    h = hashlib.sha256()
    for e in complete_entries(tree_entries(root, empty_dirs)):
        if e["type"] == "file":
            with e["open"]() as f:
                fh = hashlib.sha256()
                for chunk in iter(lambda: f.read(COPY_BUFSIZE), b""):
                    fh.update(chunk)
            extra = fh.hexdigest()
        else:
            extra = e.get("target", "")
        h.update(("%s\0%s\0%o\0%s\n" % (e["type"], e["path"], e["mode"], extra)).encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def fix_pyc_mtimes(root: str) -> int:
    """Make timestamp-based .pyc files valid for the layer's mtimes.

    Every tar entry gets mtime EPOCH, so a pyc that records its source's
    install-time mtime would be stale in the container and Python would
    recompile on every import (or on first import, into the container's upper
    layer).  For each ``__pycache__/X.cpython-*.pyc`` whose header matches its
    source (mtime and size), rewrite the recorded mtime to EPOCH.  Hash-based
    pycs are left alone.  Returns the number of files rewritten."""
    n = 0
    for dirpath, dirnames, filenames in os.walk(root):
        if os.path.basename(dirpath) != "__pycache__":
            continue
        for name in filenames:
            if not name.endswith(".pyc") or ".cpython-" not in name:
                continue
            pyc = os.path.join(dirpath, name)
            src = os.path.join(os.path.dirname(dirpath), name.split(".cpython-", 1)[0] + ".py")
            try:
                sst = os.stat(src)
                pst = os.lstat(pyc)
            except OSError:
                continue
            if not stat.S_ISREG(pst.st_mode) or pst.st_nlink != 1:
                continue
            with open(pyc, "r+b") as f:
                head = f.read(16)
                if len(head) < 16:
                    continue
                flags, mtime, size = struct.unpack("<III", head[4:16])
                if flags != 0 or size != (sst.st_size & 0xFFFFFFFF) or mtime != (int(sst.st_mtime) & 0xFFFFFFFF):
                    continue
                f.seek(8)
                f.write(struct.pack("<I", EPOCH & 0xFFFFFFFF))
            n += 1
    return n


def kind_stage_tree(ctx, params, layer):
    """A layer holding one prepared stage directory (llm image):
    {"kind": "stage-tree", "stage": "rootfs"|"packages"|"model", "created_by": str}."""
    st = ctx["stages"][layer["stage"]]
    root = os.path.join(st["path"], "root")
    entries = tree_entries(root, tuple(st.get("empty_dirs", ())))
    return ([{"created_by": layer.get("created_by", "COPY %s" % layer["stage"]),
              "comment": "lazypull llm %s layer (stage digest %s)" % (layer["stage"], st["digest"][:16]),
              "entries": entries}], {})


# --------------------------------------------------------------------------
# llm: the seed's workload, built offline (opt-in)
#
# Stages, each cached under <cache>/llm/<stage>-<key16>/ (stage.json written
# last marks it complete; a stage is trusted once complete: delete its
# directory to rebuild it):
#   wheelhouse  `pip download --no-deps` of the pinned lock (host python3.11)
#   rootfs      mmdebstrap bookworm minbase + python3, python3-venv, ca-certificates
#   packages    /opt/venv: `python3 -m venv` + `pip install --no-index` from
#               the wheelhouse, run inside a copy of rootfs with chroot
#   model       /models/...: random-weight Qwen2 + local BPE tokenizer, made
#               by the host venv <cache>/llm/venv (same pinned wheels)
# The recipe hash covers the stage digests, so the layout is rebuilt when a
# stage changes and reused otherwise.
# --------------------------------------------------------------------------

LLM_STAGE_VERSION = {"wheelhouse": 1, "rootfs": 1, "packages": 1, "model": 1}
STAGE_RECORD = "stage.json"
HOST_PYTHON = "python3.11"   # must match the rootfs's python (bookworm: 3.11)
LLM_EXPECTED_OUTPUT = "lazypull-llm: done"
LLM_MILESTONES = ("start", "imported", "model loaded", "first token", "generated", "done")
# Files mmdebstrap leaves that a Dockerfile's base image would not carry (host
# resolver/hostname, logs, backups of dpkg/debconf state, ldconfig cache).
ROOTFS_DROP = ("etc/resolv.conf", "etc/hostname", "var/cache/ldconfig/aux-cache",
               "var/log/dpkg.log", "var/log/alternatives.log", "var/log/apt/history.log",
               "var/log/apt/term.log", "var/log/apt/eipp.log.xz", "var/lib/dpkg/status-old",
               "var/lib/dpkg/diversions-old", "var/cache/debconf/config.dat-old",
               "var/cache/debconf/templates.dat-old")
ROOTFS_EMPTY_DIRS = ("dev", "proc", "sys", "run/lock")


def debian_mirror() -> str:
    """The Debian archive URI this host already uses (never hard-coded); same
    logic as lab.py's debian_mirror().  $LAZYPULL_DEBIAN_MIRROR overrides."""
    override = os.environ.get("LAZYPULL_DEBIAN_MIRROR")
    if override:
        return override.rstrip("/")
    sources = ["/etc/apt/sources.list"]
    if os.path.isdir("/etc/apt/sources.list.d"):
        sources += [os.path.join("/etc/apt/sources.list.d", x) for x in sorted(os.listdir("/etc/apt/sources.list.d"))]
    for src in sources:
        if not os.path.isfile(src) or "disabled" in os.path.basename(src):
            continue
        with open(src) as f:
            for line in f:
                line = line.strip()
                words = line.split()
                if line.startswith("URIs:") and len(words) > 1:
                    uri = words[1]
                elif line.startswith("deb ") and len(words) > 2:
                    uri = next((w for w in words[1:] if "://" in w), "")
                else:
                    continue
                if uri.rstrip("/").endswith("/debian"):
                    return uri.rstrip("/")
    raise BuildError("no Debian archive found in /etc/apt sources; set LAZYPULL_DEBIAN_MIRROR")


def _req_name(req: str) -> tuple[str, str]:
    name, _, version = req.partition("==")
    return re.sub(r"[-_.]+", "-", name).lower(), version


def _wheel_name(filename: str) -> tuple[str, str]:
    name, version = filename.split("-")[:2]
    return re.sub(r"[-_.]+", "-", name).lower(), version


def llm_pins(params) -> list[str]:
    """The lock's pins of the Dockerfile's requirements (for labels/history)."""
    lock = dict(_req_name(r) for r in params["lock"])
    return ["%s==%s" % (r, lock[_req_name(r)[0]]) for r in params["requirements"]]


def _check_llm(params):
    lock = [_req_name(r) for r in params.get("lock", [])]
    if not lock or any(not v for _, v in lock):
        raise BuildError("llm param lock must pin every package (name==version)")
    names = {n for n, _ in lock}
    missing = [r for r in params["requirements"] if _req_name(r)[0] not in names]
    if missing:
        raise BuildError("llm requirements not in the lock: %s" % ", ".join(missing))
    m = params["model"]
    if not m["path"].startswith("/") or ".." in m["path"].split("/"):
        raise BuildError("llm model path must be absolute: %r" % m["path"])
    if not isinstance(params["max_new_tokens"], int) or params["max_new_tokens"] < 1:
        raise BuildError("llm max_new_tokens must be a positive integer")


def _stage_key(stage: str, *parts) -> str:
    return hashlib.sha256(canonical_json({"stage": stage, "v": LLM_STAGE_VERSION[stage],
                                          "parts": list(parts)})).hexdigest()


def _stage_path(cache: str, stage: str, key: str) -> str:
    return os.path.join(cache, "llm", "%s-%s" % (stage, key[:16]))


def _stage_record(path: str, key: str) -> dict | None:
    try:
        with open(os.path.join(path, STAGE_RECORD)) as f:
            rec = json.load(f)
    except (OSError, ValueError):
        return None
    if rec.get("key") != key:
        return None
    return dict(rec, path=path)


def _ensure_stage(cache: str, stage: str, key: str, builder, download: bool) -> dict | None:
    """Return the stage's record (with "path"), building it with
    ``builder(tmpdir) -> dict`` (must include "digest") if needed."""
    path = _stage_path(cache, stage, key)
    rec = _stage_record(path, key)
    if rec is not None or not download:
        return rec
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    remove_stale_temp_dirs(parent)
    tmp = tempfile.mkdtemp(prefix=".tmp-%s-%d-" % (stage, os.getpid()), dir=parent)
    t0 = time.monotonic()
    log("llm: building stage %s (%s)" % (stage, os.path.basename(path)))
    try:
        os.chmod(tmp, 0o755)
        rec = builder(tmp)
        rec.update(stage=stage, key=key, seconds=round(time.monotonic() - t0, 1), created=_now_iso())
        with open(os.path.join(tmp, STAGE_RECORD), "w") as f:
            json.dump(rec, f, indent=1, sort_keys=True)
            f.write("\n")
        if os.path.lexists(path):
            trash = tempfile.mkdtemp(prefix=".old-%s-" % stage, dir=parent)
            os.rename(path, os.path.join(trash, "x"))
            shutil.rmtree(trash, ignore_errors=True)
        os.rename(tmp, path)
        tmp = None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    log("llm: stage %s done in %.1fs" % (stage, time.monotonic() - t0))
    return dict(rec, path=path)


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _run(cmd: list[str], what: str, **kw) -> subprocess.CompletedProcess:
    log("%s: %s" % (what, " ".join(cmd) if len(cmd) < 12 else " ".join(cmd[:12]) + " ..."))
    r = subprocess.run(cmd, stdout=kw.pop("stdout", sys.stderr), stderr=kw.pop("stderr", None),
                       check=False, **kw)
    if r.returncode != 0:
        raise BuildError("%s failed (rc=%d): %s" % (what, r.returncode, " ".join(cmd[:6])))
    return r


def _clean_pip_env(extra: dict | None = None) -> dict:
    """Environment for installing strictly from the wheelhouse: no PIP_*
    variables and no pip config files (the host's point at other indexes)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("SOURCE_DATE_EPOCH", None)  # keep timestamp-based pycs (fixed by fix_pyc_mtimes)
    env.update(extra or {})
    return env


def _chroot_env() -> dict:
    return {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
            "LANG": "C.UTF-8", "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PYTHONDONTWRITEBYTECODE": "1"}


def _host_python() -> str:
    py = shutil.which(HOST_PYTHON)
    if py is None:
        raise BuildError("%s is needed on the host (the wheelhouse and the model venv must match the "
                         "image's python 3.11)" % HOST_PYTHON)
    return py


def _stage_wheelhouse(cache, params, download):
    lock = list(params["lock"])
    key = _stage_key("wheelhouse", lock, "cp311-manylinux-x86_64")

    def build(tmp):
        if os.uname().machine != "x86_64":
            raise BuildError("the llm image is linux/amd64; build it on an x86_64 host")
        req = os.path.join(tmp, "lock.txt")
        with open(req, "w") as f:
            f.write("\n".join(lock) + "\n")
        # The host's pip configuration (indexes, find-links) applies here:
        # this is the one step that talks to PyPI.
        _run([_host_python(), "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
              "--progress-bar", "off", "--dest", tmp, "-r", req], "pip download")
        wheels = sorted(x for x in os.listdir(tmp) if x.endswith(".whl"))
        got = {_wheel_name(w) for w in wheels}
        want = {_req_name(r) for r in lock}
        if got != want:
            raise BuildError("wheelhouse does not match the lock: missing %s, extra %s"
                             % (sorted(want - got), sorted(got - want)))
        sums = {w: sha256_file(os.path.join(tmp, w)) for w in wheels}
        return {"digest": hashlib.sha256(canonical_json(sums)).hexdigest(), "wheels": sums,
                "bytes": sum(os.path.getsize(os.path.join(tmp, w)) for w in wheels)}

    return _ensure_stage(cache, "wheelhouse", key, build, download)


def _stage_rootfs(cache, params, download):
    key = _stage_key("rootfs", params["suite"], params["variant"], sorted(params["debs"]), ROOTFS_DROP)

    def build(tmp):
        if shutil.which("mmdebstrap") is None:
            raise BuildError("mmdebstrap is needed (apt-get install mmdebstrap)")
        if os.geteuid() != 0:
            raise BuildError("building the llm rootfs needs root (mmdebstrap, chroot)")
        root = os.path.join(tmp, "root")
        mirror = debian_mirror()
        env = dict(os.environ)
        env.pop("SOURCE_DATE_EPOCH", None)
        _run(["mmdebstrap", "--variant=" + params["variant"], "--include=" + ",".join(params["debs"]),
              params["suite"], root, "deb %s %s main" % (mirror, params["suite"])], "mmdebstrap", env=env)
        for rel in ROOTFS_DROP:
            p = os.path.join(root, rel)
            if os.path.lexists(p):
                os.unlink(p)
        fixed = fix_pyc_mtimes(root)
        r = subprocess.run(["dpkg-query", "--admindir", os.path.join(root, "var/lib/dpkg"), "-W",
                            "-f", "${Package} ${Version}\\n"], capture_output=True, text=True, check=True)
        return {"digest": tree_digest(root, ROOTFS_EMPTY_DIRS), "empty_dirs": list(ROOTFS_EMPTY_DIRS),
                "packages": r.stdout.splitlines(), "pyc_fixed": fixed}

    return _ensure_stage(cache, "rootfs", key, build, download)


def _stage_packages(cache, params, rootfs, wheelhouse, download):
    key = _stage_key("packages", rootfs["digest"], wheelhouse["digest"], params["venv"])
    venv = params["venv"].strip("/")

    def build(tmp):
        work = os.path.join(tmp, "work")
        # A scratch copy of the rootfs (like a Dockerfile RUN on top of the
        # base layer); only the venv is kept as the layer's content.
        _run(["cp", "-a", "--reflink=auto", os.path.join(rootfs["path"], "root"), work], "copy rootfs")
        wh = os.path.join(work, "tmp", "wheelhouse")
        os.makedirs(wh)
        for w in list(wheelhouse["wheels"]) + ["lock.txt"]:
            src = os.path.join(wheelhouse["path"], w)
            try:
                os.link(src, os.path.join(wh, w))
            except OSError:
                shutil.copy2(src, os.path.join(wh, w))
        env = _chroot_env()
        py = "/%s/bin/python" % venv
        _run(["chroot", work, "python3", "-m", "venv", "/" + venv], "python3 -m venv", env=env)
        _run(["chroot", work, py, "-m", "pip", "install", "--no-index", "--no-cache-dir",
              "--progress-bar", "off", "--find-links", "/tmp/wheelhouse", "-r", "/tmp/wheelhouse/lock.txt"],
             "pip install (chroot)", env=env)
        freeze = subprocess.run(["chroot", work, py, "-m", "pip", "freeze", "--all"], env=env,
                                capture_output=True, text=True, check=True).stdout.split()
        versions = subprocess.run(["chroot", work, py, "-c",
                                   "import torch, transformers, tokenizers, safetensors; "
                                   "print(torch.__version__, transformers.__version__, "
                                   "tokenizers.__version__, safetensors.__version__)"],
                                  env=env, capture_output=True, text=True, check=True).stdout.split()
        root = os.path.join(tmp, "root")
        os.makedirs(os.path.dirname(os.path.join(root, venv)), mode=0o755)
        os.rename(os.path.join(work, venv), os.path.join(root, venv))
        shutil.rmtree(work)
        fixed = fix_pyc_mtimes(root)
        return {"digest": tree_digest(root), "freeze": freeze, "pyc_fixed": fixed,
                "versions": dict(zip(["torch", "transformers", "tokenizers", "safetensors"], versions))}

    return _ensure_stage(cache, "packages", key, build, download)


def _host_venv(cache, wheelhouse, download) -> str | None:
    """<cache>/llm/venv: the host-side venv (same pinned wheels) that
    generates the model.  Recreated when the wheelhouse changes."""
    d = os.path.join(cache, "llm", "venv")
    marker = os.path.join(d, ".lazypull-wheelhouse")
    py = os.path.join(d, "bin", "python")
    try:
        with open(marker) as f:
            if f.read().strip() == wheelhouse["digest"] and os.path.exists(py):
                return py
    except OSError:
        pass
    if not download:
        return None
    log("llm: creating host venv %s" % d)
    shutil.rmtree(d, ignore_errors=True)
    _run([_host_python(), "-m", "venv", d], "host venv")
    _run([py, "-m", "pip", "install", "--no-index", "--no-cache-dir", "--progress-bar", "off",
          "--find-links", wheelhouse["path"], "-r", os.path.join(wheelhouse["path"], "lock.txt")],
         "pip install (host venv)", env=_clean_pip_env())
    with open(marker, "w") as f:
        f.write(wheelhouse["digest"] + "\n")
    return py


# Runs in the host venv: argv[1] = JSON args, argv[2] = output directory.
LLM_MODEL_SCRIPT = r'''
import json, os, sys
args = json.loads(sys.argv[1])
out = sys.argv[2]
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

torch.manual_seed(args["seed"])
specials = ["<|endoftext|>", "<|pad|>"]


def corpus():
    # Deterministic and offline: the pinned transformers wheel's own sources.
    yield args["prompt"]
    base = os.path.dirname(transformers.__file__)
    files = sorted(os.path.relpath(os.path.join(d, f), base)
                   for d, _, fs in os.walk(base) for f in fs if f.endswith(".py"))
    budget = args["corpus_bytes"]
    for rel in files:
        with open(os.path.join(base, rel), encoding="utf-8", errors="replace") as f:
            text = f.read()
        yield text
        budget -= len(text.encode("utf-8"))
        if budget <= 0:
            break


tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
tok.post_processor = processors.ByteLevel(trim_offsets=False)
trainer = trainers.BpeTrainer(vocab_size=args["tokenizer_vocab"], min_frequency=2, show_progress=False,
                              special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
tok.train_from_iterator(corpus(), trainer=trainer)
fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=specials[0], eos_token=specials[0],
                               pad_token=specials[1], model_max_length=args["config"]["max_position_embeddings"])
fast.save_pretrained(out)

cfg = Qwen2Config(bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
                  pad_token_id=fast.pad_token_id, **args["config"])
model = Qwen2ForCausalLM(cfg).to(getattr(torch, args["dtype"])).eval()
try:
    model.save_pretrained(out, safe_serialization=True)
except TypeError:  # transformers without the keyword: safetensors is the only format
    model.save_pretrained(out)
print(json.dumps({"parameters": sum(p.numel() for p in model.parameters()),
                  "tokenizer_vocab": len(fast), "torch": torch.__version__,
                  "transformers": transformers.__version__}))
'''


def _stage_model(cache, params, wheelhouse, download):
    m = params["model"]
    gen_args = dict(m, prompt=params["prompt"])
    gen_args.pop("path")
    key = _stage_key("model", gen_args, m["path"], wheelhouse["digest"],
                     hashlib.sha256(LLM_MODEL_SCRIPT.encode()).hexdigest())
    if not download and _stage_record(_stage_path(cache, "model", key), key) is None:
        return None

    def build(tmp):
        py = _host_venv(cache, wheelhouse, True)
        script = os.path.join(tmp, "make_model.py")
        with open(script, "w") as f:
            f.write(LLM_MODEL_SCRIPT)
        out = os.path.join(tmp, "root", m["path"].strip("/"))
        os.makedirs(out)
        os.chmod(os.path.join(tmp, "root"), 0o755)
        r = _run([py, script, json.dumps(gen_args), out], "make model",
                 env=_clean_pip_env({"TOKENIZERS_PARALLELISM": "false", "RAYON_NUM_THREADS": "1",
                                     "PYTHONHASHSEED": "0", "HF_HUB_OFFLINE": "1",
                                     "TRANSFORMERS_OFFLINE": "1"}),
                 stdout=subprocess.PIPE, text=True)
        info = json.loads(r.stdout.strip().splitlines()[-1])
        os.unlink(script)
        for dirpath, dirnames, filenames in os.walk(os.path.join(tmp, "root")):
            for d in dirnames:
                os.chmod(os.path.join(dirpath, d), 0o755)
            for fn in filenames:
                os.chmod(os.path.join(dirpath, fn), 0o644)
        files = {fn: sha256_file(os.path.join(out, fn)) for fn in sorted(os.listdir(out))}
        return dict(info, digest=tree_digest(os.path.join(tmp, "root")), files=files)

    return _ensure_stage(cache, "model", key, build, download)


def llm_stages(params, cache: str, download: bool) -> dict | None:
    """Prepare (or find) the llm stages; None if one is missing and
    ``download`` is False."""
    _check_llm(params)
    wheelhouse = _stage_wheelhouse(cache, params, download)
    rootfs = _stage_rootfs(cache, params, download)
    if wheelhouse is None or rootfs is None:
        return None
    packages = _stage_packages(cache, params, rootfs, wheelhouse, download)
    model = _stage_model(cache, params, wheelhouse, download)
    if packages is None or model is None:
        return None
    return {"wheelhouse": wheelhouse, "rootfs": rootfs, "packages": packages, "model": model}


def llm_run_script(params) -> str:
    """/app/run.py: the seed's run.py (text-generation pipeline, greedy,
    max_new_tokens) with milestone lines "lazypull-llm: <what> <UTC ts>
    +<seconds since start>s"."""
    return '''#!/opt/venv/bin/python
# generated by lazypull tests/lab/build_images.py: the seed's workload, a
# transformers text-generation pipeline on a local model, greedy decoding.
import datetime
import json
import time

T0 = time.monotonic()
MODEL = %(model)s
PROMPT = %(prompt)s
MAX_NEW_TOKENS = %(max_new_tokens)d


def mark(what, extra=""):
    ts = datetime.datetime.now(datetime.timezone.utc).strftime("%%Y-%%m-%%dT%%H:%%M:%%S.%%f")[:-3] + "Z"
    print("lazypull-llm: %%s %%s +%%.2fs%%s" %% (what, ts, time.monotonic() - T0, extra), flush=True)


import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import pipeline  # noqa: E402

try:
    from transformers.generation.streamers import BaseStreamer
except ImportError:  # pragma: no cover
    BaseStreamer = object

mark("imported", " torch=%%s transformers=%%s" %% (torch.__version__, transformers.__version__))


class Milestones(BaseStreamer):
    """generate() calls put() once with the prompt, then once per new token."""

    def __init__(self):
        self.calls = 0
        self.tokens = 0

    def put(self, value):
        self.calls += 1
        if self.calls == 1:
            return
        self.tokens += int(value.numel())
        if self.tokens == int(value.numel()):
            mark("first token")

    def end(self):
        pass


# transformers 5.x loads bf16 weights as bf16 (slow on CPU) unless told;
# float32 matches 4.x's default and the seed's runs.  4.x calls it torch_dtype.
if int(transformers.__version__.split(".")[0]) >= 5:
    dtype_kw = {"dtype": "float32"}
else:
    dtype_kw = {"torch_dtype": torch.float32}
pipe = pipeline("text-generation", model=MODEL, **dtype_kw)
mark("model loaded")
streamer = Milestones()
out = pipe(PROMPT, max_new_tokens=MAX_NEW_TOKENS, min_new_tokens=MAX_NEW_TOKENS, do_sample=False,
           return_full_text=False, streamer=streamer)
mark("generated", " tokens=%%d" %% streamer.tokens)
print("lazypull-llm: text " + json.dumps(out[0]["generated_text"], ensure_ascii=False), flush=True)
''' % {"model": json.dumps(params["model"]["path"]),
       "prompt": json.dumps(params["prompt"], ensure_ascii=False),
       "max_new_tokens": params["max_new_tokens"]}


def llm_entrypoint_script(params) -> str:
    """/app/entrypoint.sh: ISO timestamps at start and end around
    ``time python run.py``, like the seed's entrypoint."""
    return '''#!/bin/bash
# generated by lazypull tests/lab/build_images.py: timestamps at start and end
# separate the in-container run time from the pull time.
ts() { date -u +%%Y-%%m-%%dT%%H:%%M:%%S.%%3NZ; }
echo "lazypull-llm: start $(ts)"
cd /app
rc=0
time %(python)s /app/run.py || rc=$?
if [ "$rc" -ne 0 ]; then
  echo "lazypull-llm: failed rc=$rc $(ts)"
  exit "$rc"
fi
echo "%(done)s $(ts)"
''' % {"python": params["venv"].rstrip("/") + "/bin/python", "done": LLM_EXPECTED_OUTPUT}


def kind_llm_app(ctx, params, layer):
    _check_llm(params)
    entries = [
        file_entry("app/run.py", llm_run_script(params).encode("utf-8"), mode=0o755),
        file_entry("app/entrypoint.sh", llm_entrypoint_script(params).encode("utf-8"), mode=0o755),
    ]
    return ([{"created_by": "COPY run.py entrypoint.sh /app/", "comment": "lazypull llm workload",
              "entries": entries}],
            {"lazypull.llm.expected-output": LLM_EXPECTED_OUTPUT,
             "lazypull.llm.milestones": ",".join("lazypull-llm: " + m for m in LLM_MILESTONES),
             "lazypull.llm.model": params["model"]["path"],
             "lazypull.llm.max-new-tokens": str(params["max_new_tokens"]),
             "lazypull.llm.requirements": " ".join(llm_pins(params))})


# --------------------------------------------------------------------------
# server: readiness measured by URL
# --------------------------------------------------------------------------

SERVER_PORT = 8080
SERVER_READY_PATH = "/ready"
SERVER_READY_BODY = "ready"
SERVER_WWW = "/www"


def server_delay(v) -> int | float:
    """Normalise a warm-up delay: a non-negative number of seconds; integral
    values become ints so ``2`` and ``2.0`` give the same recipe."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v < 0 or v > 86400:
        raise BuildError("server param startup_delay must be a number of seconds in [0, 86400], got %r" % (v,))
    return int(v) if float(v).is_integer() else float(v)


def server_expected_output() -> str:
    return "server: ready on :%d" % SERVER_PORT


def server_start_script(params) -> tuple[str, list[str]]:
    """/app/start.sh: read and check a few data files, sleep the warm-up
    delay, then serve /www (with /www/ready) on port 8080 in the foreground."""
    delay = server_delay(params["startup_delay"])
    checks, paths = _check_lines(params, "server")
    lines = [
        "#!/bin/sh",
        "# generated by lazypull tests/lab/build_images.py: a server that is ready",
        "# once GET %s answers; warm-up reads a few files, then sleeps." % SERVER_READY_PATH,
        "set -e",
        'echo "server: start $(date -u +%Y-%m-%dT%H:%M:%SZ)"',
    ] + checks + [
        'echo "server: read %d files, warming up for %s s"' % (len(paths), delay),
        "sleep %s" % delay,
        'echo "%s $(date -u +%%Y-%%m-%%dT%%H:%%M:%%SZ)"' % server_expected_output(),
        "exec httpd -f -p %d -h %s" % (SERVER_PORT, SERVER_WWW),
    ]
    return "\n".join(lines) + "\n", paths


def kind_server_app(ctx, params, layer):
    _check_sparse(params, "server")
    delay = server_delay(params["startup_delay"])
    script, paths = server_start_script(params)
    entries = [
        file_entry("app/start.sh", script.encode("utf-8"), mode=0o755),
        file_entry(SERVER_WWW + SERVER_READY_PATH, (SERVER_READY_BODY + "\n").encode("utf-8")),
    ]
    return ([{"created_by": "COPY app/start.sh www/ready", "comment": "lazypull server entrypoint",
              "entries": entries}],
            {"lazypull.server.port": str(SERVER_PORT),
             "lazypull.server.ready-path": SERVER_READY_PATH,
             "lazypull.server.ready-body": SERVER_READY_BODY,
             "lazypull.server.startup-delay": str(delay),
             "lazypull.server.read-files": ",".join(paths),
             "lazypull.server.expected-output": server_expected_output()})


LAYER_KINDS = {
    "busybox-base": kind_busybox_base,
    "sparse-data": kind_sparse_data,
    "sparse-app": kind_sparse_app,
    "server-app": kind_server_app,
    "files": kind_files,
    "stage-tree": kind_stage_tree,
    "llm-app": kind_llm_app,
}

NEEDS_BUSYBOX = {"busybox-base"}
NEEDS_STAGES = {"stage-tree"}


# --------------------------------------------------------------------------
# Image build
# --------------------------------------------------------------------------

def resolved_spec(name: str, overrides: dict | None = None) -> dict:
    if name not in IMAGES:
        raise BuildError("unknown image %r (known: %s)" % (name, ", ".join(sorted(IMAGES))))
    spec = copy.deepcopy(IMAGES[name])
    for k, v in (overrides or {}).items():
        if v is None:
            continue
        if k not in spec.get("params", {}):
            raise BuildError("image %r has no parameter %r" % (name, k))
        spec["params"][k] = v
    if name == "server":
        spec["params"]["startup_delay"] = server_delay(spec["params"]["startup_delay"])
    for layer in spec["layers"]:
        if layer["kind"] not in LAYER_KINDS:
            raise BuildError("image %r: unknown layer kind %r" % (name, layer["kind"]))
    return spec


def recipe_hash(name: str, spec: dict, inputs: dict) -> str:
    h = hashlib.sha256()
    h.update(canonical_json({"name": name, "spec": spec, "inputs": inputs}))
    h.update(b"\0builder\0")
    h.update(builder_source_digest().encode())
    return h.hexdigest()


def _inputs(spec: dict, cache_dir: str, busybox: str | None, download: bool):
    ctx: dict = {}
    inputs: dict = {}
    if any(lyr["kind"] in NEEDS_BUSYBOX for lyr in spec["layers"]):
        bb = resolve_busybox(cache_dir, busybox, download=download)
        if bb is None:
            return None, None
        ctx["busybox"] = bb
        inputs["busybox_sha256"] = bb["sha256"]
    if any(lyr["kind"] in NEEDS_STAGES for lyr in spec["layers"]):
        stages = llm_stages(spec["params"], cache_dir, download)
        if stages is None:
            return None, None
        ctx["stages"] = stages
        inputs["stages"] = {k: v["digest"] for k, v in sorted(stages.items())}
    return ctx, inputs


def remove_stale_temp_dirs(images_dir: str) -> None:
    """Remove ``.tmp-<name>-<pid>-*`` dirs left by builders that died (their
    pid no longer exists on this host)."""
    for d in os.listdir(images_dir):
        if not d.startswith(".tmp-"):
            continue
        try:
            pid = int(d.rsplit("-", 2)[-2])
        except (IndexError, ValueError):
            continue
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            log("removing stale %s" % d)
            shutil.rmtree(os.path.join(images_dir, d), ignore_errors=True)
        except PermissionError:
            pass


def layout_complete(layout: str) -> dict | None:
    """Return the build record if ``layout`` is a complete layout."""
    rec_path = os.path.join(layout, BUILD_RECORD)
    try:
        with open(rec_path) as f:
            rec = json.load(f)
        for d in [rec["manifest_digest"], rec["config_digest"]] + [lyr["digest"] for lyr in rec["layers"]]:
            if not os.path.isfile(os.path.join(layout, "blobs", "sha256", d.split(":", 1)[1])):
                return None
        if not os.path.isfile(os.path.join(layout, "index.json")):
            return None
        return rec
    except (OSError, ValueError, KeyError):
        return None


def build_image(name: str, cache_dir: str | None = None, overrides: dict | None = None,
                busybox: str | None = None, jobs: int | None = None, force: bool = False) -> dict:
    """Build (or reuse) one image's OCI layout; return its build record."""
    cache = cache_root(cache_dir)
    spec = resolved_spec(name, overrides)
    ctx, inputs = _inputs(spec, cache, busybox, download=True)
    rhash = recipe_hash(name, spec, inputs)
    images_dir = os.path.join(cache, "images")
    layout = os.path.join(images_dir, "%s-%s" % (name, rhash[:16]))
    os.makedirs(images_dir, exist_ok=True)

    rec = None if force else layout_complete(layout)
    if rec is not None and rec.get("recipe_hash") == rhash:
        out = dict(rec, cached=True, layout=layout)
        log("%s: cached %s" % (name, layout))
        return out

    t0 = time.monotonic()
    remove_stale_temp_dirs(images_dir)
    tmp = tempfile.mkdtemp(prefix=".tmp-%s-%d-" % (name, os.getpid()), dir=images_dir)
    try:
        blobs = os.path.join(tmp, "blobs", "sha256")
        os.makedirs(blobs)
        plans, labels = [], {}
        for layer in spec["layers"]:
            p, lab = LAYER_KINDS[layer["kind"]](ctx, spec.get("params", {}), layer)
            plans.extend(p)
            labels.update(lab)

        def run(ix_plan):
            ix, plan = ix_plan
            t = time.monotonic()
            info = write_layer(plan["entries"], blobs)
            log("%s: layer %d/%d %s %.1f MiB -> %.1f MiB in %.1fs" % (
                name, ix + 1, len(plans), info["digest"][:19], info["uncompressed_size"] / MiB,
                info["size"] / MiB, time.monotonic() - t))
            return info

        workers = max(1, min(jobs or os.cpu_count() or 1, len(plans)))
        with ThreadPoolExecutor(max_workers=workers) as ex:
            layers = list(ex.map(run, enumerate(plans)))

        img_cfg = copy.deepcopy(spec.get("config", {}))
        img_cfg.setdefault("Labels", {}).update(labels)
        config = {
            "created": CREATED,
            "author": "lazypull tests/lab/build_images.py",
            "architecture": spec["platform"]["architecture"],
            "os": spec["platform"]["os"],
            "config": img_cfg,
            "rootfs": {"type": "layers", "diff_ids": [lyr["diff_id"] for lyr in layers]},
            "history": [{"created": CREATED, "created_by": p["created_by"], "comment": p["comment"]}
                        for p in plans],
        }
        config_digest, config_size = write_blob(canonical_json(config), blobs)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": MT_LAYER_GZIP, "digest": lyr["digest"], "size": lyr["size"]}
                       for lyr in layers],
        }
        manifest_digest, manifest_size = write_blob(canonical_json(manifest), blobs)
        index = {
            "schemaVersion": 2,
            "mediaType": MT_INDEX,
            "manifests": [{
                "mediaType": MT_MANIFEST, "digest": manifest_digest, "size": manifest_size,
                "platform": dict(spec["platform"]),
                "annotations": {ANN_REF_NAME: spec["tag"]},
            }],
        }
        with open(os.path.join(tmp, "oci-layout"), "wb") as f:
            f.write(canonical_json({"imageLayoutVersion": "1.0.0"}))
        with open(os.path.join(tmp, "index.json"), "wb") as f:
            f.write(canonical_json(index))
        rec = {
            "name": name,
            "tag": spec["tag"],
            "recipe_hash": rhash,
            "manifest_digest": manifest_digest,
            "manifest_size": manifest_size,
            "config_digest": config_digest,
            "compressed_size": sum(lyr["size"] for lyr in layers),
            "uncompressed_size": sum(lyr["uncompressed_size"] for lyr in layers),
            "layers": [dict(lyr, created_by=p["created_by"]) for lyr, p in zip(layers, plans)],
            "labels": img_cfg.get("Labels", {}),
            "params": spec.get("params", {}),
            "inputs": inputs,
            "busybox_version": (ctx.get("busybox") or {}).get("version"),
            "build_seconds": round(time.monotonic() - t0, 2),
        }
        with open(os.path.join(tmp, BUILD_RECORD), "w") as f:
            json.dump(rec, f, indent=1, sort_keys=True)
            f.write("\n")
        os.chmod(tmp, 0o755)
        # Atomic publish.  A stale/incomplete layout in the way is moved aside
        # first; if another builder won the race, keep theirs.
        if os.path.lexists(layout):
            trash = tempfile.mkdtemp(prefix=".old-%s-" % name, dir=images_dir)
            os.rename(layout, os.path.join(trash, "x"))
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.rename(tmp, layout)
            tmp = None
        except OSError as e:
            if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            other = layout_complete(layout)
            if other is None:
                raise
            rec = other
        log("%s: built %s in %.1fs" % (name, layout, time.monotonic() - t0))
        return dict(rec, cached=False, layout=layout)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def summary(rec: dict) -> dict:
    layout = rec["layout"]
    return {
        "name": rec["name"],
        "tag": rec["tag"],
        "layout": layout,
        "ref": "oci:%s:%s" % (layout, rec["tag"]),
        "manifest_digest": rec["manifest_digest"],
        "config_digest": rec["config_digest"],
        "compressed_size": rec["compressed_size"],
        "uncompressed_size": rec["uncompressed_size"],
        "layers": len(rec["layers"]),
        "labels": rec.get("labels", {}),
        "cached": rec.get("cached"),
        "build_seconds": rec.get("build_seconds"),
    }


def default_images() -> list[str]:
    """Images built when no --only is given (llm is opt-in)."""
    return [n for n, spec in IMAGES.items() if spec.get("default", True)]


def selected(only: list[str] | None) -> list[str]:
    names = only or default_images()
    for n in names:
        if n not in IMAGES:
            raise BuildError("unknown image %r (known: %s)" % (n, ", ".join(sorted(IMAGES))))
    return names


def overrides_from_args(args) -> dict:
    out: dict = {}
    for dest, (image, param) in PARAM_FLAGS.items():
        v = getattr(args, dest, None)
        if v is not None:
            out.setdefault(image, {})[param] = v
    return out


def build_all(names, cache_dir=None, overrides=None, busybox=None, jobs=None, force=False) -> list[dict]:
    return [build_image(n, cache_dir, (overrides or {}).get(n), busybox, jobs, force) for n in names]


def list_layouts(cache_dir: str | None = None, busybox: str | None = None) -> list[dict]:
    cache = cache_root(cache_dir)
    images_dir = os.path.join(cache, "images")
    current: dict = {}
    for name in IMAGES:
        spec = resolved_spec(name)
        try:
            _, inputs = _inputs(spec, cache, busybox, download=False)
        except BuildError:
            inputs = None
        current[name] = recipe_hash(name, spec, inputs) if inputs is not None else None
    out = []
    if not os.path.isdir(images_dir):
        return out
    for d in sorted(os.listdir(images_dir)):
        if d.startswith("."):
            continue
        layout = os.path.join(images_dir, d)
        rec = layout_complete(layout)
        if rec is None:
            out.append({"layout": layout, "complete": False})
            continue
        s = summary(dict(rec, layout=layout))
        s.pop("cached")
        s["complete"] = True
        s["params"] = rec.get("params", {})
        s["current_default"] = current.get(rec["name"]) == rec.get("recipe_hash")
        out.append(s)
    return out


# --------------------------------------------------------------------------
# Run an image's command in a chroot (a smoke test without a container engine)
# --------------------------------------------------------------------------

DEV_NODES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9),
             "tty": (5, 0)}


def chroot_run(rec: dict, timeout: float = 600, keep: bool = False, workdir: str | None = None) -> dict:
    """Unpack the layout's layers with tar into a temp dir and run the
    image's Entrypoint+Cmd there with chroot, /proc mounted and a few device
    nodes, with the image's Env and WorkingDir.  No namespaces: the host's
    network and PIDs are visible.  Whiteouts are not applied (this builder's
    images have none).  Returns the output lines with their times."""
    if os.geteuid() != 0:
        raise BuildError("run needs root (chroot, mount)")
    layout = rec["layout"]
    blobs = os.path.join(layout, "blobs", "sha256")
    with open(os.path.join(blobs, rec["manifest_digest"].split(":", 1)[1]), "rb") as f:
        manifest = json.load(f)
    with open(os.path.join(blobs, manifest["config"]["digest"].split(":", 1)[1]), "rb") as f:
        cfg = json.load(f).get("config", {})
    argv = list(cfg.get("Entrypoint") or []) + list(cfg.get("Cmd") or [])
    if not argv:
        raise BuildError("%s has no Entrypoint/Cmd" % rec["name"])
    env = dict(e.split("=", 1) for e in cfg.get("Env", []))
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    env.setdefault("HOME", "/root")
    wd = cfg.get("WorkingDir") or "/"
    root = tempfile.mkdtemp(prefix="lazypull-run-%s-" % rec["name"], dir=workdir)
    proc_dir = os.path.join(root, "proc")
    out: dict = {"name": rec["name"], "root": root, "argv": argv}
    try:
        t0 = time.monotonic()
        for lyr in manifest["layers"]:
            _run(["tar", "-xzpf", os.path.join(blobs, lyr["digest"].split(":", 1)[1]), "--numeric-owner",
                  "-C", root], "unpack %s" % lyr["digest"][:19])
        out["unpack_seconds"] = round(time.monotonic() - t0, 2)
        os.makedirs(os.path.join(root, "dev"), exist_ok=True)
        for name, (major, minor) in DEV_NODES.items():
            p = os.path.join(root, "dev", name)
            if not os.path.lexists(p):
                os.mknod(p, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        os.makedirs(proc_dir, exist_ok=True)
        _run(["mount", "-t", "proc", "proc", proc_dir], "mount proc")
        log("run %s: chroot %s %s" % (rec["name"], root, " ".join(argv)))
        lines = []
        t0 = time.monotonic()

        def enter():
            os.chroot(root)
            os.chdir(wd)

        p = subprocess.Popen(argv, cwd="/", env=env, preexec_fn=enter, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, errors="replace")

        def reader():
            for line in p.stdout:
                t = round(time.monotonic() - t0, 2)
                lines.append({"t": t, "line": line.rstrip("\n")})
                print("[%7.2fs] %s" % (t, line.rstrip("\n")), file=sys.stderr, flush=True)

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            out["timed_out"] = True
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        th.join(timeout=5)
        out.update(rc=p.returncode, seconds=round(time.monotonic() - t0, 2), lines=lines)
        return out
    finally:
        if os.path.ismount(proc_dir):
            subprocess.run(["umount", proc_dir], check=False)
        if os.path.ismount(proc_dir):
            subprocess.run(["umount", "-l", proc_dir], check=False)
        if os.path.ismount(proc_dir):
            log("run: %s is still mounted; NOT removing %s" % (proc_dir, root))
        elif not keep:
            shutil.rmtree(root, ignore_errors=True)
            out["root"] = None


# --------------------------------------------------------------------------
# Push with skopeo
# --------------------------------------------------------------------------

def skopeo_push_cmd(layout: str, tag: str, dest: str, cert_dir: str | None = None,
                    tls_verify: bool | None = None, authfile: str | None = None,
                    digestfile: str | None = None) -> list[str]:
    """The skopeo command line.  Credentials are never put on it: only an
    --dest-authfile path."""
    cmd = ["skopeo", "copy", "--preserve-digests"]
    if not (os.path.exists("/etc/containers/policy.json")
            or os.path.exists(os.path.expanduser("~/.config/containers/policy.json"))):
        cmd.append("--insecure-policy")
    if digestfile:
        cmd += ["--digestfile", digestfile]
    if cert_dir:
        cmd += ["--dest-cert-dir", cert_dir]
    if tls_verify is not None:
        cmd.append("--dest-tls-verify=%s" % ("true" if tls_verify else "false"))
    if authfile:
        cmd += ["--dest-authfile", authfile]
    cmd += ["oci:%s:%s" % (layout, tag), "docker://" + dest]
    return cmd


def push_image(rec: dict, registry: str, repo_prefix: str = "lazypull", cert_dir: str | None = None,
               tls_verify: bool | None = None, authfile: str | None = None) -> dict:
    repo = "/".join(x for x in (registry.rstrip("/"), repo_prefix.strip("/"), rec["name"]) if x)
    dest = "%s:%s" % (repo, rec["tag"])
    with tempfile.TemporaryDirectory(prefix="lazypull-push-") as tmp:
        dfile = os.path.join(tmp, "digest")
        cmd = skopeo_push_cmd(rec["layout"], rec["tag"], dest, cert_dir, tls_verify, authfile, dfile)
        log("push: " + " ".join(cmd))
        t0 = time.monotonic()
        r = subprocess.run(cmd, stdout=sys.stderr, stderr=subprocess.PIPE, text=True, check=False)
        if r.returncode != 0:
            raise BuildError("skopeo copy to %s failed (rc=%d): %s" % (dest, r.returncode, r.stderr.strip()))
        with open(dfile) as f:
            pushed = f.read().strip()
    if pushed != rec["manifest_digest"]:
        raise BuildError("pushed digest %s != layout digest %s for %s" % (pushed, rec["manifest_digest"], dest))
    return {"name": rec["name"], "tag": rec["tag"], "ref": dest, "digest": pushed,
            "ref_by_digest": "%s@%s" % (repo, pushed), "layout": rec["layout"],
            "compressed_size": rec["compressed_size"], "push_seconds": round(time.monotonic() - t0, 2)}


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------

def _bool(v: str) -> bool:
    if v.lower() in ("true", "1", "yes"):
        return True
    if v.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError("expected true or false, got %r" % v)


def _seconds(v: str) -> int | float:
    try:
        return server_delay(float(v))
    except (ValueError, BuildError) as e:
        raise argparse.ArgumentTypeError(str(e))


def _positive_int(v: str) -> int:
    n = int(v, 0)
    if n < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return n


def make_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cache", help="cache root (default $LAZYPULL_CACHE or %s)" % DEFAULT_CACHE)
    common.add_argument("--busybox", help="static amd64 busybox binary to use (default $LAZYPULL_BUSYBOX, "
                                          "else Debian's busybox-static)")
    build_opts = argparse.ArgumentParser(add_help=False)
    build_opts.add_argument("--only", action="append", choices=sorted(IMAGES),
                            help="image to build (repeatable; default: %s; llm only when named)"
                                 % ", ".join(default_images()))
    build_opts.add_argument("--sparse-layers", type=_positive_int, help="sparse: number of data layers (3)")
    build_opts.add_argument("--sparse-files", type=_positive_int, help="sparse: files per data layer (100)")
    build_opts.add_argument("--sparse-file-size", type=_positive_int, help="sparse: bytes per file (1048576)")
    build_opts.add_argument("--sparse-read-files", type=_positive_int, help="sparse: files read by run.sh (5)")
    build_opts.add_argument("--server-delay", type=_seconds, help="server: warm-up seconds before httpd starts (2)")
    build_opts.add_argument("--jobs", type=int, help="layers built in parallel (default: CPU count)")
    build_opts.add_argument("--force", action="store_true", help="rebuild even if cached")

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", parents=[common, build_opts], help="build (or reuse) the OCI layouts")
    pp = sub.add_parser("push", parents=[common, build_opts], help="build if needed, then push with skopeo")
    pp.add_argument("--registry", required=True, help="HOST:PORT")
    pp.add_argument("--repo-prefix", default="lazypull")
    tls = pp.add_mutually_exclusive_group()
    tls.add_argument("--cert-dir", help="directory with the registry CA (*.crt) / client certs")
    tls.add_argument("--tls-verify", type=_bool, metavar="true|false")
    pp.add_argument("--authfile", help="containers auth.json (credentials never go on the command line)")
    sub.add_parser("list", parents=[common], help="list cached layouts")
    rp = sub.add_parser("run", parents=[common, build_opts],
                        help="build if needed, then run the image's command in a chroot (root; smoke test)")
    rp.add_argument("--timeout", type=float, default=600, help="kill the command after this many seconds (600)")
    rp.add_argument("--keep", action="store_true", help="keep the unpacked root (its path is printed)")
    rp.add_argument("--workdir", help="where to unpack (default $TMPDIR or /tmp)")
    return p


def main(argv=None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.cmd == "run" and not args.only:
        parser.error("run needs --only NAME")
    try:
        if args.cmd == "list":
            out = list_layouts(args.cache, args.busybox)
        else:
            recs = build_all(selected(args.only), args.cache, overrides_from_args(args),
                             args.busybox, args.jobs, args.force)
            if args.cmd == "build":
                out = [summary(r) for r in recs]
            elif args.cmd == "run":
                out = [chroot_run(r, args.timeout, args.keep, args.workdir) for r in recs]
            else:
                out = [push_image(r, args.registry, args.repo_prefix, args.cert_dir, args.tls_verify,
                                  args.authfile) for r in recs]
    except BuildError as e:
        log("error: %s" % e)
        return 1
    json.dump(out, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
