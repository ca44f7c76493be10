#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: bench_report
short_description: Write a cold-start benchmark's results and report (JSON, CSV, Markdown, PNG)
version_added: "0.1.0"
description:
  - Aggregates the run records of a benchmark per host and fleet-wide
    (median, p90, min, max of pull, create, run and total; bytes fetched and
    the share of the image; lazy and fallback counts), computes the floor per
    workload (warm-cache run time + the fewest bytes any lazy run fetched /
    the link rate) and each variant's ratio to it, and writes
    C(results.json), C(results.csv), C(report.md) and C(report.png) into
    O(dest)/O(run_id).
  - Runs on the controller (C(delegate_to=localhost)); the chart needs matplotlib.
author:
  - lazypull.snapshotters maintainers (@lazypull)
options:
  dest:
    description: Directory that holds one sub-directory per run.
    type: path
    required: true
  run_id:
    description: Name of this run's directory.
    type: str
    required: true
  runs:
    description: Run records (coldstart results plus host, workload, variant, round, bytes_fetched).
    type: list
    elements: dict
    required: true
  settings:
    description: What was run (repetitions, link, images...), stored and printed in the report.
    type: dict
    default: {}
  warm_run_seconds:
    description: Warm-cache run time per workload, for the floor.
    type: dict
    default: {}
  link_bytes_per_second:
    description: Measured link rate, for the floor.
    type: float
  seed_reference:
    description: "Published rows to print beside the results: {workload: {name: {pull, run, total}}}."
    type: dict
    default: {}
  host_facts:
    description: Facts per host (kernel, cpus, versions, instance type, configs).
    type: dict
    default: {}
  chart:
    description: Write report.png (matplotlib).
    type: bool
    default: true
'''

EXAMPLES = r'''
- name: Report
  lazypull.snapshotters.bench_report:
    dest: "{{ playbook_dir }}/../bench-results"
    run_id: "{{ bench_run_id }}"
    runs: "{{ bench_runs }}"
    warm_run_seconds: {sparse: 0.31}
    link_bytes_per_second: 47700000
  delegate_to: localhost
  run_once: true
'''

RETURN = r'''
dir: {description: The run's directory., returned: always, type: str}
files: {description: Paths written., returned: always, type: list, elements: str}
summary: {description: Aggregated rows (per host and fleet)., returned: always, type: list, elements: dict}
floor: {description: Floor per workload., returned: always, type: dict}
table: {description: report.md as text., returned: always, type: str}
'''

import json
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lazypull.snapshotters.plugins.module_utils import bench_stats


def draw_chart(path, series, floor, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    workloads = []
    for item in series:
        if item['workload'] not in workloads:
            workloads.append(item['workload'])
    fig, axes = plt.subplots(1, len(workloads), figsize=(max(6, 3.2 * len(series) / max(1, len(workloads)))
                                                         * len(workloads), 4.8), squeeze=False)
    colors = {'pull': '#4C72B0', 'create': '#DD8452', 'run': '#55A868'}
    for ax, workload in zip(axes[0], workloads):
        items = [s for s in series if s['workload'] == workload]
        xs = list(range(len(items)))
        bottom = [0.0] * len(items)
        for phase in ('pull', 'create', 'run'):
            values = [s[phase] for s in items]
            ax.bar(xs, values, bottom=bottom, color=colors[phase], label=phase, width=0.6)
            bottom = [b + v for b, v in zip(bottom, values)]
        for x, s in zip(xs, items):
            # Whiskers span the fastest and slowest total, drawn from the bar's top.
            if s['min'] is not None and s['max'] is not None:
                top = bottom[x]
                ax.errorbar([x], [top], yerr=[[max(0.0, top - s['min'])], [max(0.0, s['max'] - top)]],
                            fmt='none', ecolor='black', capsize=5, linewidth=1)
            if s['total'] is not None:
                ax.annotate('%.2f s' % s['total'], (x, bottom[x]), xytext=(0, 3), textcoords='offset points',
                            ha='center', va='bottom', fontsize=8)
            if s['fallback']:
                ax.annotate('fallback', (x + 0.32, bottom[x]), ha='left', va='bottom', fontsize=8,
                            color='#C44E52')
        level = (floor.get(workload) or {}).get('seconds')
        if level:
            ax.axhline(level, color='#C44E52', linestyle='--', linewidth=1.2, label='floor %.2f s' % level)
        ax.set_xticks(xs)
        ax.set_xticklabels([s['variant'] for s in items], rotation=20, ha='right')
        ax.set_ylabel('seconds (median; whiskers: min-max total)')
        ax.set_title(workload)
        ax.grid(axis='y', alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dest=dict(type='path', required=True),
            run_id=dict(type='str', required=True),
            runs=dict(type='list', elements='dict', required=True),
            settings=dict(type='dict', default={}),
            warm_run_seconds=dict(type='dict', default={}),
            link_bytes_per_second=dict(type='float'),
            seed_reference=dict(type='dict', default={}),
            host_facts=dict(type='dict', default={}),
            chart=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if '/' in p['run_id'] or p['run_id'] in ('', '.', '..'):
        module.fail_json(msg='run_id must be a plain directory name, got %r' % p['run_id'])
    missing = [i for i, r in enumerate(p['runs']) if not all(k in r for k in ('host', 'workload', 'variant'))]
    if missing:
        module.fail_json(msg='runs %s lack host, workload or variant' % missing[:5])
    rows = bench_stats.summarize(p['runs'])
    floor = bench_stats.floors(p['runs'], p['warm_run_seconds'], p['link_bytes_per_second'])
    table = bench_stats.markdown_report(p['run_id'], p['settings'], rows, floor, p['seed_reference'],
                                        p['host_facts'])
    out_dir = os.path.join(p['dest'], p['run_id'])
    files = [os.path.join(out_dir, n) for n in ('results.json', 'results.csv', 'report.md')]
    if p['chart']:
        files.append(os.path.join(out_dir, 'report.png'))
    result = dict(dir=out_dir, files=files, summary=rows, floor=floor, table=table)
    if module.check_mode:
        module.exit_json(changed=not os.path.exists(out_dir), **result)
    try:
        if not os.path.isdir(out_dir):
            os.makedirs(out_dir)
        document = {'run_id': p['run_id'], 'settings': p['settings'], 'hosts': p['host_facts'],
                    'runs': p['runs'], 'summary': rows, 'floor': floor, 'seed_reference': p['seed_reference'],
                    'warm_run_seconds': p['warm_run_seconds'], 'link_bytes_per_second': p['link_bytes_per_second']}
        contents = {'results.json': json.dumps(document, indent=2, sort_keys=True) + '\n',
                    'results.csv': bench_stats.csv_report(p['runs']), 'report.md': table}
        for name, text in contents.items():
            tmp = os.path.join(out_dir, '.%s.tmp' % name)
            with open(tmp, 'w') as handle:
                handle.write(text)
            os.rename(tmp, os.path.join(out_dir, name))  # readers never see half a file
        if p['chart']:
            draw_chart(os.path.join(out_dir, 'report.png'), bench_stats.chart_series(rows), floor,
                       'Cold start %s (fleet-wide medians)' % p['run_id'])
    except ImportError as exc:
        module.fail_json(msg='report.png needs matplotlib on the controller (pip install matplotlib): %s' % exc)
    except (IOError, OSError) as exc:
        module.fail_json(msg='cannot write %s: %s' % (out_dir, exc))
    module.exit_json(changed=True, **result)


if __name__ == '__main__':
    main()
