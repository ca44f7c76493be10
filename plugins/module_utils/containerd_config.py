# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)
"""containerd's config.toml as data.

Plain functions, no Ansible imports, no third-party imports: the role's
filter plugin and the modules call them, and unit tests test them directly.
Rendering the resulting dict to TOML happens on the controller (see
plugins/filter/toml.py) with a real TOML writer.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import re

# Section names differ between config version 2 (containerd 1.x) and
# version 3 (containerd 2.x): the CRI plugin was split in 2.0.
CRI_SECTIONS = {
    2: {
        "images": 'io.containerd.grpc.v1.cri',
        "snapshotter": ('io.containerd.grpc.v1.cri', 'containerd'),
        "registry": ('io.containerd.grpc.v1.cri', 'registry'),
    },
    3: {
        "images": 'io.containerd.cri.v1.images',
        "snapshotter": ('io.containerd.cri.v1.images',),
        "registry": ('io.containerd.cri.v1.images', 'registry'),
    },
}
TRANSFER_PLUGIN = 'io.containerd.transfer.v1.local'

PROXY_PLUGIN_TYPES = ('snapshot', 'content', 'sandbox', 'diff')
_NAME_RE = re.compile(r'^[a-z0-9][a-z0-9_.-]*$')
_VERSION_RE = re.compile(r'\bv?(\d+)\.(\d+)(?:\.(\d+))?')


class ConfigError(ValueError):
    """Input that cannot become a valid containerd config."""


def parse_version(text):
    """Version tuple from `containerd --version` output or a plain version.

    Upstream prints `containerd github.com/containerd/containerd/v2 v2.1.0 <sha>`,
    Debian prints `containerd github.com/containerd/containerd 1.7.24~ds1-6`.
    """
    if text is None:
        raise ConfigError('no containerd version given')
    words = str(text).split()
    # Skip the import path (its "/v2" is not the release version).
    candidates = [w for w in words if '/' not in w] or words
    for word in candidates:
        match = _VERSION_RE.search(word)
        if match:
            return tuple(int(part or 0) for part in match.groups())
    raise ConfigError('cannot read a containerd version from %r' % (text,))


def config_version_for(containerd_version):
    """2 for containerd 1.x, 3 for containerd 2.x (and later)."""
    major = parse_version(containerd_version)[0]
    if major < 1:
        raise ConfigError('containerd %s is too old' % (containerd_version,))
    return 2 if major == 1 else 3


def uses_transfer_service_for_cri(containerd_version):
    """containerd >= 2.1 pulls CRI images through the transfer service."""
    return parse_version(containerd_version)[:2] >= (2, 1)


def deep_merge(base, override):
    """Merge override into a copy of base; dicts merge, anything else replaces."""
    result = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def validate_proxy_plugins(plugins):
    """Check the proxy plugin list other roles register; return it normalised.

    Each entry: {name, address, type='snapshot', root=None, platform=None}.
    """
    seen = set()
    normalised = []
    for index, plugin in enumerate(plugins or []):
        if not isinstance(plugin, dict):
            raise ConfigError('proxy plugin #%d is not a dict: %r' % (index, plugin))
        name = plugin.get('name')
        if not name or not _NAME_RE.match(str(name)):
            raise ConfigError('proxy plugin #%d: invalid name %r (lowercase letters, digits, '
                              '"_", ".", "-")' % (index, name))
        if name in seen:
            raise ConfigError('proxy plugin %r is registered twice' % name)
        seen.add(name)
        address = plugin.get('address')
        if not address or not str(address).startswith('/'):
            raise ConfigError('proxy plugin %r: address must be an absolute unix socket path, '
                              'got %r' % (name, address))
        if len(str(address)) >= 108:
            raise ConfigError('proxy plugin %r: socket path longer than 107 characters' % name)
        plugin_type = plugin.get('type', 'snapshot')
        if plugin_type not in PROXY_PLUGIN_TYPES:
            raise ConfigError('proxy plugin %r: type must be one of %s, got %r'
                              % (name, ', '.join(PROXY_PLUGIN_TYPES), plugin_type))
        # cri_default is read by the containerd role from host registrations.
        unknown = set(plugin) - {'name', 'address', 'type', 'root', 'platform', 'cri_default'}
        if unknown:
            raise ConfigError('proxy plugin %r: unknown keys %s' % (name, ', '.join(sorted(unknown))))
        normalised.append({'name': str(name), 'address': str(address), 'type': plugin_type,
                           'root': plugin.get('root'), 'platform': plugin.get('platform')})
    return normalised


def _set_path(tree, path, key, value):
    node = tree
    for part in path:
        node = node.setdefault(part, {})
    node[key] = value


def build_config(containerd_version, overrides=None, proxy_plugins=None,
                 cri_snapshotter='overlayfs', disable_snapshot_annotations=True,
                 registry_config_path='/etc/containerd/certs.d', root=None, state=None,
                 address=None, transfer_unpack_platform='linux'):
    """The whole config as a dict, ready for a TOML writer.

    Our managed keys come first; the user's `overrides` are deep-merged last
    so that anything containerd supports can be set. The managed keys are
    exactly the ones whose section names differ between versions.
    """
    version = config_version_for(containerd_version)
    plugins = validate_proxy_plugins(proxy_plugins)
    snapshotters = {'overlayfs', 'native', 'btrfs', 'zfs', 'devmapper', 'blockfile', 'erofs'}
    snapshotters.update(p['name'] for p in plugins if p['type'] == 'snapshot')
    if cri_snapshotter not in snapshotters:
        raise ConfigError('CRI snapshotter %r is neither built in nor a registered proxy plugin '
                          '(registered: %s)' % (cri_snapshotter, ', '.join(
                              p['name'] for p in plugins) or 'none'))
    if not isinstance(disable_snapshot_annotations, bool):
        raise ConfigError('disable_snapshot_annotations must be a boolean')

    sections = CRI_SECTIONS[version]
    config = {'version': version}
    if root:
        config['root'] = root
    if state:
        config['state'] = state
    if address:
        config['grpc'] = {'address': address}

    cri_plugins = {}
    _set_path(cri_plugins, sections['snapshotter'], 'snapshotter', cri_snapshotter)
    _set_path(cri_plugins, sections['snapshotter'], 'disable_snapshot_annotations',
              disable_snapshot_annotations)
    if registry_config_path:
        _set_path(cri_plugins, sections['registry'], 'config_path', registry_config_path)
    config['plugins'] = cri_plugins

    if version == 3 and uses_transfer_service_for_cri(containerd_version) \
            and cri_snapshotter != 'overlayfs' and not disable_snapshot_annotations:
        # containerd >= 2.1 falls back to the local (annotation) pull when it
        # sees disable_snapshot_annotations = false; register the remote
        # snapshotter with the transfer service too, so both paths unpack to it.
        config['plugins'][TRANSFER_PLUGIN] = {'unpack_config': [
            {'platform': transfer_unpack_platform, 'snapshotter': cri_snapshotter},
            {'platform': transfer_unpack_platform, 'snapshotter': 'overlayfs'},
        ]}

    if plugins:
        proxies = {}
        # Sorted, so the file does not change with the order roles register in.
        for plugin in sorted(plugins, key=lambda p: p['name']):
            entry = {'type': plugin['type'], 'address': plugin['address']}
            if plugin['platform']:
                entry['platform'] = plugin['platform']
            # `exports` (e.g. the snapshotter root) exists since containerd 1.7.
            if plugin['root'] and parse_version(containerd_version)[:2] >= (1, 7):
                entry['exports'] = {'root': plugin['root']}
            proxies[plugin['name']] = entry
        config['proxy_plugins'] = proxies

    merged = deep_merge(config, overrides or {})
    if merged.get('version') != version:
        raise ConfigError('config version %r in overrides does not match containerd %s '
                          '(needs version %d)' % (merged.get('version'), containerd_version, version))
    return merged


def _is_empty(value):
    return value is None or value is False or value == 0 or value in ('', [], {})


def unknown_keys(written, dumped, _prefix=()):
    """Keys we wrote that containerd's `config dump` does not show back.

    containerd 1.x silently ignores keys it does not know (a typo such as
    `disable_snapshot_annotation` is dropped); the dump shows every key it
    understood. Empty values are not reported: fields tagged omitempty
    vanish from the dump even when known.
    """
    missing = []
    for key, value in written.items():
        path = _prefix + (key,)
        if key not in dumped:
            if not _is_empty(value):
                missing.append('.'.join(path))
        elif isinstance(value, dict) and isinstance(dumped[key], dict):
            missing.extend(unknown_keys(value, dumped[key], path))
    return missing


def registry_hosts(registry):
    """certs.d/<host>/hosts.toml content (as a dict) for one registry entry.

    registry: {host, server=None, ca_file=None, skip_verify=False,
               mirrors=[{url, capabilities=[pull, resolve], ca_file, skip_verify}]}
    """
    host = registry.get('host')
    if not host or '/' in host or ' ' in host:
        raise ConfigError('registry host must be a host[:port], got %r' % (host,))
    doc = {}
    server = registry.get('server')
    if server is None:
        scheme = 'http' if registry.get('plain_http') else 'https'
        server = '%s://%s' % (scheme, host)
    doc['server'] = server
    host_entries = {}
    for mirror in registry.get('mirrors') or []:
        url = mirror.get('url')
        if not url or '://' not in url:
            raise ConfigError('registry %s: mirror url must be absolute, got %r' % (host, url))
        entry = {'capabilities': list(mirror.get('capabilities') or ['pull', 'resolve'])}
        if mirror.get('ca_file'):
            entry['ca'] = mirror['ca_file']
        if mirror.get('skip_verify'):
            entry['skip_verify'] = True
        host_entries[url] = entry
    server_entry = {'capabilities': ['pull', 'resolve', 'push']}
    if registry.get('ca_file'):
        server_entry['ca'] = registry['ca_file']
    if registry.get('skip_verify'):
        server_entry['skip_verify'] = True
    if len(server_entry) > 1:
        # The server itself needs a host entry only to carry TLS settings.
        host_entries[server] = server_entry
    if host_entries:
        doc['host'] = host_entries
    return doc


def parse_plugins_ls(output):
    """Rows of `ctr plugins ls`: [{type, id, platforms, status}]."""
    rows = []
    for line in output.splitlines():
        words = line.split()
        if len(words) < 3 or words[0] == 'TYPE':
            continue
        status = words[-1]
        platforms = ' '.join(words[2:-1]) if len(words) > 3 else ''
        rows.append({'type': words[0], 'id': words[1], 'platforms': platforms.strip(),
                     'status': status})
    return rows


def proxy_plugin_problems(plugins, plugins_ls_output):
    """Names of configured proxy plugins that `ctr plugins ls` does not show `ok`."""
    rows = parse_plugins_ls(plugins_ls_output)
    type_prefix = {'snapshot': 'io.containerd.snapshotter.', 'content': 'io.containerd.content.',
                   'sandbox': 'io.containerd.sandbox.', 'diff': 'io.containerd.differ.'}
    problems = []
    for plugin in validate_proxy_plugins(plugins):
        prefix = type_prefix[plugin['type']]
        match = [r for r in rows if r['id'] == plugin['name'] and r['type'].startswith(prefix)]
        if not match:
            problems.append('%s: not listed by `ctr plugins ls`' % plugin['name'])
        elif match[0]['status'] != 'ok':
            problems.append('%s: status %s (socket %s)' % (plugin['name'], match[0]['status'],
                                                           plugin['address']))
    return problems
