#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: coldstart
short_description: Measure one cold start of an image on one snapshotter, honestly
version_added: "0.1.0"
description:
  - "Verified cold reset (default on): containers, images, content and snapshots
    of O(namespace) removed, and the images and content of every other namespace
    (containerd shares blobs between namespaces: one left elsewhere would be
    reused, never fetched); the lazy snapshotters in O(reset_snapshotters)
    stopped, their FUSE mounts unmounted, roots (and soci 0.4's
    /var/lib/soci-snapshotter-grpc/content) emptied, restarted; page cache
    dropped; then 0 containers, 0 images, 0 content (in any namespace),
    0 snapshots and 0 FUSE mounts are checked, or the module fails rather than
    measure a warm run."
  - "Then, timed apart: pull (C(ctr-remote image rpull) for stargz,
    C(soci image rpull) for soci, C(ctr image pull) otherwise), container
    create, and run until the task exits, prints a ready line, or a ready URL
    answers 2xx, with a timeout."
  - "Milestones: regular expressions over the output; the time each first
    matched (seconds since the run started) is returned."
  - "A lazy snapshotter counts as C(lazy) only with FUSE mounts under its root,
    remote-labelled snapshots and (host interface counters) clearly fewer bytes
    received than the image's compressed size; otherwise it is reported as a
    C(fallback)."
  - Destructive on purpose, for benchmark hosts. It refuses to reset when other
    namespaces hold containers, unless O(force_reset=true).
author:
  - lazypull.snapshotters maintainers (@lazypull)
extends_documentation_fragment:
  - lazypull.snapshotters.snapshotter_client
options:
  image:
    description: Image reference to pull and run.
    type: str
    required: true
  snapshotter:
    description: Snapshotter to pull and run with.
    type: str
    default: overlayfs
  namespace:
    description: containerd namespace for the measurement (emptied by the reset).
    type: str
    default: lazypull-bench
  reset:
    description: Cold reset (and verify it) before the measurement.
    type: bool
    default: true
  force_reset:
    description: Reset even when other namespaces have containers.
    type: bool
    default: false
  reset_snapshotters:
    description: Lazy snapshotters whose daemons are restarted on emptied roots.
    type: list
    elements: str
    default: [stargz, soci]
  drop_caches:
    description: Drop the page cache (machine-wide) after the reset.
    type: bool
    default: true
  ready:
    description: When the run counts as done.
    type: str
    choices: [exit, line, url]
    default: exit
  ready_line:
    description: Regular expression; the run is ready at the first output line that matches.
    type: str
  ready_url:
    description: URL polled (every 50 ms) until it answers 2xx; use with O(net_host=true).
    type: str
  net_host:
    description: Run the container in the host's network namespace.
    type: bool
    default: false
  env:
    description: Environment variables for the container.
    type: dict
    default: {}
  args:
    description: Arguments replacing the image's command.
    type: list
    elements: str
    default: []
  milestones:
    description: "C([{name, regex}]): the time each regex first matched an output line."
    type: list
    elements: dict
    default: []
  expected_output:
    description: Text that must appear in the output for the run to be C(ok).
    type: str
  timeout:
    description: Seconds the run may take before it is killed and reported as timed out.
    type: int
    default: 600
  output_lines:
    description: Output lines returned (the tail).
    type: int
    default: 20
notes:
  - Check mode reports what would be measured and does nothing.
  - Always reports C(changed=true) outside check mode (it pulls and runs).
'''

EXAMPLES = r'''
- name: One cold start of the eStargz variant, ready when the model is loaded
  lazypull.snapshotters.coldstart:
    image: registry.example.internal/llm/server:1.4-esgz
    snapshotter: stargz
    ready: line
    ready_line: "model loaded"
    milestones:
      - {name: imported, regex: "lazypull-llm: imported"}
      - {name: first_token, regex: "lazypull-llm: first token"}
  register: run
'''

RETURN = r'''
pull_seconds: {description: Pull time., returned: success, type: float}
create_seconds: {description: Container create time., returned: success, type: float}
run_seconds: {description: From task start to exit / ready line / ready URL; null if never ready., returned: success, type: float}
total_seconds: {description: Pull + create + run., returned: success, type: float}
exit_code: {description: Exit code of the task (null when stopped at readiness)., returned: success, type: int}
timed_out: {description: The run hit O(timeout)., returned: success, type: bool}
milestones: {description: "Name -> seconds since run start (null if never seen).", returned: success, type: dict}
output_tail: {description: Last lines of the output., returned: success, type: list, elements: str}
rx_bytes: {description: Bytes received on the host's interfaces (not lo) during pull + run., returned: success, type: int}
image_compressed_size: {description: Sum of the layer sizes of the image's manifest., returned: success, type: int}
fuse_mounts: {description: FUSE mounts under the snapshotter's root after the pull., returned: success, type: int}
remote_snapshots: {description: Snapshots with the remote label., returned: success, type: int}
lazy: {description: A lazy snapshotter really pulled lazily., returned: success, type: bool}
fallback: {description: A lazy snapshotter fell back to a full pull., returned: success, type: bool}
ok: {description: The run was ready in time (and exited 0 / printed the expected output)., returned: success, type: bool}
reset: {description: 'The verified cold state (counts); null without reset.', returned: success, type: dict}
started_at: {description: UTC time the pull started., returned: success, type: str}
finished_at: {description: UTC time the run ended., returned: success, type: str}
'''

import os
import uuid

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lazypull.snapshotters.plugins.module_utils import coldstart
from ansible_collections.lazypull.snapshotters.plugins.module_utils.coldstart_host import SystemHost

ARCH = {'x86_64': 'amd64', 'aarch64': 'arm64'}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            image=dict(type='str', required=True),
            snapshotter=dict(type='str', default='overlayfs'),
            namespace=dict(type='str', default='lazypull-bench'),
            reset=dict(type='bool', default=True),
            force_reset=dict(type='bool', default=False),
            reset_snapshotters=dict(type='list', elements='str', default=['stargz', 'soci']),
            drop_caches=dict(type='bool', default=True),
            ready=dict(type='str', choices=list(coldstart.READY_MODES), default='exit'),
            ready_line=dict(type='str'),
            ready_url=dict(type='str'),
            net_host=dict(type='bool', default=False),
            env=dict(type='dict', default={}),
            args=dict(type='list', elements='str', default=[]),
            milestones=dict(type='list', elements='dict', default=[]),
            expected_output=dict(type='str'),
            timeout=dict(type='int', default=600),
            output_lines=dict(type='int', default=20),
            **coldstart.CLIENT_ARGUMENT_SPEC
        ),
        supports_check_mode=True,
    )
    params = dict(module.params)
    try:
        coldstart.validate(params)
        unknown = sorted(set(params['reset_snapshotters']) - set(coldstart.LAZY))
        if unknown:
            raise coldstart.ColdstartError('reset_snapshotters: unknown %s (known: %s)'
                                           % (', '.join(unknown), ', '.join(coldstart.LAZY)))
        paths = coldstart.client_paths(module, params)
        if module.check_mode:
            module.exit_json(changed=False, msg='would measure %s on %s' % (params['image'], params['snapshotter']))
        host = SystemHost(module)
        if params['reset'] and not params['force_reset']:
            busy = coldstart.busy_elsewhere(host, params)
            if busy:
                raise coldstart.ColdstartError('refusing to reset: %s (set force_reset)' % busy)
        result = coldstart.measure(host, params, paths, 'lazypull-%s' % uuid.uuid4().hex[:12],
                                   ARCH.get(os.uname()[4], os.uname()[4]))
    except coldstart.ColdstartError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=True, **result)


if __name__ == '__main__':
    main()
