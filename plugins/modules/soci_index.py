#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: soci_index
short_description: Build, push or remove the SOCI index of an image
version_added: "0.1.0"
description:
  - Makes an image lazily pullable by soci-snapshotter without changing it.
  - O(manifest_version=v1) builds an index with C(soci create) and pushes it
    with C(soci push) as a referrer of the image (what soci < 0.10 reads).
    O(manifest_version=v2) runs C(soci convert) (soci >= 0.10) into O(dest).
    Chosen from the installed soci when not given.
  - v1 idempotence reads the options back from the registry's index itself
    (soci records none). Which layers have a zTOC must match
    O(min_layer_size) and the span count of a zTOC must match O(span_size).
    A matching index means C(changed=false); other SOCI indexes of the same
    image are removed after a new one is pushed, so the snapshotter cannot
    pick a stale one.
  - Warns when every layer is below O(min_layer_size), as such an index has no
    zTOC and soci would pull the image eagerly; nothing is built then.
author:
  - lazypull.snapshotters maintainers (@lazypull)
extends_documentation_fragment:
  - lazypull.snapshotters.image_tools
options:
  image:
    description: The image to index, C(host[:port]/repository[:tag|@digest]).
    type: str
    required: true
  dest:
    description: Where O(manifest_version=v2) writes the converted image (a tag). Not used by v1.
    type: str
  manifest_version:
    description: SOCI index manifest version; by default v2 for soci >= 0.10, else v1.
    type: str
    choices: [v1, v2]
  span_size:
    description: Span size in bytes (soci's default 4 MiB).
    type: int
  min_layer_size:
    description: Layers smaller than this (bytes) get no zTOC and are pulled eagerly (soci's default 10 MiB).
    type: int
  platforms:
    description: Platforms to index, C(os/arch[/variant]), or V([all]). Default linux/amd64.
    type: list
    elements: str
    default: []
  push:
    description: Push the index. With V(false) it stays in the host's soci store.
    type: bool
    default: true
  prune:
    description: After pushing a new v1 index, remove the image's other SOCI indexes from the registry.
    type: bool
    default: true
  state:
    description: V(absent) removes the image's SOCI indexes from the registry (deletes must be enabled there).
    type: str
    choices: [present, absent]
    default: present
seealso:
  - module: lazypull.snapshotters.image_convert
'''

EXAMPLES = r'''
- name: SOCI index for an image, default options
  lazypull.snapshotters.soci_index:
    image: registry.example.internal/llm/server:1.4

- name: Small layers too, finer spans (fewer bytes per first read)
  lazypull.snapshotters.soci_index:
    image: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/llm/server:1.4
    min_layer_size: 1048576
    span_size: 1048576

- name: soci >= 0.10, index manifest v2
  lazypull.snapshotters.soci_index:
    image: registry.example.internal/llm/server:1.4
    dest: registry.example.internal/llm/server:1.4-soci
    manifest_version: v2

- name: Remove the index
  lazypull.snapshotters.soci_index:
    image: registry.example.internal/llm/server:1.4
    state: absent
'''

RETURN = r'''
image_digest:
  description: Digest of the image (manifest or index) the index is for.
  returned: always
  type: str
manifest_version:
  description: v1 or v2, as used.
  returned: always
  type: str
indexes:
  description:
    - Per platform manifest (v1), the index digest, zTOC count, layers
      indexed and skipped (with the reason soci gave).
  returned: v1, state present
  type: list
  elements: dict
removed:
  description: Index digests removed from the registry.
  returned: when indexes were removed
  type: list
  elements: str
dest_digest:
  description: Digest of the converted image (v2).
  returned: v2
  type: str
steps:
  description: Seconds spent pulling, creating and pushing.
  returned: when an index was built
  type: dict
elapsed:
  description: Seconds the module spent.
  returned: always
  type: float
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lazypull.snapshotters.plugins.module_utils import image_reference, image_tools, soci_index


def main():
    spec = dict(image_tools.ARGUMENT_SPEC)
    spec.update(
        image=dict(type='str', required=True),
        dest=dict(type='str'),
        manifest_version=dict(type='str', choices=['v1', 'v2']),
        span_size=dict(type='int'),
        min_layer_size=dict(type='int'),
        platforms=dict(type='list', elements='str', default=[]),
        push=dict(type='bool', default=True),
        prune=dict(type='bool', default=True),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                           required_together=image_tools.REQUIRED_TOGETHER)
    params = module.params

    def index():
        ref = image_reference.parse(params['image'])
        soci_index.validate_sizes(params['span_size'], params['min_layer_size'])
        image_tools.validate_platforms(params['platforms'])
        tools = {'ctr': image_tools.find_binary(module, 'ctr', params['ctr_path']),
                 'soci': image_tools.find_binary(module, 'soci', params['soci_path'])}
        runner = image_tools.module_runner(module, params)
        _rc, out, err = runner.run([tools['soci'], '--version'], what='soci --version')
        installed = soci_index.parse_soci_version(out + err)
        version = soci_index.choose_manifest_version(params['manifest_version'], installed)
        dest = None
        if version == 'v2':
            if not params['dest']:
                raise soci_index.SociError('manifest_version v2 needs dest (soci convert writes a new image)')
            dest = image_reference.parse(params['dest'])
        elif params['dest']:
            raise soci_index.SociError('dest applies to manifest_version v2 only (v1 indexes refer to the image)')
        hosts = {ref['registry']} | ({dest['registry']} if dest else set())
        with image_tools.module_registry_access(module, params, hosts,
                                                dest['registry'] if dest else ref['registry']) as access:
            if version == 'v1':
                done = soci_index.ensure_v1(params, ref, tools, runner, access, module.check_mode, time.monotonic)
            else:
                done = soci_index.ensure_v2(params, ref, dest, tools, runner, access, module.check_mode,
                                            time.monotonic)
        done['soci_version'] = '.'.join(str(x) for x in installed)
        return done

    result = image_tools.run_or_fail(module, index, (soci_index.SociError,))
    for warning in result.pop('warnings', []):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
