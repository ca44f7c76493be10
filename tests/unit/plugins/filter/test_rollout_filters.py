from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.lazypull.snapshotters.plugins.filter import rollout as f
from ansible_collections.lazypull.snapshotters.plugins.filter.conversion import markdown_table

GIB = 2 ** 30
# ansible_facts.mounts, not sorted by mount point
MOUNTS = [{'mount': '/var/lib/containerd', 'device': '/dev/nvme1n1', 'size_available': 300 * GIB},
          {'mount': '/', 'device': '/dev/nvme0n1p1', 'size_available': 12 * GIB},
          {'mount': '/var', 'device': '/dev/nvme0n1p2', 'size_available': 40 * GIB}]
FILESYSTEMS = 'nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\toverlay\nnodev\tfuse\n\tfuseblk\nnodev\tfusectl\n'
PATHS = ['/var/lib/containerd', '/var/lib/containerd-stargz-grpc']


def good_facts(**overrides):
    facts = {'architecture': 'x86_64', 'fuse_device': True, 'filesystems': FILESYSTEMS, 'mounts': MOUNTS,
             'containerd': {'answers': True, 'version': '1.7.20'}}
    facts.update(overrides)
    return facts


def precheck(facts, target='stargz', paths=None, min_free=10 * GIB, min_version='1.6.0'):
    paths = PATHS if paths is None else paths
    return f.rollout_precheck_problems(facts, target, ['x86_64', 'aarch64'], min_free, min_version, paths)


def test_filters_are_registered():
    assert set(f.FilterModule().filters()) == {
        'rollout_precheck_problems', 'rollout_halt_reason', 'rollout_running_tasks', 'rollout_snapshotters_running',
        'rollout_summary_rows', 'rollout_stale_fuse_mounts', 'rollout_probe_summary', 'rollout_with_host', 'rollout_gate',
        'containerd_cri_snapshotter'}


# --- free_bytes_at -----------------------------------------------------------

def test_free_bytes_at_takes_the_longest_mount_prefix():
    free = dict((path, f.free_bytes_at(path, MOUNTS)) for path in (
        '/var/lib/containerd', '/var/lib/containerd/io.containerd.content.v1.content',
        '/var/lib/containerd-stargz-grpc',  # a sibling of /var/lib/containerd, not inside it
        '/var', '/opt/data', '/'))
    assert free == {'/var/lib/containerd': 300 * GIB, '/var/lib/containerd/io.containerd.content.v1.content': 300 * GIB,
                    '/var/lib/containerd-stargz-grpc': 40 * GIB, '/var': 40 * GIB, '/opt/data': 12 * GIB, '/': 12 * GIB}
    assert f.free_bytes_at('/', [{'mount': '/', 'size_available': 7}, {'mount': '/var', 'size_available': 9}]) == 7


def test_free_bytes_at_without_a_matching_mount_is_none():
    assert f.free_bytes_at('/var/lib/containerd', []) is None
    assert f.free_bytes_at('/var/lib/containerd', None) is None
    assert f.free_bytes_at('/opt', [{'mount': '/var', 'size_available': GIB}]) is None


# --- rollout_precheck_problems -----------------------------------------------

def test_precheck_of_a_good_host_finds_nothing():
    assert precheck(good_facts()) == []
    assert precheck(good_facts(architecture='aarch64', containerd={'answers': True, 'version': 'v2.0.2'}), target='soci') == []


@pytest.mark.parametrize('overrides, problem', [
    ({'architecture': 'ppc64le'}, 'architecture ppc64le is not supported (x86_64, aarch64)'),
    ({'fuse_device': False}, 'no /dev/fuse: the kernel or the container runtime gives no FUSE device'),
    ({'filesystems': 'nodev\tsysfs\n\text4\n\tfuseblk\nnodev\tfusectl\n'},
     'the kernel does not list fuse in /proc/filesystems (modprobe fuse)'),
    ({'mounts': [{'mount': '/', 'size_available': int(5.5 * GIB)}]},
     '/var/lib/containerd has 5.5 GiB free, 10.0 GiB needed'),
    ({'containerd': {'answers': False, 'version': '1.7.20', 'error': ['connection refused']}},
     'containerd is not running or does not answer (the rollout changes running hosts; '
     'install with playbooks/lab.yml or the containerd role first)'),
    ({'containerd': {'answers': True, 'version': '1.5.9'}}, 'containerd 1.5.9 is older than 1.6.0'),
    ({'containerd': {'answers': True, 'version': None}}, 'containerd unknown is older than 1.6.0'),
])
def test_precheck_names_each_cause(overrides, problem):
    problems = precheck(good_facts(**overrides), paths=['/var/lib/containerd'])
    assert problems == [problem]


def test_precheck_low_disk_for_each_path_and_a_missing_mount():
    mounts = [{'mount': '/var/lib/containerd', 'size_available': 8 * GIB},
              {'mount': '/var/lib/containerd-stargz-grpc', 'size_available': 2 * GIB + GIB // 4}]
    assert precheck(good_facts(mounts=mounts), paths=PATHS + ['/srv/x']) == [
        '/var/lib/containerd has 8.0 GiB free, 10.0 GiB needed',
        '/var/lib/containerd-stargz-grpc has 2.2 GiB free, 10.0 GiB needed',
        'no mount found for /srv/x']


def test_precheck_compares_versions_as_numbers():
    facts = good_facts(containerd={'answers': True, 'version': '1.10.0'})
    assert precheck(facts, min_version='1.9') == []
    assert precheck(good_facts(containerd={'answers': True, 'version': '1.6.0'}), min_version='1.6.0') == []


def test_precheck_refuses_a_minimum_version_that_is_not_one():
    with pytest.raises(AnsibleFilterError, match=r"rollout_min_containerd_version 'latest' is not a version"):
        precheck(good_facts(), min_version='latest')


def test_overlayfs_target_needs_no_fuse():
    facts = good_facts(fuse_device=False, filesystems='nodev\tsysfs\n\text4\n')
    assert precheck(facts, target='overlayfs', paths=['/var/lib/containerd']) == []


# --- rollout_halt_reason -------------------------------------------------------

FLEET = ['canary', 'w1', 'w2', 'w3', 'w4', 'w5', 'w6']


def results(outcomes):
    """Results of a rollout over FLEET in batches [canary], [w1..w5], [w6]; outcomes: host -> outcome."""
    batches = [['canary'], FLEET[1:6], ['w6']]
    return [{'host': host, 'batch': batch, 'outcome': outcomes.get(host, 'ok'), 'target': 'stargz'}
            for batch in batches for host in batch]


def test_failed_canary_halts_at_zero_percent():
    rows = results({'canary': 'rolled_back', 'w1': 'not_started', 'w2': 'not_started', 'w3': 'not_started',
                    'w4': 'not_started', 'w5': 'not_started', 'w6': 'not_started'})
    assert f.rollout_halt_reason(rows[:1], 0) == \
        'halted after batch 1 (canary): 1 of 1 host(s) failed (canary) > max_fail_percentage 0'
    assert f.rollout_halt_reason(rows, 0) == \
        'halted after batch 1 (canary): 1 of 1 host(s) failed (canary) > max_fail_percentage 0'


def test_a_batch_still_pending_is_not_judged():
    rows = results({'w1': 'rolled_back', 'w2': 'rolled_back', 'w3': 'pending'})
    assert f.rollout_halt_reason(rows, 0) == ''


def test_one_of_five_is_twenty_percent():
    rows = results({'w3': 'rolled_back', 'w6': 'precheck_failed'})
    assert f.rollout_halt_reason(rows[:6], 20) == ''
    assert f.rollout_halt_reason(rows[:6], '20') == ''
    assert f.rollout_halt_reason(rows, 19) == \
        'halted after batch 2 (w1, w2, w3, w4, w5): 1 of 5 host(s) failed (w3) > max_fail_percentage 19'


def test_which_outcomes_count_as_failed():
    reasons = dict((outcome, f.rollout_halt_reason([{'host': 'canary', 'batch': ['canary'], 'outcome': outcome}], 0))
                   for outcome in ('rolled_back', 'precheck_failed', 'held', 'ok', 'would_roll_out', 'not_started'))
    halted = 'halted after batch 1 (canary): 1 of 1 host(s) failed (canary) > max_fail_percentage 0'
    assert reasons == {'rolled_back': halted, 'precheck_failed': halted, 'held': halted,
                       'ok': '', 'would_roll_out': '', 'not_started': ''}


def test_results_without_a_batch_are_batches_of_their_own():
    rows = [{'host': 'a', 'outcome': 'ok'}, {'host': 'b', 'outcome': 'held'}]
    assert f.rollout_halt_reason(rows, 50) == 'halted after batch 2 (b): 1 of 1 host(s) failed (b) > max_fail_percentage 50'


def test_halt_refuses_a_percentage_out_of_range():
    for percentage in (-1, 100.5, '101', 'abc', None):
        with pytest.raises(AnsibleFilterError, match=r'max_fail_percentage must be a number within 0\.\.100, got %r' % (percentage,)):
            f.rollout_halt_reason([], percentage)
    assert f.rollout_halt_reason([], 100) == ''


# --- rollout_running_tasks ---------------------------------------------------

def test_running_tasks_from_ctr_tasks_ls():
    listings = [
        {'item': 'k8s.io', 'rc': 0, 'stdout': 'TASK    PID     STATUS\nweb    2201    RUNNING\napi    2202    PAUSED\n'},
        {'item': 'default', 'rc': 0, 'stdout': 'TASK    PID     STATUS\nsentinel    1234    RUNNING\nold 0 STOPPED\n'},
        {'item': 'lazypull-probe', 'rc': 0, 'stdout': 'TASK    PID     STATUS\nlazypull-probe-1    99    RUNNING\n'},
        {'item': 'broken', 'rc': 1, 'stdout': 'TASK    PID     STATUS\nghost    7    RUNNING\n'},
        {'item': 'empty', 'rc': 0, 'stdout': 'TASK    PID     STATUS\n'},
    ]
    assert f.rollout_running_tasks(listings, ['lazypull-probe']) == ['default/sentinel', 'k8s.io/web']
    assert f.rollout_running_tasks(None) == []
    assert f.rollout_running_tasks([{'item': 'default', 'stdout': 'TASK    PID     STATUS\nx 1 RUNNING\n'}]) == ['default/x']


# --- containerd_cri_snapshotter ------------------------------------------------

@pytest.mark.parametrize('config, snapshotter', [
    ({'version': 2, 'plugins': {'io.containerd.grpc.v1.cri': {'containerd': {'snapshotter': 'stargz'}}}}, 'stargz'),
    ({'version': 3, 'plugins': {'io.containerd.cri.v1.images': {'snapshotter': 'soci'}}}, 'soci'),
    ({'version': 2, 'plugins': {'io.containerd.grpc.v1.cri': {'containerd': {'default_runtime_name': 'runc'}}}}, 'overlayfs'),
    (None, 'overlayfs'),
])
def test_cri_snapshotter(config, snapshotter):
    assert f.containerd_cri_snapshotter(config) == snapshotter


# --- rollout_snapshotters_running / rollout_stale_fuse_mounts ------------------------

def snapshotter_state(status='ok', answers=True, version='0.15.1', mounts=()):
    return {'proxy_plugin_status': status, 'socket_answers': answers, 'daemon': {'version': version},
            'fuse_mounts': list(mounts)}


def test_snapshotters_running_needs_proxy_ok_and_an_answering_socket():
    facts = {'snapshotters': {'stargz': snapshotter_state(version='0.15.1'), 'soci': snapshotter_state(answers=False)}}
    assert f.rollout_snapshotters_running(facts) == 'stargz 0.15.1'
    facts = {'snapshotters': {'stargz': snapshotter_state(version='0.15.1'), 'soci': snapshotter_state(version=None)}}
    assert f.rollout_snapshotters_running(facts) == 'soci, stargz 0.15.1'


def test_snapshotters_running_overlayfs_only():
    facts = {'snapshotters': {'stargz': snapshotter_state(status='error'), 'soci': snapshotter_state(status=None)}}
    assert [f.rollout_snapshotters_running(x) for x in (facts, {'snapshotters': {}}, None)] == ['overlayfs only'] * 3


def test_stale_fuse_mounts_of_dead_snapshotters_deepest_first():
    root = '/var/lib/containerd-stargz-grpc/snapshotter/snapshots'
    facts = {'snapshotters': {
        'stargz': snapshotter_state(answers=False, mounts=[root + '/2/fs', root + '/10/fs', root + '/3/fs/sub/fs']),
        'soci': snapshotter_state(answers=True, mounts=['/var/lib/soci-snapshotter-grpc/snapshotter/snapshots/1/fs'])}}
    assert f.rollout_stale_fuse_mounts(facts) == [root + '/3/fs/sub/fs', root + '/10/fs', root + '/2/fs']
    assert f.rollout_stale_fuse_mounts(None) == []


# --- rollout_probe_summary / rollout_with_host -------------------------------------

PROBE = {'changed': False, 'image': 'reg/probe:1-esgz', 'snapshotter': 'stargz', 'namespace': 'lazypull-probe',
         'pull_seconds': 1.2, 'layers': 2, 'layers_fetched': 0, 'remote_snapshots': 2, 'fuse_mounts': 2, 'lazy': True,
         'fallback': False, 'run_seconds': 0.4, 'exit_code': 0, 'output': ['lazypull-probe-ok'], 'ok': True,
         'problem': None}


def test_probe_summary_keeps_the_probe_keys():
    assert f.rollout_probe_summary(PROBE) == {
        'snapshotter': 'stargz', 'image': 'reg/probe:1-esgz', 'ok': True, 'lazy': True, 'fallback': False, 'layers': 2,
        'layers_fetched': 0, 'remote_snapshots': 2, 'fuse_mounts': 2, 'pull_seconds': 1.2, 'run_seconds': 0.4,
        'problem': None}


def test_probe_summary_of_a_probe_that_did_not_run():
    not_run = [None, {}, {'skipped': True, 'snapshotter': 'stargz'}, {'failed': True, 'msg': 'ctr-remote not found'}]
    assert [f.rollout_probe_summary(r) for r in not_run] == [{}, {}, {}, {}]


def test_with_host_names_the_host():
    result = {'outcome': 'ok', 'target': 'soci'}
    assert f.rollout_with_host((result, 'web-1')) == {'outcome': 'ok', 'target': 'soci', 'host': 'web-1'}
    assert result == {'outcome': 'ok', 'target': 'soci'}
    assert f.rollout_with_host(({'host': 'web-1', 'outcome': 'held'}, 'other')) == {'host': 'web-1', 'outcome': 'held'}
    assert f.rollout_with_host((None, 'web-2')) == {'host': 'web-2'}


# --- rollout_summary_rows ------------------------------------------------------

def test_summary_rows():
    hosts = [
        {'host': 'a', 'target': 'stargz', 'outcome': 'ok', 'runs': 'stargz 0.15.1', 'cri_snapshotter': 'stargz',
         'containerd_version': '1.7.20', 'reason': '', 'probe': f.rollout_probe_summary(PROBE)},
        {'host': 'b', 'target': 'soci', 'outcome': 'rolled_back', 'runs': 'overlayfs only', 'cri_snapshotter': 'overlayfs',
         'containerd_version': '1.7.20', 'reason': 'post-check: not lazy | fallback\nsee log',
         'probe': {'snapshotter': 'soci', 'lazy': False, 'layers_fetched': 3, 'layers': 3, 'ok': False}},
        {'host': 'c', 'target': 'overlayfs', 'outcome': 'ok', 'probe': {'snapshotter': 'overlayfs', 'ok': True, 'layers': 1}},
        {'host': 'd', 'target': 'overlayfs', 'outcome': 'rolled_back', 'probe': {'snapshotter': 'overlayfs', 'ok': False, 'layers': 1}},
        {'host': 'e', 'outcome': 'unreached'},
        {'host': 'f', 'target': 'stargz', 'outcome': 'rolled_back', 'probe': {'snapshotter': 'stargz', 'ok': False}},
    ]
    assert f.rollout_summary_rows(hosts) == [
        ['a', 'stargz', 'ok', 'stargz 0.15.1', 'stargz', '1.7.20', 'lazy, 0/2 layers fetched', ''],
        ['b', 'soci', 'rolled_back', 'overlayfs only', 'overlayfs', '1.7.20', 'NOT lazy, 3/3 layers fetched',
         'post-check: not lazy / fallback see log'],
        ['c', 'overlayfs', 'ok', '-', '-', '-', 'overlayfs ok', ''],
        ['d', 'overlayfs', 'rolled_back', '-', '-', '-', 'overlayfs failed', ''],
        ['e', '?', 'unreached', '-', '-', '-', '-', ''],
        ['f', 'stargz', 'rolled_back', '-', '-', '-', 'probe failed', ''],  # the pull itself failed: no layer counts
    ]


def test_summary_rows_make_a_well_formed_markdown_table():
    hosts = [{'host': 'b', 'target': 'soci', 'outcome': 'precheck_failed', 'reason': 'a | b\nc'}]
    table = markdown_table(f.rollout_summary_rows(hosts), f.SUMMARY_COLUMNS)
    assert [line.count('|') for line in table.splitlines()] == [9, 9, 9]


# --- rollout_gate --------------------------------------------------------------

RECORD = {'state': 'rolled_back', 'target': 'stargz', 'at': '2026-12-05T04:39:10Z', 'reason': 'probe: not lazy'}


def test_gate_goes_ahead_without_halt_or_rollback_record():
    assert f.rollout_gate({}, '', 'stargz', False, '/etc/lazypull/rollout.json') == {}
    assert f.rollout_gate({'state': 'rolled_out', 'snapshotter': 'stargz'}, '', 'stargz', False, '/r') == {}


def test_gate_halted_wins():
    assert f.rollout_gate(RECORD, 'halted after batch 1', 'stargz', False, '/r') == {
        'outcome': 'not_started', 'reason': 'halted after batch 1'}


def test_gate_holds_a_host_rolled_back_from_this_target():
    assert f.rollout_gate(RECORD, '', 'stargz', False, '/etc/lazypull/rollout.json') == {
        'outcome': 'held',
        'reason': 'rolled back from stargz at 2026-12-05T04:39:10Z: probe: not lazy '
                  '(set rollout_retry_rolled_back or remove /etc/lazypull/rollout.json)'}


def test_gate_lets_a_rolled_back_host_try_again_when_asked_or_for_another_target():
    assert f.rollout_gate(RECORD, '', 'stargz', True, '/r') == {}
    assert f.rollout_gate(RECORD, '', 'soci', False, '/r') == {}
