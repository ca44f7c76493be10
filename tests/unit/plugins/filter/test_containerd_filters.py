from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

tomllib = pytest.importorskip('tomllib')

from ansible.errors import AnsibleFilterError  # noqa: E402

from ansible_collections.lazypull.snapshotters.plugins.filter import containerd as f  # noqa: E402


def test_to_toml_round_trips_a_v2_config():
    cfg = f.containerd_config('1.7.24', proxy_plugins=[
        {'name': 'stargz', 'address': '/run/containerd-stargz-grpc/containerd-stargz-grpc.sock'}],
        cri_snapshotter='stargz', disable_snapshot_annotations=False)
    text = f.to_toml(cfg, header='managed by Ansible')
    assert text.startswith('# managed by Ansible\n')
    parsed = tomllib.loads(text)
    assert parsed == cfg
    # Dotted plugin ids must be quoted, not split into nested tables.
    assert '[plugins."io.containerd.grpc.v1.cri".containerd]' in text


def test_to_toml_drops_null_keys():
    assert f.to_toml({'a': 1, 'b': None, 'c': {'d': None, 'e': 2}}) == 'a = 1\n\n[c]\ne = 2\n'


def test_null_override_removes_a_managed_key():
    cfg = f.containerd_config('1.7.24', overrides={'plugins': {'io.containerd.grpc.v1.cri': {
        'registry': None}}})
    assert 'registry' not in cfg['plugins']['io.containerd.grpc.v1.cri']


def test_to_toml_rejects_non_dict():
    with pytest.raises(AnsibleFilterError, match='expects a dict'):
        f.to_toml(['a'])


def test_model_errors_become_filter_errors():
    with pytest.raises(AnsibleFilterError, match='containerd config: CRI snapshotter'):
        f.containerd_config('1.7.24', cri_snapshotter='stargz')


def test_unknown_keys_parses_real_dump_text():
    dump = 'version = 2\noom_score = 0\n[plugins."io.containerd.grpc.v1.cri".containerd]\n  snapshotter = "overlayfs"\n'
    written = {'version': 2, 'oom_scor': -5,
               'plugins': {'io.containerd.grpc.v1.cri': {'containerd': {'snapshotter': 'overlayfs'}}}}
    assert f.containerd_unknown_keys(dump, written) == ['oom_scor']


def test_unknown_keys_rejects_unparsable_dump():
    with pytest.raises(AnsibleFilterError, match='cannot parse'):
        f.containerd_unknown_keys('not = = toml', {})


def test_version_number():
    assert f.containerd_version_number('containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6') == '1.7.24'
    with pytest.raises(AnsibleFilterError):
        f.containerd_version_number('nothing')
