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
external inputs (the busybox binary).  A layout is written into a temporary
directory next to its final place and renamed into place when complete; a
layout whose ``build.json`` exists and whose blobs are all present is reused.

Usage::

    build_images.py build [--only NAME] [--sparse-layers N --sparse-files M
                          --sparse-file-size BYTES --sparse-read-files R]
    build_images.py push --registry HOST:PORT [--cert-dir DIR | --tls-verify=false]
                         [--authfile FILE] [--only NAME] [--repo-prefix lazypull]
    build_images.py list

``build`` and ``push`` print JSON on stdout; progress goes to stderr.

Environment:
    LAZYPULL_CACHE    cache root (default /var/cache/lazypull)
    LAZYPULL_BUSYBOX  use this (static, amd64) busybox binary instead of the
                      one from Debian's busybox-static package (unit tests use
                      a fake file here so they need no apt)

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
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
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
}

# Command-line flags that override spec params: flag dest -> (image, param).
PARAM_FLAGS = {
    "sparse_layers": ("sparse", "layers"),
    "sparse_files": ("sparse", "files"),
    "sparse_file_size": ("sparse", "file_size"),
    "sparse_read_files": ("sparse", "read_files"),
}

BUSYBOX_APPLETS = (
    "sh", "echo", "cat", "ls", "sleep", "head", "sha256sum", "wc", "true",
    "date", "env", "mkdir",
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
# An entry is a dict: {"path": "bin/busybox", "type": "file"|"dir"|"symlink",
#  "mode": int, and for files "size" plus "data" (bytes) or "open" (callable
#  returning a binary file-like object with .read(n)); for symlinks "target"}.

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


def _check_sparse(params):
    for key in ("layers", "files", "file_size", "read_files"):
        v = params.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < (0 if key == "read_files" else 1):
            raise BuildError("sparse param %s must be a positive integer, got %r" % (key, v))


def kind_sparse_data(ctx, params, layer):
    _check_sparse(params)
    n, m, size = params["layers"], params["files"], params["file_size"]
    plans = []
    for k in range(1, n + 1):
        entries = []
        for i in range(m):
            seed = sparse_file_seed(params, k, i)
            entries.append(file_entry(sparse_file_path(k, i, m), size=size,
                                      opener=(lambda s=seed: _ChunkReader(data_chunks(s, size)))))
        plans.append({"created_by": "COPY data/l%d/ (%d files x %d bytes, incompressible)" % (k, m, size),
                      "comment": "lazypull sparse data layer %d/%d" % (k, n),
                      "entries": entries})
    return plans, {"lazypull.sparse.total-bytes": str(n * m * size),
                   "lazypull.sparse.layers": str(n),
                   "lazypull.sparse.files-per-layer": str(m),
                   "lazypull.sparse.file-size": str(size)}


def sparse_run_script(params) -> tuple[str, list[str]]:
    reads = sparse_read_set(params)
    paths = ["/" + sparse_file_path(k, i, params["files"]) for k, i in reads]
    lines = [
        "#!/bin/sh",
        "# generated by lazypull tests/lab/build_images.py: reads a few files of a",
        "# large image and checks their sha256, to measure lazy pulling.",
        "set -e",
        "check() {",
        '  got=$(cat "$1" | sha256sum)',
        '  got=${got%% *}',
        '  if [ "$got" != "$2" ]; then',
        '    echo "sparse: checksum mismatch for $1: $got" >&2',
        "    exit 1",
        "  fi",
        "}",
    ]
    for (k, i), p in zip(reads, paths):
        lines.append("check %s %s" % (p, data_digest(sparse_file_seed(params, k, i), params["file_size"])))
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


LAYER_KINDS = {
    "busybox-base": kind_busybox_base,
    "sparse-data": kind_sparse_data,
    "sparse-app": kind_sparse_app,
    "files": kind_files,
}

NEEDS_BUSYBOX = {"busybox-base"}


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


def selected(only: list[str] | None) -> list[str]:
    names = only or list(IMAGES)
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
                            help="image to build (repeatable; default all)")
    build_opts.add_argument("--sparse-layers", type=_positive_int, help="sparse: number of data layers (3)")
    build_opts.add_argument("--sparse-files", type=_positive_int, help="sparse: files per data layer (100)")
    build_opts.add_argument("--sparse-file-size", type=_positive_int, help="sparse: bytes per file (1048576)")
    build_opts.add_argument("--sparse-read-files", type=_positive_int, help="sparse: files read by run.sh (5)")
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
    return p


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    try:
        if args.cmd == "list":
            out = list_layouts(args.cache, args.busybox)
        else:
            recs = build_all(selected(args.only), args.cache, overrides_from_args(args),
                             args.busybox, args.jobs, args.force)
            if args.cmd == "build":
                out = [summary(r) for r in recs]
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
