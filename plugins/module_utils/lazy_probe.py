# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)
"""A probe pull: does this snapshotter work on this host, and is it lazy?

Unlike coldstart, it never resets the host: it works in a namespace of its
own, which it empties before and after, so it can run on a fleet host next
to its workloads (a rollout's post-check, a rollback's check on overlayfs).

Evidence of laziness, all about this pull only: snapshots of the probe
namespace carrying the remote label, new FUSE mounts under the snapshotter's
root, and layer blobs that containerd never had to download (a remote
snapshot skips the layer's fetch; a fallback stores every layer).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.lazypull.snapshotters.plugins.module_utils.coldstart import (
    LAZY, ColdstartError, ctr, image_layers, parse_ids, parse_snapshot_keys, pull_command, remote_snapshots,
    snapshotter_settings)
from ansible_collections.lazypull.snapshotters.plugins.module_utils.snapshotter_facts import (
    fuse_mounts_under, parse_mountinfo)

SNAPSHOTTERS = ('overlayfs',) + LAZY


class ProbeError(Exception):
    """The probe failed; the message names the cause."""


def validate(params):
    if params['snapshotter'] not in SNAPSHOTTERS:
        raise ProbeError('snapshotter must be one of %s, got %r' % (', '.join(SNAPSHOTTERS), params['snapshotter']))
    if params['timeout'] <= 0:
        raise ProbeError('timeout must be positive')
    if params.get('expect'):
        if not params.get('command'):
            raise ProbeError('expect needs a command to run')
        try:
            re.compile(params['expect'])
        except re.error as exc:
            raise ProbeError('expect is not a valid regular expression: %s' % exc)


def fuse_mount_count(host, params):
    if params['snapshotter'] not in LAZY:
        return 0
    root = snapshotter_settings(params)[params['snapshotter']]['root']
    return len(fuse_mounts_under(parse_mountinfo(host.read('/proc/self/mountinfo') or ''), root))


def clear_namespace(host, params):
    """Remove what an earlier (perhaps interrupted) probe left in its
    namespace: tasks, containers, images, and the leases that keep the blobs
    and snapshots of a pull killed midway; returns what is still there
    (empty when clean)."""
    base = ctr(params)

    def listed(*what):
        return parse_ids(host.run(base + list(what), check=False)[1])

    for task in listed('tasks', 'ls', '-q'):
        host.run(base + ['tasks', 'kill', '--signal', 'SIGKILL', task], check=False)
        host.run(base + ['tasks', 'rm', '-f', task], check=False)
    containers = listed('containers', 'ls', '-q')
    if containers:
        host.run(base + ['containers', 'rm'] + containers, check=False)
    leases = listed('leases', 'ls', '-q')
    if leases:
        host.run(base + ['leases', 'rm'] + leases, check=False)
    images = listed('images', 'ls', '-q')
    if images:
        # --sync: garbage-collect content and snapshots (FUSE mounts go with them) now.
        host.run(base + ['images', 'rm', '--sync'] + images, check=False)
    content = listed('content', 'ls', '-q')
    if content:
        host.run(base + ['content', 'rm'] + content, check=False)
    left = {'containers': len(listed('containers', 'ls', '-q')),
            'images': len(listed('images', 'ls', '-q')),
            'content': len(listed('content', 'ls', '-q')),
            'snapshots': len(parse_snapshot_keys(host.run(
                base + ['snapshots', '--snapshotter', params['snapshotter'], 'ls'], check=False)[1]))}
    return dict((k, v) for k, v in left.items() if v)


def judge(params, layers, fetched, remote, new_fuse_mounts):
    """(lazy, problem). overlayfs is never lazy and needs no proof."""
    if params['snapshotter'] not in LAZY:
        return False, None
    why = []
    if remote == 0:
        why.append('no snapshot carries the remote label')
    if new_fuse_mounts <= 0:
        why.append('no new FUSE mount under the snapshotter root')
    if layers and len(fetched) == len(layers):
        why.append('containerd downloaded all %d layer(s)' % len(layers))
    if not why:
        return True, None
    return False, 'the pull of %s on %s was not lazy (a fallback to a full pull): %s' % (
        params['image'], params['snapshotter'], '; '.join(why))


def run_command(params, container_id):
    """`ctr run --rm`, bounded by coreutils timeout (a stuck FUSE read must not hang the play)."""
    return (['timeout', '--signal=KILL', str(params['timeout'])] + ctr(params)
            + ['run', '--rm', '--snapshotter', params['snapshotter'], params['image'], container_id]
            + list(params['command']))


def probe(host, params, paths, container_id, architecture='amd64'):
    """The whole verb; returns the module result, raises ProbeError."""
    result = {'image': params['image'], 'snapshotter': params['snapshotter'], 'namespace': params['namespace']}
    left = clear_namespace(host, params)
    if left:
        raise ProbeError('namespace %s could not be emptied before the probe: %s' % (params['namespace'], left))
    fuse_before = fuse_mount_count(host, params)
    problem = lazy_problem = None
    try:
        t0 = host.clock()
        rc, out, err = host.run(pull_command(params, paths), check=False)
        result['pull_seconds'] = round(host.clock() - t0, 3)
        if rc != 0:
            raise ProbeError('pull of %s on %s failed (rc=%s): %s'
                             % (params['image'], params['snapshotter'], rc, (err or out).strip()[-800:]))
        layers = image_layers(host, params, architecture) or []
        # The namespace was emptied: every layer blob in it now was downloaded by this pull.
        stored = set(parse_ids(host.run(ctr(params) + ['content', 'ls', '-q'], check=False)[1]))
        fetched = [layer['digest'] for layer in layers if layer.get('digest') in stored]
        result.update(layers=len(layers), layers_fetched=len(fetched),
                      remote_snapshots=remote_snapshots(host, params),
                      fuse_mounts=fuse_mount_count(host, params) - fuse_before)
        result['lazy'], lazy_problem = judge(params, layers, fetched, result['remote_snapshots'], result['fuse_mounts'])
        result['fallback'] = params['snapshotter'] in LAZY and not result['lazy']
        problem = lazy_problem if params['require_lazy'] else None
        if params.get('command'):
            t0 = host.clock()
            rc, out, err = host.run(run_command(params, container_id), check=False)
            result['run_seconds'] = round(host.clock() - t0, 3)
            result['exit_code'] = rc
            result['output'] = (out or '').splitlines()[-20:]
            if rc != 0:
                problem = problem or 'the probe container exited %s%s: %s' % (
                    rc, ' (killed after %s s)' % params['timeout'] if rc in (124, 137) else '',
                    (err or out).strip()[-800:])
            elif params.get('expect') and not re.search(params['expect'], out or '', re.M):
                problem = problem or 'the probe container did not print %r' % params['expect']
    except (ColdstartError, ValueError) as exc:  # a shared helper's failure, unreadable ctr output
        raise ProbeError('probe of %s on %s: %s' % (params['image'], params['snapshotter'], exc))
    finally:
        left = clear_namespace(host, params)
    if left:
        result['cleanup_left'] = left
        problem = problem or 'the probe could not empty its namespace %s afterwards: %s' % (params['namespace'], left)
    result['ok'] = problem is None
    result['problem'] = problem or lazy_problem
    return result
