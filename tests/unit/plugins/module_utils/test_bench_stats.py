from __future__ import absolute_import, division, print_function

__metaclass__ = type

import csv
import io
import os

import pytest

from ansible_collections.lazypull.snapshotters.plugins.module_utils import bench_stats as bs

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'golden')
UPDATE = os.environ.get('LAZYPULL_UPDATE_GOLDEN') == '1'

SIZES = {'overlayfs': 40000000, 'stargz': 42000000, 'soci': 40000000}
SNAPSHOTTERS = {'overlayfs': 'overlayfs', 'stargz': 'stargz', 'soci': 'soci'}


def record(host, variant, rnd, pull, create, run, fetched, lazy=None, ok=True, problem=None, milestones=None):
    """A run record as bench_record makes it (registry-side bytes)."""
    snapshotter = SNAPSHOTTERS[variant]
    is_lazy = snapshotter != 'overlayfs' if lazy is None else lazy
    timed = None not in (pull, create, run)
    rec = {'host': host, 'workload': 'sparse', 'variant': variant, 'snapshotter': snapshotter, 'round': rnd,
           'position': 1, 'image': 'registry.lab:5000/lazypull/sparse:1' + ('-esgz' if variant == 'stargz' else ''),
           'pull_seconds': pull, 'create_seconds': create, 'run_seconds': run,
           'total_seconds': round(pull + create + run, 3) if timed else None, 'bytes_fetched': fetched,
           'lazy': is_lazy if snapshotter != 'overlayfs' else False,
           'fallback': (not is_lazy) and timed if snapshotter != 'overlayfs' else False, 'ok': ok, 'problem': problem}
    if timed:  # a failed module run has none of these (bench_record)
        rec.update(bytes_source='registry', image_compressed_size=SIZES[variant], fuse_mounts=2 if is_lazy else 0,
                   exit_code=0, milestones=milestones or {})
    return rec


PULL_FAILED = ('pull of registry.lab:5000/lazypull/sparse:1 failed (rc=1): soci: failed to resolve reference: '
               'unexpected status 502 Bad Gateway')

# The order bench.yml collects them in: host by host, each host's plan order (shuffled per round).
RUNS = [
    record('bench-a', 'stargz', 1, 0.6, 0.1, 2.0, 3000000, milestones={'first_read': 0.41, 'done': 1.95}),
    record('bench-a', 'overlayfs', 1, 4.0, 0.2, 1.0, 40000000, milestones={'first_read': 0.05, 'done': 0.98}),
    record('bench-a', 'soci', 1, 0.3, 0.1, 1.8, 2500000, milestones={'first_read': 0.52, 'done': 1.77}),
    record('bench-a', 'soci', 2, None, None, None, None, lazy=False, ok=False, problem=PULL_FAILED),
    record('bench-a', 'overlayfs', 2, 4.4, 0.2, 1.2, 40000000),
    record('bench-a', 'stargz', 2, 0.5, 0.1, 2.4, 3500000),
    record('bench-b', 'overlayfs', 1, 3.8, 0.3, 1.1, 40000000),
    record('bench-b', 'soci', 1, 0.4, 0.1, 1.9, 2600000),
    record('bench-b', 'stargz', 1, 0.7, 0.1, 2.2, 3200000),
    record('bench-b', 'stargz', 2, 0.9, 0.2, 5.5, 41000000, lazy=False),
    record('bench-b', 'soci', 2, 0.3, 0.1, 2.1, 2700000),
    record('bench-b', 'overlayfs', 2, 4.2, 0.2, 1.0, 40000000),
]
WARM = {'sparse': 0.9}
LINK = 25000000.0
SETTINGS = {'repetitions': 2, 'hosts': ['bench-a', 'bench-b'], 'link': 'tbf 200mbit, measured 25.0 MB/s',
            'bytes_source': 'bytes the registry served (access log)'}
SEED = {'llm': {'overlayfs': {'pull': 101.8, 'run': 9.6, 'total': 111.4},
                'stargz': {'pull': 1.4, 'run': 195.1, 'total': 196.5}},
        'sparse': {'stargz': {'pull': 1.2, 'run': 2.9, 'total': 4.1}}}
HOST_FACTS = {'bench-b': {'kernel': '6.1.0-28-cloud-amd64', 'cpus': 2, 'containerd': '1.7.24', 'stargz': '0.14.3',
                          'soci': '0.4.1', 'instance_type': 'c6i.large'},
              'bench-a': {'kernel': '6.1.0-28-cloud-amd64', 'cpus': 2, 'containerd': '1.7.24', 'stargz': '0.14.3',
                          'soci': '0.4.1', 'instance_type': None}}


def golden(name, text):
    path = os.path.join(GOLDEN, name)
    if UPDATE or not os.path.exists(path):
        if not UPDATE:
            pytest.fail('%s is missing; run with LAZYPULL_UPDATE_GOLDEN=1 to write it' % path)
        if not os.path.isdir(GOLDEN):
            os.makedirs(GOLDEN)
        with open(path, 'w') as handle:
            handle.write(text)
    with open(path) as handle:
        expected = handle.read()
    assert text == expected, 'differs from %s (LAZYPULL_UPDATE_GOLDEN=1 rewrites it)' % path


def row(rows, host, variant, workload='sparse'):
    found = [r for r in rows if (r['host'], r['workload'], r['variant']) == (host, workload, variant)]
    assert len(found) == 1
    return found[0]


# --- percentile and stats --------------------------------------------------------------------------------------

@pytest.mark.parametrize('values,pct,expected', [  # numpy.percentile (linear) answers
    ([1, 2, 3, 4], 90, 3.7),
    ([3, 1, 2], 50, 2.0),
    ([1, 2, 3, 4], 50, 2.5),
    (list(range(1, 11)), 90, 9.1),
    ([15, 20, 35, 40, 50], 40, 29.0),
    ([1, 3], 25, 1.5),
    ([2.2, 2.4, 2.5], 90, 2.48),
    ([2.7, 3.0, 3.0, 6.6], 90, 5.52),
    ([5, 1, 4], 0, 1),
    ([5, 1, 4], 100, 5),
    ([10], 90, 10),
    ([None, 4, 1], 50, 2.5),
])
def test_percentile_matches_numpy(values, pct, expected):
    assert bs.percentile(values, pct) == pytest.approx(expected)


def test_percentile_of_nothing():
    assert bs.percentile([], 50) is None
    assert bs.percentile([None, None], 90) is None


def test_stats_ignores_none_and_rounds():
    assert bs.stats([None, 3, 1, 2]) == {'median': 2, 'p90': 2.8, 'min': 1, 'max': 3, 'n': 3}
    assert bs.stats([0.12345, 0.2]) == {'median': 0.162, 'p90': 0.192, 'min': 0.123, 'max': 0.2, 'n': 2}
    assert bs.stats([None]) == {'median': None, 'p90': None, 'min': None, 'max': None, 'n': 0}
    assert bs.stats([]) == {'median': None, 'p90': None, 'min': None, 'max': None, 'n': 0}


# --- summarize -------------------------------------------------------------------------------------------------

def test_summarize_rows_fleet_first_then_hosts_overlayfs_first():
    rows = bs.summarize(RUNS)
    assert [(r['host'], r['variant']) for r in rows] == [
        ('fleet', 'overlayfs'), ('fleet', 'soci'), ('fleet', 'stargz'),
        ('bench-a', 'overlayfs'), ('bench-a', 'soci'), ('bench-a', 'stargz'),
        ('bench-b', 'overlayfs'), ('bench-b', 'soci'), ('bench-b', 'stargz')]
    assert [(r['host'], r['variant']) for r in bs.summarize(RUNS, by_host=False)] == [
        ('fleet', 'overlayfs'), ('fleet', 'soci'), ('fleet', 'stargz')]


def test_summarize_fleet_numbers():
    rows = bs.summarize(RUNS)
    stargz = row(rows, 'fleet', 'stargz')
    assert (stargz['runs'], stargz['ok'], stargz['lazy'], stargz['fallback']) == (4, 4, 3, 1)
    assert stargz['snapshotter'] == 'stargz'
    assert stargz['total_seconds'] == {'median': 3.0, 'p90': 5.52, 'min': 2.7, 'max': 6.6, 'n': 4}
    assert stargz['pull_seconds'] == {'median': 0.65, 'p90': 0.84, 'min': 0.5, 'max': 0.9, 'n': 4}
    assert stargz['bytes_fetched'] == {'median': 3350000, 'p90': 29750000.0, 'min': 3000000, 'max': 41000000, 'n': 4}
    assert stargz['image_compressed_size'] == 42000000
    assert stargz['fraction_fetched'] == 0.0798  # 3.35 MB of 42 MB
    overlay = row(rows, 'fleet', 'overlayfs')
    assert (overlay['lazy'], overlay['fallback'], overlay['fraction_fetched']) == (0, 0, 1.0)
    assert overlay['total_seconds']['median'] == 5.3


def test_summarize_times_only_ok_runs_but_counts_every_run():
    rows = bs.summarize(RUNS)
    soci_a = row(rows, 'bench-a', 'soci')
    assert (soci_a['runs'], soci_a['ok'], soci_a['lazy'], soci_a['fallback']) == (2, 1, 1, 0)
    assert soci_a['total_seconds'] == {'median': 2.2, 'p90': 2.2, 'min': 2.2, 'max': 2.2, 'n': 1}
    assert soci_a['bytes_fetched']['n'] == 1
    soci = row(rows, 'fleet', 'soci')
    assert (soci['runs'], soci['ok']) == (4, 3)
    assert soci['total_seconds'] == {'median': 2.4, 'p90': 2.48, 'min': 2.2, 'max': 2.5, 'n': 3}


def test_summarize_a_not_ok_run_with_times_is_left_out_of_the_timing():
    runs = [record('h', 'stargz', 1, 0.5, 0.1, 2.0, 1000000),
            record('h', 'stargz', 2, 0.5, 0.1, 90.0, 1000000, ok=False, problem='exit code 1')]
    only = row(bs.summarize(runs, by_host=False), 'fleet', 'stargz')
    assert only['run_seconds']['n'] == 1 and only['run_seconds']['max'] == 2.0


def test_summarize_fraction_unknown_without_size_or_bytes():
    runs = [dict(record('h', 'stargz', 1, 0.5, 0.1, 2.0, None), image_compressed_size=None)]
    only = row(bs.summarize(runs), 'h', 'stargz')
    assert only['bytes_fetched']['median'] is None and only['fraction_fetched'] is None
    runs = [dict(record('h', 'stargz', 1, 0.5, 0.1, 2.0, 2000000), image_compressed_size=None)]
    assert row(bs.summarize(runs), 'h', 'stargz')['fraction_fetched'] is None


# --- floors ----------------------------------------------------------------------------------------------------

def test_floor_is_warm_run_plus_fewest_lazy_bytes_over_the_link():
    assert bs.floors(RUNS, WARM, LINK) == {'sparse': {
        'seconds': 1.0, 'warm_run_seconds': 0.9, 'fetch_seconds': 0.1, 'min_lazy_bytes': 2500000,
        'link_bytes_per_second': LINK}}


@pytest.mark.parametrize('warm,link,lazy_bytes', [
    ({}, LINK, 2500000),
    (None, LINK, 2500000),
    (WARM, None, 2500000),
    (WARM, 0, 2500000),
])
def test_floor_unknown(warm, link, lazy_bytes):
    floor = bs.floors(RUNS, warm, link)['sparse']
    assert floor['seconds'] is None
    assert floor['min_lazy_bytes'] == lazy_bytes


def test_floor_without_a_lazy_run():
    runs = [r for r in RUNS if r['snapshotter'] == 'overlayfs' or not r['lazy']]
    assert bs.floors(runs, WARM, LINK) == {'sparse': {
        'seconds': None, 'warm_run_seconds': 0.9, 'min_lazy_bytes': None, 'link_bytes_per_second': LINK}}


# --- CSV -------------------------------------------------------------------------------------------------------

def test_csv_header_and_milestones():
    text = bs.csv_report(RUNS[:3])
    lines = text.splitlines()
    assert lines[0] == ','.join(bs.CSV_FIELDS)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert len(parsed) == 3
    assert parsed[0]['milestones'] == 'done=1.95;first_read=0.41'
    assert parsed[0]['lazy'] == 'True' and parsed[0]['problem'] == ''
    assert parsed[2]['milestones'] == 'done=1.77;first_read=0.52'
    assert parsed[1]['fallback'] == 'False' and parsed[1]['round'] == '1'
    assert 'position' not in parsed[0]  # not a CSV field


def test_csv_quotes_problems():
    parsed = list(csv.DictReader(io.StringIO(bs.csv_report([dict(RUNS[3], problem='a, "b"\nc')]))))
    assert parsed[0]['problem'] == 'a, "b"\nc'
    assert parsed[0]['total_seconds'] == '' and parsed[0]['milestones'] == ''


# --- chart -----------------------------------------------------------------------------------------------------

def test_chart_series_fleet_and_one_host():
    rows = bs.summarize(RUNS)
    assert bs.chart_series(rows) == [
        {'workload': 'sparse', 'variant': 'overlayfs', 'pull': 4.1, 'create': 0.2, 'run': 1.05, 'total': 5.3,
         'min': 5.2, 'max': 5.8, 'fallback': False},
        {'workload': 'sparse', 'variant': 'soci', 'pull': 0.3, 'create': 0.1, 'run': 1.9, 'total': 2.4,
         'min': 2.2, 'max': 2.5, 'fallback': False},
        {'workload': 'sparse', 'variant': 'stargz', 'pull': 0.65, 'create': 0.1, 'run': 2.3, 'total': 3.0,
         'min': 2.7, 'max': 6.6, 'fallback': True}]
    assert [s['variant'] for s in bs.chart_series(rows, host='bench-b')] == ['overlayfs', 'soci', 'stargz']
    failed = bs.summarize([RUNS[3]])
    assert bs.chart_series(failed)[0] == {'workload': 'sparse', 'variant': 'soci', 'pull': 0.0, 'create': 0.0,
                                          'run': 0.0, 'total': None, 'min': None, 'max': None, 'fallback': False}


# --- Markdown --------------------------------------------------------------------------------------------------

def report():
    rows = bs.summarize(RUNS)
    return bs.markdown_report('20250101T000000Z', SETTINGS, rows, bs.floors(RUNS, WARM, LINK), SEED, HOST_FACTS)


def test_markdown_report_golden():
    golden('report.md', report())


def test_markdown_report_seed_rows_only_for_measured_workloads():
    text = report()
    assert 'llm' not in text
    assert text.count('| seed: stargz (1 run, published) |') == 3  # fleet-wide, bench-a, bench-b
    assert '| seed: stargz (1 run, published) | | | 1.20 | | 2.90 | 4.10 | | | 4.10 |' in text


def test_markdown_report_floor_and_ratios():
    text = report()
    assert text.count('| **floor** | | | | | 0.90 | 1.00 | 2.5 | | 1.00 |') == 3
    assert 'Floor = warm-cache run 0.90 s + 2.5 MB (fewest bytes any lazy run fetched) / 25.0 MB/s = 1.00 s.' in text
    assert ('| stargz | 4/4 | 3 / 1 | 0.65 (0.84, 0.50-0.90) | 0.10 (0.17, 0.10-0.20) | 2.30 (4.57, 2.00-5.50) '
            '| 3.00 (5.52, 2.70-6.60) | 3.4 | 8.0 | 3.00 |') in text
    assert '| soci | 1/2 | 1 / 0 | 0.30 (0.30, 0.30-0.30) |' in text


def test_markdown_report_without_floor_settings_or_hosts():
    rows = bs.summarize(RUNS, by_host=False)
    text = bs.markdown_report('r1', {}, rows, bs.floors(RUNS, {}, None))
    assert 'ready: per workload; link: not shaped.' in text
    assert 'bytes are fetched from the registry.' in text
    assert '**floor**' not in text and 'Floor =' not in text and '## Hosts' not in text
    assert '| overlayfs | 4/4 | - |' in text
    assert text.rstrip('\n').splitlines()[-1].endswith('| - |')  # no ratio without a floor


def test_markdown_hosts_table_unknown_version_is_a_dash():
    rows = bs.summarize(RUNS[:1])
    text = bs.markdown_report('r1', SETTINGS, rows, {}, None, {'h': {'kernel': '6.1.0', 'cpus': 2, 'containerd': None,
                                                                     'stargz': '0.14.3', 'soci': None,
                                                                     'instance_type': None}})
    assert '| h | 6.1.0 | 2 | - | 0.14.3 | - | - |' in text


def test_csv_report_golden():
    golden('results.csv', bs.csv_report(RUNS))
