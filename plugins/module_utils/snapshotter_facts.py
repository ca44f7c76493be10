# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)
"""What a host runs: containerd, the remote snapshotters, their state.

`gather()` takes a command runner and a few readers as seams, so every
parser and the assembly are unit-tested without daemons.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.lazypull.snapshotters.plugins.module_utils.containerd_config import (
    ConfigError, parse_plugins_ls, parse_version)
from ansible_collections.lazypull.snapshotters.plugins.module_utils.snapshotter_config import (
    parse_version as snapshotter_version)

# Upstream's default paths; each can be overridden per snapshotter.
DEFAULT_SNAPSHOTTERS = {
    'stargz': {
        'daemon': 'containerd-stargz-grpc',
        'cli': 'ctr-remote',
        'config_path': '/etc/containerd-stargz-grpc/config.toml',
        'socket': '/run/containerd-stargz-grpc/containerd-stargz-grpc.sock',
        'root': '/var/lib/containerd-stargz-grpc',
        'service': 'stargz-snapshotter',
    },
    'soci': {
        'daemon': 'soci-snapshotter-grpc',
        'cli': 'soci',
        'config_path': '/etc/soci-snapshotter-grpc/config.toml',
        'socket': '/run/soci-snapshotter-grpc/soci-snapshotter-grpc.sock',
        'root': '/var/lib/soci-snapshotter-grpc',
        'service': 'soci-snapshotter',
    },
}


OVERRIDE_KEYS = ('daemon', 'cli', 'config_path', 'socket', 'root', 'service')


def validate_overrides(snapshotters):
    """{name: {key: value}} with known keys only; raises ValueError."""
    result = {}
    for name, overrides in (snapshotters or {}).items():
        if not isinstance(overrides, dict):
            raise ValueError('snapshotters.%s must be a dict of %s' % (name, ', '.join(OVERRIDE_KEYS)))
        unknown = sorted(set(overrides) - set(OVERRIDE_KEYS))
        if unknown:
            raise ValueError('snapshotters.%s: unknown keys %s (known: %s)'
                             % (name, ', '.join(unknown), ', '.join(OVERRIDE_KEYS)))
        result[name] = dict((k, v) for k, v in overrides.items() if v is not None)
    return result


def version_of(output, parser=parse_version):
    """'1.2.3' from a --version output, or None when there is none. Snapshotter
    binaries use snapshotter_config.parse_version, which refuses ctr-remote's
    output (it prints the containerd version it was built with)."""
    try:
        return '.'.join(str(p) for p in parser(output))
    except ConfigError:  # snapshotter_config's errors are ConfigErrors too
        return None


def _unescape_mount_field(value):
    # /proc/self/mountinfo escapes space, tab, newline and backslash as octal.
    for code, char in (('\\040', ' '), ('\\011', '\t'), ('\\012', '\n'), ('\\134', '\\')):
        value = value.replace(code, char)
    return value


def parse_mountinfo(text):
    """[{mountpoint, fstype, source}] from /proc/self/mountinfo."""
    mounts = []
    for line in text.splitlines():
        if ' - ' not in line:
            continue
        before, after = line.split(' - ', 1)
        fields = before.split()
        rest = after.split()
        if len(fields) < 5 or len(rest) < 2:
            continue
        mounts.append({'mountpoint': _unescape_mount_field(fields[4]), 'fstype': rest[0],
                       'source': _unescape_mount_field(rest[1])})
    return mounts


def fuse_mounts_under(mounts, root):
    """FUSE mount points below a snapshotter's root directory."""
    prefix = root.rstrip('/') + '/'
    return [m['mountpoint'] for m in mounts
            if (m['fstype'] == 'fuse' or m['fstype'].startswith('fuse.'))
            and m['mountpoint'].startswith(prefix)]


def parse_toml_text(text):
    """(data, error) — the target may lack a TOML parser (Python < 3.11)."""
    try:
        import tomllib
    except ImportError:
        try:
            import tomli as tomllib
        except ImportError:
            return None, 'no TOML parser on the target (Python < 3.11 without tomli)'
    try:
        return tomllib.loads(text), None
    except ValueError as err:
        return None, 'invalid TOML: %s' % err


class Readers(object):
    """File and socket access, replaceable in tests."""

    def __init__(self, probe_socket):
        self.probe_socket = probe_socket

    def read(self, path):
        try:
            with open(path) as handle:
                return handle.read()
        except (IOError, OSError):
            return None

    def exists(self, path):
        return os.path.exists(path)


def _command_version(runner, binary, args=('--version',), parser=parse_version):
    if not binary:
        return {'path': None, 'version': None, 'output': None}
    rc, out, err = runner(binary, list(args))
    text = (out or err or '').strip()
    return {'path': binary, 'version': version_of(text, parser) if rc == 0 else None,
            'output': text.splitlines()[0] if text else None}


def gather(runner, which, readers, containerd_address, snapshotters=None, containerd_config_path=None):
    """All facts as one dict.

    runner(binary, args) -> (rc, stdout, stderr); which(name) -> path or None.
    """
    wanted = dict((k, dict(v)) for k, v in DEFAULT_SNAPSHOTTERS.items())
    for name, overrides in (snapshotters or {}).items():
        wanted.setdefault(name, {}).update(dict((k, v) for k, v in overrides.items() if v is not None))

    containerd = _command_version(runner, which('containerd'))
    ctr = which('ctr')
    plugins = []
    containerd['answers'] = False
    if ctr:
        rc, out, err = runner(ctr, ['--address', containerd_address, 'plugins', 'ls'])
        if rc == 0:
            containerd['answers'] = True
            plugins = parse_plugins_ls(out)
        else:
            containerd['error'] = (err or out or '').strip().splitlines()[-1:] or None
    containerd['address'] = containerd_address
    containerd['config_path'] = containerd_config_path
    if containerd_config_path:
        text = readers.read(containerd_config_path)
        containerd['config'], containerd['config_error'] = (
            parse_toml_text(text) if text is not None else (None, 'missing'))
    proxy_rows = dict((r['id'], r['status']) for r in plugins
                      if r['type'].startswith('io.containerd.snapshotter.'))

    mounts = parse_mountinfo(readers.read('/proc/self/mountinfo') or '')
    result = {}
    for name, spec in sorted(wanted.items()):
        daemon = _command_version(runner, which(spec.get('daemon')) if spec.get('daemon') else None,
                                  parser=snapshotter_version)
        cli = _command_version(runner, which(spec.get('cli')) if spec.get('cli') else None,
                               parser=snapshotter_version)
        config_text = readers.read(spec['config_path']) if spec.get('config_path') else None
        config, config_error = (parse_toml_text(config_text) if config_text is not None
                                else (None, 'missing'))
        socket = readers.probe_socket(spec['socket']) if spec.get('socket') else None
        result[name] = {
            'installed': daemon['path'] is not None,
            'daemon': daemon,
            'cli': cli,
            'config_path': spec.get('config_path'),
            'config': config,
            'config_error': config_error,
            'socket': spec.get('socket'),
            'socket_answers': bool(socket and socket['answers']),
            'socket_error': socket['error'] if socket else None,
            'root': spec.get('root'),
            'service': spec.get('service'),
            'proxy_plugin_status': proxy_rows.get(name),
            'fuse_mounts': fuse_mounts_under(mounts, spec['root']) if spec.get('root') else [],
        }
    return {'containerd': containerd, 'snapshotters': result,
            'fuse_mounts_total': sum(len(v['fuse_mounts']) for v in result.values())}
