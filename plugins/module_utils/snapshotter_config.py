# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)
"""The remote snapshotter daemons' own config.toml as data.

stargz-snapshotter (`containerd-stargz-grpc`, /etc/containerd-stargz-grpc/config.toml)
and soci-snapshotter (`soci-snapshotter-grpc`, /etc/soci-snapshotter-grpc/config.toml)
both decode their config with pelletier/go-toml into Go structs and silently
ignore every key they do not know: a typo, or a key of a newer release, is
dropped without a word and the daemon runs on its built-in value. A wrong
*type*, on the other hand, stops the daemon at start.

So this module keeps the key schema of every release we support as data
(dotted path -> type, and the versions in which the key exists), merges our
defaults with the user's overrides and validates the result against the
installed version *before* anything is written to a host.

Plain functions, no Ansible imports, no third-party imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import difflib
import re

from ansible_collections.lazypull.snapshotters.plugins.module_utils import containerd_config
from ansible_collections.lazypull.snapshotters.plugins.module_utils.containerd_config import deep_merge


class ConfigError(containerd_config.ConfigError):
    """Input that cannot become a valid snapshotter config.

    `problems` lists every single problem found (the message joins them).
    """

    def __init__(self, message, problems=None):
        super(ConfigError, self).__init__(message)
        self.problems = list(problems or [])


# ---------------------------------------------------------------------------
# The snapshotters
# ---------------------------------------------------------------------------
# `oldest`: the oldest release whose config structs were read for the key
# table below (older versions are refused: we do not know their keys).
# `newest`: the newest release read; later versions are accepted and keep
# every key whose `until` is open, but keys they added are unknown here (see
# build_config's `unchecked_keys`).
SNAPSHOTTERS = {
    'stargz': {
        'project': 'stargz-snapshotter',
        'daemon': 'containerd-stargz-grpc',
        'config_path': '/etc/containerd-stargz-grpc/config.toml',
        # cmd/containerd-stargz-grpc/main.go defaultAddress / defaultRootDir @ v0.14.3 .. v0.18.2
        'socket': '/run/containerd-stargz-grpc/containerd-stargz-grpc.sock',
        'root': '/var/lib/containerd-stargz-grpc',
        'oldest': '0.14.0',
        'newest': '0.18.2',
    },
    'soci': {
        'project': 'soci-snapshotter',
        'daemon': 'soci-snapshotter-grpc',
        'config_path': '/etc/soci-snapshotter-grpc/config.toml',
        # cmd/soci-snapshotter-grpc/main.go defaultAddress @ v0.4.1 .. v0.15.0,
        # config/config.go SociSnapshotterRootPath @ v0.4.1
        'socket': '/run/soci-snapshotter-grpc/soci-snapshotter-grpc.sock',
        'root': '/var/lib/soci-snapshotter-grpc',
        'oldest': '0.4.0',
        'newest': '0.15.0',
    },
}

ALIASES = {
    'stargz': 'stargz', 'stargz-snapshotter': 'stargz', 'stargz_snapshotter': 'stargz',
    'containerd-stargz-grpc': 'stargz',
    'soci': 'soci', 'soci-snapshotter': 'soci', 'soci_snapshotter': 'soci',
    'soci-snapshotter-grpc': 'soci',
}

# Value types of leaf keys.
INT = 'int'            # TOML integer (Go int/int64)
BOOL = 'bool'          # TOML boolean
STR = 'str'            # TOML string
STR_LIST = 'list[str]'  # TOML array of strings
HEADERS = 'headers'    # table: header name -> string or array of strings
SIZE = 'size'          # string such as "16mb": soci's size syntax (N[.N] [b|kb|mb|gb])

_TYPE_WORDS = {
    INT: 'an integer',
    BOOL: 'a boolean (true/false)',
    STR: 'a string',
    STR_LIST: 'a list of strings',
    HEADERS: 'a table of header name -> string or list of strings',
    SIZE: 'a size string such as "16mb" (number, optional unit b, kb, mb or gb)',
}

# Paths: "a.b.c" is key c of table b of table a. A "*" part is a free-form
# map level (its keys are data, e.g. registry host names); "name[]" is an
# array of tables (TOML [[name]]). `since` is the first release that has the
# key, `until` the first release that no longer has it; None = open end
# (since None: present in every release from `oldest` on).

# -- stargz-snapshotter ----------------------------------------------------
# Read from the Go structs (toml tags) at the tags named below, in
# github.com/containerd/stargz-snapshotter; every tag v0.14.0 .. v0.18.2 was
# compared, keys not named with a `since` are identical in all of them.
# Cross-checked against the toml tags in the lab's containerd-stargz-grpc
# v0.14.3 binary (built from Debian trixie's 0.14.3 source).
# All releases decode with pelletier/go-toml v1.9.5 (cmd/go.mod), which
# honours `default:"..."` tags and ignores unknown keys.
STARGZ_KEYS = (
    # fs/config/config.go `Config` @ v0.14.3 (embedded untagged into
    # service.Config, itself embedded into main.go's snapshotterConfig: top level)
    ('http_cache_type', STR, None, None),
    ('filesystem_cache_type', STR, None, None),
    ('resolve_result_entry_ttl_sec', INT, None, None),
    ('resolve_result_entry', INT, None, None),  # "deprecated" in the struct since before 0.14
    ('prefetch_size', INT, None, None),
    ('prefetch_timeout_sec', INT, None, None),
    ('noprefetch', BOOL, None, None),
    ('no_background_fetch', BOOL, None, None),
    ('debug', BOOL, None, None),
    ('allow_no_verification', BOOL, None, None),
    ('disable_verification', BOOL, None, None),
    ('max_concurrency', INT, None, None),
    ('no_prometheus', BOOL, None, None),  # also a field of snapshotterConfig: same key
    # fs/config/config.go `Config` @ v0.18.2 (not in v0.18.1)
    ('prefetch_async_size', INT, '0.18.2', None),
    ('log_file_access', BOOL, '0.18.2', None),
    # fs/config/config.go `BlobConfig` ([blob]) @ v0.14.3
    ('blob.valid_interval', INT, None, None),
    ('blob.check_always', BOOL, None, None),
    ('blob.chunk_size', INT, None, None),
    ('blob.fetching_timeout_sec', INT, None, None),
    ('blob.force_single_range_mode', BOOL, None, None),
    ('blob.prefetch_chunk_size', INT, None, None),
    ('blob.max_retries', INT, None, None),
    ('blob.min_wait_msec', INT, None, None),
    ('blob.max_wait_msec', INT, None, None),
    # fs/config/config.go `DirectoryCacheConfig` ([directory_cache]) @ v0.14.3
    ('directory_cache.max_lru_cache_entry', INT, None, None),
    ('directory_cache.max_cache_fds', INT, None, None),
    ('directory_cache.sync_add', BOOL, None, None),
    ('directory_cache.direct', BOOL, None, None),  # default:"true" tag
    # fs/config/config.go `DirectoryCacheConfig` @ v0.18.0 (not in v0.17.0)
    ('directory_cache.fadv_dontneed', BOOL, '0.18.0', None),
    # fs/config/config.go `FuseConfig` ([fuse]) @ v0.14.3
    ('fuse.attr_timeout', INT, None, None),
    ('fuse.entry_timeout', INT, None, None),
    # fs/config/config.go `FuseConfig` @ v0.17.0 (not in v0.16.3): FUSE passthrough
    ('fuse.passthrough', BOOL, '0.17.0', None),
    ('fuse.merge_buffer_size', INT, '0.17.0', None),
    ('fuse.merge_worker_count', INT, '0.17.0', None),
    # service/config.go `KubeconfigKeychainConfig` / `CRIKeychainConfig` /
    # `SnapshotterConfig` @ v0.14.3
    ('kubeconfig_keychain.enable_keychain', BOOL, None, None),
    ('kubeconfig_keychain.kubeconfig_path', STR, None, None),
    ('cri_keychain.enable_keychain', BOOL, None, None),
    ('cri_keychain.image_service_path', STR, None, None),
    ('snapshotter.allow_invalid_mounts_on_restart', BOOL, None, None),
    # service/config.go `CRIKeychainConfig` @ v0.17.0 (not in v0.16.3)
    ('cri_keychain.listen_path', STR, '0.17.0', None),
    # service/resolver/registry.go `Config`/`HostConfig`/`MirrorConfig` @ v0.14.3
    # ([[resolver.host."H".mirrors]]; `header` values: string or list of strings)
    ('resolver.host.*.mirrors[].host', STR, None, None),
    ('resolver.host.*.mirrors[].insecure', BOOL, None, None),
    ('resolver.host.*.mirrors[].request_timeout_sec', INT, None, None),
    ('resolver.host.*.mirrors[].header', HEADERS, None, None),
    # service/resolver/registry.go `Config` @ v0.18.2 (not in v0.18.1)
    ('resolver.request_timeout_sec', INT, '0.18.2', None),
    # cmd/containerd-stargz-grpc/main.go `snapshotterConfig` @ v0.14.3
    ('metrics_address', STR, None, None),
    ('debug_address', STR, None, None),
    ('ipfs', BOOL, None, None),
    ('metadata_store', STR, None, None),  # "memory" (default) or "db"
    # cmd/containerd-stargz-grpc/main.go `FuseManagerConfig` ([fuse_manager]) @ v0.17.0
    ('fuse_manager.enable', BOOL, '0.17.0', None),
    ('fuse_manager.address', STR, '0.17.0', None),
    ('fuse_manager.path', STR, '0.17.0', None),
)

# -- soci-snapshotter ------------------------------------------------------
# Read from config/{config,fs,service,resolver,pull_modes,parallel}.go in
# github.com/awslabs/soci-snapshotter at the tags named below; every tag
# v0.4.0 .. v0.15.0 was compared. Cross-checked against the toml tags in
# Debian trixie's soci-snapshotter-grpc 0.4.1 binary (0.4.1-5+b3).
# Up to v0.9.0 the config is decoded with pelletier/go-toml v1; from v0.10.0
# with go-toml/v2 (commit 32dcd22b). Both ignore unknown keys.
SOCI_KEYS = (
    # config/fs.go `FSConfig` @ v0.4.1 (embedded untagged: top level)
    ('http_cache_type', STR, None, None),
    ('filesystem_cache_type', STR, None, None),
    ('resolve_result_entry', INT, None, None),
    ('debug', BOOL, None, None),
    ('disable_verification', BOOL, None, None),
    # accepted but unused in 0.4.x/0.5.x; from v0.6.0 it limits the layers
    # pulled at once (default 100, negative = unlimited)
    ('max_concurrency', INT, None, None),
    ('no_prometheus', BOOL, None, None),  # also a field of `Config`: same key
    ('mount_timeout_sec', INT, None, None),
    ('fuse_metrics_emit_wait_duration_sec', INT, None, None),
    # config/fs.go `FSConfig.AllowNoVerification` @ v0.9.0, removed @ v0.10.0 (commit 3b846abe)
    ('allow_no_verification', BOOL, None, '0.10.0'),
    # config/fs.go `RetryableHTTPClientConfig` ([http]) @ v0.4.1 .. v0.15.0: the
    # embedded TimeoutConfig/RetryConfig fields carry NO toml tags, so the keys
    # are the Go field names (go-toml v1 tries Name/lowercase/UPPERCASE/lowerFirst,
    # v2 matches case-insensitively). snake_case spellings are silently ignored.
    # Upstream's docs/config.md @ v0.10.0 documents these CamelCase names.
    ('http.MaxRetries', INT, None, None),
    ('http.MinWaitMsec', INT, None, None),
    ('http.MaxWaitMsec', INT, None, None),
    ('http.DialTimeoutMsec', INT, None, None),
    ('http.ResponseHeaderTimeoutMsec', INT, None, None),
    ('http.RequestTimeoutMsec', INT, None, None),
    # config/fs.go `BlobConfig` ([blob]) @ v0.4.1
    ('blob.valid_interval', INT, None, None),
    ('blob.check_always', BOOL, None, None),
    ('blob.fetching_timeout_sec', INT, None, None),
    ('blob.force_single_range_mode', BOOL, None, None),
    ('blob.max_retries', INT, None, None),
    ('blob.min_wait_msec', INT, None, None),
    ('blob.max_wait_msec', INT, None, None),
    ('blob.max_span_verification_retries', INT, None, None),
    # config/fs.go `DirectoryCacheConfig` ([directory_cache]) @ v0.4.1
    ('directory_cache.max_lru_cache_entry', INT, None, None),
    ('directory_cache.max_cache_fds', INT, None, None),
    ('directory_cache.sync_add', BOOL, None, None),
    ('directory_cache.direct', BOOL, None, None),
    # config/fs.go `FuseConfig` ([fuse]) @ v0.4.1
    ('fuse.attr_timeout', INT, None, None),
    ('fuse.entry_timeout', INT, None, None),
    ('fuse.negative_timeout', INT, None, None),
    ('fuse.log_fuse_operations', BOOL, None, None),
    # config/fs.go `BackgroundFetchConfig` ([background_fetch]) @ v0.4.1
    ('background_fetch.disable', BOOL, None, None),
    ('background_fetch.silence_period_msec', INT, None, None),
    ('background_fetch.fetch_period_msec', INT, None, None),
    ('background_fetch.max_queue_size', INT, None, None),
    ('background_fetch.emit_metric_period_sec', INT, None, None),
    # config/fs.go `BackgroundFetchConfig` @ v0.15.0 (not in v0.14.1): "oldest" or "newest"
    ('background_fetch.drop_policy', STR, '0.15.0', None),
    # config/fs.go `ContentStoreConfig` ([content_store]) @ v0.4.1; default
    # type "soci" up to v0.9.0, "containerd" from v0.10.0 (config/defaults.go)
    ('content_store.type', STR, None, None),
    # config/fs.go `ContentStoreConfig.Namespace` @ v0.9.0, removed @ v0.10.0 (commit fc8257f8)
    ('content_store.namespace', STR, None, '0.10.0'),
    # config/fs.go `ContentStoreConfig.ContainerdAddress` @ v0.5.0 (not in v0.4.1)
    ('content_store.containerd_address', STR, '0.5.0', None),
    # config/fs.go `PrefetchConfig` ([prefetch]) @ v0.13.0 (not in v0.12.1)
    ('prefetch.enable', BOOL, '0.13.0', None),
    ('prefetch.max_concurrency', INT, '0.13.0', None),
    # config/config.go `Config` @ v0.4.1
    ('metrics_address', STR, None, None),
    ('metrics_network', STR, None, None),
    ('debug_address', STR, None, None),
    ('metadata_store', STR, None, None),
    # config/config.go `Config` @ v0.7.0 (not in v0.6.1)
    ('skip_check_snapshotter_supported', BOOL, '0.7.0', None),
    # config/config.go `Config` @ v0.15.0 (not in v0.14.1)
    ('metadata_db_no_sync', BOOL, '0.15.0', None),
    ('metadata_insertion_chunk_size', INT, '0.15.0', None),
    # config/service.go `KubeconfigKeychainConfig` / `CRIKeychainConfig` /
    # `SnapshotterConfig` @ v0.4.1
    ('kubeconfig_keychain.enable_keychain', BOOL, None, None),
    ('kubeconfig_keychain.kubeconfig_path', STR, None, None),
    ('cri_keychain.enable_keychain', BOOL, None, None),
    ('cri_keychain.image_service_path', STR, None, None),
    ('snapshotter.min_layer_size', INT, None, None),
    ('snapshotter.allow_invalid_mounts_on_restart', BOOL, None, None),
    # config/resolver.go `ResolverConfig`/`HostConfig`/`MirrorConfig` @ v0.4.1 (no `header`)
    ('resolver.host.*.mirrors[].host', STR, None, None),
    ('resolver.host.*.mirrors[].insecure', BOOL, None, None),
    ('resolver.host.*.mirrors[].request_timeout_sec', INT, None, None),
    # config/resolver.go `ResolverConfig` @ v0.15.0 (not in v0.14.1)
    ('resolver.auth_client_ttl_sec', INT, '0.15.0', None),
    ('resolver.enable_auth_client_sharing', BOOL, '0.15.0', None),
    # config/service.go `ServiceConfig.PullModes`, config/pull_modes.go @ v0.10.0
    # (not in v0.9.0). Defaults from v0.10.0: soci_v1 false, soci_v2 true.
    ('pull_modes.soci_v1.enable', BOOL, '0.10.0', None),
    ('pull_modes.soci_v2.enable', BOOL, '0.10.0', None),
    # config/pull_modes.go `Parallel` + config/parallel.go `ParallelConfig`,
    # `DecompressStream` @ v0.11.0 (not in v0.10.1)
    ('pull_modes.parallel_pull_unpack.enable', BOOL, '0.11.0', None),
    ('pull_modes.parallel_pull_unpack.max_concurrent_downloads', INT, '0.11.0', None),
    ('pull_modes.parallel_pull_unpack.max_concurrent_downloads_per_image', INT, '0.11.0', None),
    ('pull_modes.parallel_pull_unpack.concurrent_download_chunk_size', SIZE, '0.11.0', None),
    ('pull_modes.parallel_pull_unpack.max_concurrent_unpacks', INT, '0.11.0', None),
    ('pull_modes.parallel_pull_unpack.max_concurrent_unpacks_per_image', INT, '0.11.0', None),
    ('pull_modes.parallel_pull_unpack.discard_unpacked_layers', BOOL, '0.11.0', None),
    ('pull_modes.parallel_pull_unpack.decompress_streams.*.path', STR, '0.11.0', None),
    ('pull_modes.parallel_pull_unpack.decompress_streams.*.args', STR_LIST, '0.11.0', None),
    # config/pull_modes.go `Parallel` @ v0.14.0 (not in v0.13.0)
    ('pull_modes.parallel_pull_unpack.experimental_parallel_pull_as_fallback', BOOL, '0.14.0', None),
)

KEY_TABLES = {'stargz': STARGZ_KEYS, 'soci': SOCI_KEYS}

# ---------------------------------------------------------------------------
# Defaults for large images (LLM and other multi-GB images)
# ---------------------------------------------------------------------------
# Every key here exists in the oldest and the newest release we support
# (stargz 0.14.x .. 0.18.x, soci 0.4.x .. 0.15.x): tests check that.
# A user override wins; a null override removes a default.
DEFAULTS = {
    'stargz': {
        # Upstream waits 10 s for a layer's prefetch before the container may
        # start. Optimized LLM images prefetch the weights and libraries the
        # workload reads anyway (often 1 GB+): give bulk prefetch time to finish
        # instead of racing it with slow on-demand reads.
        'prefetch_timeout_sec': 30,
        # Prometheus metrics (on_demand_bytes_fetched, ...) on loopback: how a
        # fleet proves a run was lazy. Port of upstream's own demo config.
        'metrics_address': '127.0.0.1:8234',
    },
    'soci': {
        # Mounting a layer parses its zTOC into the metadata DB; layers of ML
        # images hold 10^4-10^5 files and a timeout (30 s upstream) makes
        # containerd silently fall back to a full pull.
        'mount_timeout_sec': 120,
        'http': {
            # zTOCs of GB-sized layers are tens of MB and are fetched within one
            # request: 30 s was too short on slow links (upstream raised the
            # default to 300 s in 0.11.0; 0.4.x still has 30 s).
            'RequestTimeoutMsec': 300000,
        },
        'background_fetch': {
            # Keep background fetch on, but fetch one span every 100 ms instead
            # of 500 ms (~40 instead of ~8 MiB/s with 4 MiB spans): a multi-GB
            # image becomes fully local in minutes rather than tens of minutes.
            # It still pauses for silence_period_msec after each new mount.
            'fetch_period_msec': 100,
        },
        # Prometheus metrics on loopback; not stargz's 8234, so both daemons
        # can run on one host (upstream's docs example, localhost:8000, is a
        # port web apps commonly take).
        'metrics_address': '127.0.0.1:8235',
    },
}

# ---------------------------------------------------------------------------
# Versions
# ---------------------------------------------------------------------------
_VERSION_RE = re.compile(r'(?<![\w.])v?(\d+)\.(\d+)(?:\.(\d+))?')


def _canonical(snapshotter):
    name = ALIASES.get(str(snapshotter).strip().lower()) if snapshotter is not None else None
    if name is None:
        raise ConfigError('unknown snapshotter %r (known: %s)'
                          % (snapshotter, ', '.join(sorted(SNAPSHOTTERS))))
    return name


def parse_version(text):
    """(major, minor, patch) from a snapshotter's `--version` output or a version.

    Formats seen:
    - `containerd-stargz-grpc v0.14.3 debian-0.14.3-4-lazypull` (the lab's
      build; upstream: `containerd-stargz-grpc <git describe> <commit>`)
    - `soci-snapshotter-grpc version 0.4.1-5+b3 0.4.1-5+b3` (Debian trixie)
    - `soci-snapshotter-grpc version v0.15.0 <commit>` (upstream releases)
    - `soci version 0.4.1-5+b3 0.4.1-5+b3` (the soci CLI)
    - `0.14.3`, `v0.10.1`, or a (major, minor, patch) tuple.
    """
    if isinstance(text, (tuple, list)):
        parts = list(text)
        if not 2 <= len(parts) <= 3 or not all(isinstance(p, int) and not isinstance(p, bool)
                                               and p >= 0 for p in parts):
            raise ConfigError('cannot read a version from %r' % (text,))
        return tuple(parts + [0] * (3 - len(parts)))
    if text is None or not str(text).strip():
        raise ConfigError('no snapshotter version given')
    text = str(text).strip()
    words = text.split()
    if words[0] in ('ctr', 'containerd') or 'github.com/containerd/containerd' in text:
        # `ctr-remote --version` prints ctr's, i.e. containerd's, version.
        raise ConfigError('%r is a containerd/ctr version, not a snapshotter version '
                          '(ask containerd-stargz-grpc or soci-snapshotter-grpc)' % text)
    # The first word that starts like a version: the program name and the word
    # "version" never do, the revision (commit, Debian version) comes after.
    for word in words:
        if '/' in word:
            continue
        match = _VERSION_RE.match(word)
        if match:
            return tuple(int(part or 0) for part in match.groups())
    if '<unknown>' in text:
        raise ConfigError('%r: the binary was built without version information '
                          '(no -ldflags -X .../version.Version)' % text)
    raise ConfigError('cannot read a version from %r' % text)


def version_string(version):
    """'0.14.3' for any form parse_version() reads."""
    return '.'.join(str(p) for p in parse_version(version))


def _check_supported(name, version):
    oldest = parse_version(SNAPSHOTTERS[name]['oldest'])
    if version < oldest:
        raise ConfigError('%s %s is older than the oldest release whose config keys are known '
                          '(%s)' % (SNAPSHOTTERS[name]['project'], version_string(version),
                                    SNAPSHOTTERS[name]['oldest']))


# ---------------------------------------------------------------------------
# The key schema
# ---------------------------------------------------------------------------
def _exists(entry, version):
    since, until = entry['since'], entry['until']
    return (since is None or version >= since) and (until is None or version < until)


def _entries(name):
    entries = []
    for path, vtype, since, until in KEY_TABLES[name]:
        entries.append({'path': path, 'type': vtype,
                        'since': parse_version(since) if since else None,
                        'until': parse_version(until) if until else None})
    return entries


def _build_tree(name):
    """Nested dict of schema nodes: {'children': {...}, 'leaf': entry, 'array': bool}."""
    root = {'children': {}, 'entries': []}
    for entry in _entries(name):
        node = root
        node['entries'].append(entry)
        parts = entry['path'].split('.')
        for index, part in enumerate(parts):
            array = part.endswith('[]')
            key = part[:-2] if array else part
            child = node['children'].get(key)
            if child is None:
                child = {'children': {}, 'entries': [], 'array': array, 'leaf': None}
                node['children'][key] = child
            child['entries'].append(entry)
            if index == len(parts) - 1:
                child['leaf'] = entry
            node = child
    return root


_TREES = dict((name, _build_tree(name)) for name in SNAPSHOTTERS)


def known_keys(snapshotter, version):
    """Dotted key paths valid in that version ("*" = map level, "[]" = array of tables)."""
    name = _canonical(snapshotter)
    version = parse_version(version)
    _check_supported(name, version)
    return set(e['path'] for e in _entries(name) if _exists(e, version))


def _range_text(project, entry):
    since, until = entry['since'], entry['until']
    if since and until:
        return 'exists only in %s >= %s, < %s' % (
            project, version_string(since), version_string(until))
    if since:
        return 'needs %s >= %s' % (project, version_string(since))
    return 'exists only in %s < %s (removed in %s)' % (
        project, version_string(until), version_string(until))


_BARE_KEY = re.compile(r'^[A-Za-z0-9_-]+$')


def _show_key(key):
    return key if _BARE_KEY.match(key) else '"%s"' % key.replace('\\', '\\\\').replace('"', '\\"')


def _join(path, key):
    shown = _show_key(key)
    return shown if not path else '%s.%s' % (path, shown)


def _type_ok(vtype, value):
    if vtype == INT:
        return isinstance(value, int) and not isinstance(value, bool) and -2 ** 63 <= value < 2 ** 63
    if vtype == BOOL:
        return isinstance(value, bool)
    if vtype == STR:
        return isinstance(value, str)
    if vtype == STR_LIST:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if vtype == HEADERS:
        return isinstance(value, dict) and all(
            isinstance(k, str) and (isinstance(v, str) or (
                isinstance(v, list) and all(isinstance(i, str) for i in v)))
            for k, v in value.items())
    if vtype == SIZE:
        return isinstance(value, str) and _SIZE_RE.match(value) is not None
    raise AssertionError('unknown type %r' % vtype)


# config/parallel.go sizeRegex @ v0.15.0 (same since v0.11.0), as a rule.
_SIZE_RE = re.compile(r'^\s*\d+(\.\d+)?(\s*(gb|mb|kb|b)?)?\s*$', re.IGNORECASE)


def _describe(value):
    if isinstance(value, bool):
        return 'bool %r' % value
    if isinstance(value, (dict, list)):
        return type(value).__name__
    return '%s %r' % (type(value).__name__, value)


class _Checker(object):
    def __init__(self, name, version, unchecked):
        self.name = name
        self.project = SNAPSHOTTERS[name]['project']
        self.version = version
        if isinstance(unchecked, str):
            unchecked = [unchecked]
        self.unchecked = set(unchecked or ())
        self.problems = []

    def installed(self):
        return '%s %s' % (self.project, version_string(self.version))

    def _skip(self, schema_path):
        parts = schema_path.split('.')
        return any('.'.join(parts[:n]) in self.unchecked for n in range(1, len(parts) + 1))

    def table(self, value, node, path, schema_path):
        if not isinstance(value, dict):
            self.problems.append('%s must be a table (dict), got %s'
                                 % (path or 'the config', _describe(value)))
            return
        if not value and path and not any(_exists(e, self.version) for e in node['entries']):
            self.problems.append('%s: table %s' % (path, self._version_hint(node['entries'])))
            return
        for key in value:
            if not isinstance(key, str) or not key:
                self.problems.append('%s: keys must be non-empty strings, got %r'
                                     % (path or 'the config', key))
                continue
            child_path = _join(path, key)
            literal_schema = '%s.%s' % (schema_path, key) if schema_path else key
            child = node['children'].get(key)
            child_schema = literal_schema
            if child is None and '*' in node['children']:
                # A free-form map level (e.g. registry hosts): any key is data.
                child = node['children']['*']
                child_schema = '%s.*' % schema_path if schema_path else '*'
            if self._skip(child_schema) or self._skip(literal_schema):
                continue
            if child is None:
                self.problems.append(self._unknown(child_path, key, node))
                continue
            self.node(value[key], child, child_path, child_schema)

    def node(self, value, node, path, schema_path):
        if node['leaf'] is not None:
            self.leaf(value, node['leaf'], path)
        elif node['array']:
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                self.problems.append('%s must be a list of tables (TOML [[...]]), got %s'
                                     % (path, _describe(value)))
                return
            for index, item in enumerate(value):
                self.table(item, node, '%s[%d]' % (path, index), schema_path + '[]')
        else:
            self.table(value, node, path, schema_path)

    def leaf(self, value, entry, path):
        if not _exists(entry, self.version):
            self.problems.append('%s %s, installed %s' % (path, _range_text(self.project, entry),
                                                          version_string(self.version)))
            return
        if not _type_ok(entry['type'], value):
            self.problems.append('%s must be %s, got %s' % (path, _TYPE_WORDS[entry['type']],
                                                            _describe(value)))

    def _version_hint(self, entries):
        starts = [e['since'] for e in entries if e['since']]
        if starts and all(e['since'] for e in entries):
            return 'needs %s >= %s, installed %s' % (self.project, version_string(min(starts)),
                                                     version_string(self.version))
        return 'does not exist in %s' % self.installed()

    def _unknown(self, path, key, node):
        here = [k for k, c in node['children'].items()
                if k != '*' and any(_exists(e, self.version) for e in c['entries'])]
        message = '%s: unknown key' % path
        same_case = [k for k in here if k.lower() == key.lower()
                     or k.lower().replace('_', '') == key.lower().replace('_', '')]
        close = same_case or difflib.get_close_matches(key, here, n=1, cutoff=0.75)
        if close:
            message += ' (did you mean %s?)' % close[0]
        newest = parse_version(SNAPSHOTTERS[self.name]['newest'])
        if self.version > newest:
            message += (' [%s is newer than the newest release whose keys are known (%s): '
                        'if this key is new, list it in unchecked_keys]'
                        % (self.installed(), SNAPSHOTTERS[self.name]['newest']))
        return message


def validate(snapshotter, version, config, unchecked_keys=None):
    """Every problem of `config` for that version, as a list of messages ([] = valid).

    unchecked_keys: schema paths (e.g. "fuse_manager.metrics_address", or a
    table such as "fuse_manager") accepted without checks - for keys of
    releases newer than the key table.
    """
    name = _canonical(snapshotter)
    version = parse_version(version)
    _check_supported(name, version)
    checker = _Checker(name, version, unchecked_keys)
    checker.table(config, _TREES[name], '', '')
    return checker.problems


def _prune_none(value):
    if isinstance(value, dict):
        return dict((k, _prune_none(v)) for k, v in value.items() if v is not None)
    if isinstance(value, list):
        return [_prune_none(v) for v in value if v is not None]
    return value


def default_config(snapshotter):
    """A copy of the defaults for large images."""
    return copy.deepcopy(DEFAULTS[_canonical(snapshotter)])


def build_config(snapshotter, version, defaults=None, overrides=None, unchecked_keys=None):
    """The daemon's whole config as a dict, ready for a TOML writer.

    defaults (None = DEFAULTS[snapshotter]) and overrides are deep-merged
    (overrides win, a null value removes a key), then every key is checked
    against the installed version; all problems are reported at once.
    """
    name = _canonical(snapshotter)
    version = parse_version(version)
    if defaults is None:
        defaults = DEFAULTS[name]
    for label, data in (('defaults', defaults), ('overrides', overrides)):
        if data is not None and not isinstance(data, dict):
            raise ConfigError('%s config %s must be a dict, got %s'
                              % (SNAPSHOTTERS[name]['daemon'], label, type(data).__name__))
    merged = _prune_none(deep_merge(defaults, overrides or {}))
    problems = validate(name, version, merged, unchecked_keys)
    if problems:
        raise ConfigError('%s config for %s %s: %d problem%s: %s' % (
            SNAPSHOTTERS[name]['daemon'], SNAPSHOTTERS[name]['project'], version_string(version),
            len(problems), '' if len(problems) == 1 else 's', '; '.join(problems)), problems)
    return merged


def registration(snapshotter, socket=None, root=None, name=None):
    """The proxy-plugin entry the containerd role renders: {name, type, address, root}."""
    canonical = _canonical(snapshotter)
    info = SNAPSHOTTERS[canonical]
    entry = {'name': name or canonical, 'type': 'snapshot',
             'address': socket or info['socket'], 'root': root or info['root']}
    try:
        containerd_config.validate_proxy_plugins([entry])
    except containerd_config.ConfigError as err:
        raise ConfigError(str(err))
    if not str(entry['root']).startswith('/'):
        raise ConfigError('proxy plugin %r: root must be an absolute path, got %r'
                          % (entry['name'], entry['root']))
    return entry
