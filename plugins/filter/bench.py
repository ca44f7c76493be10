# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)
"""The benchmark's run plan: every (workload, variant) once per round, in
an order shuffled per round (and per host, through the seed)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import random

from ansible.errors import AnsibleFilterError

from ansible_collections.lazypull.snapshotters.plugins.module_utils.coldstart import judge

RUN_KEYS = ('ready', 'ready_line', 'ready_url', 'net_host', 'expected_output', 'milestones', 'timeout',
            'env', 'args')


def bench_plan(workloads, repetitions, seed='', only_variants=None):
    """[{round, workload, variant, image, snapshotter, <run settings>}]."""
    if not isinstance(workloads, dict) or not workloads:
        raise AnsibleFilterError('bench_plan: workloads must be a non-empty dict')
    try:
        repetitions = int(repetitions)
    except (TypeError, ValueError):
        raise AnsibleFilterError('bench_plan: repetitions must be a number')
    if repetitions < 1:
        raise AnsibleFilterError('bench_plan: repetitions must be at least 1')
    cells = []
    for workload in sorted(workloads):
        spec = workloads[workload] or {}
        variants = spec.get('variants') or {}
        if not variants:
            raise AnsibleFilterError('bench_plan: workload %s has no variants' % workload)
        for variant in sorted(variants):
            if only_variants and variant not in only_variants:
                continue
            v = variants[variant] or {}
            if not v.get('image') or not v.get('snapshotter'):
                raise AnsibleFilterError('bench_plan: %s/%s needs image and snapshotter' % (workload, variant))
            cell = {'workload': workload, 'variant': variant, 'image': v['image'], 'snapshotter': v['snapshotter']}
            for key in RUN_KEYS:
                if key in v:
                    cell[key] = v[key]
                elif key in spec:
                    cell[key] = spec[key]
            cells.append(cell)
    if not cells:
        raise AnsibleFilterError('bench_plan: no variant selected (only_variants=%s)' % (only_variants,))
    plan = []
    for rnd in range(1, repetitions + 1):
        order = list(cells)
        random.Random('%s-%d' % (seed, rnd)).shuffle(order)
        for position, cell in enumerate(order, 1):
            item = dict(cell)
            item.update(round=rnd, position=position)
            plan.append(item)
    return plan


RESULT_KEYS = ('pull_seconds', 'create_seconds', 'run_seconds', 'total_seconds', 'exit_code', 'timed_out',
               'milestones', 'output_tail', 'rx_bytes', 'image_compressed_size', 'fuse_mounts',
               'remote_snapshots', 'started_at', 'finished_at', 'ok', 'problem')


def bench_record(result, item, host, registry_bytes=None):
    """One run record from a coldstart result and its plan item. With
    registry-side bytes (the lab), those count and lazy/fallback is judged
    again on them; else the host's interface counters count."""
    if not isinstance(result, dict) or not isinstance(item, dict):
        raise AnsibleFilterError('bench_record expects the registered coldstart result and the plan item')
    record = dict((k, item.get(k)) for k in ('workload', 'variant', 'image', 'snapshotter', 'round', 'position'))
    record['host'] = host
    if result.get('failed'):
        # A failed run is counted as not ok; it says nothing about laziness.
        record.update(ok=False, lazy=False, fallback=False, problem=str(result.get('msg', 'failed'))[:500])
        for key in ('pull_seconds', 'create_seconds', 'run_seconds', 'total_seconds', 'bytes_fetched'):
            record[key] = None
        return record
    for key in RESULT_KEYS:
        record[key] = result.get(key)
    if registry_bytes is not None:
        record['bytes_fetched'], record['bytes_source'] = int(registry_bytes), 'registry'
    else:
        record['bytes_fetched'], record['bytes_source'] = result.get('rx_bytes'), 'host'
    record['lazy'], record['fallback'] = judge(item.get('snapshotter'), result.get('fuse_mounts') or 0,
                                               result.get('remote_snapshots') or 0, record['bytes_fetched'],
                                               result.get('image_compressed_size'))
    return record


def bench_progress(record):
    """One line per finished run."""
    if not isinstance(record, dict):
        raise AnsibleFilterError('bench_progress expects a run record')
    if record.get('total_seconds') is None:
        return 'round %s %s/%s: FAILED %s' % (record.get('round'), record.get('workload'), record.get('variant'),
                                              record.get('problem') or '')
    kind = 'lazy' if record.get('lazy') else ('FALLBACK' if record.get('fallback') else 'full')
    size = record.get('image_compressed_size')
    fetched = record.get('bytes_fetched')
    share = (' (%.1f %%)' % (100.0 * fetched / size)) if size and fetched is not None else ''
    return 'round %s %s/%s: pull %.2f + create %.2f + run %.2f = %.2f s, %s, %s MB%s%s' % (
        record.get('round'), record.get('workload'), record.get('variant'), record['pull_seconds'],
        record['create_seconds'], record['run_seconds'], record['total_seconds'], kind,
        '?' if fetched is None else '%.1f' % (fetched / 1e6), share,
        '' if record.get('ok') else ', NOT OK: %s' % record.get('problem'))


def bench_warm_floor(per_host):
    """[{workload: [warm run seconds]}] per host -> {workload: lowest median}:
    the floor takes the best warm run any host managed."""
    from ansible_collections.lazypull.snapshotters.plugins.module_utils.bench_stats import percentile
    best = {}
    for host_runs in per_host or []:
        for workload, seconds in (host_runs or {}).items():
            median = percentile([s for s in seconds or [] if s is not None], 50)
            if median is not None and (workload not in best or median < best[workload]):
                best[workload] = round(median, 3)
    return best


def bench_host_facts(facts, snapshotters):
    """The host facts the report shows, from Ansible facts and snapshotter_facts."""
    snap = (snapshotters or {}).get('snapshotters') or {}

    def version(name):
        entry = snap.get(name) or {}
        return (entry.get('daemon') or {}).get('version') or (entry.get('cli') or {}).get('version')

    product = (facts or {}).get('product_name') or ''
    vendor = ((facts or {}).get('system_vendor') or '')
    return {'kernel': (facts or {}).get('kernel'), 'cpus': (facts or {}).get('processor_vcpus'),
            'memory_mb': (facts or {}).get('memtotal_mb'),
            'instance_type': product if 'Amazon' in vendor else None,
            'containerd': ((snapshotters or {}).get('containerd') or {}).get('version'),
            'stargz': version('stargz'), 'soci': version('soci'),
            'configs': dict((name, (snap.get(name) or {}).get('config')) for name in snap)}


class FilterModule(object):
    def filters(self):
        return {'bench_plan': bench_plan, 'bench_record': bench_record, 'bench_progress': bench_progress,
                'bench_warm_floor': bench_warm_floor, 'bench_host_facts': bench_host_facts}
