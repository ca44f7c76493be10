# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)
"""Filters that turn role variables into containerd config data and TOML.

Thin wrappers: the logic is in module_utils/containerd_config.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.lazypull.snapshotters.plugins.plugin_utils.plain_data import prune_none, to_plain
from ansible_collections.lazypull.snapshotters.plugins.module_utils import containerd_config as model

try:
    import tomli_w
    HAS_TOMLI_W = True
except ImportError:
    HAS_TOMLI_W = False

try:
    import tomllib
except ImportError:  # Python < 3.11
    try:
        import tomli as tomllib
    except ImportError:
        tomllib = None


def to_toml(data, header=None):
    """Render a dict as TOML. `header` becomes a leading comment."""
    if not HAS_TOMLI_W:
        raise AnsibleFilterError('to_toml needs the Python library tomli-w on the controller '
                                 '(pip install tomli-w)')
    if not isinstance(data, dict):
        raise AnsibleFilterError('to_toml expects a dict, got %s' % type(data).__name__)
    try:
        text = tomli_w.dumps(to_plain(prune_none(data)))
    except (TypeError, ValueError) as err:
        raise AnsibleFilterError('cannot render TOML: %s' % err)
    if header:
        text = ''.join('# %s\n' % line for line in str(header).splitlines()) + '\n' + text
    return text


def containerd_config(containerd_version, overrides=None, proxy_plugins=None,
                      cri_snapshotter='overlayfs', disable_snapshot_annotations=True,
                      registry_config_path='/etc/containerd/certs.d', root=None, state=None,
                      address=None):
    """The containerd config dict for the installed version (see module_utils)."""
    try:
        return prune_none(model.build_config(
            containerd_version, overrides=to_plain(overrides), proxy_plugins=to_plain(proxy_plugins),
            cri_snapshotter=cri_snapshotter,
            disable_snapshot_annotations=disable_snapshot_annotations,
            registry_config_path=registry_config_path, root=root, state=state, address=address))
    except model.ConfigError as err:
        raise AnsibleFilterError('containerd config: %s' % err)


def containerd_registry_hosts(registry):
    """hosts.toml data for one certs.d registry entry."""
    try:
        return model.registry_hosts(to_plain(registry))
    except model.ConfigError as err:
        raise AnsibleFilterError('containerd registry hosts: %s' % err)


def containerd_proxy_plugin_problems(plugins_ls_output, proxy_plugins):
    """Configured proxy plugins that `ctr plugins ls` does not list as ok."""
    try:
        return model.proxy_plugin_problems(to_plain(proxy_plugins), plugins_ls_output)
    except model.ConfigError as err:
        raise AnsibleFilterError('containerd proxy plugins: %s' % err)


def containerd_unknown_keys(config_dump_output, written):
    """Dotted keys of `written` that `containerd config dump` did not keep."""
    if tomllib is None:
        raise AnsibleFilterError('containerd_unknown_keys needs tomllib (Python 3.11+) or tomli')
    try:
        dumped = tomllib.loads(config_dump_output)
    except ValueError as err:
        raise AnsibleFilterError('cannot parse `containerd config dump` output: %s' % err)
    return model.unknown_keys(to_plain(written), dumped)


def containerd_version_number(containerd_version_output):
    """'1.7.24' from `containerd --version` output."""
    try:
        return '.'.join(str(p) for p in model.parse_version(containerd_version_output))
    except model.ConfigError as err:
        raise AnsibleFilterError(str(err))


def containerd_config_version(containerd_version):
    """2 for containerd 1.x, 3 for 2.x."""
    try:
        return model.config_version_for(containerd_version)
    except model.ConfigError as err:
        raise AnsibleFilterError(str(err))


class FilterModule(object):
    def filters(self):
        return {
            'to_toml': to_toml,
            'containerd_config': containerd_config,
            'containerd_config_version': containerd_config_version,
            'containerd_registry_hosts': containerd_registry_hosts,
            'containerd_proxy_plugin_problems': containerd_proxy_plugin_problems,
            'containerd_unknown_keys': containerd_unknown_keys,
            'containerd_version_number': containerd_version_number,
        }
