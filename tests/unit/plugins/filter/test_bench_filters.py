from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.lazypull.snapshotters.plugins.filter import bench as f

REG = 'registry.lab:5000/lazypull'
WORKLOADS = {
    'sparse': {'ready': 'exit', 'expected_output': 'sparse: ok', 'timeout': 300, 'env': {'MODE': 'cold'},
               'variants': {'overlayfs': {'image': REG + '/sparse:1', 'snapshotter': 'overlayfs'},
                            'stargz': {'image': REG + '/sparse:1-esgz', 'snapshotter': 'stargz', 'timeout': 120},
                            'stargz-optimized': {'image': REG + '/sparse:1-esgz-opt', 'snapshotter': 'stargz'},
                            'soci': {'image': REG + '/sparse:1', 'snapshotter': 'soci'}}},
    'llm': {'ready': 'line', 'ready_line': 'model loaded', 'net_host': True,
            'milestones': [{'name': 'imported', 'regex': 'imported'}],
            'variants': {'overlayfs': {'image': REG + '/llm:1', 'snapshotter': 'overlayfs'},
                         'soci': {'image': REG + '/llm:1', 'snapshotter': 'soci', 'ready': 'url',
                                  'ready_url': 'http://127.0.0.1:8080/health', 'args': ['serve']}}},
}


def test_filters_are_registered():
    assert set(f.FilterModule().filters()) == {'bench_plan', 'bench_record', 'bench_progress', 'bench_warm_floor',
                                               'bench_host_facts'}


# --- bench_plan ------------------------------------------------------------------------------------------------

def cells(plan):
    return [(item['workload'], item['variant']) for item in plan]


def test_plan_has_every_cell_once_per_round():
    plan = f.bench_plan(WORKLOADS, 3, 'bench-a20250101T000000Z')
    assert len(plan) == 18
    every = sorted([('llm', 'overlayfs'), ('llm', 'soci'), ('sparse', 'overlayfs'), ('sparse', 'soci'),
                    ('sparse', 'stargz'), ('sparse', 'stargz-optimized')])
    for rnd in (1, 2, 3):
        in_round = [item for item in plan if item['round'] == rnd]
        assert sorted(cells(in_round)) == every
        assert [item['position'] for item in in_round] == [1, 2, 3, 4, 5, 6]
    assert [item['round'] for item in plan] == [1] * 6 + [2] * 6 + [3] * 6


def test_plan_is_shuffled_deterministically_by_seed():
    one = f.bench_plan(WORKLOADS, 4, 'bench-a-run1')
    assert one == f.bench_plan(WORKLOADS, '4', 'bench-a-run1')  # same seed, same plan (repetitions as text too)
    assert cells(one) != cells(f.bench_plan(WORKLOADS, 4, 'bench-b-run1'))
    # rounds are shuffled apart, not one order repeated
    orders = set(tuple(cells([i for i in one if i['round'] == rnd])) for rnd in (1, 2, 3, 4))
    assert len(orders) > 1


def test_plan_with_one_cell_and_the_default_seed():
    assert cells(f.bench_plan({'w': {'variants': {'a': {'image': 'i', 'snapshotter': 'overlayfs'}}}}, 2)) == [
        ('w', 'a'), ('w', 'a')]


def test_plan_run_settings_variant_overrides_workload():
    plan = f.bench_plan(WORKLOADS, 1, 's')
    by_cell = dict(((i['workload'], i['variant']), i) for i in plan)
    stargz = by_cell[('sparse', 'stargz')]
    assert stargz == {'workload': 'sparse', 'variant': 'stargz', 'image': REG + '/sparse:1-esgz',
                      'snapshotter': 'stargz', 'ready': 'exit', 'expected_output': 'sparse: ok', 'timeout': 120,
                      'env': {'MODE': 'cold'}, 'round': 1, 'position': stargz['position']}
    assert by_cell[('sparse', 'overlayfs')]['timeout'] == 300
    soci = by_cell[('llm', 'soci')]
    assert (soci['ready'], soci['ready_url'], soci['ready_line'], soci['net_host'], soci['args']) == (
        'url', 'http://127.0.0.1:8080/health', 'model loaded', True, ['serve'])
    assert soci['milestones'] == [{'name': 'imported', 'regex': 'imported'}]
    assert 'args' not in by_cell[('llm', 'overlayfs')] and 'variants' not in soci


def test_plan_only_variants():
    plan = f.bench_plan(WORKLOADS, 2, 's', only_variants=['soci', 'overlayfs'])
    assert collections.Counter(cells(plan)) == {('llm', 'overlayfs'): 2, ('llm', 'soci'): 2,
                                                ('sparse', 'overlayfs'): 2, ('sparse', 'soci'): 2}
    assert len(f.bench_plan(WORKLOADS, 1, 's', only_variants=[])) == 6  # empty = all


@pytest.mark.parametrize('workloads,repetitions,only,message', [
    ({}, 1, None, 'workloads must be a non-empty dict'),
    ([{'sparse': {}}], 1, None, 'workloads must be a non-empty dict'),
    (WORKLOADS, 'five', None, 'repetitions must be a number'),
    (WORKLOADS, None, None, 'repetitions must be a number'),
    (WORKLOADS, 0, None, 'repetitions must be at least 1'),
    ({'sparse': {'ready': 'exit'}}, 1, None, 'workload sparse has no variants'),
    ({'sparse': None}, 1, None, 'workload sparse has no variants'),
    ({'sparse': {'variants': {'stargz': {'image': 'x'}}}}, 1, None, 'sparse/stargz needs image and snapshotter'),
    ({'sparse': {'variants': {'stargz': None}}}, 1, None, 'sparse/stargz needs image and snapshotter'),
    (WORKLOADS, 1, ['nydus'], "no variant selected (only_variants=['nydus'])"),
])
def test_plan_errors(workloads, repetitions, only, message):
    with pytest.raises(AnsibleFilterError) as info:
        f.bench_plan(workloads, repetitions, 's', only)
    assert message in str(info.value)


# --- bench_record ----------------------------------------------------------------------------------------------

ITEM = {'workload': 'sparse', 'variant': 'stargz', 'image': REG + '/sparse:1-esgz', 'snapshotter': 'stargz',
        'round': 2, 'position': 3, 'ready': 'exit', 'timeout': 120}


def result(**overrides):
    res = {'changed': True, 'pull_seconds': 0.6, 'create_seconds': 0.1, 'run_seconds': 2.0, 'total_seconds': 2.7,
           'exit_code': 0, 'timed_out': False, 'milestones': {'done': 1.9}, 'output_tail': ['sparse: ok'],
           'rx_bytes': 3000000, 'image_compressed_size': 42000000, 'fuse_mounts': 2, 'remote_snapshots': 2,
           'started_at': '2025-01-01T00:00:00.000000Z', 'finished_at': '2025-01-01T00:00:02.700000Z',
           'lazy': True, 'fallback': False, 'ok': True, 'reset': {'images': 0}, 'image': ITEM['image']}
    res.update(overrides)
    return res


def test_record_with_registry_bytes_judges_again():
    record = f.bench_record(result(), ITEM, 'bench-a', registry_bytes='40000000')
    assert record['bytes_fetched'] == 40000000 and record['bytes_source'] == 'registry'
    assert (record['lazy'], record['fallback']) == (False, True)  # the host saw 3 MB, the registry served 40
    assert record['rx_bytes'] == 3000000
    record = f.bench_record(result(lazy=False, fallback=True, rx_bytes=45000000), ITEM, 'bench-a', 2000000)
    assert (record['bytes_fetched'], record['lazy'], record['fallback']) == (2000000, True, False)


def test_record_falls_back_to_host_rx_bytes():
    record = f.bench_record(result(), ITEM, 'bench-a')
    assert record == {
        'workload': 'sparse', 'variant': 'stargz', 'image': REG + '/sparse:1-esgz', 'snapshotter': 'stargz',
        'round': 2, 'position': 3, 'host': 'bench-a', 'pull_seconds': 0.6, 'create_seconds': 0.1,
        'run_seconds': 2.0, 'total_seconds': 2.7, 'exit_code': 0, 'timed_out': False, 'milestones': {'done': 1.9},
        'output_tail': ['sparse: ok'], 'rx_bytes': 3000000, 'image_compressed_size': 42000000, 'fuse_mounts': 2,
        'remote_snapshots': 2, 'started_at': '2025-01-01T00:00:00.000000Z',
        'finished_at': '2025-01-01T00:00:02.700000Z', 'ok': True, 'problem': None,
        'bytes_fetched': 3000000, 'bytes_source': 'host', 'lazy': True, 'fallback': False}


def test_record_registry_zero_bytes_still_counts():
    record = f.bench_record(result(fuse_mounts=0), ITEM, 'bench-a', 0)
    assert (record['bytes_fetched'], record['bytes_source']) == (0, 'registry')
    assert (record['lazy'], record['fallback']) == (False, True)  # no FUSE mount: not lazy whatever the bytes


def test_record_overlayfs_is_neither():
    item = dict(ITEM, variant='overlayfs', snapshotter='overlayfs')
    record = f.bench_record(result(fuse_mounts=0, remote_snapshots=0), item, 'bench-a', 42000000)
    assert (record['lazy'], record['fallback']) == (False, False)


def test_record_of_a_failed_run():
    failed = {'failed': True, 'msg': 'pull of x failed (rc=1): ' + 'e' * 600, 'changed': False}
    record = f.bench_record(failed, ITEM, 'bench-b')
    assert record['ok'] is False and record['lazy'] is False and record['fallback'] is False
    assert record['problem'].startswith('pull of x failed (rc=1): eee') and len(record['problem']) == 500
    for key in ('pull_seconds', 'create_seconds', 'run_seconds', 'total_seconds', 'bytes_fetched'):
        assert record[key] is None
    assert (record['host'], record['round'], record['variant']) == ('bench-b', 2, 'stargz')
    record = f.bench_record({'failed': True}, dict(ITEM, snapshotter='overlayfs'), 'bench-b')
    assert (record['problem'], record['fallback']) == ('failed', False)


def test_record_keeps_the_module_problem():
    record = f.bench_record(result(ok=False, problem="expected output 'sparse: ok' not seen"), ITEM, 'bench-a')
    assert (record['ok'], record['problem']) == (False, "expected output 'sparse: ok' not seen")


def test_record_rejects_garbage():
    with pytest.raises(AnsibleFilterError, match='registered coldstart result and the plan item'):
        f.bench_record('oops', ITEM, 'h')
    with pytest.raises(AnsibleFilterError):
        f.bench_record(result(), None, 'h')


# --- bench_progress --------------------------------------------------------------------------------------------

def test_progress_lazy():
    record = f.bench_record(result(), ITEM, 'bench-a', 3160000)
    assert f.bench_progress(record) == (
        'round 2 sparse/stargz: pull 0.60 + create 0.10 + run 2.00 = 2.70 s, lazy, 3.2 MB (7.5 %)')


def test_progress_fallback_and_not_ok():
    record = f.bench_record(result(ok=False, problem='exit code 1'), ITEM, 'bench-a', 41000000)
    assert f.bench_progress(record) == (
        'round 2 sparse/stargz: pull 0.60 + create 0.10 + run 2.00 = 2.70 s, FALLBACK, 41.0 MB (97.6 %), '
        'NOT OK: exit code 1')


def test_progress_full_pull_without_size():
    item = dict(ITEM, variant='overlayfs', snapshotter='overlayfs')
    record = f.bench_record(result(image_compressed_size=None, rx_bytes=None), item, 'bench-a')
    assert f.bench_progress(record) == 'round 2 sparse/overlayfs: pull 0.60 + create 0.10 + run 2.00 = 2.70 s, full, ? MB'


def test_progress_failed():
    record = f.bench_record({'failed': True, 'msg': 'container create failed (rc=1): boom'}, ITEM, 'bench-a')
    assert f.bench_progress(record) == 'round 2 sparse/stargz: FAILED container create failed (rc=1): boom'
    timed_out = f.bench_record(result(run_seconds=None, total_seconds=None, ok=False,
                                      problem='not ready within 120 s'), ITEM, 'bench-a')
    assert f.bench_progress(timed_out) == 'round 2 sparse/stargz: FAILED not ready within 120 s'
    with pytest.raises(AnsibleFilterError, match='expects a run record'):
        f.bench_progress(None)


# --- bench_warm_floor ------------------------------------------------------------------------------------------

def test_warm_floor_takes_the_lowest_median():
    per_host = [{'sparse': [0.35, 0.31, 0.40], 'llm': [9.6, None, 9.8]},
                {'sparse': [0.30, 0.33, 0.9], 'llm': [None, None]},
                None,
                {'sparse': []}]
    assert f.bench_warm_floor(per_host) == {'sparse': 0.33, 'llm': 9.7}
    assert f.bench_warm_floor([]) == {}
    assert f.bench_warm_floor(None) == {}


def test_warm_floor_rounds():
    assert f.bench_warm_floor([{'w': [0.12345, 0.2]}]) == {'w': 0.162}


# --- bench_host_facts ------------------------------------------------------------------------------------------

SNAPSHOTTER_FACTS = {
    'containerd': {'version': '1.7.24', 'answers': True},
    'snapshotters': {
        'stargz': {'daemon': {'version': '0.14.3'}, 'cli': {'version': '0.14.1'}, 'config': {'metrics_address': ''}},
        'soci': {'daemon': {'path': None, 'version': None}, 'cli': {'version': '0.4.1'}, 'config': None},
    }}


def test_host_facts_on_amazon():
    facts = {'kernel': '6.1.0-28-cloud-amd64', 'processor_vcpus': 2, 'memtotal_mb': 3834,
             'system_vendor': 'Amazon EC2', 'product_name': 'c6i.large'}
    assert f.bench_host_facts(facts, SNAPSHOTTER_FACTS) == {
        'kernel': '6.1.0-28-cloud-amd64', 'cpus': 2, 'memory_mb': 3834, 'instance_type': 'c6i.large',
        'containerd': '1.7.24', 'stargz': '0.14.3', 'soci': '0.4.1',
        'configs': {'stargz': {'metrics_address': ''}, 'soci': None}}


def test_host_facts_elsewhere_and_empty():
    facts = {'kernel': '6.12.0', 'processor_vcpus': 8, 'system_vendor': 'QEMU', 'product_name': 'Standard PC (Q35)'}
    out = f.bench_host_facts(facts, {'snapshotters': {}})
    assert out['instance_type'] is None and out['cpus'] == 8
    assert (out['containerd'], out['stargz'], out['soci'], out['configs']) == (None, None, None, {})
    assert f.bench_host_facts(None, None) == {'kernel': None, 'cpus': None, 'memory_mb': None, 'instance_type': None,
                                              'containerd': None, 'stargz': None, 'soci': None, 'configs': {}}
