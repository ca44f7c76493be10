# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)
"""Decisions of the rollout (role lazypull.snapshotters.rollout) as plain
functions: pre-check problems, when to halt between batches, which
containers run, and the summary rows."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible.errors import AnsibleFilterError

LAZY = ('stargz', 'soci')
# Outcomes that count against rollout_max_fail_percentage.
FAILED_OUTCOMES = ('precheck_failed', 'rolled_back', 'held')
SUMMARY_COLUMNS = ['host', 'target', 'outcome', 'runs', 'cri snapshotter', 'containerd', 'probe', 'why']


def _version_tuple(text):
    match = re.match(r'^v?(\d+)\.(\d+)(?:\.(\d+))?', str(text or ''))
    if not match:
        return None
    return tuple(int(part or 0) for part in match.groups())


def free_bytes_at(path, mounts):
    """Free bytes of the filesystem holding `path` (longest mount prefix), or None."""
    best = None
    for mount in mounts or []:
        point = mount.get('mount') or ''
        inside = path == point or path.startswith(point.rstrip('/') + '/') or point == '/'
        if inside and (best is None or len(point) > len(best.get('mount') or '')):
            best = mount
    return best.get('size_available') if best else None


def rollout_precheck_problems(facts, target, supported_architectures, min_free_bytes, min_containerd_version,
                              paths=()):
    """Why this host must not be touched (empty list: go ahead).

    facts: {architecture, fuse_device (bool), filesystems (text of /proc/filesystems),
    mounts (ansible_facts.mounts), containerd (lazypull_snapshotters.containerd)}.
    """
    need = _version_tuple(min_containerd_version)
    if need is None:
        raise AnsibleFilterError('rollout_min_containerd_version %r is not a version' % (min_containerd_version,))
    problems = []
    arch = facts.get('architecture')
    if arch not in supported_architectures:
        problems.append('architecture %s is not supported (%s)' % (arch, ', '.join(supported_architectures)))
    if target in LAZY:
        if not facts.get('fuse_device'):
            problems.append('no /dev/fuse: the kernel or the container runtime gives no FUSE device')
        names = [line.split()[-1] for line in (facts.get('filesystems') or '').splitlines() if line.strip()]
        if 'fuse' not in names:
            problems.append('the kernel does not list fuse in /proc/filesystems (modprobe fuse)')
    for path in paths:
        free = free_bytes_at(path, facts.get('mounts'))
        if free is None:
            problems.append('no mount found for %s' % path)
        elif free < min_free_bytes:
            problems.append('%s has %.1f GiB free, %.1f GiB needed' % (path, free / 2.0 ** 30, min_free_bytes / 2.0 ** 30))
    containerd = facts.get('containerd') or {}
    if not containerd.get('answers'):
        problems.append('containerd is not running or does not answer (the rollout changes running hosts; '
                        'install with playbooks/lab.yml or the containerd role first)')
    else:
        have = _version_tuple(containerd.get('version'))
        if have is None or have < need:
            problems.append('containerd %s is older than %s' % (containerd.get('version') or 'unknown', min_containerd_version))
    return problems


def rollout_halt_reason(results, max_fail_percentage):
    """'' to go on, else why the rollout stops: the first finished batch whose
    failed hosts exceed max_fail_percentage of it. A batch is finished when
    none of its hosts is still pending."""
    try:
        in_range = 0 <= float(max_fail_percentage) <= 100
    except (TypeError, ValueError):
        in_range = False
    if not in_range:
        raise AnsibleFilterError('max_fail_percentage must be a number within 0..100, got %r' % (max_fail_percentage,))
    batches = []
    for result in results or []:
        batch = tuple(result.get('batch') or [result.get('host')])
        if batch not in batches:
            batches.append(batch)
    by_host = dict((r.get('host'), r) for r in results or [])
    for number, batch in enumerate(batches, 1):
        members = [by_host[h] for h in batch if h in by_host]
        if any(m.get('outcome') == 'pending' for m in members):
            continue
        failed = [m['host'] for m in members if m.get('outcome') in FAILED_OUTCOMES]
        if failed and 100.0 * len(failed) / len(batch) > float(max_fail_percentage):
            return ('halted after batch %d (%s): %d of %d host(s) failed (%s) > max_fail_percentage %s'
                    % (number, ', '.join(batch), len(failed), len(batch), ', '.join(failed), max_fail_percentage))
    return ''


def rollout_gate(record, halt_reason, target, retry_rolled_back, record_path):
    """{outcome, reason} for a host to leave alone, {} to go ahead: the rollout
    halted (not_started), or the host's record says it was rolled back from
    this target and retrying was not asked for (held)."""
    if halt_reason:
        return {'outcome': 'not_started', 'reason': halt_reason}
    record = record or {}
    if record.get('state') == 'rolled_back' and record.get('target') == target and not retry_rolled_back:
        return {'outcome': 'held',
                'reason': 'rolled back from %s at %s: %s (set rollout_retry_rolled_back or remove %s)'
                          % (target, record.get('at', '?'), record.get('reason', '?'), record_path)}
    return {}


def rollout_running_tasks(listings, skip_namespaces=()):
    """'namespace/task' of every RUNNING task, from loop results of
    `ctr -n NS tasks ls` (each with .item = namespace and .stdout)."""
    running = []
    for listing in listings or []:
        namespace = listing.get('item')
        if namespace in skip_namespaces or listing.get('rc', 0) != 0:
            continue
        for line in (listing.get('stdout') or '').splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 3 and fields[2] == 'RUNNING':
                running.append('%s/%s' % (namespace, fields[0]))
    return sorted(running)


def containerd_cri_snapshotter(config):
    """The CRI snapshotter of a parsed containerd config (version 2 or 3); overlayfs when unset."""
    plugins = (config or {}).get('plugins') or {}
    v3 = (plugins.get('io.containerd.cri.v1.images') or {}).get('snapshotter')
    v2 = ((plugins.get('io.containerd.grpc.v1.cri') or {}).get('containerd') or {}).get('snapshotter')
    return v3 or v2 or 'overlayfs'


def rollout_snapshotters_running(facts):
    """'stargz 0.14.3' etc. for each remote snapshotter containerd uses and
    whose socket answers; 'overlayfs only' when none."""
    running = []
    for name, state in sorted(((facts or {}).get('snapshotters') or {}).items()):
        if state.get('proxy_plugin_status') == 'ok' and state.get('socket_answers'):
            version = (state.get('daemon') or {}).get('version')
            running.append('%s %s' % (name, version) if version else name)
    return ', '.join(running) or 'overlayfs only'


def rollout_stale_fuse_mounts(facts):
    """FUSE mounts under the roots of snapshotters whose daemon does not
    answer (left behind by a stopped daemon), deepest first."""
    stale = []
    for state in ((facts or {}).get('snapshotters') or {}).values():
        if not state.get('socket_answers'):
            stale.extend(state.get('fuse_mounts') or [])
    return sorted(stale, key=lambda path: (-path.count('/'), path))


def rollout_with_host(pair):
    """(result, host) -> the result, naming its host (results of unreached hosts have none)."""
    result, host = pair
    return dict(result or {}, host=(result or {}).get('host') or host)


PROBE_KEYS = ('snapshotter', 'image', 'ok', 'lazy', 'fallback', 'layers', 'layers_fetched', 'remote_snapshots',
              'fuse_mounts', 'pull_seconds', 'run_seconds', 'problem')


def rollout_probe_summary(result):
    """The parts of a lazy_probe result the summary keeps ({} when it did not run)."""
    if not result or result.get('skipped') or 'snapshotter' not in result:
        return {}
    return dict((key, result[key]) for key in PROBE_KEYS if key in result)


def rollout_summary_rows(results):
    """Rows (columns SUMMARY_COLUMNS) for markdown_table, in the given order."""
    rows = []
    for r in results or []:
        probe = r.get('probe') or {}
        if probe and 'layers' not in probe:
            probe_text = 'probe failed'  # the pull itself failed; the reason says why
        elif probe.get('snapshotter') in LAZY:
            probe_text = '%s, %s/%s layers fetched' % (
                'lazy' if probe.get('lazy') else 'NOT lazy', probe.get('layers_fetched', '?'), probe.get('layers', '?'))
        elif probe:
            probe_text = 'overlayfs ok' if probe.get('ok') else 'overlayfs failed'
        else:
            probe_text = '-'
        rows.append([r.get('host', '?'), r.get('target', '?'), r.get('outcome', '?'), r.get('runs') or '-',
                     r.get('cri_snapshotter') or '-', r.get('containerd_version') or '-', probe_text,
                     (r.get('reason') or '').replace('|', '/').replace('\n', ' ')])
    return rows


class FilterModule(object):
    def filters(self):
        return {
            'rollout_precheck_problems': rollout_precheck_problems,
            'rollout_halt_reason': rollout_halt_reason,
            'rollout_gate': rollout_gate,
            'rollout_running_tasks': rollout_running_tasks,
            'rollout_snapshotters_running': rollout_snapshotters_running,
            'rollout_summary_rows': rollout_summary_rows,
            'rollout_stale_fuse_mounts': rollout_stale_fuse_mounts,
            'rollout_probe_summary': rollout_probe_summary,
            'rollout_with_host': rollout_with_host,
            'containerd_cri_snapshotter': containerd_cri_snapshotter,
        }
