#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: image_convert
short_description: Convert an image to eStargz or zstd:chunked for lazy pulling, registry to registry
version_added: "0.1.0"
description:
  - Pulls O(src), converts its layers to eStargz (or zstd:chunked) and pushes
    the result to O(dest). Uses C(nerdctl image convert) when nerdctl is
    present, else C(ctr-remote image convert).
  - With O(optimize=true) the image is run once (C(ctr-remote image optimize))
    and the files the workload opens are placed first in each layer and
    prefetched by stargz-snapshotter.
  - The result records its source digest and the options in annotations of
    its top-level manifest. When O(dest) already records the current source
    digest and the same options, nothing is done (C(changed=false)).
  - Nothing is tagged until the converted, annotated manifest is complete;
    blobs and the intermediate manifest are pushed by digest first.
author:
  - lazypull.snapshotters maintainers (@lazypull)
extends_documentation_fragment:
  - lazypull.snapshotters.image_tools
options:
  src:
    description: Source image, C(host[:port]/repository[:tag|@digest]).
    type: str
    required: true
  dest:
    description: Destination image, C(host[:port]/repository[:tag]).
    type: str
    required: true
  format:
    description: Layer format; V(zstdchunked) only where the tool supports it.
    type: str
    choices: [estargz, zstdchunked]
    default: estargz
  optimize:
    description: Run the workload once and prioritize (prefetch) the files it opens.
    type: bool
    default: false
  entrypoint:
    description: Entrypoint for the optimization run (default the image's own).
    type: list
    elements: str
  args:
    description: Arguments for the optimization run (default the image's own).
    type: list
    elements: str
  env:
    description:
      - Environment for the optimization run. Values go to the tool in a
        private file, never on its command line; only their hash is recorded.
    type: dict
  cwd:
    description: Working directory for the optimization run.
    type: str
  period:
    description: Seconds the optimization run is watched (ctr-remote's default is 10).
    type: int
  wait_on_line:
    description: End the optimization run when its output prints a line containing this text.
    type: str
  compression_level:
    description: Compression level (eStargz 0-9, zstd 1-22); the tool's default when not set.
    type: int
  chunk_size:
    description: Chunk size in bytes within a layer; the tool's default when not set.
    type: int
  platforms:
    description:
      - Platforms to convert, C(os/arch[/variant]), or V([all]). Default the host's platform.
    type: list
    elements: str
    default: []
  push:
    description:
      - Push the result to O(dest). With V(false) the converted image is kept
        in containerd only (and a later run converts again).
    type: bool
    default: true
seealso:
  - module: lazypull.snapshotters.soci_index
'''

EXAMPLES = r'''
- name: eStargz variant, pushed next to the original
  lazypull.snapshotters.image_convert:
    src: registry.example.internal/llm/server:1.4
    dest: registry.example.internal/llm/server:1.4-esgz

- name: Optimized for the workload's first 60 seconds, into ECR
  lazypull.snapshotters.image_convert:
    src: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/llm/server:1.4
    dest: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/llm/server:1.4-esgz-opt
    optimize: true
    wait_on_line: model loaded
    period: 60

- name: Lab registry with its own CA and a password
  lazypull.snapshotters.image_convert:
    src: 10.89.213.12:5000/lazypull/sparse:1
    dest: 10.89.213.12:5000/lazypull/sparse:1-esgz
    ca_file: /etc/lazypull/lab-ca.crt
    registry_username: lazypull
    registry_password: "{{ lab_registry_password }}"
  no_log: false  # registry_password is no_log already
'''

RETURN = r'''
src_digest:
  description: Digest of the source manifest (or index) that was converted.
  returned: always
  type: str
dest_digest:
  description: Digest of the destination manifest (or index), annotations included.
  returned: always
  type: str
converted_digest:
  description: Digest the tool produced before annotations were added.
  returned: when converted
  type: str
tool:
  description: C(nerdctl) or C(ctr-remote); null when nothing was converted.
  returned: always
  type: str
layers:
  description: Per layer, digests and sizes before and after (first platform).
  returned: unless check mode
  type: list
  elements: dict
src_size:
  description: Compressed size of the source layers, bytes.
  returned: unless check mode
  type: int
dest_size:
  description: Compressed size of the converted layers, bytes.
  returned: unless check mode
  type: int
prioritized_files:
  description: Files the optimization run opened (prioritized and prefetched); null without O(optimize).
  returned: unless check mode
  type: int
options:
  description: The options recorded in the destination.
  returned: always
  type: dict
steps:
  description: Seconds spent pulling, converting and pushing.
  returned: when converted
  type: dict
elapsed:
  description: Seconds the module spent.
  returned: always
  type: float
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lazypull.snapshotters.plugins.module_utils import image_convert, image_reference, image_tools


def main():
    spec = dict(image_tools.ARGUMENT_SPEC)
    spec.update(
        src=dict(type='str', required=True),
        dest=dict(type='str', required=True),
        format=dict(type='str', choices=list(image_convert.FORMATS), default='estargz'),
        optimize=dict(type='bool', default=False),
        entrypoint=dict(type='list', elements='str'),
        args=dict(type='list', elements='str'),
        env=dict(type='dict'),
        cwd=dict(type='str'),
        period=dict(type='int'),
        wait_on_line=dict(type='str'),
        compression_level=dict(type='int'),
        chunk_size=dict(type='int'),
        platforms=dict(type='list', elements='str', default=[]),
        push=dict(type='bool', default=True),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                           required_together=image_tools.REQUIRED_TOGETHER)
    params = module.params

    def convert():
        src = image_reference.parse(params['src'])
        dest = image_reference.parse(params['dest'])
        if dest['digest']:
            raise image_convert.ConvertError('dest %s must be a tag, not a digest' % params['dest'])
        image_convert.validate(params)
        image_tools.validate_platforms(params['platforms'])
        tools = {'ctr': image_tools.find_binary(module, 'ctr', params['ctr_path']),
                 'ctr-remote': image_tools.find_binary(module, 'ctr-remote', params['ctr_remote_path']),
                 'nerdctl': image_tools.find_binary(module, 'nerdctl', params['nerdctl_path'], required=False)}
        if params['optimize']:
            tools['nerdctl'] = None  # only ctr-remote records a workload
        runner = image_tools.module_runner(module, params)
        if params['format'] == 'zstdchunked':
            tool = tools['nerdctl'] or tools['ctr-remote']
            _rc, out, err = runner.run([tool, 'image', 'convert', '--help'], check=False)
            if not image_convert.supports_zstdchunked(out + err):
                raise image_convert.ConvertError('%s cannot write zstd:chunked (no --zstdchunked)' % tool)
        with image_tools.module_registry_access(module, params, [src['registry'], dest['registry']],
                                                dest['registry']) as access:
            return image_convert.convert(params, src, dest, tools, runner, access, module.check_mode, time.monotonic)

    result = image_tools.run_or_fail(module, convert, (image_convert.ConvertError,))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
