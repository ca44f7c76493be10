#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: snapshotter_facts
short_description: Gather facts about containerd and its remote snapshotters
version_added: 0.1.0
description:
  - Reports the versions of containerd, C(ctr-remote), C(soci) and the snapshotter
    daemons; their config paths and parsed configs; each proxy plugin's status in
    C(ctr plugins ls); whether each snapshotter's socket answers; and the FUSE mounts
    below each snapshotter's root (lazily pulled layers).
  - Read-only. Sets the fact C(lazypull_snapshotters).
  - Parsed configs need Python 3.11+ (C(tomllib)) or C(tomli) on the target;
    otherwise C(config_error) says so.
author:
  - lazypull.snapshotters maintainers (@lazypull)
options:
  containerd_address:
    description: containerd's gRPC socket.
    type: path
    default: /run/containerd/containerd.sock
  containerd_config_path:
    description: containerd's configuration file.
    type: path
    default: /etc/containerd/config.toml
  snapshotters:
    description:
      - Per snapshotter, paths that differ from upstream's defaults, keyed by snapshotter
        name (C(stargz), C(soci), or another proxy plugin's name); each value a dict with any of
        C(daemon), C(cli), C(config_path), C(socket), C(root), C(service). Unset keys keep the defaults.
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
    description: Never changes anything.
  diff_mode:
    support: none
    description: Nothing to diff.
  facts:
    support: full
    description: Sets C(lazypull_snapshotters).
'''

EXAMPLES = r'''
- name: Gather snapshotter facts
  lazypull.snapshotters.snapshotter_facts:

- name: Show what runs
  ansible.builtin.debug:
    msg: >-
      containerd {{ lazypull_snapshotters.containerd.version }},
      stargz {{ lazypull_snapshotters.snapshotters.stargz.daemon.version }}
      (socket answers: {{ lazypull_snapshotters.snapshotters.stargz.socket_answers }}),
      FUSE mounts: {{ lazypull_snapshotters.fuse_mounts_total }}
'''

RETURN = r'''
ansible_facts:
  description: Facts set by the module.
  returned: always
  type: dict
  contains:
    lazypull_snapshotters:
      description: containerd and the snapshotters.
      type: dict
      contains:
        containerd:
          description: Path, version, whether it answers, parsed config.
          type: dict
          sample: {path: /usr/bin/containerd, version: 1.7.24, answers: true}
        snapshotters:
          description:
            - Per snapshotter; each with C(installed), C(daemon) and C(cli) (path, version,
              first output line), C(config_path), C(config), C(config_error), C(socket),
              C(socket_answers), C(socket_error), C(root), C(service),
              C(proxy_plugin_status) (as in C(ctr plugins ls), or null when containerd
              has no such proxy plugin), C(fuse_mounts).
          type: dict
        fuse_mounts_total:
          description: FUSE mounts below all snapshotter roots.
          type: int
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lazypull.snapshotters.plugins.module_utils.snapshotter_facts import (
    Readers, gather, validate_overrides)
from ansible_collections.lazypull.snapshotters.plugins.module_utils.sockets import probe_unix_socket


def main():
    module = AnsibleModule(
        argument_spec=dict(
            containerd_address=dict(type='path', default='/run/containerd/containerd.sock'),
            containerd_config_path=dict(type='path', default='/etc/containerd/config.toml'),
            snapshotters=dict(type='dict', default={}),
        ),
        supports_check_mode=True,
    )

    def runner(binary, args):
        return module.run_command([binary] + args, environ_update={'LC_ALL': 'C'})

    def which(name):
        return module.get_bin_path(name, opt_dirs=['/usr/local/bin', '/usr/local/sbin', '/usr/sbin'])

    try:
        overrides = validate_overrides(module.params['snapshotters'])
    except ValueError as err:
        module.fail_json(msg=str(err))

    facts = gather(runner, which, Readers(probe_unix_socket), module.params['containerd_address'],
                   snapshotters=overrides,
                   containerd_config_path=module.params['containerd_config_path'])
    module.exit_json(changed=False, ansible_facts={'lazypull_snapshotters': facts})


if __name__ == '__main__':
    main()
