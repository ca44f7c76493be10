from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.lazypull.snapshotters.plugins.module_utils import containerd_config
from ansible_collections.lazypull.snapshotters.plugins.module_utils import snapshotter_config as m

# Real `--version` outputs.
# Measured: the lab's containerd-stargz-grpc, built from Debian trixie's
# 0.14.3 source by tests/lab/build-artifacts.sh (-ldflags -X version.Version=v0.14.3).
STARGZ_LAB = 'containerd-stargz-grpc v0.14.3 debian-0.14.3-4-lazypull'
# Upstream containerd/stargz-snapshotter PR #269 (a build between tags: git describe).
STARGZ_UPSTREAM_DEV = ('containerd-stargz-grpc v0.4.1-3-ge550b6e '
                       'e550b6ea86467949c0aaa372b88f04d173afc269')
# Measured: Debian trixie's soci-snapshotter 0.4.1-5+b3 binaries.
SOCI_DEBIAN = 'soci-snapshotter-grpc version 0.4.1-5+b3 0.4.1-5+b3'
SOCI_CLI_DEBIAN = 'soci version 0.4.1-5+b3 0.4.1-5+b3'
# Upstream release format (urfave/cli "<name> version <Version> <Revision>",
# Version = git describe of the tag, Revision = commit of tag v0.15.0).
SOCI_UPSTREAM = 'soci-snapshotter-grpc version v0.15.0 7716bd67e813f8e80873948e0a02d0a7c5370854'
# Measured: ctr-remote 0.14.3 prints ctr's, i.e. containerd's, version.
CTR_REMOTE = 'ctr github.com/containerd/containerd 1.7.24+unknown'

OLD = {'stargz': '0.14.3', 'soci': '0.4.1'}
NEW = {'stargz': '0.18.2', 'soci': '0.15.0'}


def problems_of(snapshotter, version, overrides, defaults=None, unchecked_keys=None):
    with pytest.raises(m.ConfigError) as info:
        m.build_config(snapshotter, version, defaults=defaults if defaults is not None else {},
                       overrides=overrides, unchecked_keys=unchecked_keys)
    return info.value.problems


# -- versions ---------------------------------------------------------------

@pytest.mark.parametrize('text,expected', [
    (STARGZ_LAB, (0, 14, 3)),
    (STARGZ_UPSTREAM_DEV, (0, 4, 1)),
    ('containerd-stargz-grpc v0.18.2 0a4d5c1b2e3f', (0, 18, 2)),
    (SOCI_DEBIAN, (0, 4, 1)),
    (SOCI_CLI_DEBIAN, (0, 4, 1)),
    (SOCI_UPSTREAM, (0, 15, 0)),
    ('soci-snapshotter-grpc version v0.10.0.m 1234abcd.m', (0, 10, 0)),
    ('0.14.3', (0, 14, 3)),
    ('v0.10.1\n', (0, 10, 1)),
    ('0.11', (0, 11, 0)),
    ((0, 4, 1), (0, 4, 1)),
    ([0, 17], (0, 17, 0)),
])
def test_parse_version(text, expected):
    assert m.parse_version(text) == expected


@pytest.mark.parametrize('text,message', [
    (None, 'no snapshotter version'),
    ('', 'no snapshotter version'),
    ('containerd-stargz-grpc <unknown> <unknown>', 'without version information'),
    ('soci-snapshotter-grpc version', 'cannot read'),
    (CTR_REMOTE, 'not a snapshotter version'),
    ('containerd github.com/containerd/containerd 1.7.24~ds1-6', 'not a snapshotter version'),
    ((0, 'x', 1), 'cannot read'),
    ((True, 1), 'cannot read'),
])
def test_parse_version_rejects(text, message):
    with pytest.raises(m.ConfigError, match=message):
        m.parse_version(text)


def test_version_string():
    assert m.version_string(SOCI_DEBIAN) == '0.4.1'


def test_unknown_snapshotter_and_aliases():
    with pytest.raises(m.ConfigError, match='unknown snapshotter'):
        m.known_keys('nydus', '2.2.0')
    assert m.known_keys('containerd-stargz-grpc', '0.14.3') == m.known_keys('stargz', '0.14.3')
    assert m.known_keys('soci-snapshotter', '0.4.1') == m.known_keys('soci', '0.4.1')


@pytest.mark.parametrize('snapshotter,version', [('stargz', '0.13.1'), ('soci', '0.3.0')])
def test_versions_older_than_the_key_table_are_refused(snapshotter, version):
    with pytest.raises(m.ConfigError, match='older than the oldest release'):
        m.known_keys(snapshotter, version)
    with pytest.raises(m.ConfigError, match='older than the oldest release'):
        m.build_config(snapshotter, version)


# -- the key tables ---------------------------------------------------------

def test_known_keys_counts_match_the_structs_read():
    # Numbers of leaf keys in the Go structs at these tags.
    assert len(m.known_keys('stargz', '0.14.3')) == 41
    assert len(m.known_keys('stargz', '0.18.2')) == 52
    assert len(m.known_keys('soci', '0.4.1')) == 52
    assert len(m.known_keys('soci', '0.15.0')) == 71


def test_known_keys_samples():
    old_stargz = m.known_keys('stargz', '0.14.3')
    assert {'prefetch_timeout_sec', 'max_concurrency', 'metrics_address', 'no_prometheus',
            'blob.prefetch_chunk_size', 'directory_cache.direct', 'fuse.attr_timeout',
            'resolver.host.*.mirrors[].header', 'cri_keychain.image_service_path',
            'kubeconfig_keychain.kubeconfig_path', 'snapshotter.allow_invalid_mounts_on_restart',
            'resolve_result_entry_ttl_sec'} <= old_stargz
    assert 'fuse.passthrough' not in old_stargz
    old_soci = m.known_keys('soci', '0.4.1')
    assert {'http.RequestTimeoutMsec', 'background_fetch.fetch_period_msec',
            'snapshotter.min_layer_size', 'content_store.namespace',
            'allow_no_verification', 'resolver.host.*.mirrors[].insecure'} <= old_soci
    assert not any(k.startswith('pull_modes.') for k in old_soci)
    assert 'resolver.host.*.mirrors[].header' not in old_soci


def test_key_table_entries_are_well_formed():
    for name, table in m.KEY_TABLES.items():
        paths = [e[0] for e in table]
        assert len(paths) == len(set(paths)), '%s: duplicate paths' % name
        for path, vtype, since, until in table:
            assert vtype in m._TYPE_WORDS, path
            if since and until:
                assert m.parse_version(since) < m.parse_version(until), path
            if since:
                assert m.parse_version(since) > m.parse_version(m.SNAPSHOTTERS[name]['oldest']), path


@pytest.mark.parametrize('snapshotter,key,since', [
    ('stargz', 'fuse.passthrough', '0.17.0'),
    ('stargz', 'fuse.merge_buffer_size', '0.17.0'),
    ('stargz', 'fuse_manager.enable', '0.17.0'),
    ('stargz', 'cri_keychain.listen_path', '0.17.0'),
    ('stargz', 'directory_cache.fadv_dontneed', '0.18.0'),
    ('stargz', 'prefetch_async_size', '0.18.2'),
    ('stargz', 'resolver.request_timeout_sec', '0.18.2'),
    ('soci', 'content_store.containerd_address', '0.5.0'),
    ('soci', 'skip_check_snapshotter_supported', '0.7.0'),
    ('soci', 'pull_modes.soci_v2.enable', '0.10.0'),
    ('soci', 'pull_modes.parallel_pull_unpack.enable', '0.11.0'),
    ('soci', 'prefetch.enable', '0.13.0'),
    ('soci', 'pull_modes.parallel_pull_unpack.experimental_parallel_pull_as_fallback', '0.14.0'),
    ('soci', 'background_fetch.drop_policy', '0.15.0'),
    ('soci', 'resolver.auth_client_ttl_sec', '0.15.0'),
])
def test_version_gate_since(snapshotter, key, since):
    major, minor, patch = m.parse_version(since)
    before = (major, minor - 1, 99) if patch == 0 else (major, minor, patch - 1)
    assert key in m.known_keys(snapshotter, since)
    assert key not in m.known_keys(snapshotter, before)


@pytest.mark.parametrize('key', ['allow_no_verification', 'content_store.namespace'])
def test_soci_keys_removed_in_010(key):
    assert key in m.known_keys('soci', '0.9.0')
    assert key not in m.known_keys('soci', '0.10.0')


# -- build_config: gates both ways -------------------------------------------

def test_pull_modes_rejected_on_041_with_the_version_needed():
    problems = problems_of('soci', SOCI_DEBIAN, {'pull_modes': {'soci_v2': {'enable': True}}})
    assert problems == ['pull_modes.soci_v2.enable needs soci-snapshotter >= 0.10.0, installed 0.4.1']


def test_pull_modes_accepted_from_010():
    cfg = m.build_config('soci', SOCI_UPSTREAM, overrides={'pull_modes': {
        'soci_v1': {'enable': True}, 'soci_v2': {'enable': True},
        'parallel_pull_unpack': {'enable': True, 'concurrent_download_chunk_size': '16mb',
                                 'max_concurrent_downloads_per_image': 5,
                                 'decompress_streams': {'gzip': {'path': '/usr/bin/unpigz',
                                                                 'args': ['-d', '-c']}}}}})
    assert cfg['pull_modes']['soci_v1'] == {'enable': True}
    assert cfg['pull_modes']['parallel_pull_unpack']['decompress_streams']['gzip']['path'] == '/usr/bin/unpigz'


def test_parallel_pull_needs_011_even_on_010():
    problems = problems_of('soci', '0.10.1', {'pull_modes': {'soci_v2': {'enable': True},
                                                             'parallel_pull_unpack': {'enable': True}}})
    assert problems == ['pull_modes.parallel_pull_unpack.enable needs soci-snapshotter >= 0.11.0, '
                        'installed 0.10.1']


def test_removed_keys_rejected_on_new_soci_and_accepted_on_old():
    overrides = {'allow_no_verification': True, 'content_store': {'type': 'soci', 'namespace': 'k8s.io'}}
    assert m.build_config('soci', '0.4.1', defaults={}, overrides=overrides) == overrides
    problems = problems_of('soci', '0.10.0', overrides)
    assert sorted(problems) == [
        'allow_no_verification exists only in soci-snapshotter < 0.10.0 (removed in 0.10.0), '
        'installed 0.10.0',
        'content_store.namespace exists only in soci-snapshotter < 0.10.0 (removed in 0.10.0), '
        'installed 0.10.0']


def test_stargz_passthrough_gate_both_ways():
    problems = problems_of('stargz', STARGZ_LAB, {'fuse': {'passthrough': True, 'attr_timeout': 5}})
    assert problems == ['fuse.passthrough needs stargz-snapshotter >= 0.17.0, installed 0.14.3']
    cfg = m.build_config('stargz', '0.17.0', overrides={'fuse': {'passthrough': True}})
    assert cfg['fuse'] == {'passthrough': True}


def test_all_problems_are_reported_at_once():
    with pytest.raises(m.ConfigError) as info:
        m.build_config('soci', '0.4.1', overrides={
            'pull_modes': {'soci_v2': {'enable': True}},
            'snapshoter': {'min_layer_size': 1},
            'snapshotter': {'min_layer_size': '10MiB'},
        })
    err = info.value
    assert len(err.problems) == 3
    assert str(err).startswith('soci-snapshotter-grpc config for soci-snapshotter 0.4.1: 3 problems: ')
    for problem in err.problems:
        assert problem in str(err)
    assert isinstance(err, containerd_config.ConfigError), 'one error family for callers'


# -- typos and unknown keys -------------------------------------------------

@pytest.mark.parametrize('snapshotter,overrides,expected', [
    ('stargz', {'prefetch_timeout': 30}, 'prefetch_timeout: unknown key (did you mean prefetch_timeout_sec?)'),
    ('stargz', {'blob': {'chunksize': 1}}, 'blob.chunksize: unknown key (did you mean chunk_size?)'),
    ('stargz', {'directory_cache': {'max_cache_fd': 1}},
     'directory_cache.max_cache_fd: unknown key (did you mean max_cache_fds?)'),
    ('soci', {'backgroundfetch': {'disable': True}},
     'backgroundfetch: unknown key (did you mean background_fetch?)'),
    # soci's [http] keys carry no toml tags: snake_case would be ignored by the daemon.
    ('soci', {'http': {'request_timeout_msec': 1}},
     'http.request_timeout_msec: unknown key (did you mean RequestTimeoutMsec?)'),
    ('soci', {'completely_unrelated': 1}, 'completely_unrelated: unknown key'),
])
def test_typos_are_unknown_keys_with_a_hint(snapshotter, overrides, expected):
    assert problems_of(snapshotter, NEW[snapshotter], overrides) == [expected]


def test_stargz_only_key_is_unknown_for_soci():
    # `header` exists in stargz's mirror config, never in soci's.
    problems = problems_of('soci', '0.15.0', {'resolver': {'host': {'registry-a.example.internal': {'mirrors': [
        {'host': 'mirror.lab', 'header': {'x-a': 'b'}}]}}}})
    assert problems == ['resolver.host."registry-a.example.internal".mirrors[0].header: unknown key']


def test_newer_than_table_hint_and_unchecked_keys():
    overrides = {'fuse_manager': {'metrics_address': '127.0.0.1:8236'}}
    problems = problems_of('stargz', '0.19.0', overrides)
    assert len(problems) == 1 and 'newer than the newest release whose keys are known (0.18.2)' in problems[0]
    assert 'newer than' not in problems_of('stargz', '0.18.2', overrides)[0]
    cfg = m.build_config('stargz', '0.19.0', defaults={}, overrides=overrides,
                         unchecked_keys=['fuse_manager.metrics_address'])
    assert cfg == overrides
    # A whole table can be left unchecked, too; a single string is one path.
    m.build_config('stargz', '0.19.0', overrides={'new_table': {'a': 1}}, unchecked_keys=['new_table'])
    m.build_config('stargz', '0.19.0', overrides={'new_table': {'a': 1}}, unchecked_keys='new_table')


def test_newer_version_keeps_open_ended_keys():
    assert m.known_keys('soci', '1.2.0') == m.known_keys('soci', '0.15.0')


def test_empty_table_of_a_later_release():
    assert problems_of('soci', '0.4.1', {'pull_modes': {}}) == [
        'pull_modes: table needs soci-snapshotter >= 0.10.0, installed 0.4.1']
    assert m.build_config('soci', '0.10.0', defaults={}, overrides={'pull_modes': {}}) == {'pull_modes': {}}


# -- types ------------------------------------------------------------------

@pytest.mark.parametrize('snapshotter,overrides,expected', [
    ('stargz', {'prefetch_timeout_sec': '30'}, "prefetch_timeout_sec must be an integer, got str '30'"),
    ('stargz', {'max_concurrency': True}, 'max_concurrency must be an integer, got bool True'),
    ('stargz', {'max_concurrency': 2.5}, 'max_concurrency must be an integer, got float 2.5'),
    ('stargz', {'noprefetch': 'yes'}, "noprefetch must be a boolean (true/false), got str 'yes'"),
    ('stargz', {'noprefetch': 1}, 'noprefetch must be a boolean (true/false), got int 1'),
    ('stargz', {'metrics_address': 8234}, 'metrics_address must be a string, got int 8234'),
    ('stargz', {'blob': 5}, 'blob must be a table (dict), got int 5'),
    ('stargz', {'blob': {'chunk_size': 2 ** 63}}, 'blob.chunk_size must be an integer'),
    ('stargz', {'resolver': {'host': {'r.lab': {'mirrors': {'host': 'm'}}}}},
     'resolver.host."r.lab".mirrors must be a list of tables (TOML [[...]]), got dict'),
    ('stargz', {'resolver': {'host': {'r.lab': {'mirrors': [{'header': {'a': 1}}]}}}},
     'resolver.host."r.lab".mirrors[0].header must be a table of header name -> string or list of strings, got dict'),
    ('soci', {'pull_modes': {'parallel_pull_unpack': {'concurrent_download_chunk_size': 16777216}}},
     'pull_modes.parallel_pull_unpack.concurrent_download_chunk_size must be a size string'),
    ('soci', {'pull_modes': {'parallel_pull_unpack': {'concurrent_download_chunk_size': '16 MiB'}}},
     'pull_modes.parallel_pull_unpack.concurrent_download_chunk_size must be a size string'),
    ('soci', {'pull_modes': {'parallel_pull_unpack': {'decompress_streams': {'gzip': {'args': '-d'}}}}},
     'pull_modes.parallel_pull_unpack.decompress_streams.gzip.args must be a list of strings'),
])
def test_type_errors(snapshotter, overrides, expected):
    problems = problems_of(snapshotter, NEW[snapshotter], overrides)
    assert len(problems) == 1
    assert problems[0].startswith(expected), problems[0]


def test_non_string_keys_rejected():
    assert problems_of('stargz', '0.14.3', {'blob': {1: 2}}) == [
        'blob: keys must be non-empty strings, got 1']


def test_headers_accept_strings_and_lists():
    cfg = m.build_config('stargz', '0.14.3', defaults={}, overrides={'resolver': {'host': {'r.lab': {
        'mirrors': [{'host': 'm.lab', 'header': {'x-a': 'b', 'x-c': ['d', 'e']}}]}}}})
    assert cfg['resolver']['host']['r.lab']['mirrors'][0]['header']['x-c'] == ['d', 'e']


# -- resolver host maps -------------------------------------------------------

@pytest.mark.parametrize('snapshotter', ['stargz', 'soci'])
@pytest.mark.parametrize('which', ['OLD', 'NEW'])
def test_resolver_hosts_are_free_form(snapshotter, which):
    version = (OLD if which == 'OLD' else NEW)[snapshotter]
    hosts = {
        '10.88.0.2:5000': {'mirrors': [{'host': '10.88.0.2:5000', 'insecure': True,
                                        'request_timeout_sec': 60}]},
        'registry-b.example.internal': {'mirrors': [{'host': 'mirror.example.internal'}, {'host': 'registry-c.example.internal'}]},
        'ecr-registry.example.internal': {'mirrors': []},
    }
    cfg = m.build_config(snapshotter, version, overrides={'resolver': {'host': hosts}})
    assert cfg['resolver']['host'] == hosts


def test_resolver_host_typos_inside_a_host_are_caught():
    problems = problems_of('stargz', '0.14.3', {'resolver': {'host': {'10.88.0.2:5000': {
        'mirror': [{'host': 'x'}]}}}})
    assert problems == ['resolver.host."10.88.0.2:5000".mirror: unknown key (did you mean mirrors?)']
    problems = problems_of('stargz', '0.14.3', {'resolver': {'host': {'r.lab': {'mirrors': [
        {'host': 'x'}, {'host': 'y', 'insecure_skip_verify': True}]}}}})
    assert problems == ['resolver.host."r.lab".mirrors[1].insecure_skip_verify: unknown key']


# -- defaults ---------------------------------------------------------------

@pytest.mark.parametrize('snapshotter', ['stargz', 'soci'])
def test_defaults_are_valid_for_every_supported_release(snapshotter):
    oldest = m.SNAPSHOTTERS[snapshotter]['oldest']
    for version in (oldest, OLD[snapshotter], NEW[snapshotter], '9.0.0'):
        assert m.validate(snapshotter, version, m.DEFAULTS[snapshotter]) == [], version
        assert m.build_config(snapshotter, version) == m.DEFAULTS[snapshotter]


def test_default_values():
    assert m.DEFAULTS['stargz']['prefetch_timeout_sec'] == 30
    assert m.DEFAULTS['soci']['http'] == {'RequestTimeoutMsec': 300000}
    assert m.DEFAULTS['soci']['mount_timeout_sec'] == 120
    # Both daemons on one host need different metrics ports.
    assert m.DEFAULTS['stargz']['metrics_address'] != m.DEFAULTS['soci']['metrics_address']


def test_overrides_merge_over_defaults_and_null_removes_a_default():
    cfg = m.build_config('soci', '0.4.1', overrides={
        'http': {'DialTimeoutMsec': 5000},
        'background_fetch': {'fetch_period_msec': None, 'disable': True},
        'metrics_address': None,
    })
    assert cfg == {'mount_timeout_sec': 120,
                   'http': {'RequestTimeoutMsec': 300000, 'DialTimeoutMsec': 5000},
                   'background_fetch': {'disable': True}}
    assert m.DEFAULTS['soci']['background_fetch'] == {'fetch_period_msec': 100}, 'defaults not mutated'


def test_explicit_defaults_replace_the_builtin_ones():
    assert m.build_config('stargz', '0.14.3', defaults={'debug': True}) == {'debug': True}
    assert m.build_config('stargz', '0.14.3', defaults={}) == {}


def test_default_config_is_a_copy():
    cfg = m.default_config('soci')
    cfg['http']['RequestTimeoutMsec'] = 1
    assert m.DEFAULTS['soci']['http']['RequestTimeoutMsec'] == 300000


@pytest.mark.parametrize('label,kwargs', [('overrides', {'overrides': ['a']}),
                                          ('defaults', {'defaults': 'x'})])
def test_non_dict_input(label, kwargs):
    with pytest.raises(m.ConfigError, match='%s must be a dict' % label):
        m.build_config('stargz', '0.14.3', **kwargs)


def test_invalid_defaults_are_validated_too():
    problems = problems_of('stargz', '0.14.3', None, defaults={'fuse': {'passthrough': True}})
    assert problems == ['fuse.passthrough needs stargz-snapshotter >= 0.17.0, installed 0.14.3']


# -- registration -------------------------------------------------------------

def test_registration_defaults():
    assert m.registration('stargz') == {
        'name': 'stargz', 'type': 'snapshot',
        'address': '/run/containerd-stargz-grpc/containerd-stargz-grpc.sock',
        'root': '/var/lib/containerd-stargz-grpc'}
    assert m.registration('soci-snapshotter-grpc') == {
        'name': 'soci', 'type': 'snapshot',
        'address': '/run/soci-snapshotter-grpc/soci-snapshotter-grpc.sock',
        'root': '/var/lib/soci-snapshotter-grpc'}


def test_registration_is_what_the_containerd_model_accepts():
    entry = m.registration('soci', socket='/run/lab/soci.sock', root='/srv/soci')
    assert entry == {'name': 'soci', 'type': 'snapshot', 'address': '/run/lab/soci.sock',
                     'root': '/srv/soci'}
    cfg = containerd_config.build_config('1.7.24', proxy_plugins=[entry], cri_snapshotter='soci',
                                         disable_snapshot_annotations=False)
    assert cfg['proxy_plugins']['soci'] == {'type': 'snapshot', 'address': '/run/lab/soci.sock',
                                            'exports': {'root': '/srv/soci'}}


@pytest.mark.parametrize('kwargs,message', [
    ({'socket': 'relative.sock'}, 'absolute unix socket path'),
    ({'socket': '/' + 'x' * 120}, 'longer than 107'),
    ({'root': 'var/lib/x'}, 'root must be an absolute path'),
    ({'name': 'Bad Name'}, 'invalid name'),
])
def test_registration_rejects_bad_input(kwargs, message):
    with pytest.raises(m.ConfigError, match=message):
        m.registration('stargz', **kwargs)
