#!/usr/bin/env bash
# Build the lab's "artifact mirror": a directory laid out like upstream GitHub
# release downloads (<owner>/<repo>/releases/download/<tag>/<file>), filled
# from Debian packages instead of upstream's release binaries, because the lab
# machines reach Debian's mirrors but not the upstream release hosts.
#
#   containerd 1.7.24          <- trixie's containerd .deb (repacked)
#   runc 1.1.5                 <- bookworm's runc .deb (trixie's needs glibc 2.38)
#   stargz-snapshotter 0.14.3  <- ctr-remote from trixie's stargz-snapshotter .deb,
#                                 containerd-stargz-grpc BUILT from trixie's
#                                 source package in a trixie chroot (not packaged)
#   soci-snapshotter 0.4.1     <- trixie's soci-snapshotter .deb (repacked)
#
# Output: ${LAZYPULL_CACHE:-/var/cache/lazypull}/mirror/ (see README-artifacts.md).
# Runs as root on Debian 12. Idempotent: keyed by a recipe hash (this script,
# tests/lab/patches/*, the pinned versions); a matching mirror is a no-op.
#
# Usage: build-artifacts.sh [--force]    (--force: rebuild the mirror even if
#        its recipe matches; the cached containerd-stargz-grpc is still reused)
set -euo pipefail

# ---- pinned versions (upstream major.minor.patch) --------------------------
CONTAINERD_VERSION=1.7.24
RUNC_VERSION=1.1.5
STARGZ_VERSION=0.14.3
SOCI_VERSION=0.4.1
TRIXIE=trixie       # suite for containerd, stargz, soci (and the build chroot)
BOOKWORM=bookworm   # suite for runc
STARGZ_SRC_PKG=golang-github-containerd-stargz-snapshotter
STARGZ_GO_PKG=github.com/containerd/stargz-snapshotter
BUILD_DEPS=(golang-go golang-k8s-client-go-dev golang-github-kubernetes-cri-api-dev
            golang-github-coreos-bbolt-dev)   # + the pinned stargz -dev package
PINNED="containerd=$CONTAINERD_VERSION runc=$RUNC_VERSION stargz=$STARGZ_VERSION soci=$SOCI_VERSION trixie=$TRIXIE bookworm=$BOOKWORM build-deps=${BUILD_DEPS[*]}"

FORCE=0
case "${1:-}" in
  --force) FORCE=1 ;;
  "") ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
PATCH_DIR=$(dirname "$SCRIPT")/patches
CACHE=${LAZYPULL_CACHE:-/var/cache/lazypull}
MIRROR=$CACHE/mirror
T0=$(date +%s); TS=$T0

say()  { echo "[build-artifacts] $*"; }
die()  { echo "[build-artifacts] ERROR: $*" >&2; exit 1; }
# One line per stage: stage time and total time so far.
stage_done() {
  local now; now=$(date +%s)
  say "$(printf '%-34s %4ss  (total %ss)' "$1" $((now - TS)) $((now - T0)))"
  TS=$now
}

[ "$(id -u)" -eq 0 ] || die "must run as root (chroot, mounts, apt)"

# ---- recipe hash: script + patches + pinned versions -----------------------
recipe_hash() {
  {
    cat "$SCRIPT"
    if [ -d "$PATCH_DIR" ]; then
      find "$PATCH_DIR" -type f -print0 | LC_ALL=C sort -z | xargs -0r cat
    fi
    echo "$PINNED"
  } | sha256sum | cut -c1-64
}
RECIPE=$(recipe_hash)
RSHORT=${RECIPE:0:16}

mkdir -p "$CACHE" "$CACHE/build"
exec 9>"$CACHE/.build-artifacts.lock"
flock 9   # one run at a time; the check below runs under the lock

if [ "$FORCE" = 0 ] && [ -f "$MIRROR/.recipe" ] && [ "$(cat "$MIRROR/.recipe")" = "$RECIPE" ]; then
  stage_done "mirror up to date (recipe $RSHORT)"
  exit 0
fi

# ---- temp dirs, mounts, cleanup --------------------------------------------
WORK=""; STAGE=""; OLD=""

# Unmount everything mounted at or below $1 (deepest first).
umount_under() {
  local dir; dir=$(readlink -f "$1" 2>/dev/null) || return 0
  awk -v d="$dir" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo |
    sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
}
# Remove a temp dir, never crossing into a mount that is still there.
remove_tree() {
  [ -n "$1" ] && [ -e "$1" ] || return 0
  umount_under "$1"
  if awk -v d="$(readlink -f "$1")" 'index($5, d "/") == 1 {f=1} END {exit !f}' /proc/self/mountinfo; then
    echo "[build-artifacts] WARNING: mounts left under $1, not removing it" >&2; return 0
  fi
  rm -rf --one-file-system "$1"
}
cleanup() {
  local rc=$?
  set +e
  remove_tree "$WORK"; remove_tree "$STAGE"; remove_tree "$OLD"
  rm -rf "$CACHE/build/.stargz-$RECIPE.tmp"
  [ $rc -eq 0 ] || say "FAILED (exit $rc) after $(( $(date +%s) - T0 ))s; temp dirs removed"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Leftovers of an interrupted earlier run (e.g. SIGKILL): never marked complete.
for d in "$CACHE"/.work.* "$CACHE"/.mirror.new.* "$CACHE"/.mirror.old.*; do
  [ -e "$d" ] && remove_tree "$d"
done

WORK=$(mktemp -d "$CACHE/.work.XXXXXX")
STAGE=$(mktemp -d "$CACHE/.mirror.new.XXXXXX")   # next to $MIRROR: rename is atomic
chmod 0755 "$STAGE"

# ldd exits 1 on a static binary: capture, then match (pipefail-safe).
is_static() { local o; o=$(ldd "$1" 2>&1 || true); [[ $o == *"not a dynamic executable"* ]]; }

# Run a command with its output in $WORK/logs/<name>.log; show the tail on failure.
run_logged() {
  local name=$1; shift
  mkdir -p "$WORK/logs"
  if ! "$@" >"$WORK/logs/$name.log" 2>&1; then
    echo "[build-artifacts] '$name' failed; last lines of its log:" >&2
    tail -n 40 "$WORK/logs/$name.log" >&2
    return 1
  fi
}

# ---- host prerequisites (bookworm packages, only if missing) ---------------
need_pkgs=()
command -v patch >/dev/null || need_pkgs+=(patch)
command -v mmdebstrap >/dev/null || need_pkgs+=(mmdebstrap)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  run_logged host-apt-update apt-get update
  run_logged host-apt-install env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${need_pkgs[@]}"
  stage_done "host packages: ${need_pkgs[*]}"
fi

# ---- private apt configs (host sources stay untouched) ---------------------
# Print "URI SUITE" for every enabled deb entry of the host's apt sources,
# one-line (*.list) and deb822 (*.sources) formats.
host_sources() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    awk '$1 == "deb" { i = 2
           if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
           print $i, $(i + 1) }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    awk 'function flush() {
           if (types ~ / deb( |$)/ && enabled != "no")
             for (u in U) for (s in S) print U[u], S[s]
           types = ""; enabled = ""; split("", U); split("", S) }
         /^[ \t]*#/ { next }
         /^[ \t]*$/ { flush(); next }
         tolower($1) == "types:"   { types = ""; for (i = 2; i <= NF; i++) types = types " " $i }
         tolower($1) == "uris:"    { for (i = 2; i <= NF; i++) U[i] = $i }
         tolower($1) == "suites:"  { for (i = 2; i <= NF; i++) S[i] = $i }
         tolower($1) == "enabled:" { enabled = tolower($2) }
         END { flush() }' "$f"
  done
}
HOST_CODENAME=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
# The Debian archive mirror = the URI that serves the host's own release suite.
DEBIAN_MIRROR=$(host_sources | awk -v c="$HOST_CODENAME" -v b="$BOOKWORM" -v t="$TRIXIE" \
  '!found && ($2 == c || $2 == b || $2 == t) { sub(/\/+$/, "", $1); print $1; found = 1 }')
[ -n "$DEBIAN_MIRROR" ] || die "no Debian mirror for '$HOST_CODENAME' found in /etc/apt/sources.list{,.d/}"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
SIGNED=""; [ -r "$KEYRING" ] && SIGNED="[signed-by=$KEYRING] "

# make_apt DIR  (reads "deb ..." lines on stdin): a self-contained apt state in
# DIR. The host's apt.conf.d is still read (proxy, Check-Valid-Until, ...), but
# sources, lists, cache and dpkg status are private.
make_apt() {
  local d=$1
  mkdir -p "$d/sources.list.d" "$d/lists/partial" "$d/cache/archives/partial"
  cat >"$d/sources.list"; : >"$d/status"
  cat >"$d/apt.conf" <<EOF
Dir::Etc::SourceList "$d/sources.list";
Dir::Etc::SourceParts "$d/sources.list.d";
Dir::State::Lists "$d/lists";
Dir::State::status "$d/status";
Dir::Cache "$d/cache";
Dir::Cache::Archives "$d/cache/archives";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
APT::Sandbox::User "root";
EOF
}
APT_T=$WORK/apt-$TRIXIE; APT_B=$WORK/apt-$BOOKWORM
printf 'deb %s%s %s main\ndeb-src %s%s %s main\n' \
  "$SIGNED" "$DEBIAN_MIRROR" "$TRIXIE" "$SIGNED" "$DEBIAN_MIRROR" "$TRIXIE" | make_apt "$APT_T"
# bookworm: the host's own bookworm* entries (main, -updates, -security), so
# runc comes with its stable/security updates.
host_sources | awk -v b="$BOOKWORM" '$2 == b || $2 == b "-updates" || $2 == b "-security" { sub(/\/+$/, "", $1); print $1, $2 }' |
  sort -u | while read -r uri suite; do printf 'deb %s%s %s main\n' "$SIGNED" "$uri" "$suite"; done | make_apt "$APT_B"
grep -q " $BOOKWORM main" "$APT_B/sources.list" ||
  printf 'deb %s%s %s main\n' "$SIGNED" "$DEBIAN_MIRROR" "$BOOKWORM" >>"$APT_B/sources.list"

aptT() { APT_CONFIG=$APT_T/apt.conf "$@"; }
aptB() { APT_CONFIG=$APT_B/apt.conf "$@"; }
run_logged apt-update-$TRIXIE aptT apt-get update
run_logged apt-update-$BOOKWORM aptB apt-get update
stage_done "apt indexes ($TRIXIE, $BOOKWORM)"

# ---- pin versions ----------------------------------------------------------
candidate() {  # candidate APTFN PKG -> Debian version offered by that suite
  local v; v=$("$1" apt-cache policy "$2" | awk '/Candidate:/ {print $2; exit}')
  [ -n "$v" ] && [ "$v" != "(none)" ] || die "package $2 not found by '$1'"
  echo "$v"
}
upstream_of() { echo "$1" | sed -E 's/^[0-9]+://; s/[~+-].*$//'; }
pin() {  # pin VAR APTFN PKG EXPECTED_UPSTREAM
  local v; v=$(candidate "$2" "$3")
  [ "$(upstream_of "$v")" = "$4" ] ||
    die "$3: suite offers $v (upstream $(upstream_of "$v")), recipe expects $4; update the pinned versions"
  printf -v "$1" '%s' "$v"
}
pin V_CONTAINERD aptT containerd "$CONTAINERD_VERSION"
pin V_CTR_REMOTE aptT stargz-snapshotter "$STARGZ_VERSION"
pin V_SOCI aptT soci-snapshotter "$SOCI_VERSION"
pin V_RUNC aptB runc "$RUNC_VERSION"
# Source version of the stargz binary package (binNMUs add +bN to the binary).
V_STARGZ_SRC=$(aptT apt-cache show "stargz-snapshotter=$V_CTR_REMOTE" |
  awk '/^Version:/ { v = $2 } /^Source:/ { s = $3 } END { gsub(/[()]/, "", s); print (s != "" ? s : v) }')
[ "$(upstream_of "$V_STARGZ_SRC")" = "$STARGZ_VERSION" ] ||
  die "$STARGZ_SRC_PKG source is $V_STARGZ_SRC, recipe expects $STARGZ_VERSION"
stage_done "versions pinned"

# ---- download .debs --------------------------------------------------------
DEBS=$WORK/debs; mkdir -p "$DEBS"
( cd "$DEBS"
  run_logged download-$TRIXIE aptT apt-get download "containerd=$V_CONTAINERD" \
    "stargz-snapshotter=$V_CTR_REMOTE" "soci-snapshotter=$V_SOCI"
  run_logged download-$BOOKWORM aptB apt-get download "runc=$V_RUNC" )
deb_of() { local f; f=$(ls "$DEBS"/"$1"_*.deb) && echo "$f"; }
for p in containerd stargz-snapshotter soci-snapshotter runc; do
  deb=$(deb_of $p); mkdir -p "$WORK/x/$p"; dpkg-deb -x "$deb" "$WORK/x/$p"
done
stage_done "debs downloaded and unpacked"

# ---- containerd-stargz-grpc: build from trixie's source (or reuse cache) ---
SBUILD=$CACHE/build/stargz-$RECIPE
if [ -x "$SBUILD/containerd-stargz-grpc" ] && [ -f "$SBUILD/build-info.txt" ]; then
  stage_done "containerd-stargz-grpc: cached ($RSHORT)"
else
  # 1. orig tarball of the source package; --tar-only skips the .dsc and
  #    .debian.tar.xz (not needed, and some mirrors do not carry them).
  SRC=$WORK/src; mkdir -p "$SRC"
  ( cd "$SRC" && run_logged apt-source aptT apt-get source --download-only --tar-only \
      "$STARGZ_SRC_PKG=$V_STARGZ_SRC" )
  ORIG=$(ls "$SRC"/"${STARGZ_SRC_PKG}_${STARGZ_VERSION}".orig.tar.* 2>/dev/null | head -n1)
  [ -n "$ORIG" ] || die "orig tarball of $STARGZ_SRC_PKG $V_STARGZ_SRC not downloaded"
  stage_done "orig tarball downloaded"

  # 2. trixie build chroot (Debian-packaged Go and Go libraries only).
  ROOT=$WORK/chroot
  MMOPTS=(--variant=minbase --mode=root)
  # Keep the host's apt policy for stale snapshot mirrors, if it has one.
  CVU=""; eval "$(apt-config shell CVU Acquire::Check-Valid-Until)"
  if [ "$CVU" = false ]; then
    MMOPTS+=(--aptopt='Acquire::Check-Valid-Until "false"')
  fi
  INCLUDE=$(IFS=,; echo "${BUILD_DEPS[*]},$STARGZ_SRC_PKG-dev=$V_STARGZ_SRC")
  run_logged mmdebstrap mmdebstrap "${MMOPTS[@]}" --include="$INCLUDE" \
    "$TRIXIE" "$ROOT" "deb $SIGNED$DEBIAN_MIRROR $TRIXIE main"
  stage_done "build chroot ($TRIXIE minbase + Go)"

  # 3. upstream cmd/containerd-stargz-grpc into the packaged GOPATH tree.
  tar -xf "$ORIG" -C "$SRC"
  CMD_SRC=$(find "$SRC" -mindepth 3 -maxdepth 3 -type d -path '*/cmd/containerd-stargz-grpc' | head -n1)
  [ -n "$CMD_SRC" ] || die "cmd/containerd-stargz-grpc not found in $(basename "$ORIG")"
  GOSRC=/usr/share/gocode/src/$STARGZ_GO_PKG/cmd/containerd-stargz-grpc
  [ -d "$ROOT/usr/share/gocode/src/$STARGZ_GO_PKG" ] || die "$STARGZ_SRC_PKG-dev did not install $STARGZ_GO_PKG"
  rm -rf "$ROOT$GOSRC"; cp -a "$CMD_SRC" "$ROOT$GOSRC"
  # The IPFS resolve handler needs the IPFS client, which Debian does not
  # package; the patch below drops its only user. Tests are not built.
  rm -rf "$ROOT$GOSRC/ipfs"; find "$ROOT$GOSRC" -name '*_test.go' -delete
  # goccy/go-json -> encoding/json; no dockerconfig/kubeconfig keychains.
  patch -d "$ROOT$GOSRC" -p1 --forward --no-backup-if-mismatch \
    <"$PATCH_DIR/containerd-stargz-grpc-debian.patch" >"$WORK/logs/patch.log"

  # 4. go build (GOPATH mode, static). Go needs /proc inside the chroot.
  mount -t proc proc "$ROOT/proc"
  LDFLAGS="-s -w -X $STARGZ_GO_PKG/version.Version=v$STARGZ_VERSION -X $STARGZ_GO_PKG/version.Revision=debian-$V_STARGZ_SRC-lazypull"
  run_logged go-build chroot "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/tmp \
    GOCACHE=/tmp/gocache GO111MODULE=off GOPATH=/usr/share/gocode CGO_ENABLED=0 \
    /bin/sh -c "cd '$GOSRC' && go build -trimpath -ldflags '$LDFLAGS' -o /tmp/containerd-stargz-grpc ."
  GO_VERSION=$(chroot "$ROOT" /usr/bin/go version)
  BUILD_PKGS=$(chroot "$ROOT" dpkg-query -W -f '${Package} ${Version}\n' \
    "${BUILD_DEPS[@]}" "$STARGZ_SRC_PKG-dev")
  umount "$ROOT/proc"
  BIN=$ROOT/tmp/containerd-stargz-grpc
  stage_done "go build containerd-stargz-grpc"

  # 5. it must be static and must start before it goes into the cache.
  is_static "$BIN" || die "containerd-stargz-grpc is not static"
  out=$("$BIN" -version) && [[ $out == *" v$STARGZ_VERSION "* ]] ||
    die "containerd-stargz-grpc -version: unexpected output '$out'"
  "$BIN" -h >/dev/null 2>&1 || die "containerd-stargz-grpc -h failed"
  # Same mtime as ctr-remote from the same release: reproducible tarball.
  touch -r "$WORK/x/stargz-snapshotter/usr/bin/ctr-remote" "$BIN"

  TMPB=$CACHE/build/.stargz-$RECIPE.tmp
  rm -rf "$TMPB"; mkdir -p "$TMPB"
  cp -p "$BIN" "$TMPB/containerd-stargz-grpc"
  cp "$PATCH_DIR/containerd-stargz-grpc-debian.patch" "$TMPB/"
  { echo "source   $STARGZ_SRC_PKG $V_STARGZ_SRC ($TRIXIE) $(basename "$ORIG") sha256:$(sha256sum "$ORIG" | cut -c1-64)"
    echo "go       $GO_VERSION (GO111MODULE=off CGO_ENABLED=0 -trimpath)"
    echo "ldflags  $LDFLAGS"
    echo "$BUILD_PKGS" | sed 's/^/builddep /'
  } >"$TMPB/build-info.txt"
  rm -rf "$SBUILD"; mv "$TMPB" "$SBUILD"
  # Keep only this recipe's build.
  for d in "$CACHE"/build/stargz-*; do [ "$d" = "$SBUILD" ] || rm -rf "$d"; done
  remove_tree "$ROOT"   # ~1.7 GB; no longer needed
  stage_done "stargz binary verified, cached"
fi

# ---- assemble the mirror tree in $STAGE ------------------------------------
# Deterministic tarballs: sorted, root-owned, gzip without name/timestamp.
mktgz() {  # mktgz OUT DIR MEMBER...
  local out=$1 dir=$2; shift 2
  tar --sort=name --owner=0 --group=0 --numeric-owner --format=gnu \
    -C "$dir" -cf - "$@" | gzip -n >"$out"
}
shafile() {  # shafile DIR FILE [SUMFILE] -> "<sha256>  FILE" like upstream
  (cd "$1" && sha256sum "$2" >"${3:-$2.sha256sum}")
}
REL=releases/download

# 1. containerd: bin/containerd, bin/containerd-shim*, bin/ctr
D=$STAGE/containerd/containerd/$REL/v$CONTAINERD_VERSION; mkdir -p "$D"
P=$WORK/pack/containerd; mkdir -p "$P/bin"
for b in containerd ctr; do cp -p "$WORK/x/containerd/usr/bin/$b" "$P/bin/"; done
cp -p "$WORK/x/containerd/usr/bin"/containerd-shim* "$P/bin/"
[ -x "$P/bin/containerd-shim-runc-v2" ] || die "containerd .deb has no containerd-shim-runc-v2"
chmod 0755 "$P/bin" "$P/bin"/*
touch -r "$P/bin/containerd" "$P/bin"   # deterministic dir mtime
F=containerd-$CONTAINERD_VERSION-linux-amd64.tar.gz
mktgz "$D/$F" "$P" bin; shafile "$D" "$F"

# 2. runc: runc.amd64 + runc.sha256sum
D=$STAGE/opencontainers/runc/$REL/v$RUNC_VERSION; mkdir -p "$D"
cp -p "$WORK/x/runc/usr/sbin/runc" "$D/runc.amd64"; chmod 0755 "$D/runc.amd64"
shafile "$D" runc.amd64 runc.sha256sum

# 3. stargz-snapshotter: containerd-stargz-grpc + ctr-remote at the root
D=$STAGE/containerd/stargz-snapshotter/$REL/v$STARGZ_VERSION; mkdir -p "$D"
P=$WORK/pack/stargz; mkdir -p "$P"
cp -p "$SBUILD/containerd-stargz-grpc" "$WORK/x/stargz-snapshotter/usr/bin/ctr-remote" "$P/"
chmod 0755 "$P"/*
F=stargz-snapshotter-v$STARGZ_VERSION-linux-amd64.tar.gz
mktgz "$D/$F" "$P" containerd-stargz-grpc ctr-remote; shafile "$D" "$F"

# 4. soci-snapshotter: soci + soci-snapshotter-grpc at the root
D=$STAGE/awslabs/soci-snapshotter/$REL/v$SOCI_VERSION; mkdir -p "$D"
P=$WORK/pack/soci; mkdir -p "$P"
cp -p "$WORK/x/soci-snapshotter/usr/bin/soci" "$WORK/x/soci-snapshotter/usr/bin/soci-snapshotter-grpc" "$P/"
chmod 0755 "$P"/*
F=soci-snapshotter-$SOCI_VERSION-linux-amd64.tar.gz
mktgz "$D/$F" "$P" soci soci-snapshotter-grpc; shafile "$D" "$F"
stage_done "tarballs packed"

# ---- verify before publishing ----------------------------------------------
# Every binary starts on this host (Debian's builds are dynamic: glibc >= 2.34;
# runc also needs libseccomp2). The stargz daemon must be static.
for b in "$WORK/pack/containerd/bin/containerd" "$WORK/pack/containerd/bin/ctr" \
         "$WORK/pack/stargz/ctr-remote" "$WORK/pack/soci/soci" "$WORK/pack/soci/soci-snapshotter-grpc" \
         "$WORK/pack/stargz/containerd-stargz-grpc"; do
  "$b" --version >/dev/null 2>&1 || die "$(basename "$b") --version failed on this host"
done
out=$("$STAGE/opencontainers/runc/$REL/v$RUNC_VERSION/runc.amd64" --version) &&
  [[ $out == "runc version $RUNC_VERSION"* ]] || die "runc.amd64 --version does not report $RUNC_VERSION"
is_static "$WORK/pack/stargz/containerd-stargz-grpc" || die "containerd-stargz-grpc is not static"
while IFS= read -r -d '' s; do
  (cd "$(dirname "$s")" && sha256sum --quiet -c "$(basename "$s")") || die "checksum mismatch: $s"
done < <(find "$STAGE" -name '*.sha256sum' -print0)
for t in "$STAGE"/*/*/"$REL"/*/*.tar.gz; do
  { gzip -t "$t" && tar -tzf "$t" >/dev/null; } || die "broken tarball: $t"
done
stage_done "verified"

# ---- versions.txt, index.txt, .recipe, publish -----------------------------
debsha() { sha256sum "$(deb_of "$1")" | cut -c1-64; }
{
  echo "# lazypull artifact mirror; recipe $RECIPE"
  echo "# artifact             upstream   debian-package      debian-version          suite     deb-sha256"
  printf '%-22s %-10s %-19s %-23s %-9s %s\n' \
    containerd "v$CONTAINERD_VERSION" containerd "$V_CONTAINERD" "$TRIXIE" "$(debsha containerd)" \
    runc "v$RUNC_VERSION" runc "$V_RUNC" "$BOOKWORM" "$(debsha runc)" \
    ctr-remote "v$STARGZ_VERSION" stargz-snapshotter "$V_CTR_REMOTE" "$TRIXIE" "$(debsha stargz-snapshotter)" \
    soci-snapshotter "v$SOCI_VERSION" soci-snapshotter "$V_SOCI" "$TRIXIE" "$(debsha soci-snapshotter)"
  echo "# containerd-stargz-grpc v$STARGZ_VERSION: built from source, see build-info below"
  sed 's/^/containerd-stargz-grpc build: /' "$SBUILD/build-info.txt"
} >"$STAGE/versions.txt"
# index.txt: every file (except index.txt and .recipe), sha256sum -c compatible.
(cd "$STAGE" && find . -type f ! -name index.txt ! -name .recipe -printf '%P\n' |
  LC_ALL=C sort | xargs -d '\n' sha256sum >index.txt)
echo "$RECIPE" >"$STAGE/.recipe"   # written last: marks the tree complete

if [ -e "$MIRROR" ]; then OLD=$CACHE/.mirror.old.$$; mv "$MIRROR" "$OLD"; fi
mv "$STAGE" "$MIRROR"; STAGE=""
remove_tree "$OLD"; OLD=""
stage_done "published $MIRROR (recipe $RSHORT)"
