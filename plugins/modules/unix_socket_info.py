#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: unix_socket_info
short_description: Tell whether daemons listen on unix sockets
version_added: 0.1.0
description:
  - Connects to each given unix socket and reports whether it exists, is a socket,
    and accepts a connection.
  - containerd lists a proxy plugin (remote snapshotter) as C(ok) even when no daemon
    listens on its socket; this module is the check that tells the difference.
  - Read-only.
author:
  - lazypull.snapshotters maintainers (@lazypull)
options:
  paths:
    description: Socket paths to probe.
    type: list
    elements: path
    required: true
  timeout:
    description: Seconds to wait for each connection.
    type: float
    default: 2.0
attributes:
  check_mode:
    support: full
    description: Never changes anything.
  diff_mode:
    support: none
    description: Nothing to diff.
'''

EXAMPLES = r'''
- name: Probe the stargz snapshotter's socket
  lazypull.snapshotters.unix_socket_info:
    paths:
      - /run/containerd-stargz-grpc/containerd-stargz-grpc.sock
  register: sockets

- name: Fail unless it answers
  ansible.builtin.assert:
    that: sockets.sockets[0].answers
'''

RETURN = r'''
sockets:
  description: One entry per probed path, in order.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The probed path.
      type: str
      sample: /run/containerd-stargz-grpc/containerd-stargz-grpc.sock
    exists:
      description: Whether the path exists.
      type: bool
    is_socket:
      description: Whether the path is a unix socket.
      type: bool
    answers:
      description: Whether a connection was accepted.
      type: bool
    error:
      description: Why it does not answer, or null.
      type: str
      sample: connection refused (stale socket, no daemon listens)
all_answer:
  description: Whether every socket answered.
  returned: always
  type: bool
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lazypull.snapshotters.plugins.module_utils.sockets import probe_unix_socket


def main():
    module = AnsibleModule(
        argument_spec=dict(
            paths=dict(type='list', elements='path', required=True),
            timeout=dict(type='float', default=2.0),
        ),
        supports_check_mode=True,
    )
    if module.params['timeout'] <= 0:
        module.fail_json(msg='timeout must be positive')
    results = [probe_unix_socket(p, module.params['timeout']) for p in module.params['paths']]
    module.exit_json(changed=False, sockets=results, all_answer=all(r['answers'] for r in results))


if __name__ == '__main__':
    main()
