#!/usr/bin/env python3
"""The local lab: systemd hosts' base images, a TLS registry, an artifact mirror.

One entry point, idempotent:

    lab.py up [--rate 400mbit] [--auth]   build what is missing, start everything
                                          (--auth: the main registry needs a login too;
                                          a second registry always does)
    lab.py status                         what runs, as JSON
    lab.py down                           remove containers, network and lab state

Expensive things (base images, the stargz build, test images) are cached
under $LAZYPULL_CACHE (default /var/cache/lazypull) keyed by their recipe;
lab state (CA, registry data, lab.json) lives in $LAZYPULL_LAB_STATE
(default /var/lib/lazypull-lab) and goes away with `down`.
Stdlib only: it runs before any virtualenv exists.
"""

import argparse
import hashlib
import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("LAZYPULL_CACHE", "/var/cache/lazypull"))
STATE = Path(os.environ.get("LAZYPULL_LAB_STATE", "/var/lib/lazypull-lab"))

NETWORK = "lazypull-lab"
SUBNET = "10.89.213.0/24"
REGISTRY_NAME = "lazypull-registry"
REGISTRY_IP = "10.89.213.10"
REGISTRY_PORT = 5000
# Always requires htpasswd auth: where tests of credential handling push.
AUTH_REGISTRY_NAME = "lazypull-registry-auth"
AUTH_REGISTRY_IP = "10.89.213.12"
MIRROR_NAME = "lazypull-mirror"
MIRROR_IP = "10.89.213.11"
MIRROR_PORT = 8080
HOST_PREFIX = "lazypull-host-"
HOST_IP_BASE = 100  # lab hosts get 10.89.213.101, .102, ...
HOST_VOLUMES = {"containerd": "/var/lib/containerd",
                "stargz": "/var/lib/containerd-stargz-grpc",
                "soci": "/var/lib/soci-snapshotter-grpc"}
LAB_USER = "lazypull"
OPT_IN_IMAGES = ("llm",)  # big: built and pushed only when a workload asks for them

SYSTEMD_PACKAGES = ["systemd", "systemd-sysv", "dbus", "python3", "python3-apt",
                    "sudo", "ca-certificates", "iproute2"]
# Units that cannot work in a container; masked so that
# `systemctl is-system-running` reports `running`, not `degraded`.
MASKED_UNITS = ["systemd-modules-load.service", "systemd-logind.service",
                "systemd-udevd.service", "systemd-udevd-control.socket",
                "systemd-udevd-kernel.socket", "getty.target",
                "console-getty.service", "systemd-firstboot.service",
                "systemd-resolved.service", "systemd-timesyncd.service"]

IMAGES = {
    "debian-systemd:trixie": {
        "suite": "trixie", "packages": SYSTEMD_PACKAGES, "systemd": True,
    },
    "debian-systemd:bookworm": {
        "suite": "bookworm", "packages": SYSTEMD_PACKAGES, "systemd": True,
    },
    # Runs the registry (Debian's docker-registry, distribution 2.8) and the
    # artifact mirror (python3 http.server).
    "lab-tools:trixie": {
        "suite": "trixie", "packages": ["docker-registry", "python3", "ca-certificates"],
        "systemd": False,
    },
}


def log(msg):
    print(f"[lab {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd, check=True, capture=False, **kw):
    res = subprocess.run(cmd, check=False, text=True,
                         stdout=subprocess.PIPE if capture else None,
                         stderr=subprocess.PIPE if capture else None, **kw)
    if check and res.returncode != 0:
        detail = (res.stderr or "").strip() if capture else ""
        raise SystemExit(f"command failed ({res.returncode}): {' '.join(cmd)}\n{detail}")
    return res


def podman(*args, check=True, capture=True):
    return run(["podman", *args], check=check, capture=capture)


# --- Debian mirror -------------------------------------------------------

def debian_mirror():
    """The Debian archive URI this host already uses (never hard-coded)."""
    override = os.environ.get("LAZYPULL_DEBIAN_MIRROR")
    if override:
        return override
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for src in sources:
        if not src.is_file() or "disabled" in src.name:
            continue
        for line in src.read_text().splitlines():
            line = line.strip()
            words = line.split()
            if line.startswith("URIs:") and len(words) > 1:
                uri = words[1]
            elif line.startswith("deb ") and len(words) > 2:
                uri = next(w for w in words[1:] if "://" in w)
            else:
                continue
            if uri.rstrip("/").endswith("/debian"):
                return uri.rstrip("/")
    raise SystemExit("no Debian archive found in /etc/apt sources; set LAZYPULL_DEBIAN_MIRROR")


# --- base images ---------------------------------------------------------

def image_recipe(spec):
    text = json.dumps({"spec": spec, "masked": MASKED_UNITS, "v": 2}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def image_label(ref, label):
    res = podman("image", "inspect", "--format", "{{ index .Labels \"%s\" }}" % label, ref, check=False)
    return res.stdout.strip() if res.returncode == 0 else None


def build_image(name, spec):
    ref = f"localhost/lazypull/{name}"
    recipe = image_recipe(spec)
    if image_label(ref, "lazypull.recipe") == recipe:
        log(f"image {ref}: cached (recipe {recipe})")
        return ref
    started = time.monotonic()
    log(f"image {ref}: building with mmdebstrap ({spec['suite']})")
    cmd = ["mmdebstrap", "--quiet", "--variant=minbase", "--include=" + ",".join(spec["packages"])]
    if spec["systemd"]:
        units = " ".join(MASKED_UNITS)
        cmd += [f'--customize-hook=chroot "$1" systemctl mask {units} >/dev/null 2>&1 || true',
                '--customize-hook=truncate -s0 "$1/etc/machine-id"',
                '--customize-hook=rm -f "$1/var/lib/dbus/machine-id"']
    cmd += [spec["suite"], "-", f"deb {debian_mirror()} {spec['suite']} main"]
    changes = [f"LABEL lazypull.recipe={recipe}"]
    if spec["systemd"]:
        changes += ['CMD ["/sbin/init"]', "STOPSIGNAL SIGRTMIN+3"]
    imp = ["podman", "import"]
    for change in changes:
        imp += ["--change", change]
    imp += ["-", ref]
    strap = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    res = subprocess.run(imp, stdin=strap.stdout, capture_output=True, text=True, check=False)
    strap.stdout.close()
    if strap.wait() != 0 or res.returncode != 0:
        raise SystemExit(f"building {ref} failed: {res.stderr.strip()}")
    log(f"image {ref}: built in {time.monotonic() - started:.0f} s")
    return ref


def cmd_images(_args):
    for name, spec in IMAGES.items():
        build_image(name, spec)


# --- TLS -----------------------------------------------------------------

def ensure_tls():
    """Lab CA + registry certificate with SAN = registry address and name."""
    tls = STATE / "tls"
    tls.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = tls / "ca.key", tls / "ca.crt"
    key, crt = tls / "registry.key", tls / "registry.crt"
    if not ca_crt.exists():
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "825",
             "-subj", "/CN=lazypull lab CA", "-keyout", str(ca_key), "-out", str(ca_crt),
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"], capture=True)
    if not crt.exists():
        ext = tls / "registry.ext"
        ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                       "extendedKeyUsage=serverAuth\n"
                       f"subjectAltName=IP:{REGISTRY_IP},DNS:{REGISTRY_NAME},"
                       f"IP:{AUTH_REGISTRY_IP},DNS:{AUTH_REGISTRY_NAME}\n")
        csr = tls / "registry.csr"
        run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={REGISTRY_NAME}",
             "-keyout", str(key), "-out", str(csr)], capture=True)
        run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
             "-CAcreateserial", "-days", "825", "-extfile", str(ext), "-out", str(crt)], capture=True)
    for path in (ca_key, key):
        path.chmod(0o600)
    key.chmod(0o644)  # read by the registry process inside its container
    return ca_crt


def ensure_auth():
    """htpasswd auth. The password lives only in a 0600 file."""
    auth = STATE / "auth"
    auth.mkdir(parents=True, exist_ok=True)
    pw_file = auth / "password"
    if not pw_file.exists():
        pw_file.touch(mode=0o600)
        pw_file.write_text(secrets.token_urlsafe(18))
    htpasswd = auth / "htpasswd"
    # -i reads the password from stdin, so it never shows on a command line.
    run(["htpasswd", "-Bic", str(htpasswd), LAB_USER], input=pw_file.read_text(), capture=True)
    return {"username": LAB_USER, "password_file": str(pw_file)}


def registry_config(auth):
    cfg = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": False}},
        "storage": {"filesystem": {"rootdirectory": "/var/lib/docker-registry"},
                    "delete": {"enabled": True}},
        "http": {"addr": f":{REGISTRY_PORT}",
                 "tls": {"certificate": "/lab/tls/registry.crt", "key": "/lab/tls/registry.key"},
                 "headers": {"X-Content-Type-Options": ["nosniff"]}},
    }
    if auth:
        cfg["auth"] = {"htpasswd": {"realm": "lazypull-lab", "path": "/lab/auth/htpasswd"}}
    return cfg


# --- containers ----------------------------------------------------------

def container_running(name):
    res = podman("container", "inspect", "--format", "{{.State.Running}}", name, check=False)
    return res.returncode == 0 and res.stdout.strip() == "true"


def ensure_network():
    if podman("network", "exists", NETWORK, check=False).returncode != 0:
        podman("network", "create", "--subnet", SUBNET, NETWORK)
        log(f"network {NETWORK} ({SUBNET}) created")


def ensure_container(name, ip, args, config_hash):
    """(Re)start a container unless one with the same config hash runs."""
    res = podman("container", "inspect", "--format",
                 '{{ index .Config.Labels "lazypull.config" }}', name, check=False)
    if res.returncode == 0:
        if res.stdout.strip() == config_hash and container_running(name):
            return False
        podman("rm", "-f", "-t", "5", name)
    podman("run", "-d", "--name", name, "--hostname", name, "--network", NETWORK, "--ip", ip,
           "--label", f"lazypull.config={config_hash}", "--label", "lazypull.lab=1", *args)
    return True


def wait_for(url, ca_file=None, timeout=30):
    ctx = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=5) as resp:
                return resp.status
        except urllib.error.HTTPError as err:
            return err.code  # 401 from an auth-enabled registry is an answer
        except OSError as err:
            last = err
            time.sleep(0.5)
    raise SystemExit(f"{url} did not answer within {timeout} s: {last}")


def container_pid(name):
    return podman("container", "inspect", "--format", "{{.State.Pid}}", name).stdout.strip()


def shape_link(rate):
    """tbf on the registry's egress (this kernel has no netem)."""
    pid = container_pid(REGISTRY_NAME)
    if rate:
        run(["nsenter", "-t", pid, "-n", "tc", "qdisc", "replace", "dev", "eth0", "root", "tbf",
             "rate", rate, "burst", "512kb", "latency", "20ms"], capture=True)
    else:
        run(["nsenter", "-t", pid, "-n", "tc", "qdisc", "del", "dev", "eth0", "root"],
            check=False, capture=True)


def measure_throughput(ca_file, image, auth):
    """Download the largest blob of a pushed image once; MB/s as seen by the host."""
    layout = Path(image["layout"])
    index = json.loads((layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"]
    manifest = json.loads((layout / "blobs" / "sha256" / manifest_digest.split(":")[1]).read_text())
    layer = max(manifest["layers"], key=lambda l: l["size"])
    url = (f"https://{REGISTRY_IP}:{REGISTRY_PORT}/v2/{image['repository']}/blobs/{layer['digest']}")
    req = urllib.request.Request(url)
    if auth:
        import base64
        token = base64.b64encode(f"{auth['username']}:{Path(auth['password_file']).read_text()}".encode())
        req.add_header("Authorization", "Basic " + token.decode())
    ctx = ssl.create_default_context(cafile=str(ca_file))
    started = time.monotonic()
    size = 0
    with urllib.request.urlopen(req, context=ctx, timeout=300) as resp:
        while chunk := resp.read(1 << 20):
            size += len(chunk)
    elapsed = time.monotonic() - started
    return size / elapsed / 1e6, size


def ensure_hosts(count, suite):
    """Systemd hosts for playbooks (inventories/lab): privileged, FUSE, and a
    named volume at /var/lib/containerd (no overlay-on-overlay)."""
    names = []
    for index in range(1, count + 1):
        name = f"{HOST_PREFIX}{index}"
        created = ensure_container(name, f"10.89.213.{HOST_IP_BASE + index}", [
            "--privileged", "--systemd=always", "--device", "/dev/fuse",
            # Host directories (named volumes): overlay upper dirs and the
            # snapshotters' roots must not live on overlayfs.
            *[arg for vol, path in HOST_VOLUMES.items() for arg in ("-v", f"{name}-{vol}:{path}")],
            f"localhost/lazypull/debian-systemd:{suite}", "/sbin/init"], f"host-{suite}-2")
        if created:
            podman("exec", name, "systemctl", "is-system-running", "--wait", check=False)
            log(f"lab host {name} ({suite}) started")
        names.append(name)
    return names


# --- artifacts and test images -------------------------------------------

def ensure_artifacts():
    run(["bash", str(HERE / "build-artifacts.sh")])
    return CACHE / "mirror"


def push_test_images(ca_file, registry_ip, auth, extra=()):
    """Build (cached) and push the default images, plus `extra` opt-in ones (llm)."""
    only = [arg for name in extra for arg in ("--only", name)]
    built = json.loads(run([sys.executable, str(HERE / "build_images.py"), "build"],
                           capture=True).stdout)
    if only:
        built += json.loads(run([sys.executable, str(HERE / "build_images.py"), "build", *only],
                                capture=True).stdout)
    certs = STATE / "skopeo-certs"
    certs.mkdir(exist_ok=True)
    shutil.copy(ca_file, certs / "ca.crt")
    cmd = [sys.executable, str(HERE / "build_images.py"), "push",
           "--registry", f"{registry_ip}:{REGISTRY_PORT}", "--cert-dir", str(certs)]
    if auth:
        cmd += ["--authfile", str(write_authfile(auth))]
    pushed = json.loads(run(cmd, capture=True).stdout)
    if only:
        pushed += json.loads(run(cmd + only, capture=True).stdout)
    return built, pushed


def write_authfile(auth):
    import base64
    path = STATE / "auth" / "auth.json"
    token = base64.b64encode(f"{auth['username']}:{Path(auth['password_file']).read_text()}".encode())
    path.touch(mode=0o600)
    path.write_text(json.dumps({"auths": {f"{ip}:{REGISTRY_PORT}": {"auth": token.decode()}
                                          for ip in (REGISTRY_IP, AUTH_REGISTRY_IP)}}))
    return path


def ensure_registry(name, ip, ca_file, auth):
    """Debian's docker-registry in its own container, TLS, its own data dir."""
    conf_dir = STATE / name
    conf_dir.mkdir(exist_ok=True)
    data_dir = STATE / f"{name}-data"
    data_dir.mkdir(exist_ok=True)
    cfg_text = json.dumps(registry_config(auth), indent=2)  # JSON is valid YAML
    (conf_dir / "config.yml").write_text(cfg_text)
    cfg_hash = hashlib.sha256(cfg_text.encode()).hexdigest()[:12]
    ensure_container(name, ip, [
        "-v", f"{conf_dir}:/etc/docker/registry:ro", "-v", f"{STATE / 'tls'}:/lab/tls:ro",
        "-v", f"{STATE / 'auth'}:/lab/auth:ro",
        "-v", f"{data_dir}:/var/lib/docker-registry",
        "--entrypoint", "/usr/bin/docker-registry",
        "localhost/lazypull/lab-tools:trixie", "serve", "/etc/docker/registry/config.yml"], cfg_hash)
    wait_for(f"https://{ip}:{REGISTRY_PORT}/v2/", ca_file)
    log(f"registry https://{ip}:{REGISTRY_PORT} up (TLS, auth={'on' if auth else 'off'})")


# --- commands ------------------------------------------------------------

def cmd_up(args):
    started = time.monotonic()
    run(["bash", str(HERE / "host-prereqs.sh")])
    cmd_images(args)
    mirror_dir = ensure_artifacts()
    STATE.mkdir(parents=True, exist_ok=True)
    ca_file = ensure_tls()
    auth = ensure_auth()
    ensure_network()

    ensure_registry(REGISTRY_NAME, REGISTRY_IP, ca_file, auth if args.auth else None)
    ensure_registry(AUTH_REGISTRY_NAME, AUTH_REGISTRY_IP, ca_file, auth)

    ensure_container(MIRROR_NAME, MIRROR_IP, [
        "-v", f"{mirror_dir}:/srv/mirror:ro", "--entrypoint", "/usr/bin/python3",
        "localhost/lazypull/lab-tools:trixie",
        "-m", "http.server", str(MIRROR_PORT), "--bind", "0.0.0.0", "--directory", "/srv/mirror"],
        "mirror-1")
    wait_for(f"http://{MIRROR_IP}:{MIRROR_PORT}/index.txt")
    log(f"artifact mirror http://{MIRROR_IP}:{MIRROR_PORT} up")

    shape_link(None)  # push unshaped; shape afterwards
    extra = [w for w in args.workloads if w in OPT_IN_IMAGES]
    built, pushed = push_test_images(ca_file, REGISTRY_IP, auth if args.auth else None, extra)
    push_test_images(ca_file, AUTH_REGISTRY_IP, auth)
    images = {}
    for b in built:
        p = next(x for x in pushed if x["name"] == b["name"])
        images[b["name"]] = {**b, **p, "repository": p["ref"].split("/", 1)[1].rsplit(":", 1)[0]}
    log("test images pushed: " + ", ".join(i["ref"] for i in images.values()))

    link = {"rate": args.rate or None}
    shape_link(args.rate)
    # Measured shaped or not: the benchmark's floor needs the link rate.
    mbps, size = measure_throughput(ca_file, images["sparse"], auth if args.auth else None)
    link["measured_MBps"] = round(mbps, 1)
    log(f"link {args.rate or 'unshaped'}: measured {mbps:.1f} MB/s over {size / 1e6:.0f} MB")

    hosts = ensure_hosts(args.hosts, args.host_suite)

    lab = {
        "network": NETWORK, "subnet": SUBNET, "hosts": hosts,
        "registry": {"host": f"{REGISTRY_IP}:{REGISTRY_PORT}", "ip": REGISTRY_IP,
                     "name": REGISTRY_NAME, "ca_file": str(ca_file),
                     "access_log": f"podman logs {REGISTRY_NAME}",
                     "auth": auth if args.auth else None, "link": link},
        "auth_registry": {"host": f"{AUTH_REGISTRY_IP}:{REGISTRY_PORT}", "ip": AUTH_REGISTRY_IP,
                          "name": AUTH_REGISTRY_NAME, "ca_file": str(ca_file), **auth},
        "mirror": {"url": f"http://{MIRROR_IP}:{MIRROR_PORT}", "dir": str(mirror_dir)},
        "images": images,
        "host_images": {n: f"localhost/lazypull/{n}" for n in IMAGES},
    }
    (STATE / "lab.json").write_text(json.dumps(lab, indent=2) + "\n")
    log(f"lab up in {time.monotonic() - started:.0f} s; description in {STATE / 'lab.json'}")


def registry_log_bytes(container, client_ip, since, until, repo=None):
    """Blob bytes a registry served to client_ip between two UTC times
    (access log of distribution: `response completed` entries)."""
    import re
    from datetime import datetime, timedelta

    def parse(ts):
        ts = ts.rstrip("Z")
        head, _, frac = ts.partition(".")
        return datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(
            microsecond=int((frac + "000000")[:6]) if frac else 0)

    start, end = parse(since), parse(until) + timedelta(seconds=1)
    logs = podman("logs", "--since", (start - timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ"), container)
    total = requests = 0
    for line in (logs.stdout + logs.stderr).splitlines():
        if 'msg="response completed"' not in line:
            continue
        fields = dict((k, v.strip('"')) for k, v in re.findall(r'([\w.]+)=("(?:[^"\\]|\\.)*"|\S+)', line))
        when = fields.get("time")
        if not when or not start <= parse(when) <= end:
            continue
        uri = fields.get("http.request.uri", "")
        if (fields.get("http.request.method") == "GET" and "/blobs/" in uri
                and (repo is None or "/v2/%s/blobs/" % repo in uri)
                and fields.get("http.request.remoteaddr", "").startswith(client_ip + ":")):
            total += int(fields.get("http.response.written", 0))
            requests += 1
    return {"bytes": total, "requests": requests}


def cmd_bytes(args):
    print(json.dumps(registry_log_bytes(args.registry, args.client, args.since, args.until, args.repo)))


def cmd_status(_args):
    names = podman("ps", "-a", "--filter", "label=lazypull.lab=1", "--format",
                   "{{.Names}} {{.Status}}").stdout.split("\n")
    lab_json = STATE / "lab.json"
    print(json.dumps({"containers": [n for n in names if n],
                      "network": podman("network", "exists", NETWORK, check=False).returncode == 0,
                      "lab": json.loads(lab_json.read_text()) if lab_json.exists() else None},
                     indent=2))


def cmd_down(_args):
    lab_hosts = podman("ps", "-a", "--filter", f"name=^{HOST_PREFIX}", "--format", "{{.Names}}",
                       check=False).stdout.split()
    for name in (REGISTRY_NAME, AUTH_REGISTRY_NAME, MIRROR_NAME, *lab_hosts):
        podman("rm", "-f", "-t", "5", name, check=False)
    for name in lab_hosts:
        for vol in HOST_VOLUMES:
            podman("volume", "rm", "-f", f"{name}-{vol}", check=False)
    # Containers others attached to the lab network (e.g. Molecule hosts)
    # must go first, or the network cannot be removed.
    users = podman("ps", "-a", "--filter", f"network={NETWORK}", "--format", "{{.Names}}",
                   check=False).stdout.split()
    if users:
        log(f"network {NETWORK} still used by {users}; leaving it")
    else:
        podman("network", "rm", NETWORK, check=False)
    shutil.rmtree(STATE, ignore_errors=True)
    log("lab down")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="build what is missing and start the lab")
    up.add_argument("--rate", default=os.environ.get("LAB_RATE") or None,
                    help="shape the registry link with tbf, e.g. 400mbit (default: unshaped)")
    up.add_argument("--auth", action="store_true", default=os.environ.get("LAB_AUTH") == "1",
                    help="require htpasswd auth at the registry")
    up.add_argument("--hosts", type=int, default=int(os.environ.get("LAB_HOSTS", "0")),
                    help="systemd hosts to start for playbooks (inventories/lab)")
    up.add_argument("--workloads", nargs="*", default=os.environ.get("LAB_WORKLOADS", "").split(),
                    help="benchmark workloads whose images must be in the registry (llm is opt-in)")
    up.add_argument("--host-suite", default=os.environ.get("LAB_HOST_SUITE", "trixie"),
                    choices=["trixie", "bookworm"], help="Debian suite of the lab hosts")
    up.set_defaults(func=cmd_up)
    sub.add_parser("images", help="build the base images only").set_defaults(func=cmd_images)
    sub.add_parser("status", help="print the lab's state").set_defaults(func=cmd_status)
    by = sub.add_parser("bytes", help="blob bytes the registry served to a client in a time window (JSON)")
    by.add_argument("--client", required=True, help="client IP address")
    by.add_argument("--since", required=True, help="UTC, e.g. 2026-12-05T01:00:00.123Z")
    by.add_argument("--until", required=True, help="UTC")
    by.add_argument("--repo", help="only this repository")
    by.add_argument("--registry", default=REGISTRY_NAME, help="registry container")
    by.set_defaults(func=cmd_bytes)
    sub.add_parser("down", help="remove the lab (caches stay)").set_defaults(func=cmd_down)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("the lab needs root (podman networks, tc, mmdebstrap)")
    args.func(args)


if __name__ == "__main__":
    main()
