# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)
"""One honest cold-start measurement: verified cold reset, timed pull,
create and run (until exit, a ready line or a ready URL), milestones, bytes
and the proof that a lazy pull really was lazy.

Everything touching the host goes through a `Host` object (run a command,
start a process, read a file, probe a socket or URL, the clock), so the
logic is unit-tested with a fake host.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

from ansible_collections.lazypull.snapshotters.plugins.module_utils.snapshotter_facts import (
    DEFAULT_SNAPSHOTTERS, fuse_mounts_under, parse_mountinfo)

LAZY = ('stargz', 'soci')
# soci 0.4.x keeps these outside its root, whatever --root says.
SOCI_EXTRA_DIRS = ('/var/lib/soci-snapshotter-grpc/content',)
REMOTE_LABEL = 'containerd.io/snapshot/remote'
FALLBACK_FRACTION = 0.9  # a lazy pull that fetched more than this of the image is a full pull
READY_MODES = ('exit', 'line', 'url')


# Options of the modules that pull on a host (doc fragment snapshotter_client).
CLIENT_ARGUMENT_SPEC = dict(
    containerd_address=dict(type='str', default='/run/containerd/containerd.sock'),
    hosts_dir=dict(type='path', default='/etc/containerd/certs.d'),
    plain_http=dict(type='bool', default=False),
    ctr_path=dict(type='path'),
    ctr_remote_path=dict(type='path'),
    soci_path=dict(type='path'),
    snapshotters=dict(type='dict', default={}),
)


def client_paths(module, params):
    """ctr, and the CLI the snapshotter pulls with (rpull); sets params['ctr_path']."""
    paths = {'ctr': params['ctr_path'] or module.get_bin_path('ctr', required=True)}
    params['ctr_path'] = paths['ctr']
    if params['snapshotter'] == 'stargz':
        paths['ctr-remote'] = params['ctr_remote_path'] or module.get_bin_path(
            'ctr-remote', required=True, opt_dirs=['/usr/local/bin'])
    if params['snapshotter'] == 'soci':
        paths['soci'] = params['soci_path'] or module.get_bin_path('soci', required=True, opt_dirs=['/usr/local/bin'])
    return paths


class ColdstartError(Exception):
    """The measurement cannot be trusted or did not happen; the message says why."""


def validate(params):
    mode = params['ready']
    if mode == 'line' and not params.get('ready_line'):
        raise ColdstartError('ready: line needs ready_line (a regular expression)')
    if mode == 'url' and not params.get('ready_url'):
        raise ColdstartError('ready: url needs ready_url')
    if params.get('ready_url') and not re.match(r'^https?://', params['ready_url']):
        raise ColdstartError('ready_url must start with http:// or https://')
    for key in ('ready_line',):
        if params.get(key):
            _compile(params[key], key)
    for stone in params.get('milestones') or []:
        if not isinstance(stone, dict) or not stone.get('name') or not stone.get('regex'):
            raise ColdstartError('each milestone needs a name and a regex, got %r' % (stone,))
        _compile(stone['regex'], 'milestone %s' % stone['name'])
    if params['timeout'] <= 0:
        raise ColdstartError('timeout must be positive')


def _compile(pattern, what):
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ColdstartError('%s is not a valid regular expression: %s' % (what, exc))


def ctr(params):
    return [params['ctr_path'], '--address', params['containerd_address'], '--namespace', params['namespace']]


def pull_command(params, paths):
    """Lazy snapshotters pull with their own CLI (rpull); overlayfs with ctr."""
    sn = params['snapshotter']
    base = ['--address', params['containerd_address'], '--namespace', params['namespace']]
    hosts = ['--hosts-dir', params['hosts_dir']] if params.get('hosts_dir') else []
    plain = ['--plain-http'] if params.get('plain_http') else []
    if sn == 'stargz':
        return [paths['ctr-remote']] + base + ['image', 'rpull'] + hosts + plain + ['--snapshotter', sn, params['image']]
    if sn == 'soci':
        return [paths['soci']] + base + ['image', 'rpull'] + hosts + plain + ['--snapshotter', sn, params['image']]
    return ctr(params) + ['image', 'pull'] + hosts + plain + ['--snapshotter', sn, params['image']]


def create_command(params, container_id):
    cmd = ctr(params) + ['container', 'create', '--snapshotter', params['snapshotter']]
    if params.get('net_host'):
        cmd.append('--net-host')
    for key, value in sorted((params.get('env') or {}).items()):
        cmd += ['--env', '%s=%s' % (key, value)]
    cmd += [params['image'], container_id]
    return cmd + list(params.get('args') or [])


def parse_ids(text):
    """First column of a ctr listing (`-q` output or a table without header)."""
    return [line.split()[0] for line in (text or '').splitlines() if line.strip()]


def parse_snapshot_keys(text):
    return [line.split()[0] for line in (text or '').splitlines()[1:] if line.strip()]


def rx_bytes(proc_net_dev):
    """Received bytes over all interfaces but loopback, from /proc/net/dev."""
    total = 0
    for line in (proc_net_dev or '').splitlines()[2:]:
        if ':' not in line:
            continue
        name, data = line.split(':', 1)
        if name.strip() == 'lo':
            continue
        fields = data.split()
        if fields:
            total += int(fields[0])
    return total


def snapshotter_settings(params):
    """Root, service and socket of each lazy snapshotter (defaults + overrides)."""
    out = {}
    for name in LAZY:
        merged = dict(DEFAULT_SNAPSHOTTERS[name])
        merged.update((params.get('snapshotters') or {}).get(name) or {})
        out[name] = merged
    return out


def other_namespaces(host, params):
    """containerd namespaces besides the benchmark's."""
    base = [params['ctr_path'], '--address', params['containerd_address']]
    rc, out, _err = host.run(base + ['namespaces', 'ls', '-q'], check=False)
    return [ns for ns in parse_ids(out) if ns != params['namespace']] if rc == 0 else []


def in_namespace(params, namespace):
    return [params['ctr_path'], '--address', params['containerd_address'], '--namespace', namespace]


def cold_state(host, params):
    """{'images', 'containers', 'content', 'snapshots': {sn: n}, 'fuse_mounts',
    'other_content'}: content blobs are shared between namespaces, so a blob
    another namespace holds would be reused by the pull and never fetched."""
    base = ctr(params)
    state = {'containers': len(parse_ids(host.run(base + ['containers', 'ls', '-q'])[1])),
             'images': len(parse_ids(host.run(base + ['images', 'ls', '-q'])[1])),
             'content': len(parse_ids(host.run(base + ['content', 'ls', '-q'])[1])),
             'snapshots': {}}
    for sn in ['overlayfs'] + [s for s in LAZY if s in params['reset_snapshotters']]:
        rc, out, _err = host.run(base + ['snapshots', '--snapshotter', sn, 'ls'], check=False)
        state['snapshots'][sn] = len(parse_snapshot_keys(out)) if rc == 0 else None
    mounts = parse_mountinfo(host.read('/proc/self/mountinfo') or '')
    settings = snapshotter_settings(params)
    state['fuse_mounts'] = sum(len(fuse_mounts_under(mounts, settings[sn]['root'])) for sn in LAZY)
    state['other_content'] = sum(len(parse_ids(host.run(in_namespace(params, ns) + ['content', 'ls', '-q'],
                                                        check=False)[1]))
                                 for ns in other_namespaces(host, params))
    return state


def is_cold(state):
    return (state['containers'] == 0 and state['images'] == 0 and state['content'] == 0
            and not any(state['snapshots'].values()) and state['fuse_mounts'] == 0
            and not state.get('other_content'))


def cold_reset(host, params):
    """Remove containers, images, content, snapshots; restart the lazy
    snapshotters on empty roots; drop the page cache; verify, or raise."""
    base = ctr(params)
    for cid in parse_ids(host.run(base + ['containers', 'ls', '-q'])[1]):
        host.run(base + ['tasks', 'kill', '-s', 'KILL', cid], check=False)
        host.run(base + ['tasks', 'rm', '-f', cid], check=False)
        host.run(base + ['containers', 'rm', cid], check=False)
    images = parse_ids(host.run(base + ['images', 'ls', '-q'])[1])
    if images:
        host.run(base + ['images', 'rm', '--sync'] + images)
    for sn in ['overlayfs'] + [s for s in LAZY if s in params['reset_snapshotters']]:
        for _round in range(8):  # children first: retry until no key is left
            rc, out, _err = host.run(base + ['snapshots', '--snapshotter', sn, 'ls'], check=False)
            keys = parse_snapshot_keys(out) if rc == 0 else []
            if not keys:
                break
            for key in keys:
                host.run(base + ['snapshots', '--snapshotter', sn, 'rm', key], check=False)
    # Blobs are shared between namespaces: images and content of every other
    # namespace go too (busy_elsewhere refused earlier if containers run there).
    for namespace in other_namespaces(host, params):
        other = in_namespace(params, namespace)
        images = parse_ids(host.run(other + ['images', 'ls', '-q'], check=False)[1])
        if images:
            host.run(other + ['images', 'rm', '--sync'] + images, check=False)
        blobs = parse_ids(host.run(other + ['content', 'ls', '-q'], check=False)[1])
        if blobs:
            host.run(other + ['content', 'rm'] + blobs, check=False)
    content = parse_ids(host.run(base + ['content', 'ls', '-q'])[1])
    if content:
        host.run(base + ['content', 'rm'] + content, check=False)
    settings = snapshotter_settings(params)
    services = [settings[sn]['service'] for sn in LAZY if sn in params['reset_snapshotters']]
    if services:
        host.run(['systemctl', 'stop'] + services)
        mounts = parse_mountinfo(host.read('/proc/self/mountinfo') or '')
        for sn in params['reset_snapshotters']:
            for point in sorted(fuse_mounts_under(mounts, settings[sn]['root']), reverse=True):
                host.run(['umount', '-l', point], check=False)
            host.clear_dir(settings[sn]['root'])
            if sn == 'soci':
                for extra in SOCI_EXTRA_DIRS:
                    host.clear_dir(extra)
        host.run(['systemctl', 'start'] + services)
        for sn in params['reset_snapshotters']:
            if not host.wait_socket(settings[sn]['socket'], 30):
                raise ColdstartError('%s did not answer on %s within 30 s after its restart'
                                     % (settings[sn]['service'], settings[sn]['socket']))
    if params.get('drop_caches', True):
        host.run(['sync'])
        host.write('/proc/sys/vm/drop_caches', '3\n')
    state = cold_state(host, params)
    if not is_cold(state):
        raise ColdstartError('not cold after the reset, refusing to measure: %s' % json.dumps(state, sort_keys=True))
    return state


def remote_snapshots(host, params):
    """Snapshots of the snapshotter that carry the remote label."""
    if params['snapshotter'] not in LAZY:
        return 0
    base = ctr(params) + ['snapshots', '--snapshotter', params['snapshotter']]
    rc, out, _err = host.run(base + ['ls'], check=False)
    count = 0
    for key in parse_snapshot_keys(out) if rc == 0 else []:
        rc, info, _err = host.run(base + ['info', key], check=False)
        if rc == 0 and REMOTE_LABEL in info:
            count += 1
    return count


def image_layers(host, params, architecture):
    """The layer descriptors of the image's manifest (the platform's one), or None."""
    rc, out, _err = host.run(ctr(params) + ['images', 'ls', 'name==' + params['image']], check=False)
    rows = [line.split() for line in (out or '').splitlines()[1:] if line.strip()]
    if rc != 0 or not rows or len(rows[0]) < 3:
        return None
    digest = rows[0][2]
    for _depth in range(2):
        rc, text, _err = host.run(ctr(params) + ['content', 'get', digest], check=False)
        if rc != 0:
            return None
        doc = json.loads(text)
        if doc.get('layers') is not None:
            return doc['layers']
        manifests = doc.get('manifests') or []
        pick = [m for m in manifests if (m.get('platform') or {}).get('architecture') == architecture]
        if not (pick or manifests):
            return None
        digest = (pick or manifests)[0]['digest']
    return None


def image_compressed_size(host, params, architecture):
    """Sum of the layer sizes of the image's manifest (the platform's one)."""
    layers = image_layers(host, params, architecture)
    return None if layers is None else sum(layer.get('size', 0) for layer in layers)


def judge(snapshotter, fuse_mounts, remote, fetched, compressed):
    """(lazy, fallback): lazy only with FUSE mounts, remote snapshots, and
    (when bytes are known) far fewer bytes than the image."""
    if snapshotter not in LAZY:
        return False, False
    few_bytes = fetched is None or not compressed or fetched < FALLBACK_FRACTION * compressed
    lazy = fuse_mounts > 0 and remote > 0 and few_bytes
    return lazy, not lazy


class Milestones(object):
    """First time (seconds since run start) each regex matched a line."""

    def __init__(self, specs):
        self.specs = [(s['name'], re.compile(s['regex'])) for s in specs or []]
        self.seen = {}

    def feed(self, seconds, line):
        for name, regex in self.specs:
            if name not in self.seen and regex.search(line):
                self.seen[name] = round(seconds, 3)

    def result(self):
        return dict((name, self.seen.get(name)) for name, _regex in self.specs)


def run_until_ready(host, params, container_id):
    """Start the task; return (seconds until ready, exit code or None, lines, milestones, timed_out)."""
    argv = ctr(params) + ['tasks', 'start', container_id]
    ready_line = re.compile(params['ready_line']) if params.get('ready_line') else None
    stones = Milestones(params.get('milestones'))
    lines = []
    proc = host.spawn(argv)
    started = host.clock()
    ready_at = None
    exit_code = None
    timed_out = False
    try:
        while True:
            now = host.clock() - started
            for stamp, line in proc.lines():
                lines.append(line)
                stones.feed(stamp - started, line)
                if ready_line is not None and ready_at is None and ready_line.search(line):
                    ready_at = stamp - started
            if params['ready'] == 'url' and ready_at is None and host.http_ok(params['ready_url']):
                ready_at = host.clock() - started
            exit_code = proc.poll()
            if exit_code is not None:
                for stamp, line in proc.lines():  # what was left in the pipe
                    lines.append(line)
                    stones.feed(stamp - started, line)
                    if ready_line is not None and ready_at is None and ready_line.search(line):
                        ready_at = stamp - started
                if params['ready'] == 'exit':
                    ready_at = host.clock() - started
                break
            if params['ready'] != 'exit' and ready_at is not None:
                break
            if now > params['timeout']:
                timed_out = True
                break
            host.sleep(0.05)
    finally:
        if proc.poll() is None:
            host.run(ctr(params) + ['tasks', 'kill', '-s', 'KILL', container_id], check=False)
            proc.wait()
    return ready_at, exit_code, lines, stones.result(), timed_out


def measure(host, params, paths, container_id, architecture='amd64'):
    """The whole verb; returns the module result (raises ColdstartError)."""
    result = {'image': params['image'], 'snapshotter': params['snapshotter'], 'ready': params['ready']}
    if params.get('reset', True):
        result['reset'] = cold_reset(host, params)
    else:
        result['reset'] = None
    result['started_at'] = host.utcnow()
    rx_before = rx_bytes(host.read('/proc/net/dev'))
    t0 = host.clock()
    rc, out, err = host.run(pull_command(params, paths), check=False)
    result['pull_seconds'] = round(host.clock() - t0, 3)
    if rc != 0:
        raise ColdstartError('pull of %s failed (rc=%s): %s' % (params['image'], rc, (err or out).strip()[-800:]))
    settings = snapshotter_settings(params)
    mounts = parse_mountinfo(host.read('/proc/self/mountinfo') or '')
    root = settings[params['snapshotter']]['root'] if params['snapshotter'] in LAZY else None
    result['fuse_mounts'] = len(fuse_mounts_under(mounts, root)) if root else 0
    result['remote_snapshots'] = remote_snapshots(host, params)

    try:
        t0 = host.clock()
        rc, out, err = host.run(create_command(params, container_id), check=False)
        result['create_seconds'] = round(host.clock() - t0, 3)
        if rc != 0:
            raise ColdstartError('container create failed (rc=%s): %s' % (rc, (err or out).strip()[-800:]))
        ready_at, exit_code, lines, stones, timed_out = run_until_ready(host, params, container_id)
    finally:
        host.run(ctr(params) + ['tasks', 'rm', '-f', container_id], check=False)
        host.run(ctr(params) + ['containers', 'rm', container_id], check=False)
    result['finished_at'] = host.utcnow()
    result['rx_bytes'] = rx_bytes(host.read('/proc/net/dev')) - rx_before
    result['run_seconds'] = round(ready_at, 3) if ready_at is not None else None
    result['exit_code'] = exit_code
    result['timed_out'] = timed_out
    result['milestones'] = stones
    keep = params.get('output_lines', 20)
    result['output_tail'] = lines[-keep:] if keep > 0 else []
    result['total_seconds'] = (round(result['pull_seconds'] + result['create_seconds'] + result['run_seconds'], 3)
                               if result['run_seconds'] is not None else None)
    result['image_compressed_size'] = image_compressed_size(host, params, architecture)
    # Host interface counters: what a fleet host can see (the lab adds registry-side bytes).
    result['lazy'], result['fallback'] = judge(params['snapshotter'], result['fuse_mounts'],
                                               result['remote_snapshots'], result['rx_bytes'],
                                               result['image_compressed_size'])
    result['ok'] = (not timed_out and result['run_seconds'] is not None
                    and (params['ready'] != 'exit' or exit_code == 0))
    if params.get('expected_output') and not any(params['expected_output'] in line for line in lines):
        result['ok'] = False
        result['problem'] = 'expected output %r not seen' % params['expected_output']
    elif timed_out:
        result['problem'] = 'not ready within %s s' % params['timeout']
    elif params['ready'] == 'exit' and exit_code != 0:
        result['problem'] = 'exit code %s' % exit_code
    elif result['run_seconds'] is None:
        result['problem'] = 'exited (code %s) before it was ready (%s)' % (
            exit_code, params.get('ready_line') or params.get('ready_url'))
    return result


def busy_elsewhere(host, params):
    """Containers in other namespaces: the reset removes every namespace's
    images and content and restarts the lazy snapshotters; '' when none."""
    base = [params['ctr_path'], '--address', params['containerd_address']]
    rc, out, _err = host.run(base + ['namespaces', 'ls', '-q'], check=False)
    busy = []
    for namespace in parse_ids(out) if rc == 0 else []:
        if namespace == params['namespace']:
            continue
        rc, listed, _err = host.run(base + ['--namespace', namespace, 'containers', 'ls', '-q'], check=False)
        for cid in parse_ids(listed) if rc == 0 else []:
            rc, info, _err = host.run(base + ['--namespace', namespace, 'containers', 'info', cid], check=False)
            try:
                snapshotter = json.loads(info).get('Snapshotter') if rc == 0 else None
            except ValueError:
                snapshotter = None
            busy.append('%s/%s on %s' % (namespace, cid, snapshotter or 'unknown'))
    return ', '.join(busy)
