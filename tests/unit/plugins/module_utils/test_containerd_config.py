from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.lazypull.snapshotters.plugins.module_utils import containerd_config as m

V2_CRI = 'io.containerd.grpc.v1.cri'
V3_IMAGES = 'io.containerd.cri.v1.images'
STARGZ = {'name': 'stargz', 'address': '/run/containerd-stargz-grpc/containerd-stargz-grpc.sock',
          'root': '/var/lib/containerd-stargz-grpc'}
SOCI = {'name': 'soci', 'address': '/run/soci-snapshotter-grpc/soci-snapshotter-grpc.sock'}


@pytest.mark.parametrize('text,expected', [
    ('containerd github.com/containerd/containerd 1.7.24~ds1-6+b3', (1, 7, 24)),
    ('containerd github.com/containerd/containerd/v2 v2.1.0 e29f23e45b3f', (2, 1, 0)),
    ('containerd containerd.io 1.6.20 2806fc1', (1, 6, 20)),
    ('v2.0.4', (2, 0, 4)),
    ('1.7', (1, 7, 0)),
])
def test_parse_version(text, expected):
    assert m.parse_version(text) == expected


@pytest.mark.parametrize('text', ['', 'containerd', None, 'no version here'])
def test_parse_version_rejects_garbage(text):
    with pytest.raises(m.ConfigError):
        m.parse_version(text)


@pytest.mark.parametrize('version,expected', [('1.6.20', 2), ('1.7.24', 2), ('2.0.0', 3), ('2.1.3', 3)])
def test_config_version_for(version, expected):
    assert m.config_version_for(version) == expected


def test_deep_merge_merges_dicts_and_replaces_scalars_and_lists():
    base = {'a': {'b': 1, 'c': [1, 2]}, 'd': 'x'}
    merged = m.deep_merge(base, {'a': {'c': [3], 'e': True}, 'd': 'y'})
    assert merged == {'a': {'b': 1, 'c': [3], 'e': True}, 'd': 'y'}
    assert base == {'a': {'b': 1, 'c': [1, 2]}, 'd': 'x'}, 'base must not be mutated'


def test_v2_config_sections():
    cfg = m.build_config('1.7.24', proxy_plugins=[STARGZ], cri_snapshotter='stargz',
                         disable_snapshot_annotations=False)
    assert cfg['version'] == 2
    cri = cfg['plugins'][V2_CRI]
    assert cri['containerd'] == {'snapshotter': 'stargz', 'disable_snapshot_annotations': False}
    assert cri['registry'] == {'config_path': '/etc/containerd/certs.d'}
    assert cfg['proxy_plugins'] == {'stargz': {'type': 'snapshot', 'address': STARGZ['address'],
                                               'exports': {'root': STARGZ['root']}}}
    assert V3_IMAGES not in cfg['plugins']


def test_exports_only_from_containerd_17():
    cfg = m.build_config('1.6.20', proxy_plugins=[STARGZ])
    assert cfg['proxy_plugins']['stargz'] == {'type': 'snapshot', 'address': STARGZ['address']}


def test_v3_config_sections_and_exports():
    cfg = m.build_config('2.0.4', proxy_plugins=[STARGZ, SOCI], cri_snapshotter='soci',
                         disable_snapshot_annotations=False)
    assert cfg['version'] == 3
    images = cfg['plugins'][V3_IMAGES]
    assert images['snapshotter'] == 'soci'
    assert images['disable_snapshot_annotations'] is False
    assert images['registry'] == {'config_path': '/etc/containerd/certs.d'}
    assert cfg['proxy_plugins']['stargz']['exports'] == {'root': STARGZ['root']}
    assert 'exports' not in cfg['proxy_plugins']['soci']
    assert V2_CRI not in cfg['plugins']
    assert m.TRANSFER_PLUGIN not in cfg['plugins'], 'transfer unpack config is for >= 2.1 only'


def test_v3_21_registers_remote_snapshotter_with_transfer_service():
    cfg = m.build_config('2.1.0', proxy_plugins=[STARGZ], cri_snapshotter='stargz',
                         disable_snapshot_annotations=False)
    unpack = cfg['plugins'][m.TRANSFER_PLUGIN]['unpack_config']
    assert [u['snapshotter'] for u in unpack] == ['stargz', 'overlayfs']


def test_v3_21_overlayfs_needs_no_transfer_config():
    cfg = m.build_config('2.1.0')
    assert m.TRANSFER_PLUGIN not in cfg['plugins']


def test_overrides_win_and_may_add_anything():
    cfg = m.build_config('1.7.24', overrides={
        'oom_score': -999,
        'plugins': {V2_CRI: {'containerd': {'snapshotter': 'native'}, 'sandbox_image': 'pause:3.9'}}})
    assert cfg['oom_score'] == -999
    assert cfg['plugins'][V2_CRI]['containerd']['snapshotter'] == 'native'
    assert cfg['plugins'][V2_CRI]['containerd']['disable_snapshot_annotations'] is True
    assert cfg['plugins'][V2_CRI]['sandbox_image'] == 'pause:3.9'


def test_overrides_cannot_change_version():
    with pytest.raises(m.ConfigError, match='version 3'):
        m.build_config('2.0.0', overrides={'version': 2})


def test_paths_are_optional():
    cfg = m.build_config('1.7.24', root='/srv/ctd', state='/run/ctd', address='/run/ctd/c.sock',
                         registry_config_path=None)
    assert cfg['root'] == '/srv/ctd' and cfg['state'] == '/run/ctd'
    assert cfg['grpc'] == {'address': '/run/ctd/c.sock'}
    assert 'registry' not in cfg['plugins'][V2_CRI]


def test_unknown_cri_snapshotter_is_rejected():
    with pytest.raises(m.ConfigError, match="'stargz' is neither built in"):
        m.build_config('1.7.24', cri_snapshotter='stargz')


@pytest.mark.parametrize('plugins,message', [
    ([{'name': 'Stargz', 'address': '/x.sock'}], 'invalid name'),
    ([{'name': 'a', 'address': 'relative.sock'}], 'absolute'),
    ([{'name': 'a', 'address': '/' + 'x' * 120}], 'longer than 107'),
    ([{'name': 'a', 'address': '/a.sock', 'type': 'bogus'}], 'type must be'),
    ([{'name': 'a', 'address': '/a.sock', 'adress': 'typo'}], 'unknown keys adress'),
    ([{'name': 'a', 'address': '/a.sock'}, {'name': 'a', 'address': '/b.sock'}], 'twice'),
    (['stargz'], 'not a dict'),
])
def test_proxy_plugin_validation(plugins, message):
    with pytest.raises(m.ConfigError, match=message):
        m.validate_proxy_plugins(plugins)


def test_disable_snapshot_annotations_must_be_bool():
    with pytest.raises(m.ConfigError):
        m.build_config('1.7.24', disable_snapshot_annotations='false')


def test_registry_hosts_with_ca_and_mirror():
    doc = m.registry_hosts({'host': '10.0.0.5:5000', 'ca_file': '/etc/containerd/certs.d/10.0.0.5:5000/ca.crt',
                            'mirrors': [{'url': 'https://mirror.example:5000', 'ca_file': '/m.crt'}]})
    assert doc['server'] == 'https://10.0.0.5:5000'
    assert doc['host']['https://mirror.example:5000'] == {'capabilities': ['pull', 'resolve'], 'ca': '/m.crt'}
    assert doc['host']['https://10.0.0.5:5000']['ca'].endswith('ca.crt')


def test_registry_hosts_plain_http_without_tls_entry():
    assert m.registry_hosts({'host': 'reg:5000', 'plain_http': True}) == {'server': 'http://reg:5000'}


@pytest.mark.parametrize('registry', [{'host': ''}, {'host': 'https://x'}, {'host': 'a', 'mirrors': [{'url': 'x'}]}])
def test_registry_hosts_rejects_bad_input(registry):
    with pytest.raises(m.ConfigError):
        m.registry_hosts(registry)


PLUGINS_LS = """TYPE                                   ID                       PLATFORMS      STATUS
io.containerd.content.v1               content                  -              ok
io.containerd.snapshotter.v1           overlayfs                linux/amd64    ok
io.containerd.snapshotter.v1           zfs                      linux/amd64    skip
io.containerd.snapshotter.v1           stargz                   -              ok
io.containerd.snapshotter.v1           soci                     -              error
"""


def test_parse_plugins_ls():
    rows = m.parse_plugins_ls(PLUGINS_LS)
    assert rows[1] == {'type': 'io.containerd.snapshotter.v1', 'id': 'overlayfs',
                       'platforms': 'linux/amd64', 'status': 'ok'}
    assert len(rows) == 5


def test_proxy_plugin_problems_names_broken_and_missing_plugins():
    problems = m.proxy_plugin_problems(
        [STARGZ, SOCI, {'name': 'nydus', 'address': '/run/nydus.sock'}], PLUGINS_LS)
    assert problems == ['soci: status error (socket %s)' % SOCI['address'],
                        'nydus: not listed by `ctr plugins ls`']


def test_proxy_plugin_problems_empty_when_all_ok():
    assert m.proxy_plugin_problems([STARGZ], PLUGINS_LS) == []


def test_unknown_keys_finds_typos_but_not_empty_omitted_fields():
    written = {'version': 2, 'disabled_plugins': [], 'plugins': {
        V2_CRI: {'containerd': {'snapshotter': 'overlayfs', 'disable_snapshot_annotation': True}},
        'io.containerd.grpc.v1.crii': {'x': 1}}}
    dumped = {'version': 2, 'plugins': {V2_CRI: {'containerd': {
        'snapshotter': 'overlayfs', 'disable_snapshot_annotations': True}}}}
    assert m.unknown_keys(written, dumped) == [
        'plugins.%s.containerd.disable_snapshot_annotation' % V2_CRI,
        'plugins.io.containerd.grpc.v1.crii']


def test_unknown_keys_empty_when_all_known():
    cfg = m.build_config('1.7.24')
    assert m.unknown_keys(cfg, m.deep_merge(cfg, {'oom_score': 0, 'plugins': {'x': {}}})) == []


def test_proxy_plugins_are_rendered_in_name_order():
    one = m.build_config('1.7.24', proxy_plugins=[STARGZ, SOCI])
    two = m.build_config('1.7.24', proxy_plugins=[SOCI, STARGZ])
    assert list(one['proxy_plugins']) == list(two['proxy_plugins']) == ['soci', 'stargz']
