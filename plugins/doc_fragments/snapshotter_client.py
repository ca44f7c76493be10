# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """How the modules that pull on a host reach containerd, the registry and the snapshotters."""

    DOCUMENTATION = r'''
options:
  containerd_address:
    description: containerd's socket.
    type: str
    default: /run/containerd/containerd.sock
  hosts_dir:
    description: containerd registry host config directory passed to the pull (C(--hosts-dir)).
    type: path
    default: /etc/containerd/certs.d
  plain_http:
    description: Pull over plain HTTP.
    type: bool
    default: false
  ctr_path:
    description: Path of C(ctr); searched on PATH when not given.
    type: path
  ctr_remote_path:
    description: Path of C(ctr-remote) (stargz pulls); searched on PATH and in /usr/local/bin.
    type: path
  soci_path:
    description: Path of C(soci) (soci pulls); searched on PATH and in /usr/local/bin.
    type: path
  snapshotters:
    description:
      - Per snapshotter (C(stargz), C(soci)), paths that differ from upstream's defaults, each a dict
        with any of C(root), C(service), C(socket) (where FUSE mounts are looked for, which unit to restart).
    type: dict
    default: {}
'''
