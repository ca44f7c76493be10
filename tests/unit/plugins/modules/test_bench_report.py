from __future__ import absolute_import, division, print_function

__metaclass__ = type

import csv
import io
import json
import os
import sys

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.lazypull.snapshotters.plugins.modules import bench_report

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def run(variant, rnd, host, total, fetched, snapshotter=None, lazy=False, ok=True):
    snapshotter = snapshotter or variant
    return {'host': host, 'workload': 'sparse', 'variant': variant, 'snapshotter': snapshotter, 'round': rnd,
            'pull_seconds': round(total * 0.3, 3), 'create_seconds': 0.1, 'run_seconds': round(total * 0.7 - 0.1, 3),
            'total_seconds': total, 'bytes_fetched': fetched, 'bytes_source': 'registry',
            'image_compressed_size': 40000000, 'lazy': lazy, 'fallback': snapshotter != 'overlayfs' and not lazy,
            'ok': ok, 'milestones': {'done': 0.5}, 'problem': None}


RUNS = [run('overlayfs', 1, 'bench-a', 5.2, 40000000), run('stargz', 1, 'bench-a', 2.7, 3000000, lazy=True),
        run('stargz', 1, 'bench-b', 3.1, 3200000, lazy=True), run('overlayfs', 1, 'bench-b', 5.4, 40000000),
        run('soci', 2, 'bench-b', 6.2, 39000000)]


def args(tmp_path, **overrides):
    params = {'dest': str(tmp_path), 'run_id': '20250101T000000Z', 'runs': RUNS,
              'settings': {'repetitions': 1, 'link': 'not shaped'}, 'warm_run_seconds': {'sparse': 0.9},
              'link_bytes_per_second': 25000000, 'seed_reference': {'llm': {'soci': {'total': 74.0}}},
              'host_facts': {'bench-a': {'kernel': '6.1.0', 'cpus': 2}}}
    params.update(overrides)
    return params


@pytest.fixture(autouse=True)
def matplotlib_home(tmp_path_factory, monkeypatch):
    monkeypatch.setenv('MPLCONFIGDIR', str(tmp_path_factory.mktemp('mpl')))


def call(module_args, capsys):
    with patch_module_args(module_args):
        with pytest.raises(SystemExit) as info:
            bench_report.main()
    result = json.loads(capsys.readouterr().out)
    result['_rc'] = info.value.code
    return result


def test_writes_all_four_files(tmp_path, capsys):
    result = call(args(tmp_path), capsys)
    out_dir = str(tmp_path / '20250101T000000Z')
    assert result['_rc'] == 0 and result['changed'] is True and not result.get('failed')
    assert result['dir'] == out_dir
    assert result['files'] == [os.path.join(out_dir, name)
                               for name in ('results.json', 'results.csv', 'report.md', 'report.png')]
    assert sorted(os.listdir(out_dir)) == ['report.md', 'report.png', 'results.csv', 'results.json']  # no .tmp left
    with open(os.path.join(out_dir, 'report.png'), 'rb') as handle:
        png = handle.read()
    assert png[:8] == PNG_SIGNATURE and len(png) > 1000
    with open(os.path.join(out_dir, 'results.json')) as handle:
        document = json.load(handle)
    assert document['run_id'] == '20250101T000000Z'
    assert len(document['runs']) == 5 and document['runs'][0]['host'] == 'bench-a'
    order = [(r['host'], r['variant']) for r in document['summary']]
    assert order[0] == ('fleet', 'overlayfs') and order.index(('fleet', 'stargz')) < order.index(('bench-a', 'overlayfs'))
    assert document['floor'] == {'sparse': {'seconds': 1.02, 'warm_run_seconds': 0.9, 'fetch_seconds': 0.12,
                                            'min_lazy_bytes': 3000000, 'link_bytes_per_second': 25000000.0}}
    assert document['link_bytes_per_second'] == 25000000.0
    assert document['hosts'] == {'bench-a': {'kernel': '6.1.0', 'cpus': 2}}
    assert result['summary'] == document['summary'] and result['floor'] == document['floor']
    with open(os.path.join(out_dir, 'report.md')) as handle:
        assert handle.read() == result['table']
    assert result['table'].startswith('# Cold-start benchmark 20250101T000000Z\n')
    assert '| **floor** | | | | | 0.90 | 1.02 | 3.0 | | 1.00 |' in result['table']
    with open(os.path.join(out_dir, 'results.csv')) as handle:
        rows = list(csv.DictReader(io.StringIO(handle.read())))
    assert [r['variant'] for r in rows] == ['overlayfs', 'stargz', 'stargz', 'overlayfs', 'soci']
    assert rows[0]['milestones'] == 'done=0.5'


def test_rewrites_an_existing_run_without_a_chart(tmp_path, capsys):
    out_dir = tmp_path / 'r1'
    out_dir.mkdir()
    (out_dir / 'report.md').write_text('old')
    result = call(args(tmp_path, run_id='r1', chart=False), capsys)
    assert result['_rc'] == 0 and result['changed'] is True
    assert [os.path.basename(p) for p in result['files']] == ['results.json', 'results.csv', 'report.md']
    assert sorted(os.listdir(str(out_dir))) == ['report.md', 'results.csv', 'results.json']
    assert (out_dir / 'report.md').read_text() == result['table']


def test_check_mode_writes_nothing(tmp_path, capsys):
    result = call(dict(args(tmp_path), _ansible_check_mode=True), capsys)
    assert result['_rc'] == 0 and result['changed'] is True
    assert os.listdir(str(tmp_path)) == []
    assert result['table'].startswith('# Cold-start benchmark')
    (tmp_path / '20250101T000000Z').mkdir()
    result = call(dict(args(tmp_path), _ansible_check_mode=True), capsys)
    assert result['changed'] is False
    assert os.listdir(str(tmp_path / '20250101T000000Z')) == []


@pytest.mark.parametrize('run_id', ['', '.', '..', '../elsewhere', 'a/b', '/abs'])
def test_bad_run_id_fails(tmp_path, capsys, run_id):
    result = call(args(tmp_path, run_id=run_id), capsys)
    assert result['_rc'] == 1 and result['failed'] is True
    assert result['msg'] == 'run_id must be a plain directory name, got %r' % run_id
    assert os.listdir(str(tmp_path)) == []


def test_runs_lacking_host_fail(tmp_path, capsys):
    runs = [RUNS[0], dict((k, v) for k, v in RUNS[1].items() if k != 'host'), {'workload': 'x', 'host': 'h'}]
    result = call(args(tmp_path, runs=runs), capsys)
    assert result['_rc'] == 1 and result['failed'] is True
    assert result['msg'] == 'runs [1, 2] lack host, workload or variant'
    assert os.listdir(str(tmp_path)) == []


def test_unwritable_dest_fails(tmp_path, capsys):
    blocker = tmp_path / 'a-file'
    blocker.write_text('')
    result = call(args(blocker), capsys)
    assert result['failed'] is True and result['msg'].startswith('cannot write %s: ' % (blocker / '20250101T000000Z'))


def test_missing_matplotlib_fails_with_a_hint(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, 'matplotlib', None)  # import matplotlib -> ImportError
    result = call(args(tmp_path), capsys)
    assert result['failed'] is True
    assert result['msg'].startswith('report.png needs matplotlib on the controller (pip install matplotlib)')


def test_empty_runs_still_report(tmp_path, capsys):
    result = call(args(tmp_path, runs=[], chart=False), capsys)
    assert result['_rc'] == 0 and result['summary'] == [] and result['floor'] == {}
