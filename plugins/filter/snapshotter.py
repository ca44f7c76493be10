# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)
"""Filters for the remote snapshotter daemons' own config.toml.

Thin wrappers: the logic and the key tables are in
module_utils/snapshotter_config.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.lazypull.snapshotters.plugins.plugin_utils.plain_data import to_plain
from ansible_collections.lazypull.snapshotters.plugins.module_utils import snapshotter_config as model


def snapshotter_config(version_output, snapshotter, overrides=None, defaults=None,
                       unchecked_keys=None):
    """The daemon's config dict for the installed version (see module_utils)."""
    try:
        return model.build_config(to_plain(snapshotter), to_plain(version_output),
                                  defaults=to_plain(defaults), overrides=to_plain(overrides),
                                  unchecked_keys=to_plain(unchecked_keys))
    except model.ConfigError as err:
        raise AnsibleFilterError(str(err))


def snapshotter_version_number(version_output):
    """'0.14.3' from `containerd-stargz-grpc --version` / `soci-snapshotter-grpc --version`."""
    try:
        return model.version_string(to_plain(version_output))
    except model.ConfigError as err:
        raise AnsibleFilterError(str(err))


def snapshotter_proxy_plugin(snapshotter, socket=None, root=None, name=None):
    """The containerd proxy-plugin entry {name, type, address, root} of a snapshotter."""
    try:
        return model.registration(to_plain(snapshotter), socket=socket, root=root, name=name)
    except model.ConfigError as err:
        raise AnsibleFilterError(str(err))


class FilterModule(object):
    def filters(self):
        return {
            'snapshotter_config': snapshotter_config,
            'snapshotter_version_number': snapshotter_version_number,
            'snapshotter_proxy_plugin': snapshotter_proxy_plugin,
        }
