from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.lazypull.snapshotters.plugins.filter import snapshotter as f
from ansible_collections.lazypull.snapshotters.plugins.filter import containerd as containerd_filters

# Real outputs (see tests/unit/plugins/module_utils/test_snapshotter_config.py).
STARGZ_LAB = 'containerd-stargz-grpc v0.14.3 debian-0.14.3-4-lazypull'
SOCI_DEBIAN = 'soci-snapshotter-grpc version 0.4.1-5+b3 0.4.1-5+b3'


def test_filters_are_registered():
    assert set(f.FilterModule().filters()) == {
        'snapshotter_config', 'snapshotter_version_number', 'snapshotter_proxy_plugin'}


def test_version_number():
    assert f.snapshotter_version_number(STARGZ_LAB) == '0.14.3'
    assert f.snapshotter_version_number(SOCI_DEBIAN) == '0.4.1'
    with pytest.raises(AnsibleFilterError, match='not a snapshotter version'):
        f.snapshotter_version_number('ctr github.com/containerd/containerd 1.7.24+unknown')


def test_config_with_defaults_and_overrides():
    overrides = {'blob': {'max_retries': 8}, 'metrics_address': None}
    cfg = f.snapshotter_config(STARGZ_LAB, 'stargz', overrides)
    assert cfg == {'prefetch_timeout_sec': 30, 'blob': {'max_retries': 8}}


def test_config_errors_are_filter_errors_with_the_model_message():
    with pytest.raises(AnsibleFilterError) as info:
        f.snapshotter_config(SOCI_DEBIAN, 'soci', {'pull_modes': {'soci_v2': {'enable': True}},
                                                   'background_fetch': {'fetch_period': 5}})
    message = str(info.value)
    assert 'pull_modes.soci_v2.enable needs soci-snapshotter >= 0.10.0, installed 0.4.1' in message
    assert 'background_fetch.fetch_period: unknown key (did you mean fetch_period_msec?)' in message


def test_config_rejects_unknown_snapshotter_and_garbage_version():
    with pytest.raises(AnsibleFilterError, match='unknown snapshotter'):
        f.snapshotter_config(STARGZ_LAB, 'nydus')
    with pytest.raises(AnsibleFilterError, match='without version information'):
        f.snapshotter_config('containerd-stargz-grpc <unknown> <unknown>', 'stargz')


def test_explicit_defaults_and_unchecked_keys():
    cfg = f.snapshotter_config('0.19.0', 'stargz', {'fuse_manager': {'metrics_address': 'x'}},
                               defaults={}, unchecked_keys=['fuse_manager.metrics_address'])
    assert cfg == {'fuse_manager': {'metrics_address': 'x'}}


def test_renders_to_toml_with_quoted_registry_hosts():
    tomllib = pytest.importorskip('tomllib')
    pytest.importorskip('tomli_w')
    cfg = f.snapshotter_config(STARGZ_LAB, 'stargz', {'resolver': {'host': {'10.88.0.2:5000': {
        'mirrors': [{'host': '10.88.0.2:5000', 'insecure': True}]}}}})
    text = containerd_filters.to_toml(cfg)
    # The host is one quoted key, not split at its dots; tomli-w writes the
    # mirrors as an array of inline tables, which go-toml v1 (stargz) and v2
    # (soci >= 0.10) decode like [[...mirrors]] tables.
    assert '[resolver.host."10.88.0.2:5000"]' in text
    assert tomllib.loads(text) == cfg


def test_soci_http_keys_render_in_go_field_case():
    tomllib = pytest.importorskip('tomllib')
    pytest.importorskip('tomli_w')
    text = containerd_filters.to_toml(f.snapshotter_config(SOCI_DEBIAN, 'soci'))
    assert tomllib.loads(text)['http'] == {'RequestTimeoutMsec': 300000}


def test_proxy_plugin():
    assert f.snapshotter_proxy_plugin('stargz') == {
        'name': 'stargz', 'type': 'snapshot',
        'address': '/run/containerd-stargz-grpc/containerd-stargz-grpc.sock',
        'root': '/var/lib/containerd-stargz-grpc'}
    assert f.snapshotter_proxy_plugin('soci', socket='/run/x/soci.sock')['address'] == '/run/x/soci.sock'
    with pytest.raises(AnsibleFilterError, match='absolute unix socket path'):
        f.snapshotter_proxy_plugin('soci', socket='soci.sock')
