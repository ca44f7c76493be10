# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)
"""Benchmark statistics and report rendering (JSON, CSV, Markdown): plain
functions over the list of run records bench.yml collects.

A run record: host, workload, variant, snapshotter, round, pull_seconds,
create_seconds, run_seconds, total_seconds, bytes_fetched, bytes_source,
image_compressed_size, lazy, fallback, ok, milestones, problem.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import csv
import io
import math

PHASES = ('pull_seconds', 'create_seconds', 'run_seconds', 'total_seconds')
CSV_FIELDS = ('host', 'workload', 'variant', 'snapshotter', 'round', 'image', 'ok', 'lazy', 'fallback',
              'pull_seconds', 'create_seconds', 'run_seconds', 'total_seconds', 'bytes_fetched', 'bytes_source',
              'image_compressed_size', 'fuse_mounts', 'exit_code', 'problem', 'milestones')
FLEET = 'fleet'


def percentile(values, pct):
    """Linear interpolation between closest ranks (numpy's default)."""
    data = sorted(v for v in values if v is not None)
    if not data:
        return None
    if len(data) == 1:
        return data[0]
    rank = (len(data) - 1) * pct / 100.0
    low = int(math.floor(rank))
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def stats(values):
    data = [v for v in values if v is not None]
    if not data:
        return {'median': None, 'p90': None, 'min': None, 'max': None, 'n': 0}
    return {'median': round(percentile(data, 50), 3), 'p90': round(percentile(data, 90), 3),
            'min': round(min(data), 3), 'max': round(max(data), 3), 'n': len(data)}


def summarize(runs, by_host=True):
    """Rows per (host|fleet, workload, variant), in first-seen variant order."""
    groups = {}
    order = []
    for run in runs:
        hosts = [FLEET] + ([run['host']] if by_host else [])
        for host in hosts:
            key = (host, run['workload'], run['variant'])
            if key not in groups:
                groups[key] = []
                order.append(key)
            groups[key].append(run)
    # Same variant order in every table: overlayfs (the baseline) first, then by name.
    order.sort(key=lambda k: (k[0] != FLEET, k[0], k[1], k[2] != 'overlayfs', k[2]))
    rows = []
    for key in order:
        members = groups[key]
        good = [r for r in members if r.get('ok')]
        row = {'host': key[0], 'workload': key[1], 'variant': key[2],
               'snapshotter': members[0].get('snapshotter'), 'runs': len(members), 'ok': len(good),
               'lazy': sum(1 for r in members if r.get('lazy')),
               'fallback': sum(1 for r in members if r.get('fallback'))}
        for phase in PHASES:
            row[phase] = stats([r.get(phase) for r in good])
        fetched = [r.get('bytes_fetched') for r in good if r.get('bytes_fetched') is not None]
        row['bytes_fetched'] = stats(fetched)
        size = next((r.get('image_compressed_size') for r in members if r.get('image_compressed_size')), None)
        row['image_compressed_size'] = size
        row['fraction_fetched'] = (round(row['bytes_fetched']['median'] / float(size), 4)
                                   if size and row['bytes_fetched']['median'] is not None else None)
        rows.append(row)
    return rows


def floors(runs, warm_run_seconds, link_bytes_per_second):
    """Per workload: warm-cache run time + the fewest bytes any lazy run of it
    fetched / the link rate. The best a lazy pull could do on this link."""
    out = {}
    for workload in sorted(set(r['workload'] for r in runs)):
        lazy_bytes = [r['bytes_fetched'] for r in runs
                      if r['workload'] == workload and r.get('lazy') and r.get('bytes_fetched') is not None]
        warm = (warm_run_seconds or {}).get(workload)
        if warm is None or not lazy_bytes or not link_bytes_per_second:
            out[workload] = {'seconds': None, 'warm_run_seconds': warm,
                             'min_lazy_bytes': min(lazy_bytes) if lazy_bytes else None,
                             'link_bytes_per_second': link_bytes_per_second}
            continue
        fetch = min(lazy_bytes) / float(link_bytes_per_second)
        out[workload] = {'seconds': round(warm + fetch, 3), 'warm_run_seconds': warm,
                         'fetch_seconds': round(fetch, 3), 'min_lazy_bytes': min(lazy_bytes),
                         'link_bytes_per_second': link_bytes_per_second}
    return out


def _fmt(value, digits=2):
    return '-' if value is None else ('%.*f' % (digits, value))


def _mb(value):
    return '-' if value is None else '%.1f' % (value / 1e6)


def markdown_report(run_id, settings, rows, floor, seed=None, host_facts=None):
    """The report people read: one table per (host|fleet, workload)."""
    lines = ['# Cold-start benchmark %s' % run_id, '']
    lines.append('Repetitions: %s per variant, order shuffled per round; ready: %s; link: %s.'
                 % (settings.get('repetitions'), settings.get('ready', 'per workload'),
                    settings.get('link') or 'not shaped'))
    lines += ['', 'Times in seconds: median (p90, min-max) of the runs that were ready; bytes are %s.'
              % settings.get('bytes_source', 'fetched from the registry'),
              'A lazy variant counts as lazy only with FUSE mounts, remote snapshots and far fewer bytes than the '
              'image; otherwise it is a fallback.', '']
    keys = []
    for row in rows:
        key = (row['host'], row['workload'])
        if key not in keys:
            keys.append(key)
    for host, workload in keys:
        lines.append('## %s — %s' % ('fleet-wide' if host == FLEET else host, workload))
        lines.append('')
        lines.append('| variant | runs ok | lazy / fallback | pull | create | run | total | MB fetched | % of image | × floor |')
        lines.append('|---|---|---|---|---|---|---|---|---|---|')
        wf = floor.get(workload) or {}
        for row in [r for r in rows if r['host'] == host and r['workload'] == workload]:
            total = row['total_seconds']
            ratio = (total['median'] / wf['seconds']) if wf.get('seconds') and total['median'] else None
            lazy = '%d / %d' % (row['lazy'], row['fallback']) if row['snapshotter'] in ('stargz', 'soci') else '-'
            lines.append('| %s | %d/%d | %s | %s | %s | %s | %s | %s | %s | %s |' % (
                row['variant'], row['ok'], row['runs'], lazy,
                _cell(row['pull_seconds']), _cell(row['create_seconds']), _cell(row['run_seconds']),
                _cell(total), _mb(row['bytes_fetched']['median']),
                '-' if row['fraction_fetched'] is None else '%.1f' % (100 * row['fraction_fetched']),
                _fmt(ratio)))
        if wf.get('seconds'):
            lines.append('| **floor** | | | | | %s | %s | %s | | 1.00 |' % (
                _fmt(wf['warm_run_seconds']), _fmt(wf['seconds']), _mb(wf['min_lazy_bytes'])))
        for name, ref in sorted(((seed or {}).get(workload) or {}).items()):
            lines.append('| seed: %s (1 run, published) | | | %s | | %s | %s | | | %s |' % (
                name, _fmt(ref.get('pull')), _fmt(ref.get('run')), _fmt(ref.get('total')),
                _fmt(ref['total'] / wf['seconds']) if wf.get('seconds') and ref.get('total') else '-'))
        lines.append('')
        if wf.get('seconds'):
            lines.append('Floor = warm-cache run %.2f s + %s MB (fewest bytes any lazy run fetched) / %.1f MB/s = %.2f s.'
                         % (wf['warm_run_seconds'], _mb(wf['min_lazy_bytes']), wf['link_bytes_per_second'] / 1e6,
                            wf['seconds']))
            lines.append('')
    if host_facts:
        lines += ['## Hosts', '', '| host | kernel | CPUs | containerd | stargz | soci | instance type |',
                  '|---|---|---|---|---|---|---|']
        for name in sorted(host_facts):
            f = host_facts[name] or {}
            cells = [f.get(k) for k in ('kernel', 'cpus', 'containerd', 'stargz', 'soci', 'instance_type')]
            lines.append('| %s | %s |' % (name, ' | '.join('-' if c is None else str(c) for c in cells)))
        lines.append('')
    return '\n'.join(lines) + '\n'


def _cell(stat):
    if stat['median'] is None:
        return '-'
    return '%s (%s, %s-%s)' % (_fmt(stat['median']), _fmt(stat['p90']), _fmt(stat['min']), _fmt(stat['max']))


def csv_report(runs):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction='ignore', lineterminator='\n')
    writer.writeheader()
    for run in runs:
        row = dict(run)
        row['milestones'] = ';'.join('%s=%s' % (k, '' if v is None else v)
                                     for k, v in sorted((run.get('milestones') or {}).items()))
        writer.writerow(row)
    return buf.getvalue()


def chart_series(rows, host=FLEET):
    """Per (workload, variant) of one host: median phases and total min/max,
    what the chart draws."""
    out = []
    for row in rows:
        if row['host'] != host:
            continue
        out.append({'workload': row['workload'], 'variant': row['variant'],
                    'pull': row['pull_seconds']['median'] or 0.0,
                    'create': row['create_seconds']['median'] or 0.0,
                    'run': row['run_seconds']['median'] or 0.0,
                    'total': row['total_seconds']['median'],
                    'min': row['total_seconds']['min'], 'max': row['total_seconds']['max'],
                    'fallback': row['fallback'] > 0})
    return out
