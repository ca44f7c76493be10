#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: lazy_probe
short_description: Prove that a snapshotter pulls (lazily) and runs a small image, without disturbing the host
version_added: "0.1.0"
description:
  - "Pulls a small prepared image on one snapshotter (C(ctr-remote image rpull)
    for stargz, C(soci image rpull) for soci, C(ctr image pull) for overlayfs),
    optionally runs a command in it, then removes everything it created."
  - "Works in a containerd namespace of its own (O(namespace)), emptied before
    and after: safe on a fleet host next to its workloads. It never resets the
    host; use M(lazypull.snapshotters.coldstart) to measure."
  - "For stargz and soci the pull counts as C(lazy) only when snapshots of the
    probe namespace carry the remote label, new FUSE mounts appeared under the
    snapshotter's root, and containerd did not download every layer blob.
    Otherwise it is a C(fallback) and, with O(require_lazy=true), the module fails."
  - The rollout role's post-check (stargz, soci) and its rollback check (overlayfs).
author:
  - lazypull.snapshotters maintainers (@lazypull)
extends_documentation_fragment:
  - lazypull.snapshotters.snapshotter_client
options:
  image:
    description:
      - Image reference of the probe image. For stargz an eStargz image, for
        soci an image with a SOCI index whose layers all have a zTOC
        (M(lazypull.snapshotters.soci_index) with O(lazypull.snapshotters.soci_index#module:min_layer_size=0)).
    type: str
    required: true
  snapshotter:
    description: Snapshotter to probe.
    type: str
    choices: [overlayfs, stargz, soci]
    default: overlayfs
  namespace:
    description: containerd namespace the probe works in; emptied before and after.
    type: str
    default: lazypull-probe
  command:
    description: Command run in a throw-away container after the pull (C(ctr run --rm)); none when empty.
    type: list
    elements: str
    default: []
  expect:
    description: Regular expression the command's output must match.
    type: str
  require_lazy:
    description: Fail when a stargz or soci pull was not lazy.
    type: bool
    default: true
  timeout:
    description: Seconds the command may run before it is killed.
    type: int
    default: 120
notes:
  - Never reports C(changed); the host is left as found.
  - Check mode does nothing and says so.
'''

EXAMPLES = r'''
- name: stargz pulls the probe image lazily and the container reads through FUSE
  lazypull.snapshotters.lazy_probe:
    image: registry.example.internal/lazypull/probe:1-esgz
    snapshotter: stargz
    command: [sh, -c, "cat /bin/busybox > /dev/null && echo lazypull-probe-ok"]
    expect: lazypull-probe-ok

- name: After a rollback, containers still start on overlayfs
  lazypull.snapshotters.lazy_probe:
    image: registry.example.internal/lazypull/probe:1
    snapshotter: overlayfs
    command: ["true"]
'''

RETURN = r'''
lazy: {description: The pull was lazy (always false on overlayfs)., returned: success, type: bool}
fallback: {description: A stargz or soci pull fell back to a full pull., returned: success, type: bool}
layers: {description: Layers of the probe image's manifest., returned: success, type: int}
layers_fetched: {description: Layer blobs containerd downloaded (0 for a fully lazy pull)., returned: success, type: int}
remote_snapshots: {description: Snapshots of the probe namespace with the remote label., returned: success, type: int}
fuse_mounts: {description: FUSE mounts the pull added under the snapshotter's root., returned: success, type: int}
pull_seconds: {description: Pull time., returned: success, type: float}
run_seconds: {description: Run time of O(command)., returned: when a command ran, type: float}
exit_code: {description: Exit code of O(command)., returned: when a command ran, type: int}
output: {description: Last lines of the command's output., returned: when a command ran, type: list, elements: str}
ok: {description: 'Pull (and command) worked, and was lazy when O(require_lazy).', returned: always, type: bool}
problem: {description: 'Why not ok (or why not lazy, when laziness was not required).', returned: success, type: str}
cleanup_left: {description: What could not be removed from O(namespace) afterwards., returned: when something was left, type: dict}
'''

import os
import uuid

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lazypull.snapshotters.plugins.module_utils import lazy_probe
from ansible_collections.lazypull.snapshotters.plugins.module_utils.coldstart import CLIENT_ARGUMENT_SPEC, client_paths
from ansible_collections.lazypull.snapshotters.plugins.module_utils.coldstart_host import SystemHost

ARCH = {'x86_64': 'amd64', 'aarch64': 'arm64'}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            image=dict(type='str', required=True),
            snapshotter=dict(type='str', choices=list(lazy_probe.SNAPSHOTTERS), default='overlayfs'),
            namespace=dict(type='str', default='lazypull-probe'),
            command=dict(type='list', elements='str', default=[]),
            expect=dict(type='str'),
            require_lazy=dict(type='bool', default=True),
            timeout=dict(type='int', default=120),
            **CLIENT_ARGUMENT_SPEC
        ),
        supports_check_mode=True,
    )
    params = dict(module.params)
    try:
        lazy_probe.validate(params)
        paths = client_paths(module, params)
        if module.check_mode:
            module.exit_json(changed=False, ok=True, msg='check mode: would probe %s on %s'
                             % (params['image'], params['snapshotter']))
        result = lazy_probe.probe(SystemHost(module), params, paths, 'lazypull-probe-%s' % uuid.uuid4().hex[:12],
                                  ARCH.get(os.uname()[4], os.uname()[4]))
    except lazy_probe.ProbeError as exc:
        module.fail_json(msg=str(exc), ok=False, image=params['image'], snapshotter=params['snapshotter'])
    if not result['ok']:
        module.fail_json(msg=result['problem'], **result)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
