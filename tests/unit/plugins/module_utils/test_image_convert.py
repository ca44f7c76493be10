from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import itertools
import json
import os
import stat

import pytest

from ansible_collections.lazypull.snapshotters.plugins.module_utils import image_convert as ic
from ansible_collections.lazypull.snapshotters.plugins.module_utils import image_reference
from ansible_collections.lazypull.snapshotters.plugins.module_utils.image_tools import RegistryError, ToolError

from ansible_collections.lazypull.snapshotters.tests.unit.plugins.module_utils.fake_registry import FakeAccess, FakeRegistryClient

OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip'
ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd'


def D(char):
    return 'sha256:' + char * 64


def sha(body):
    if not isinstance(body, bytes):
        body = body.encode('utf-8')
    return 'sha256:' + hashlib.sha256(body).hexdigest()


def base_params(**overrides):
    params = {
        'src': 'src.example.internal:5000/team/app:1',
        'dest': 'dst.example.internal/team/app:1-esgz',
        'format': 'estargz',
        'optimize': False,
        'entrypoint': None,
        'args': None,
        'env': None,
        'cwd': None,
        'period': None,
        'wait_on_line': None,
        'compression_level': None,
        'chunk_size': None,
        'platforms': [],
        'push': True,
        'keep_local': False,
        'plain_http': False,
        'containerd_address': '/run/containerd/containerd.sock',
        'namespace': 'lazypull',
    }
    params.update(overrides)
    return params


# --------------------------------------------------------------------------
# validate()
# --------------------------------------------------------------------------

def test_validate_accepts_defaults():
    assert ic.validate(base_params()) is None
    assert ic.validate(base_params(format='zstdchunked')) is None


def test_validate_unknown_format():
    with pytest.raises(ic.ConvertError, match=r"format must be one of estargz, zstdchunked, got 'zstd'"):
        ic.validate(base_params(format='zstd'))


@pytest.mark.parametrize('fmt,level', [('estargz', 0), ('estargz', 9), ('zstdchunked', 1), ('zstdchunked', 22)])
def test_validate_compression_level_bounds_ok(fmt, level):
    assert ic.validate(base_params(format=fmt, compression_level=level)) is None


@pytest.mark.parametrize('fmt,level,message', [
    ('estargz', -1, 'compression_level for estargz must be 0..9, got -1'),
    ('estargz', 10, 'compression_level for estargz must be 0..9, got 10'),
    ('zstdchunked', 0, 'compression_level for zstdchunked must be 1..22, got 0'),
    ('zstdchunked', 23, 'compression_level for zstdchunked must be 1..22, got 23'),
])
def test_validate_compression_level_out_of_range(fmt, level, message):
    with pytest.raises(ic.ConvertError) as err:
        ic.validate(base_params(format=fmt, compression_level=level))
    assert str(err.value) == message


@pytest.mark.parametrize('chunk', [0, -4096])
def test_validate_chunk_size_must_be_positive(chunk):
    with pytest.raises(ic.ConvertError) as err:
        ic.validate(base_params(chunk_size=chunk))
    assert str(err.value) == 'chunk_size must be a positive number of bytes, got %d' % chunk


def test_validate_chunk_size_one_is_fine():
    assert ic.validate(base_params(chunk_size=1)) is None


@pytest.mark.parametrize('key,value', [
    ('entrypoint', ['/bin/sh']),
    ('args', ['-c', 'true']),
    ('env', {'A': '1'}),
    ('period', 5),
    ('period', 0),
    ('wait_on_line', 'ready'),
    ('cwd', '/srv'),
])
def test_validate_optimize_only_options_need_optimize(key, value):
    with pytest.raises(ic.ConvertError) as err:
        ic.validate(base_params(**{key: value}))
    assert str(err.value) == '%s only apply with optimize: true' % key


def test_validate_optimize_only_lists_every_offending_option_in_order():
    with pytest.raises(ic.ConvertError) as err:
        ic.validate(base_params(cwd='/srv', entrypoint=['/x'], period=3))
    assert str(err.value) == 'entrypoint, period, cwd only apply with optimize: true'


def test_validate_empty_optimize_only_values_are_not_given():
    assert ic.validate(base_params(entrypoint=[], args=[], env={})) is None


def test_validate_optimize_only_options_accepted_with_optimize():
    params = base_params(optimize=True, entrypoint=['/bin/sh'], args=['-c', 'true'], env={'A': '1'},
                         period=5, wait_on_line='ready', cwd='/srv')
    assert ic.validate(params) is None


@pytest.mark.parametrize('period', [0, -1])
def test_validate_period_must_be_positive(period):
    with pytest.raises(ic.ConvertError) as err:
        ic.validate(base_params(optimize=True, period=period))
    assert str(err.value) == 'period must be a positive number of seconds, got %s' % period


def test_validate_chunk_size_rejected_for_optimized_zstdchunked():
    with pytest.raises(ic.ConvertError, match='chunk_size does not apply to an optimized zstdchunked'):
        ic.validate(base_params(format='zstdchunked', optimize=True, chunk_size=65536))


def test_validate_chunk_size_fine_for_optimized_estargz_and_plain_zstdchunked():
    assert ic.validate(base_params(format='estargz', optimize=True, chunk_size=65536)) is None
    assert ic.validate(base_params(format='zstdchunked', chunk_size=65536)) is None


@pytest.mark.parametrize('key', ['A=B', '=', ''])
def test_validate_env_key_must_be_a_name(key):
    with pytest.raises(ic.ConvertError) as err:
        ic.validate(base_params(optimize=True, env={key: 'x'}))
    assert str(err.value) == 'env: %r is not a variable name' % key


@pytest.mark.parametrize('key', ['entrypoint', 'args'])
def test_validate_lists_of_strings(key):
    with pytest.raises(ic.ConvertError) as err:
        ic.validate(base_params(optimize=True, **{key: ['/bin/sh', 3]}))
    assert str(err.value) == '%s must be a list of strings' % key


# --------------------------------------------------------------------------
# options_record()
# --------------------------------------------------------------------------

def test_options_record_exact_canonical_string():
    assert ic.options_record(base_params()) == (
        '{"chunk_size":null,"compression_level":null,"format":"estargz","optimize":false,"platforms":[]}')


def test_options_record_stable_across_key_order():
    params = base_params(optimize=True, env={'B': '2', 'A': '1'}, entrypoint=['/x'], period=4,
                         platforms=['linux/arm64', 'linux/amd64'], compression_level=7)
    reordered = dict(reversed(list(params.items())))
    reordered['env'] = {'A': '1', 'B': '2'}
    reordered['platforms'] = ['linux/amd64', 'linux/arm64']
    assert list(reordered) != list(params)
    assert ic.options_record(reordered) == ic.options_record(params)
    record = json.loads(ic.options_record(params))
    assert record['platforms'] == ['linux/amd64', 'linux/arm64']
    assert list(record) == sorted(record)


def test_options_record_hashes_env_values():
    secret = 'hunter2-very-secret'
    params = base_params(optimize=True, env={'TOKEN': secret, 'MODE': 'fast'})
    text = ic.options_record(params)
    assert secret not in text
    assert 'fast' not in text
    record = json.loads(text)
    expected = hashlib.sha256(json.dumps({'MODE': 'fast', 'TOKEN': secret}, sort_keys=True).encode('utf-8'))
    assert record['env_sha256'] == expected.hexdigest()
    other = ic.options_record(base_params(optimize=True, env={'TOKEN': 'another', 'MODE': 'fast'}))
    assert json.loads(other)['env_sha256'] != record['env_sha256']


def test_options_record_optimize_fields():
    params = base_params(optimize=True, entrypoint=['/bin/app'], args=['--warm'], cwd='/srv', period=30,
                         wait_on_line='ready')
    record = json.loads(ic.options_record(params))
    assert record == {
        'format': 'estargz', 'optimize': True, 'compression_level': None, 'chunk_size': None,
        'platforms': [], 'entrypoint': ['/bin/app'], 'args': ['--warm'], 'cwd': '/srv', 'period': 30,
        'wait_on_line': 'ready', 'env_sha256': None,
    }


def test_options_record_changes_with_options():
    base = ic.options_record(base_params())
    assert ic.options_record(base_params(compression_level=5)) != base
    assert ic.options_record(base_params(chunk_size=4096)) != base
    assert ic.options_record(base_params(format='zstdchunked')) != base
    assert ic.options_record(base_params(platforms=['linux/amd64'])) != base
    # push/keep_local do not change the output image
    assert ic.options_record(base_params(push=False, keep_local=True)) == base


# --------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------

PREFIX = ['/usr/bin/tool', '--address', '/run/c.sock', '--namespace', 'ns']
SRC = 'src.example.internal/app:1'
DST = 'dst.example.internal/app:1-esgz'


def test_convert_command_nerdctl_estargz_plain():
    cmd = ic.convert_command('nerdctl', PREFIX, base_params(), SRC, DST, [])
    assert cmd == PREFIX + ['image', 'convert', '--oci', '--estargz', SRC, DST]


def test_convert_command_ctr_remote_estargz_level_chunk_platforms():
    params = base_params(compression_level=9, chunk_size=4096)
    plat = ['--platform', 'linux/amd64', '--platform', 'linux/arm64']
    cmd = ic.convert_command('ctr-remote', PREFIX, params, SRC, DST, plat)
    assert cmd == PREFIX + ['image', 'convert', '--oci', '--estargz', '--estargz-compression-level', '9',
                            '--estargz-chunk-size', '4096', '--platform', 'linux/amd64',
                            '--platform', 'linux/arm64', SRC, DST]


@pytest.mark.parametrize('tool', ['nerdctl', 'ctr-remote'])
def test_convert_command_zstdchunked(tool):
    params = base_params(format='zstdchunked', compression_level=3, chunk_size=65536)
    cmd = ic.convert_command(tool, PREFIX, params, SRC, DST, ['--all-platforms'])
    assert cmd == PREFIX + ['image', 'convert', '--oci', '--zstdchunked', '--zstdchunked-compression-level', '3',
                            '--zstdchunked-chunk-size', '65536', '--all-platforms', SRC, DST]
    assert '--estargz' not in cmd


def test_convert_command_level_zero_is_passed():
    cmd = ic.convert_command('nerdctl', PREFIX, base_params(compression_level=0), SRC, DST, [])
    assert cmd[-4:] == ['--estargz-compression-level', '0', SRC, DST]


def test_convert_command_unknown_tool():
    with pytest.raises(ic.ConvertError, match="unknown conversion tool 'buildah'"):
        ic.convert_command('buildah', PREFIX, base_params(), SRC, DST, [])


def test_optimize_command_all_flags():
    params = base_params(optimize=True, entrypoint=['/bin/sh', '-c'], args=['run --fast'], cwd='/srv',
                         period=20, wait_on_line='listening on', env={'TOKEN': 's3cr3t-value'},
                         compression_level=6, chunk_size=8192)
    cmd = ic.optimize_command(PREFIX, params, SRC, DST, ['--platform', 'linux/amd64'], '/tmp/x/record.json',
                              env_file='/tmp/x/optimize.env')
    assert cmd == PREFIX + [
        'image', 'optimize', '--oci', '--estargz-compression-level', '6', '--estargz-chunk-size', '8192',
        '--period', '20', '--wait-on-line', 'listening on',
        '--entrypoint', '["/bin/sh", "-c"]', '--args', '["run --fast"]', '--cwd', '/srv',
        '--env-file', '/tmp/x/optimize.env', '--record-out', '/tmp/x/record.json',
        '--platform', 'linux/amd64', SRC, DST]
    assert json.loads(cmd[cmd.index('--entrypoint') + 1]) == ['/bin/sh', '-c']
    assert json.loads(cmd[cmd.index('--args') + 1]) == ['run --fast']
    assert '--estargz' not in cmd
    assert not any('s3cr3t-value' in part for part in cmd)
    assert not any('TOKEN' in part for part in cmd)


def test_optimize_command_minimal():
    cmd = ic.optimize_command(PREFIX, base_params(optimize=True), SRC, DST, [], '/r.json')
    assert cmd == PREFIX + ['image', 'optimize', '--oci', '--record-out', '/r.json', SRC, DST]


def test_optimize_command_empty_entrypoint_list_is_passed():
    # an explicit [] clears the image's entrypoint; it must reach the tool
    cmd = ic.optimize_command(PREFIX, base_params(optimize=True, args=[]), SRC, DST, [], '/r.json')
    assert cmd[cmd.index('--args') + 1] == '[]'


def test_optimize_command_zstdchunked_has_no_chunk_flag():
    params = base_params(format='zstdchunked', optimize=True, compression_level=5, chunk_size=65536)
    cmd = ic.optimize_command(PREFIX, params, SRC, DST, [], '/r.json')
    assert cmd == PREFIX + ['image', 'optimize', '--oci', '--zstdchunked', '--zstdchunked-compression-level', '5',
                            '--record-out', '/r.json', SRC, DST]


def test_env_file_text_sorted_lines():
    assert ic.env_file_text({'B': '2', 'A': 'x y'}) == 'A=x y\nB=2\n'
    assert ic.env_file_text(None) == ''
    assert ic.env_file_text({}) == ''


# --------------------------------------------------------------------------
# count_prioritized, annotate, recorded/is_current
# --------------------------------------------------------------------------

def test_count_prioritized_distinct_paths_per_layer():
    text = '\n'.join([
        '{"path":"/usr/bin/python3","manifestDigest":"%s","layerIndex":2}' % D('1'),
        '{"path":"/usr/bin/python3","manifestDigest":"%s","layerIndex":2}' % D('1'),
        '{"path":"/usr/bin/python3","layerIndex":3}',
        '{"path":"/etc/hosts","layerIndex":0}',
        '',
        '   ',
        'not json at all',
        '{"path": "/truncated"',
        '[1, 2, 3]',
        '"a string"',
        '{"path":"","layerIndex":1}',
        '{"layerIndex":1}',
        '  {"path":"/app/model.bin","layerIndex":4}  ',
    ])
    assert ic.count_prioritized(text) == 4


@pytest.mark.parametrize('text', [None, '', 'garbage\n\n'])
def test_count_prioritized_nothing(text):
    assert ic.count_prioritized(text) == 0


def test_annotate_keeps_adds_and_digest_matches():
    doc = {'schemaVersion': 2, 'mediaType': OCI_MANIFEST, 'config': {'digest': D('c'), 'size': 7},
           'layers': [{'digest': D('1'), 'size': 5}],
           'annotations': {'org.opencontainers.image.created': '2024-01-01T00:00:00Z', 'keep.me': 'old'}}
    body, digest = ic.annotate(json.dumps(doc, indent=2), {'new.key': 'v', 'keep.me': 'new'})
    assert isinstance(body, bytes)
    assert digest == 'sha256:' + hashlib.sha256(body).hexdigest()
    parsed = json.loads(body.decode('utf-8'))
    assert parsed['annotations'] == {'org.opencontainers.image.created': '2024-01-01T00:00:00Z',
                                     'keep.me': 'new', 'new.key': 'v'}
    assert parsed['layers'] == doc['layers']
    assert parsed['config'] == doc['config']
    assert b' ' not in body  # compact


def test_annotate_without_existing_annotations():
    body, digest = ic.annotate('{"schemaVersion":2,"layers":[]}', {ic.ANNOTATION_SOURCE: D('s')})
    assert json.loads(body.decode('utf-8')) == {'schemaVersion': 2, 'layers': [],
                                                'annotations': {ic.ANNOTATION_SOURCE: D('s')}}
    assert digest == sha(body)


def test_recorded_and_is_current():
    manifest = {'annotations': {ic.ANNOTATION_SOURCE: D('s'), ic.ANNOTATION_OPTIONS: '{"x":1}', 'other': 'y'}}
    assert ic.recorded(manifest) == (D('s'), '{"x":1}')
    assert ic.recorded(None) == (None, None)
    assert ic.recorded({'annotations': None}) == (None, None)
    assert ic.recorded({}) == (None, None)
    assert ic.is_current(manifest, D('s'), '{"x":1}') is True
    assert ic.is_current(manifest, D('t'), '{"x":1}') is False
    assert ic.is_current(manifest, D('s'), '{"x":2}') is False
    assert ic.is_current({}, D('s'), '{"x":1}') is False
    assert ic.is_current(None, None, None) is True  # nothing recorded == nothing asked; callers check existence


# --------------------------------------------------------------------------
# platform_manifest_descriptor, layer_report, supports_zstdchunked
# --------------------------------------------------------------------------

INDEX = {'manifests': [
    {'digest': D('a'), 'platform': {'os': 'linux', 'architecture': 'arm64', 'variant': 'v8'}},
    {'digest': D('b'), 'platform': {'os': 'linux', 'architecture': 'amd64'}},
    {'digest': D('c'), 'platform': {'os': 'linux', 'architecture': 'arm', 'variant': 'v7'}},
    {'digest': D('d')},
]}


@pytest.mark.parametrize('platform,digest', [
    (None, D('b')),
    ('linux/amd64', D('b')),
    ('linux/arm64', D('a')),
    ('linux/arm64/v8', D('a')),
    ('linux/arm/v7', D('c')),
    ('linux/arm', D('c')),
    ('linux/arm/v6', D('a')),  # no match: the first
    ('linux/s390x', D('a')),
])
def test_platform_manifest_descriptor(platform, digest):
    assert ic.platform_manifest_descriptor(INDEX, platform)['digest'] == digest


def test_platform_manifest_descriptor_first_when_no_amd64_and_none_when_empty():
    index = {'manifests': [{'digest': D('e'), 'platform': {'os': 'linux', 'architecture': 'ppc64le'}},
                           {'digest': D('f'), 'platform': {'os': 'linux', 'architecture': 'arm64'}}]}
    assert ic.platform_manifest_descriptor(index)['digest'] == D('e')
    assert ic.platform_manifest_descriptor({'manifests': []}) is None
    assert ic.platform_manifest_descriptor({}) is None


def test_layer_report_rows_and_totals():
    src = {'layers': [{'digest': D('1'), 'size': 100, 'mediaType': GZIP},
                      {'digest': D('2'), 'size': 200, 'mediaType': GZIP},
                      {'digest': D('3'), 'size': 300, 'mediaType': GZIP}]}
    dest = {'layers': [{'digest': D('a'), 'size': 110, 'mediaType': GZIP},
                       {'digest': D('b'), 'size': 220, 'mediaType': ZSTD}]}
    rows, total_src, total_dest = ic.layer_report(src, dest)
    assert rows == [
        {'index': 0, 'src_digest': D('1'), 'src_size': 100, 'dest_digest': D('a'), 'dest_size': 110,
         'dest_media_type': GZIP},
        {'index': 1, 'src_digest': D('2'), 'src_size': 200, 'dest_digest': D('b'), 'dest_size': 220,
         'dest_media_type': ZSTD},
        {'index': 2, 'src_digest': D('3'), 'src_size': 300, 'dest_digest': None, 'dest_size': None,
         'dest_media_type': None},
    ]
    assert (total_src, total_dest) == (600, 330)


def test_layer_report_dest_longer_and_empty():
    rows, total_src, total_dest = ic.layer_report({}, {'layers': [{'digest': D('a'), 'size': 9}]})
    assert rows == [{'index': 0, 'src_digest': None, 'src_size': None, 'dest_digest': D('a'), 'dest_size': 9,
                     'dest_media_type': None}]
    assert (total_src, total_dest) == (0, 9)
    assert ic.layer_report({'layers': []}, {'layers': []}) == ([], 0, 0)


def test_supports_zstdchunked():
    help_text = ('OPTIONS:\n   --estargz   convert legacy tar(.gz) layers to eStargz\n'
                 '   --zstdchunked   use zstd compression instead of gzip\n')
    assert ic.supports_zstdchunked(help_text) is True
    assert ic.supports_zstdchunked('OPTIONS:\n   --estargz   convert\n') is False
    assert ic.supports_zstdchunked('') is False
    assert ic.supports_zstdchunked(None) is False


# --------------------------------------------------------------------------
# convert(): the whole flow, with fakes
# --------------------------------------------------------------------------

class FakeClient(FakeRegistryClient):
    """One registry host; manifest reads and PUTs are logged as events."""

    def __init__(self, host, events):
        super(FakeClient, self).__init__(events)
        self.host = host
        self.put_digest_override = None

    def add(self, repository, doc, tags=()):
        return self.store_doc(repository, doc, tags)

    def manifest(self, repository, reference):
        self.events.append(('manifest', self.host, repository, reference))
        return super(FakeClient, self).manifest(repository, reference)

    def put_manifest(self, repository, reference, body, media_type):
        self.events.append(('put', self.host, repository, reference))
        self.puts.append({'repository': repository, 'reference': reference, 'body': body,
                          'media_type': media_type})
        digest = self.store_body(repository, reference, body, media_type)
        return self.put_digest_override or digest


class FakeRunner(object):
    """Answers by argv pattern; argv[5:7] is the verb after the ctr prefix."""

    def __init__(self, events, content, converted, record_lines=None, fail=None):
        self.events = events
        self.content = content          # digest -> text for `ctr content get`
        self.converted = converted      # digest printed by convert/optimize
        self.record_lines = record_lines
        self.fail = fail                # argv -> bool: raise ToolError
        self.calls = []

    def run(self, argv, env=None, check=True, what=None):
        argv = list(argv)
        self.calls.append({'argv': argv, 'env': env, 'check': check, 'what': what})
        self.events.append(('run', argv[5:7]))
        if self.fail and self.fail(argv):
            raise ToolError('%s failed (rc=1): %s' % (what, ' '.join(argv)))
        verb = argv[5:7]
        if verb == ['image', 'convert']:
            return 0, 'converting\n%s\n' % self.converted, ''
        if verb == ['image', 'optimize']:
            if self.record_lines is not None:
                with open(argv[argv.index('--record-out') + 1], 'w') as handle:
                    handle.write('\n'.join(self.record_lines) + '\n')
            return 0, 'extra image: something\n%s\n' % self.converted, ''
        if verb == ['content', 'get']:
            return 0, self.content[argv[7]], ''
        return 0, '', ''

    def verbs(self):
        return [c['argv'][5:7] for c in self.calls]


SRC_HOST = 'src.example.internal:5000'
DST_HOST = 'dst.example.internal'
TOOLS = {'ctr': '/usr/bin/ctr', 'ctr-remote': '/usr/local/bin/ctr-remote', 'nerdctl': '/usr/local/bin/nerdctl'}
CTR = ['/usr/bin/ctr', '--address', '/run/containerd/containerd.sock', '--namespace', 'lazypull']

SRC_MANIFEST = {
    'schemaVersion': 2, 'mediaType': OCI_MANIFEST,
    'config': {'mediaType': 'application/vnd.oci.image.config.v1+json', 'digest': D('c'), 'size': 1500},
    'layers': [{'mediaType': GZIP, 'digest': D('1'), 'size': 1000},
               {'mediaType': GZIP, 'digest': D('2'), 'size': 2000}],
}
CONVERTED_MANIFEST = {
    'schemaVersion': 2, 'mediaType': OCI_MANIFEST,
    'config': {'mediaType': 'application/vnd.oci.image.config.v1+json', 'digest': D('d'), 'size': 1600},
    'layers': [{'mediaType': GZIP, 'digest': D('a'), 'size': 1100,
                'annotations': {'containerd.io/snapshot/stargz/toc.digest': D('f')}},
               {'mediaType': GZIP, 'digest': D('b'), 'size': 2300}],
    'annotations': {'org.opencontainers.image.base.name': 'x'},
}
CONVERTED_TEXT = json.dumps(CONVERTED_MANIFEST)
CONVERTED = sha(CONVERTED_TEXT)


def timer():
    counter = itertools.count()
    return lambda: float(next(counter))


class World(object):
    def __init__(self, tmp_path, params=None, src_doc=SRC_MANIFEST, dest_doc=None, content=None,  # pylint: disable=dangerous-default-value
                 converted=CONVERTED, record_lines=None, fail=None):
        self.params = params or base_params()
        self.events = []
        self.src_client = FakeClient(SRC_HOST, self.events)
        self.dst_client = FakeClient(DST_HOST, self.events)
        self.src_digest = self.src_client.add('team/app', src_doc, tags=['1']) if src_doc else None
        if dest_doc is not None:
            self.dest_existing = self.dst_client.add('team/app', dest_doc, tags=['1-esgz'])
        self.access = FakeAccess(tmp_path, {SRC_HOST: self.src_client, DST_HOST: self.dst_client})
        self.runner = FakeRunner(self.events, content or {CONVERTED: CONVERTED_TEXT}, converted,
                                 record_lines=record_lines, fail=fail)
        self.src = image_reference.parse(self.params['src'])
        self.dest = image_reference.parse(self.params['dest'])

    def convert(self, check_mode=False, tools=None):
        return ic.convert(self.params, self.src, self.dest, dict(tools or TOOLS), self.runner, self.access,
                          check_mode, timer())


def annotated_dest(src_digest, options_json, extra=None):
    doc = json.loads(CONVERTED_TEXT)
    recorded = {ic.ANNOTATION_SOURCE: src_digest, ic.ANNOTATION_OPTIONS: options_json}
    doc['annotations'] = dict(doc['annotations'], **recorded)
    doc['annotations'].update(extra or {})
    return doc


def test_convert_missing_source(tmp_path):
    world = World(tmp_path, src_doc=None)
    with pytest.raises(RegistryError) as err:
        world.convert()
    assert str(err.value) == ('source image src.example.internal:5000/team/app:1 not found in registry '
                              'src.example.internal:5000')
    assert world.runner.calls == []
    assert world.dst_client.puts == []


def test_convert_dest_already_current(tmp_path):
    params = base_params()
    src_digest = sha(json.dumps(SRC_MANIFEST))
    dest_doc = annotated_dest(src_digest, ic.options_record(params), {ic.ANNOTATION_PRIORITIZED: '0'})
    world = World(tmp_path, params=params, dest_doc=dest_doc)
    result = world.convert()
    assert result['changed'] is False
    assert world.runner.calls == []
    assert world.dst_client.puts == []
    assert result['dest_digest'] == world.dest_existing
    assert result['src_digest'] == src_digest
    assert result['tool'] is None
    assert result['prioritized_files'] == 0
    assert result['options'] == json.loads(ic.options_record(params))
    assert result['msg'] == ('dst.example.internal/team/app:1-esgz is already a conversion of %s with these options'
                             % src_digest)
    assert [(r['src_digest'], r['dest_digest']) for r in result['layers']] == [(D('1'), D('a')), (D('2'), D('b'))]
    assert (result['src_size'], result['dest_size']) == (3000, 3400)
    assert world.src_client.access == [('team/app', False)]
    assert world.dst_client.access == [('team/app', True)]


def test_convert_dest_with_other_options_converts_and_pushes(tmp_path):
    params = base_params(compression_level=9)
    src_digest = sha(json.dumps(SRC_MANIFEST))
    stale = annotated_dest(src_digest, ic.options_record(base_params(compression_level=1)))
    world = World(tmp_path, params=params, dest_doc=stale)
    result = world.convert()

    assert result['changed'] is True
    assert result['msg'] == ('converted src.example.internal:5000/team/app:1 to dst.example.internal/team/app:1-esgz '
                             '(dst.example.internal/team/app:1-esgz records other options)')
    assert world.runner.verbs() == [['image', 'pull'], ['image', 'convert'], ['content', 'get'],
                                    ['image', 'push'], ['image', 'rm']]
    env = world.access.env()
    pull, conv, get, push, rm = world.runner.calls
    assert pull['argv'] == CTR + ['image', 'pull', '--hosts-dir', world.access.hosts_dir,
                                  'src.example.internal:5000/team/app:1']
    assert pull['env'] == env
    assert conv['argv'] == [TOOLS['nerdctl'], '--address', '/run/containerd/containerd.sock', '--namespace',
                            'lazypull', 'image', 'convert', '--oci', '--estargz', '--estargz-compression-level', '9',
                            'src.example.internal:5000/team/app:1', 'dst.example.internal/team/app:1-esgz']
    assert conv['env'] == env
    assert get['argv'] == CTR + ['content', 'get', CONVERTED]
    assert push['argv'] == CTR + ['image', 'push', '--hosts-dir', world.access.hosts_dir,
                                  'dst.example.internal/team/app@' + CONVERTED,
                                  'dst.example.internal/team/app:1-esgz']
    assert push['env'] == env
    assert rm['argv'] == CTR + ['image', 'rm', '--sync', 'src.example.internal:5000/team/app:1',
                                'dst.example.internal/team/app:1-esgz']
    assert rm['check'] is False

    # the tag is written after the by-digest push, once, with the annotations
    assert [e for e in world.events if e[0] in ('run', 'put')][-3:] == [
        ('run', ['image', 'push']), ('put', DST_HOST, 'team/app', '1-esgz'), ('run', ['image', 'rm'])]
    assert len(world.dst_client.puts) == 1
    put = world.dst_client.puts[0]
    assert (put['repository'], put['reference'], put['media_type']) == ('team/app', '1-esgz', OCI_MANIFEST)
    body = json.loads(put['body'].decode('utf-8'))
    assert body['annotations'] == {'org.opencontainers.image.base.name': 'x',
                                   ic.ANNOTATION_SOURCE: src_digest,
                                   ic.ANNOTATION_OPTIONS: ic.options_record(params)}
    assert body['layers'] == CONVERTED_MANIFEST['layers']
    assert result['dest_digest'] == sha(put['body'])
    assert result['dest_digest'] != CONVERTED
    assert result['converted_digest'] == CONVERTED
    assert result['tool'] == 'nerdctl'
    assert result['prioritized_files'] is None
    assert result['src_digest'] == src_digest
    assert set(result['steps']) == {'pull', 'convert', 'push'}
    assert (result['src_size'], result['dest_size']) == (3000, 3400)
    assert result['layers'][1] == {'index': 1, 'src_digest': D('2'), 'src_size': 2000, 'dest_digest': D('b'),
                                   'dest_size': 2300, 'dest_media_type': GZIP}

    # a second run finds it current
    world.runner.calls[:] = []
    again = ic.convert(params, world.src, world.dest, dict(TOOLS), world.runner, world.access, False, timer())
    assert again['changed'] is False
    assert again['dest_digest'] == result['dest_digest']
    assert world.runner.calls == []


def test_convert_ctr_remote_when_no_nerdctl_and_platforms(tmp_path):
    params = base_params(format='zstdchunked', chunk_size=65536, platforms=['linux/amd64'], plain_http=True)
    world = World(tmp_path, params=params)
    result = world.convert(tools=dict(TOOLS, nerdctl=None))
    assert result['tool'] == 'ctr-remote'
    conv = world.runner.calls[1]['argv']
    assert conv == [TOOLS['ctr-remote'], '--address', '/run/containerd/containerd.sock', '--namespace', 'lazypull',
                    'image', 'convert', '--oci', '--zstdchunked', '--zstdchunked-chunk-size', '65536',
                    '--platform', 'linux/amd64', 'src.example.internal:5000/team/app:1',
                    'dst.example.internal/team/app:1-esgz']
    assert world.runner.calls[0]['argv'][-4:] == ['--plain-http', '--platform', 'linux/amd64',
                                                  'src.example.internal:5000/team/app:1']
    assert world.runner.calls[3]['argv'][-5:] == ['--plain-http', '--platform', 'linux/amd64',
                                                  'dst.example.internal/team/app@' + CONVERTED,
                                                  'dst.example.internal/team/app:1-esgz']
    assert 'does not exist' in result['msg']


def test_convert_dest_recording_another_source(tmp_path):
    params = base_params()
    world = World(tmp_path, params=params, dest_doc=annotated_dest(D('9'), ic.options_record(params)))
    result = world.convert(check_mode=True)
    assert result['changed'] is True
    assert result['msg'] == ('would convert src.example.internal:5000/team/app:1 to '
                             'dst.example.internal/team/app:1-esgz (dst.example.internal/team/app:1-esgz '
                             'records another source (or none))')


def test_convert_check_mode(tmp_path):
    world = World(tmp_path)
    result = world.convert(check_mode=True)
    assert result['changed'] is True
    assert world.runner.calls == []
    assert world.dst_client.puts == []
    assert result['msg'] == ('would convert src.example.internal:5000/team/app:1 to '
                             'dst.example.internal/team/app:1-esgz '
                             '(dst.example.internal/team/app:1-esgz does not exist)')
    assert 'dest_digest' not in result


def test_convert_push_false(tmp_path):
    world = World(tmp_path, params=base_params(push=False))
    result = world.convert()
    assert result['changed'] is True
    assert world.dst_client.puts == []
    assert world.runner.verbs() == [['image', 'pull'], ['image', 'convert'], ['content', 'get']]
    assert 'push' not in result['steps']
    assert result['converted_digest'] == CONVERTED
    body, digest = ic.annotate(CONVERTED_TEXT, {ic.ANNOTATION_SOURCE: result['src_digest'],
                                                ic.ANNOTATION_OPTIONS: ic.options_record(base_params(push=False))})
    assert result['dest_digest'] == digest


def test_convert_keep_local_skips_cleanup(tmp_path):
    world = World(tmp_path, params=base_params(keep_local=True))
    world.convert()
    assert ['image', 'rm'] not in world.runner.verbs()
    assert len(world.dst_client.puts) == 1


def test_convert_optimize(tmp_path):
    params = base_params(optimize=True, env={'API_TOKEN': 'tok-123-secret'}, entrypoint=['/bin/app'],
                         args=['--warmup'], period=15, wait_on_line='ready')
    lines = ['{"path":"/bin/app","layerIndex":1}',
             '{"path":"/bin/app","layerIndex":1}',
             '{"path":"/lib/libc.so.6","layerIndex":0}',
             'junk',
             '{"path":"/models/w.bin","layerIndex":1}']
    world = World(tmp_path, params=params, record_lines=lines)
    result = world.convert()  # nerdctl is present, optimize still uses ctr-remote
    assert result['tool'] == 'ctr-remote'
    assert result['prioritized_files'] == 3
    assert world.runner.verbs() == [['image', 'pull'], ['image', 'optimize'], ['content', 'get'],
                                    ['image', 'push'], ['image', 'rm']]
    opt = world.runner.calls[1]['argv']
    env_file = os.path.join(str(tmp_path), 'optimize.env')
    record = os.path.join(str(tmp_path), 'optimize-record.json')
    assert opt == [TOOLS['ctr-remote'], '--address', '/run/containerd/containerd.sock', '--namespace', 'lazypull',
                   'image', 'optimize', '--oci', '--period', '15', '--wait-on-line', 'ready',
                   '--entrypoint', '["/bin/app"]', '--args', '["--warmup"]', '--env-file', env_file,
                   '--record-out', record, 'src.example.internal:5000/team/app:1',
                   'dst.example.internal/team/app:1-esgz']
    for call in world.runner.calls:
        assert not any('tok-123-secret' in part for part in call['argv'])
    with open(env_file) as handle:
        assert handle.read() == 'API_TOKEN=tok-123-secret\n'
    assert stat.S_IMODE(os.stat(env_file).st_mode) == 0o600
    body = json.loads(world.dst_client.puts[0]['body'].decode('utf-8'))
    assert body['annotations'][ic.ANNOTATION_PRIORITIZED] == '3'
    assert 'tok-123-secret' not in world.dst_client.puts[0]['body'].decode('utf-8')
    assert body['annotations'][ic.ANNOTATION_OPTIONS] == ic.options_record(params)

    # the next run reads prioritized_files back from the annotation
    world.runner.calls[:] = []
    again = ic.convert(params, world.src, world.dest, dict(TOOLS), world.runner, world.access, False, timer())
    assert again['changed'] is False
    assert again['prioritized_files'] == 3
    assert world.runner.calls == []


def test_convert_optimize_without_record_counts_zero(tmp_path):
    world = World(tmp_path, params=base_params(optimize=True), record_lines=None)
    result = world.convert()
    assert result['prioritized_files'] == 0
    assert '--env-file' not in world.runner.calls[1]['argv']
    body = json.loads(world.dst_client.puts[0]['body'].decode('utf-8'))
    assert body['annotations'][ic.ANNOTATION_PRIORITIZED] == '0'


def test_convert_cleanup_runs_when_conversion_fails(tmp_path):
    world = World(tmp_path, fail=lambda argv: argv[5:7] == ['image', 'convert'])
    with pytest.raises(ToolError, match='image convert'):
        world.convert()
    assert world.runner.verbs() == [['image', 'pull'], ['image', 'convert'], ['image', 'rm']]
    rm = world.runner.calls[-1]
    assert rm['argv'] == CTR + ['image', 'rm', '--sync', 'src.example.internal:5000/team/app:1',
                                'dst.example.internal/team/app:1-esgz']
    assert rm['check'] is False
    assert world.dst_client.puts == []


def test_convert_cleanup_runs_when_push_fails(tmp_path):
    world = World(tmp_path, fail=lambda argv: argv[5:7] == ['image', 'push'])
    with pytest.raises(ToolError):
        world.convert()
    assert world.runner.verbs()[-2:] == [['image', 'push'], ['image', 'rm']]
    assert world.dst_client.puts == []


def test_convert_no_digest_printed(tmp_path):
    world = World(tmp_path, converted='done')
    with pytest.raises(ToolError) as err:
        world.convert()
    assert str(err.value) == 'nerdctl printed no digest for dst.example.internal/team/app:1-esgz'
    assert world.runner.verbs()[-1] == ['image', 'rm']
    assert world.dst_client.puts == []


def test_convert_registry_stored_other_digest(tmp_path):
    world = World(tmp_path)
    world.dst_client.put_digest_override = D('e')
    with pytest.raises(RegistryError) as err:
        world.convert()
    assert 'stored %s, expected sha256:' % D('e') in str(err.value)
    assert world.runner.verbs()[-1] == ['image', 'rm']


def _platform_world(tmp_path, params):
    """Source index amd64+arm64; the conversion keeps both (same order)."""
    src_amd = dict(SRC_MANIFEST, layers=[{'mediaType': GZIP, 'digest': D('1'), 'size': 1000}])
    src_arm = dict(SRC_MANIFEST, layers=[{'mediaType': GZIP, 'digest': D('4'), 'size': 4000}])
    conv_amd = dict(CONVERTED_MANIFEST, layers=[{'mediaType': GZIP, 'digest': D('a'), 'size': 1100}])
    conv_arm = dict(CONVERTED_MANIFEST, layers=[{'mediaType': GZIP, 'digest': D('e'), 'size': 4400}])
    conv_amd_text, conv_arm_text = json.dumps(conv_amd), json.dumps(conv_arm)
    conv_index = {'schemaVersion': 2, 'mediaType': OCI_INDEX, 'manifests': [
        {'mediaType': OCI_MANIFEST, 'digest': sha(conv_amd_text), 'size': len(conv_amd_text),
         'platform': {'os': 'linux', 'architecture': 'amd64'}},
        {'mediaType': OCI_MANIFEST, 'digest': sha(conv_arm_text), 'size': len(conv_arm_text),
         'platform': {'os': 'linux', 'architecture': 'arm64', 'variant': 'v8'}}]}
    conv_index_text = json.dumps(conv_index)
    content = {sha(conv_index_text): conv_index_text, sha(conv_amd_text): conv_amd_text,
               sha(conv_arm_text): conv_arm_text}
    world = World(tmp_path, params=params, src_doc=None, content=content, converted=sha(conv_index_text))
    amd = world.src_client.add('team/app', src_amd)
    arm = world.src_client.add('team/app', src_arm)
    world.src_digest = world.src_client.add('team/app', {
        'schemaVersion': 2, 'mediaType': OCI_INDEX, 'manifests': [
            {'mediaType': OCI_MANIFEST, 'digest': amd, 'platform': {'os': 'linux', 'architecture': 'amd64'}},
            {'mediaType': OCI_MANIFEST, 'digest': arm,
             'platform': {'os': 'linux', 'architecture': 'arm64', 'variant': 'v8'}}]}, tags=['1'])
    return world, sha(conv_index_text)


def test_convert_index_source_and_result(tmp_path):
    world, converted = _platform_world(tmp_path, base_params(platforms=['linux/arm64']))
    result = world.convert()
    assert result['src_digest'] == world.src_digest
    assert world.runner.verbs() == [['image', 'pull'], ['image', 'convert'], ['content', 'get'],
                                    ['content', 'get'], ['image', 'push'], ['image', 'rm']]
    put = world.dst_client.puts[0]
    assert put['media_type'] == OCI_INDEX
    assert json.loads(put['body'].decode('utf-8'))['annotations'][ic.ANNOTATION_SOURCE] == world.src_digest
    assert result['converted_digest'] == converted
    # source side: the arm64 manifest (the platform asked for)
    assert [r['src_digest'] for r in result['layers']] == [D('4')]


def test_convert_index_default_platform(tmp_path):
    world, _converted = _platform_world(tmp_path, base_params())
    result = world.convert()
    assert [(r['src_digest'], r['dest_digest']) for r in result['layers']] == [(D('1'), D('a'))]
    assert (result['src_size'], result['dest_size']) == (1000, 1100)


def test_convert_layer_report_compares_the_same_platform(tmp_path):
    world, _converted = _platform_world(tmp_path, base_params(platforms=['linux/arm64', 'linux/amd64']))
    result = world.convert()
    assert [(r['src_digest'], r['dest_digest']) for r in result['layers']] == [(D('4'), D('e'))]


def test_convert_index_without_media_type_is_put_as_index(tmp_path):
    child = json.dumps(CONVERTED_MANIFEST)
    index = {'schemaVersion': 2, 'manifests': [
        {'mediaType': OCI_MANIFEST, 'digest': sha(child), 'size': len(child),
         'platform': {'os': 'linux', 'architecture': 'amd64'}}]}
    index_text = json.dumps(index)
    world = World(tmp_path, content={sha(index_text): index_text, sha(child): child}, converted=sha(index_text))
    world.convert()
    assert world.dst_client.puts[0]['media_type'] == OCI_INDEX
