from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import itertools
import json
import struct

import pytest

from ansible_collections.lazypull.snapshotters.plugins.module_utils import soci_index as si
from ansible_collections.lazypull.snapshotters.plugins.module_utils import image_reference
from ansible_collections.lazypull.snapshotters.plugins.module_utils.image_tools import RegistryError, ToolError

from ansible_collections.lazypull.snapshotters.tests.unit.plugins.module_utils.fake_registry import FakeAccess, FakeRegistryClient

OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip'
DOCKER_GZIP = 'application/vnd.docker.image.rootfs.diff.tar.gzip'
TAR = 'application/vnd.oci.image.layer.v1.tar'
ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd'
MiB = 1 << 20


def D(char):
    return 'sha256:' + char * 64


def sha(body):
    if not isinstance(body, bytes):
        body = body.encode('utf-8')
    return 'sha256:' + hashlib.sha256(body).hexdigest()


# Real `soci create` output (soci 0.4.1, lab).
L_5A02 = 'sha256:5a02e7c8cd86b97a442edc29e17fc667553accd41d4d0f51d74e3286aafb48a6'
L_48A3 = 'sha256:48a3aab8f51fed697e7bbb29633910d29746ececef67cf422ac3b11df9c55a1b'
L_42A5 = 'sha256:42a5e5832f905d082c10da0af3f7d8de901fa2881004278e94ae922cfc6dbe26'
L_99E9 = 'sha256:99e9f9bce77071d11120571d98e1d6e4d004f9ee8bbb144b1cfab7f890623392'
L_4B2B = 'sha256:4b2b3434ec323a37f2c596903e87bdefd9e48bd4702da6bf1b0dee17302b419a'
Z_42A5 = 'sha256:2b51dc2dd9d62746bf1ad8e98467e3266d5ee11dba5486452f806fde5872bd5e'
Z_99E9 = 'sha256:457dbda70c590d3f35482ae7ed704f04092b485f548c53bee25caaf86f123be3'
Z_4B2B = 'sha256:e3e9d96a2fdf3a4231f30fd0ccdfafa8198aff9bc0497859660b37ac93686548'
CREATE_OUTPUT = (
    'ztoc skipped - layer %s (application/vnd.oci.image.layer.v1.tar+gzip) size 638 is less than '
    'min-layer-size 10485760\n'
    'ztoc skipped - layer %s (application/vnd.oci.image.layer.v1.tar+gzip) size 1032061 is less than '
    'min-layer-size 10485760\n'
    'layer %s -> ztoc %s\n'
    'layer %s -> ztoc %s\n'
    'layer %s -> ztoc %s\n'
) % (L_5A02, L_48A3, L_42A5, Z_42A5, L_99E9, Z_99E9, L_4B2B, Z_4B2B)
REAL_UNCOMPRESSED = 104910848   # built with 4 MiB spans: max_span_id 24
REAL_MAX_SPAN_ID = 24


# --------------------------------------------------------------------------
# versions, sizes, commands
# --------------------------------------------------------------------------

@pytest.mark.parametrize('text,version', [
    ('soci version v0.4.1 abc1234\n', (0, 4, 1)),
    ('soci version 0.4.1-5+b3 0.4.1-5+b3\n', (0, 4, 1)),
    ('soci version v0.10.0 2f0c1e5\n', (0, 10, 0)),
    ('time="..." level=warning msg="x"\nsoci version v0.12.3 deadbeef\n', (0, 12, 3)),
])
def test_parse_soci_version(text, version):
    assert si.parse_soci_version(text) == version


@pytest.mark.parametrize('text', ['soci: command not found', 'version 0.4.1', 'soci version vX.Y', '', None])
def test_parse_soci_version_garbage(text):
    with pytest.raises(si.SociError, match='cannot read a version from soci --version'):
        si.parse_soci_version(text)


@pytest.mark.parametrize('wanted,installed,chosen', [
    (None, (0, 4, 1), 'v1'),
    (None, (0, 9, 99), 'v1'),
    (None, (0, 10, 0), 'v2'),
    (None, (0, 11, 1), 'v2'),
    (None, (1, 0, 0), 'v2'),
    ('v1', (0, 4, 1), 'v1'),
    ('v1', (0, 10, 0), 'v1'),
    ('v2', (0, 10, 0), 'v2'),
    ('v2', (0, 12, 0), 'v2'),
])
def test_choose_manifest_version(wanted, installed, chosen):
    assert si.choose_manifest_version(wanted, installed) == chosen


@pytest.mark.parametrize('installed', [(0, 4, 1), (0, 9, 0)])
def test_choose_manifest_version_v2_on_old_soci(installed):
    with pytest.raises(si.SociError) as err:
        si.choose_manifest_version('v2', installed)
    assert str(err.value) == ('manifest_version v2 needs soci >= 0.10.0 (soci convert); installed %s'
                              % '.'.join(str(x) for x in installed))


def test_validate_sizes():
    assert si.validate_sizes(None, None) is None
    assert si.validate_sizes(65536, 0) is None
    with pytest.raises(si.SociError, match=r'span_size must be at least 65536 bytes \(got 65535\)'):
        si.validate_sizes(65535, None)
    with pytest.raises(si.SociError, match=r'min_layer_size must not be negative \(got -1\)'):
        si.validate_sizes(None, -1)


SOCI = ['/usr/local/bin/soci', '--address', '/run/containerd/containerd.sock', '--namespace', 'lazypull']
CTR = ['/usr/bin/ctr', '--address', '/run/containerd/containerd.sock', '--namespace', 'lazypull']
IMAGE = 'reg.example.internal/team/app:1'


def test_create_command():
    assert si.create_command(SOCI, IMAGE, None, None, []) == SOCI + ['create', IMAGE]
    assert si.create_command(SOCI, IMAGE, MiB, 0, ['--platform', 'linux/arm64']) == SOCI + [
        'create', '--span-size', '1048576', '--min-layer-size', '0', '--platform', 'linux/arm64', IMAGE]


def test_convert_command():
    assert si.convert_command(SOCI, IMAGE, IMAGE + '-soci', 2 * MiB, None, ['--all-platforms']) == SOCI + [
        'convert', '--span-size', '2097152', '--all-platforms', IMAGE, IMAGE + '-soci']


def test_push_command():
    assert si.push_command(SOCI, IMAGE, False, []) == SOCI + ['push', '--existing-index', 'allow', IMAGE]
    assert si.push_command(SOCI, IMAGE, True, ['--platform', 'linux/amd64']) == SOCI + [
        'push', '--existing-index', 'allow', '--plain-http', '--platform', 'linux/amd64', IMAGE]


# --------------------------------------------------------------------------
# parsing soci output and index manifests
# --------------------------------------------------------------------------

def test_parse_create_output_real():
    parsed = si.parse_create_output(CREATE_OUTPUT)
    assert parsed == {
        'indexed': {L_42A5: Z_42A5, L_99E9: Z_99E9, L_4B2B: Z_4B2B},
        'skipped': {L_5A02: 'size 638 is less than min-layer-size 10485760',
                    L_48A3: 'size 1032061 is less than min-layer-size 10485760'},
    }


def test_parse_create_output_unsupported_format_and_noise():
    text = ('time="2024" level=info msg="hello"\n'
            '  ztoc skipped - layer %s (application/vnd.oci.image.layer.v1.tar+zstd) is compressed in an '
            'unsupported format. expect: [tar, gzip, unknown] but got "zstd"  \n'
            'layer sha256:abc -> ztoc sha256:def\n'
            'layer %s -> ztoc %s\n') % (D('1'), D('2'), D('3'))
    parsed = si.parse_create_output(text)
    assert parsed['indexed'] == {D('2'): D('3')}
    reason = 'is compressed in an unsupported format. expect: [tar, gzip, unknown] but got "zstd"'
    assert parsed['skipped'] == {D('1'): reason}
    assert si.parse_create_output(None) == {'indexed': {}, 'skipped': {}}


def test_parse_index_list():
    text = '%s\n%s  \nDIGEST SIZE\nsha256:short\n  %s\n%s\n' % (D('b'), D('a'), D('c'), D('d'))
    assert si.parse_index_list(text) == [D('b'), D('a'), D('d')]
    assert si.parse_index_list('') == []
    assert si.parse_index_list(None) == []


def ztoc_desc(layer, digest, media_type=GZIP, size=1234):
    return {'mediaType': 'application/octet-stream', 'digest': digest, 'size': size,
            'annotations': {si.LAYER_DIGEST: layer, 'com.amazon.soci.image-layer-mediaType': media_type}}


def test_index_ztocs_layers_and_blobs():
    in_layers = {'layers': [ztoc_desc(D('1'), D('a')), ztoc_desc(D('2'), D('b')),
                            {'digest': D('f'), 'mediaType': 'application/octet-stream'}]}
    assert si.index_ztocs(in_layers) == {D('1'): in_layers['layers'][0], D('2'): in_layers['layers'][1]}
    in_blobs = {'blobs': [ztoc_desc(D('3'), D('c'))]}
    assert si.index_ztocs(in_blobs) == {D('3'): in_blobs['blobs'][0]}
    assert si.index_ztocs({}) == {}
    assert si.index_ztocs({'layers': [], 'blobs': [ztoc_desc(D('4'), D('d'))]}) == {D('4'): ztoc_desc(D('4'), D('d'))}


def test_expected_layers_default_and_types():
    manifest = {'layers': [
        {'digest': D('1'), 'size': 10 * MiB, 'mediaType': GZIP},          # exactly the minimum: indexed
        {'digest': D('2'), 'size': 10 * MiB - 1, 'mediaType': GZIP},      # below
        {'digest': D('3'), 'size': 50 * MiB, 'mediaType': ZSTD},          # not indexable
        {'digest': D('4'), 'size': 20 * MiB, 'mediaType': DOCKER_GZIP},
        {'digest': D('5'), 'size': 20 * MiB, 'mediaType': TAR},
        {'digest': D('6'), 'size': 20 * MiB, 'mediaType': 'application/vnd.in-toto+json'},
        {'digest': D('0'), 'size': 30 * MiB, 'mediaType': GZIP},
    ]}
    assert si.expected_layers(manifest, None) == [D('0'), D('1'), D('4'), D('5')]
    assert si.expected_layers(manifest, 0) == [D('0'), D('1'), D('2'), D('4'), D('5')]
    assert si.expected_layers(manifest, 25 * MiB) == [D('0')]
    assert si.expected_layers({'layers': []}, None) == []
    assert si.expected_layers({}, 0) == []


# --------------------------------------------------------------------------
# zTOC flatbuffers
# --------------------------------------------------------------------------

def build_ztoc(uncompressed, max_span_id, layout='vtables-first', with_size=True, with_info=True,
               span='present'):
    """A minimal Ztoc flatbuffer: root table (fields 0..5, 3 = uncompressed_archive_size int64,
    5 = compression_info) -> CompressionInfo table (field 1 = max_span_id int32).
    span: 'present', 'zero-slot' (vtable slot 0: default) or 'short-vtable' (slot past vt_size)."""
    if layout == 'vtables-first':
        buf = bytearray(52)
        struct.pack_into('<I', buf, 0, 20)                                    # root -> table at 20
        struct.pack_into('<HH6H', buf, 4, 16, 16, 0, 0, 0, 4 if with_size else 0, 0, 12 if with_info else 0)
        struct.pack_into('<i', buf, 20, 20 - 4)                               # soffset to vtable at 4
        struct.pack_into('<q', buf, 24, uncompressed)
        struct.pack_into('<I', buf, 32, 44 - 32)                              # -> info table at 44
        info_vt, info_tbl = 36, 44
    else:                                                                     # vtables after their tables
        buf = bytearray(64)
        struct.pack_into('<I', buf, 0, 8)
        struct.pack_into('<i', buf, 8, 8 - 40)                                # negative soffset
        struct.pack_into('<q', buf, 16, uncompressed)
        struct.pack_into('<I', buf, 24, 28 - 24)
        struct.pack_into('<HH6H', buf, 40, 16, 20, 0, 0, 0, 8 if with_size else 0, 0, 16 if with_info else 0)
        info_vt, info_tbl = 56, 28
    struct.pack_into('<i', buf, info_tbl, info_tbl - info_vt)
    struct.pack_into('<i', buf, info_tbl + 4, max_span_id)
    vt_size = 6 if span == 'short-vtable' else 8
    struct.pack_into('<HHHH', buf, info_vt, vt_size, 8, 0, 4 if span == 'present' else 0)
    return bytes(buf)


@pytest.mark.parametrize('layout', ['vtables-first', 'vtables-last'])
def test_ztoc_spans_real_values(layout):
    blob = build_ztoc(REAL_UNCOMPRESSED, REAL_MAX_SPAN_ID, layout=layout)
    assert si.ztoc_spans(blob) == (104910848, 25)


def test_ztoc_spans_large_and_small_values():
    assert si.ztoc_spans(build_ztoc(1 << 40, 262143)) == (1 << 40, 262144)
    assert si.ztoc_spans(build_ztoc(5000, 0)) == (5000, 1)


@pytest.mark.parametrize('span', ['zero-slot', 'short-vtable'])
def test_ztoc_spans_default_max_span_id_is_one_span(span):
    # flatbuffers omit a field equal to its default (max_span_id 0)
    assert si.ztoc_spans(build_ztoc(3000, 77, span=span)) == (3000, 1)


@pytest.mark.parametrize('kwargs', [{'with_size': False}, {'with_info': False}])
def test_ztoc_spans_missing_fields(kwargs):
    with pytest.raises(si.SociError, match='zTOC lacks its size or compression info'):
        si.ztoc_spans(build_ztoc(REAL_UNCOMPRESSED, REAL_MAX_SPAN_ID, **kwargs))


@pytest.mark.parametrize('cut', [0, 3, 10, 22, 30, 40, 50])
def test_ztoc_spans_truncated(cut):
    blob = build_ztoc(REAL_UNCOMPRESSED, REAL_MAX_SPAN_ID)[:cut]
    with pytest.raises(si.SociError, match='zTOC is truncated or not a flatbuffer'):
        si.ztoc_spans(blob)


def test_ztoc_spans_not_a_flatbuffer():
    with pytest.raises(si.SociError, match='truncated or not a flatbuffer'):
        si.ztoc_spans(b'\xff\xff\xff\x7f' + b'\x00' * 60)


# --------------------------------------------------------------------------
# spans_match, match_existing, warnings
# --------------------------------------------------------------------------

@pytest.mark.parametrize('uncompressed,spans,span_size,expected', [
    (1000, 1, 4 * MiB, True),
    (1000, 2, 4 * MiB, False),
    (4 * MiB, 1, 4 * MiB, True),            # U == S: one span
    (4 * MiB, 2, None, False),
    (MiB, 1, None, True),                   # default span 4 MiB
    (REAL_UNCOMPRESSED, 25, 4 * MiB, True),
    (REAL_UNCOMPRESSED, 25, None, True),
    (REAL_UNCOMPRESSED, 25, 2 * MiB, False),   # a 4 MiB index, 2 MiB wanted
    (REAL_UNCOMPRESSED, 51, 4 * MiB, False),   # a 2 MiB index, 4 MiB wanted
    (REAL_UNCOMPRESSED, 51, 2 * MiB, True),
    (100 * MiB, 80, MiB, True),             # ideal 100: 80..102
    (100 * MiB, 79, MiB, False),
    (100 * MiB, 102, MiB, True),
    (100 * MiB, 103, MiB, False),
])
def test_spans_match(uncompressed, spans, span_size, expected):
    assert si.spans_match(uncompressed, spans, span_size) is expected


IMAGE_LAYERS = [
    {'mediaType': GZIP, 'digest': L_5A02, 'size': 638},
    {'mediaType': GZIP, 'digest': L_48A3, 'size': 1032061},
    {'mediaType': GZIP, 'digest': L_42A5, 'size': 30000000},
    {'mediaType': GZIP, 'digest': L_99E9, 'size': 12000000},
    {'mediaType': GZIP, 'digest': L_4B2B, 'size': 41000000},   # the largest: 104,910,848 uncompressed
]
IMAGE_MANIFEST = {'schemaVersion': 2, 'mediaType': OCI_MANIFEST,
                  'config': {'mediaType': 'application/vnd.oci.image.config.v1+json', 'digest': D('c'),
                             'size': 900},
                  'layers': IMAGE_LAYERS}
GOOD_BIG = build_ztoc(REAL_UNCOMPRESSED, REAL_MAX_SPAN_ID)        # 4 MiB spans
SMALL_1 = build_ztoc(60000000, 14)                                # 4 MiB spans
SMALL_2 = build_ztoc(25000000, 5)


def soci_index_doc(ztocs, subject=None):
    """A soci 0.4 v1 index (OCI image manifest, zTOCs in `layers`); ztocs: {layer: blob}."""
    return {'schemaVersion': 2, 'mediaType': OCI_MANIFEST, 'artifactType': si.ARTIFACT_TYPE_V1,
            'config': {'mediaType': si.ARTIFACT_TYPE_V1, 'digest': D('0'), 'size': 2},
            'layers': [ztoc_desc(layer, sha(blob), size=len(blob)) for layer, blob in sorted(ztocs.items())],
            'subject': subject or {'mediaType': OCI_MANIFEST, 'digest': D('9'), 'size': 1},
            'annotations': {'com.amazon.soci.build-tool-identifier': 'AWS SOCI CLI v0.1'}}


def blobs_of(*blobs):
    return dict((sha(b), b) for b in blobs)


def test_match_existing_reasons_and_match():
    two_layers = soci_index_doc({L_42A5: SMALL_1, L_4B2B: GOOD_BIG})
    wrong_span = soci_index_doc({L_42A5: SMALL_1, L_99E9: SMALL_2, L_4B2B: build_ztoc(REAL_UNCOMPRESSED, 50)})
    good = soci_index_doc({L_42A5: SMALL_1, L_99E9: SMALL_2, L_4B2B: GOOD_BIG})
    manifests = {D('a'): two_layers, D('b'): wrong_span, D('c'): good}
    blobs = blobs_of(SMALL_1, SMALL_2, GOOD_BIG, build_ztoc(REAL_UNCOMPRESSED, 50))
    read = []

    def read_blob(digest):
        read.append(digest)
        return blobs[digest]

    candidates = [{'digest': D('a')}, {'digest': D('b')}, {'digest': D('c')}]
    digest, index = si.match_existing(IMAGE_MANIFEST, candidates, None, None, manifests.__getitem__, read_blob)
    assert digest == D('c')
    assert index == good
    # only the largest layer's zTOC is read, once for b and once for c
    assert read == [sha(build_ztoc(REAL_UNCOMPRESSED, 50)), sha(GOOD_BIG)]


def test_match_existing_no_match_reasons():
    two_layers = soci_index_doc({L_42A5: SMALL_1, L_4B2B: GOOD_BIG})
    good_4mib = soci_index_doc({L_42A5: SMALL_1, L_99E9: SMALL_2, L_4B2B: GOOD_BIG})
    manifests = {D('a'): two_layers, D('b'): good_4mib}
    blobs = blobs_of(SMALL_1, SMALL_2, GOOD_BIG)
    digest, reasons = si.match_existing(IMAGE_MANIFEST, [{'digest': D('a')}, {'digest': D('b')}], MiB, None,
                                        manifests.__getitem__, blobs.__getitem__)
    assert digest is None
    assert reasons == ['%s indexes 2 layers, the options select 3' % D('a'),
                       '%s: layer sha256:4b2b3434ec32 has 25 spans, span_size 1048576 gives about 100' % D('b')]


def test_match_existing_min_layer_size_selects_layers():
    all_five = soci_index_doc({L_5A02: SMALL_2, L_48A3: SMALL_2, L_42A5: SMALL_1, L_99E9: SMALL_2,
                               L_4B2B: GOOD_BIG})
    three = soci_index_doc({L_42A5: SMALL_1, L_99E9: SMALL_2, L_4B2B: GOOD_BIG})
    manifests = {D('a'): all_five, D('b'): three}
    blobs = blobs_of(SMALL_1, SMALL_2, GOOD_BIG)
    cands = [{'digest': D('a')}, {'digest': D('b')}]
    assert si.match_existing(IMAGE_MANIFEST, cands, None, 0, manifests.__getitem__, blobs.__getitem__)[0] == D('a')
    assert si.match_existing(IMAGE_MANIFEST, cands, None, None, manifests.__getitem__, blobs.__getitem__)[0] == D('b')


def test_match_existing_uses_largest_layer_ztoc_only():
    # the small layer's zTOC is garbage: reading it would raise SociError
    garbage = b'\x00\x01'
    index = soci_index_doc({L_42A5: garbage, L_99E9: garbage, L_4B2B: GOOD_BIG})
    blobs = blobs_of(garbage, GOOD_BIG)
    digest, found = si.match_existing(IMAGE_MANIFEST, [{'digest': D('a')}], 4 * MiB, None,
                                      {D('a'): index}.__getitem__, blobs.__getitem__)
    assert (digest, found) == (D('a'), index)


def test_match_existing_without_candidates():
    assert si.match_existing(IMAGE_MANIFEST, [], None, None, None, None) == (None, [])


def test_useless_index_warning():
    assert si.useless_index_warning({}, {D('1'): 'x', D('2'): 'y'}, None) == (
        'every layer (2) is smaller than min_layer_size 10485760: the index has no zTOC and soci will pull '
        'this image eagerly. Lower min_layer_size.')
    assert 'min_layer_size 5' in si.useless_index_warning([], [1, 2, 3], 5)
    assert 'every layer (3)' in si.useless_index_warning([], [1, 2, 3], 5)
    assert si.useless_index_warning({D('1'): D('a')}, {D('2'): 'y'}, None) is None
    assert si.useless_index_warning({}, {}, None) is None


# --------------------------------------------------------------------------
# target_manifests, remove_indexes
# --------------------------------------------------------------------------

class FakeClient(FakeRegistryClient):
    """One registry repository ('team/app'): manifests by tag or digest, blobs, referrers."""

    def __init__(self, events):
        super(FakeClient, self).__init__(events)
        self.blobs = {}
        self.referrers_of = {}
        self.deleted = []

    def add(self, doc, tags=(), repository='team/app'):
        return self.store_doc(repository, doc, tags)

    def add_index(self, subject_digest, ztocs, tag_schema=True):
        doc = soci_index_doc(ztocs, {'mediaType': OCI_MANIFEST, 'digest': subject_digest, 'size': 1})
        digest = self.add(doc)
        self.blobs.update(blobs_of(*ztocs.values()))
        self.referrers_of.setdefault(subject_digest, []).append(
            {'mediaType': OCI_MANIFEST, 'digest': digest, 'size': 1, 'artifactType': si.ARTIFACT_TYPE_V1})
        if tag_schema:
            tag = subject_digest.replace(':', '-')
            self.add({'schemaVersion': 2, 'mediaType': OCI_INDEX,
                      'manifests': list(self.referrers_of[subject_digest])}, tags=[tag])
        return digest

    def blob(self, repository, digest):
        return self.blobs[digest]

    def referrers(self, repository, digest, artifact_type=None):
        return [dict(d) for d in self.referrers_of.get(digest, [])
                if artifact_type is None or d.get('artifactType') == artifact_type]

    def put_manifest(self, repository, reference, body, media_type):
        self.events.append(('put', reference))
        self.puts.append((repository, reference, json.loads(body.decode('utf-8')), media_type))
        return self.store_body(repository, reference, body, media_type)

    def delete_manifest(self, repository, digest):
        self.events.append(('delete', digest))
        self.deleted.append(digest)
        for key in [k for k, v in self.store.items() if v[0] == digest]:
            del self.store[key]
        for subject in self.referrers_of:
            self.referrers_of[subject] = [d for d in self.referrers_of[subject] if d['digest'] != digest]
        return True


def test_target_manifests_single_manifest():
    client = FakeClient([])
    assert si.target_manifests(client, 'team/app', D('1'), IMAGE_MANIFEST, []) == [(None, D('1'), IMAGE_MANIFEST)]


def _multi_arch(client):
    amd = client.add(dict(IMAGE_MANIFEST, annotations={'arch': 'amd64'}))
    arm = client.add(dict(IMAGE_MANIFEST, annotations={'arch': 'arm64'}))
    top = {'schemaVersion': 2, 'mediaType': OCI_INDEX, 'manifests': [
        {'mediaType': OCI_MANIFEST, 'digest': amd, 'platform': {'os': 'linux', 'architecture': 'amd64'}},
        {'mediaType': OCI_MANIFEST, 'digest': arm,
         'platform': {'os': 'linux', 'architecture': 'arm64', 'variant': 'v8'}}]}
    return client.add(top, tags=['1']), top, amd, arm


def test_target_manifests_index():
    client = FakeClient([])
    top_digest, top, amd, arm = _multi_arch(client)
    default = si.target_manifests(client, 'team/app', top_digest, top, [])
    assert [(p, d, m['annotations']['arch']) for p, d, m in default] == [('linux/amd64', amd, 'amd64')]
    every = si.target_manifests(client, 'team/app', top_digest, top, ['all'])
    assert [(p, d) for p, d, _m in every] == [('linux/amd64', amd), ('linux/arm64/v8', arm)]
    exact = si.target_manifests(client, 'team/app', top_digest, top, ['linux/arm64/v8'])
    assert [(p, d) for p, d, _m in exact] == [('linux/arm64/v8', arm)]
    with pytest.raises(si.SociError, match=r'image has no manifest for platform\(s\) linux/s390x, linux/ppc64le'):
        si.target_manifests(client, 'team/app', top_digest, top, ['linux/s390x', 'linux/ppc64le'])


def test_target_manifests_arm64_matches_variant_v8():
    client = FakeClient([])
    top_digest, top, _amd, arm = _multi_arch(client)
    found = si.target_manifests(client, 'team/app', top_digest, top, ['linux/arm64'])
    assert [d for _p, d, _m in found] == [arm]


def test_remove_indexes_rewrites_tag_index():
    client = FakeClient([])
    subject = D('9')
    a = client.add_index(subject, {L_4B2B: GOOD_BIG})
    b = client.add_index(subject, {L_42A5: SMALL_1})
    c = client.add_index(subject, {L_99E9: SMALL_2})
    tag = 'sha256-' + '9' * 64
    si.remove_indexes(client, 'team/app', subject, [a, c])
    assert client.deleted == [a, c]
    assert len(client.puts) == 1
    repository, reference, doc, media_type = client.puts[0]
    assert (repository, reference, media_type) == ('team/app', tag, OCI_INDEX)
    assert [m['digest'] for m in doc['manifests']] == [b]
    assert client.manifest('team/app', tag)[2]['manifests'] == doc['manifests']


def test_remove_indexes_deletes_emptied_tag_index():
    client = FakeClient([])
    subject = D('9')
    a = client.add_index(subject, {L_4B2B: GOOD_BIG})
    b = client.add_index(subject, {L_42A5: SMALL_1})
    tag = 'sha256-' + '9' * 64
    tag_digest = client.manifest('team/app', tag)[0]
    si.remove_indexes(client, 'team/app', subject, [a, b])
    assert client.deleted == [a, b, tag_digest]
    assert client.puts == []
    assert client.manifest('team/app', tag) is None


def test_remove_indexes_without_tag_index_or_unlisted_digest():
    client = FakeClient([])
    a = client.add_index(D('9'), {L_4B2B: GOOD_BIG}, tag_schema=False)
    si.remove_indexes(client, 'team/app', D('9'), [a])
    assert client.deleted == [a] and client.puts == []

    client = FakeClient([])
    client.add_index(D('8'), {L_4B2B: GOOD_BIG})
    si.remove_indexes(client, 'team/app', D('8'), [D('e')])
    assert client.deleted == [D('e')] and client.puts == []


# --------------------------------------------------------------------------
# ensure_v1(): the whole flow, with fakes
# --------------------------------------------------------------------------

NEW_INDEX = D('e')
OLDER_LOCAL = D('d')


class FakeRunner(object):
    def __init__(self, events, create_output=CREATE_OUTPUT, listed=None, fail=None):
        self.events = events
        self.create_output = create_output
        self.listed = listed if listed is not None else '%s\n%s\n' % (NEW_INDEX, OLDER_LOCAL)
        self.fail = fail
        self.calls = []

    def run(self, argv, env=None, check=True, what=None):
        argv = list(argv)
        self.calls.append({'argv': argv, 'env': env, 'check': check, 'what': what})
        key = self.key(argv)
        self.events.append(('run',) + key)
        if self.fail and self.fail(key):
            raise ToolError('%s failed (rc=1): %s' % (what, ' '.join(argv)))
        if key == ('soci', 'create'):
            return 0, self.create_output, ''
        if key == ('soci', 'index', 'list'):
            if callable(self.listed):
                return 0, self.listed(argv), ''
            return 0, self.listed, ''
        if key == ('soci', 'push'):
            return 0, 'pushing artifact with digest: %s\n' % NEW_INDEX, ''
        return 0, '', ''

    @staticmethod
    def key(argv):
        if argv[0].endswith('soci'):
            return ('soci',) + tuple(argv[5:7] if argv[5] == 'index' else argv[5:6])
        return ('ctr',) + tuple(argv[5:7])

    def keys(self):
        return [self.key(c['argv']) for c in self.calls]


TOOLS = {'ctr': '/usr/bin/ctr', 'soci': '/usr/local/bin/soci'}


def v1_params(**overrides):
    params = {'image': IMAGE, 'push': True, 'prune': True, 'state': 'present', 'platforms': [],
              'span_size': None, 'min_layer_size': None, 'keep_local': False, 'plain_http': False,
              'containerd_address': '/run/containerd/containerd.sock', 'namespace': 'lazypull'}
    params.update(overrides)
    return params


def timer():
    counter = itertools.count()
    return lambda: float(next(counter))


class World(object):
    def __init__(self, tmp_path, params=None, manifest=IMAGE_MANIFEST, **runner_kwargs):  # pylint: disable=dangerous-default-value
        self.events = []
        self.params = params or v1_params()
        self.client = FakeClient(self.events)
        self.image_digest = self.client.add(manifest, tags=['1']) if manifest is not None else None
        self.access = FakeAccess(tmp_path, {'reg.example.internal': self.client})
        self.runner = FakeRunner(self.events, **runner_kwargs)
        self.ref = image_reference.parse(self.params['image'])

    def index(self, ztocs, tag_schema=True):
        return self.client.add_index(self.image_digest, ztocs, tag_schema=tag_schema)

    def run(self, check_mode=False):
        return si.ensure_v1(self.params, self.ref, dict(TOOLS), self.runner, self.access, check_mode, timer())


GOOD_ZTOCS = {L_42A5: SMALL_1, L_99E9: SMALL_2, L_4B2B: GOOD_BIG}


def test_ensure_v1_image_not_found(tmp_path):
    world = World(tmp_path, manifest=None)
    with pytest.raises(RegistryError, match='image reg.example.internal/team/app:1 not found in registry '
                                            'reg.example.internal'):
        world.run()
    assert world.runner.calls == []


def test_ensure_v1_existing_matching_index(tmp_path):
    world = World(tmp_path)
    good = world.index(GOOD_ZTOCS)
    result = world.run()
    assert result['changed'] is False
    assert world.runner.calls == []
    assert world.client.deleted == []
    assert result['image_digest'] == world.image_digest
    assert result['manifest_version'] == 'v1'
    assert result['indexes'] == [{'platform': None, 'manifest_digest': world.image_digest, 'index_digest': good,
                                  'ztocs': 3, 'layers_indexed': 3, 'layers_skipped': 2}]
    assert result['msg'] == 'an index with these options exists for every platform'
    assert world.client.access == [('team/app', True)]


def test_ensure_v1_builds_when_no_index(tmp_path):
    world = World(tmp_path, params=v1_params(span_size=4 * MiB, min_layer_size=10 * MiB))
    result = world.run()
    env = world.access.env()
    assert world.runner.keys() == [('ctr', 'image', 'pull'), ('soci', 'create'), ('soci', 'index', 'list'),
                                   ('soci', 'push'), ('soci', 'index', 'rm'), ('ctr', 'image', 'rm')]
    pull, create, listing, push, index_rm, image_rm = world.runner.calls
    assert pull['argv'] == CTR + ['image', 'pull', '--hosts-dir', world.access.hosts_dir, IMAGE]
    assert create['argv'] == SOCI + ['create', '--span-size', '4194304', '--min-layer-size', '10485760', IMAGE]
    assert listing['argv'] == SOCI + ['index', 'list', '-q', '--ref', IMAGE]
    assert push['argv'] == SOCI + ['push', '--existing-index', 'allow', IMAGE]
    assert index_rm['argv'] == SOCI + ['index', 'rm', NEW_INDEX]
    assert image_rm['argv'] == CTR + ['image', 'rm', '--sync', IMAGE]
    for call in (pull, create, listing, push):
        assert call['env'] == env
    assert (index_rm['check'], image_rm['check']) == (False, False)

    assert result['changed'] is True
    assert result['indexes'] == [{
        'platform': None, 'manifest_digest': world.image_digest, 'index_digest': NEW_INDEX,
        'ztocs': 3, 'layers_indexed': 3, 'layers_skipped': 2,
        'skipped': {L_5A02: 'size 638 is less than min-layer-size 10485760',
                    L_48A3: 'size 1032061 is less than min-layer-size 10485760'}}]
    assert 'warnings' not in result
    assert 'removed' not in result
    assert set(result['steps']) == {'pull', 'create', 'push'}
    assert result['msg'] == 'indexed reg.example.internal/team/app:1 (1 manifest(s))'
    assert world.client.deleted == []


def test_ensure_v1_plain_http_push(tmp_path):
    world = World(tmp_path, params=v1_params(plain_http=True))
    world.run()
    assert world.runner.calls[0]['argv'][-2:] == ['--plain-http', IMAGE]
    assert world.runner.calls[3]['argv'] == SOCI + ['push', '--existing-index', 'allow', '--plain-http', IMAGE]


def test_ensure_v1_prunes_stale_after_push(tmp_path):
    world = World(tmp_path, params=v1_params(span_size=MiB))
    old = world.index(GOOD_ZTOCS)                  # built with 4 MiB spans
    tag_digest = world.client.manifest('team/app', 'sha256-' + world.image_digest[7:])[0]
    result = world.run()
    assert result['changed'] is True
    assert result['removed'] == [old]
    assert world.client.deleted == [old, tag_digest]
    order = [e for e in world.events if e[0] in ('run', 'delete')]
    assert order == [('run', 'ctr', 'image', 'pull'), ('run', 'soci', 'create'), ('run', 'soci', 'index', 'list'),
                     ('run', 'soci', 'push'), ('delete', old), ('delete', tag_digest),
                     ('run', 'soci', 'index', 'rm'), ('run', 'ctr', 'image', 'rm')]
    assert world.runner.calls[1]['argv'] == SOCI + ['create', '--span-size', '1048576', IMAGE]


def test_ensure_v1_extra_index_pruned_without_rebuild(tmp_path):
    world = World(tmp_path)
    extra = world.index({L_42A5: SMALL_1})        # another options' index
    good = world.index(GOOD_ZTOCS)
    result = world.run()
    assert result['changed'] is True
    assert world.runner.calls == []
    assert result['removed'] == [extra]
    assert world.client.deleted == [extra]
    assert [m['digest'] for m in world.client.puts[0][2]['manifests']] == [good]
    assert result['indexes'][0]['index_digest'] == good


def test_ensure_v1_prune_false_keeps_stale(tmp_path):
    world = World(tmp_path, params=v1_params(prune=False, span_size=MiB))
    world.index(GOOD_ZTOCS)
    result = world.run()
    assert result['changed'] is True
    assert ('soci', 'push') in world.runner.keys()
    assert world.client.deleted == []
    assert 'removed' not in result


def test_ensure_v1_check_mode(tmp_path):
    world = World(tmp_path, params=v1_params(span_size=MiB))
    old = world.index(GOOD_ZTOCS)
    result = world.run(check_mode=True)
    assert result['changed'] is True
    assert world.runner.calls == []
    assert world.client.deleted == [] and world.client.puts == []
    assert result['msg'] == ('would index 1 manifest(s); %s: layer sha256:4b2b3434ec32 has 25 spans, '
                             'span_size 1048576 gives about 100' % old)


def test_ensure_v1_check_mode_nothing_there(tmp_path):
    world = World(tmp_path)
    result = world.run(check_mode=True)
    assert (result['changed'], result['msg']) == (True, 'would index 1 manifest(s)')
    assert world.runner.calls == []


def test_ensure_v1_every_layer_below_min(tmp_path):
    world = World(tmp_path, params=v1_params(min_layer_size=100 * MiB))
    result = world.run()
    assert result['changed'] is False
    assert world.runner.calls == []
    warning = ('every layer (5) is smaller than min_layer_size 104857600: the index has no zTOC and soci will '
               'pull this image eagerly. Lower min_layer_size.')
    assert result['warnings'] == [warning]
    assert result['indexes'] == [{'platform': None, 'manifest_digest': world.image_digest, 'index_digest': None,
                                  'ztocs': 0, 'layers_indexed': 0, 'layers_skipped': 5, 'warning': warning}]
    assert result['msg'] == 'no index built: nothing to index'


def test_ensure_v1_image_without_layers_has_no_none_warning(tmp_path):
    world = World(tmp_path, manifest=dict(IMAGE_MANIFEST, layers=[]))
    result = world.run()
    assert None not in result.get('warnings', [])


def test_ensure_v1_state_absent(tmp_path):
    world = World(tmp_path, params=v1_params(state='absent', push=False))
    a = world.index(GOOD_ZTOCS)
    b = world.index({L_4B2B: GOOD_BIG})
    result = world.run()
    assert result['changed'] is True
    assert result['removed'] == sorted([a, b])
    assert world.client.deleted[:2] == [a, b]
    assert world.client.referrers('team/app', world.image_digest) == []
    assert world.client.manifest('team/app', 'sha256-' + world.image_digest[7:]) is None
    assert world.runner.calls == []
    assert world.client.access == [('team/app', True)]   # deletes need push rights even with push: false


def test_ensure_v1_state_absent_check_mode_and_nothing(tmp_path):
    world = World(tmp_path, params=v1_params(state='absent'))
    a = world.index(GOOD_ZTOCS)
    result = world.run(check_mode=True)
    assert (result['changed'], result['removed']) == (True, [a])
    assert world.client.deleted == []

    empty = World(tmp_path, params=v1_params(state='absent'))
    result = empty.run()
    assert (result['changed'], result['removed']) == (False, [])
    assert empty.client.deleted == []


def test_ensure_v1_cleanup_when_push_fails(tmp_path):
    world = World(tmp_path, params=v1_params(span_size=MiB), fail=lambda key: key[:2] == ('soci', 'push'))
    world.index(GOOD_ZTOCS)
    with pytest.raises(ToolError, match='soci push failed'):
        world.run()
    assert world.runner.keys()[-3:] == [('soci', 'push'), ('soci', 'index', 'rm'), ('ctr', 'image', 'rm')]
    assert world.runner.calls[-2]['argv'] == SOCI + ['index', 'rm', NEW_INDEX]
    assert world.runner.calls[-1]['argv'] == CTR + ['image', 'rm', '--sync', IMAGE]
    assert world.client.deleted == []        # the stale index is not pruned


def test_ensure_v1_cleanup_when_create_fails(tmp_path):
    world = World(tmp_path, fail=lambda key: key[:2] == ('soci', 'create'))
    with pytest.raises(ToolError):
        world.run()
    assert world.runner.keys() == [('ctr', 'image', 'pull'), ('soci', 'create'), ('ctr', 'image', 'rm')]


def test_ensure_v1_no_index_listed(tmp_path):
    world = World(tmp_path, listed='')
    with pytest.raises(si.SociError, match='soci create made no index for reg.example.internal/team/app:1'):
        world.run()
    assert world.runner.keys()[-1] == ('ctr', 'image', 'rm')
    assert ('soci', 'push') not in world.runner.keys()


def test_ensure_v1_push_false(tmp_path):
    world = World(tmp_path, params=v1_params(push=False, span_size=MiB))
    world.index(GOOD_ZTOCS)
    result = world.run()
    assert result['changed'] is True
    assert world.runner.keys() == [('ctr', 'image', 'pull'), ('soci', 'create'), ('soci', 'index', 'list')]
    assert world.client.deleted == []
    assert world.client.access == [('team/app', False)]
    assert result['indexes'][0]['index_digest'] == NEW_INDEX


def test_ensure_v1_keep_local(tmp_path):
    world = World(tmp_path, params=v1_params(keep_local=True))
    world.run()
    assert world.runner.keys() == [('ctr', 'image', 'pull'), ('soci', 'create'), ('soci', 'index', 'list'),
                                   ('soci', 'push')]


def test_ensure_v1_all_platforms(tmp_path):
    world = World(tmp_path, params=v1_params(platforms=['all']), manifest=None)
    world.image_digest, _top, amd, arm = _multi_arch(world.client)
    per_platform = {'linux/amd64': D('a'), 'linux/arm64/v8': D('b')}
    world.runner.listed = lambda argv: per_platform[argv[argv.index('--platform') + 1]] + '\n'
    result = world.run()
    assert world.runner.calls[0]['argv'] == CTR + ['image', 'pull', '--hosts-dir', world.access.hosts_dir,
                                                   '--all-platforms', IMAGE]
    creates = [c['argv'] for c in world.runner.calls if FakeRunner.key(c['argv'])[:2] == ('soci', 'create')]
    assert creates == [SOCI + ['create', '--platform', 'linux/amd64', IMAGE],
                       SOCI + ['create', '--platform', 'linux/arm64/v8', IMAGE]]
    pushes = [c['argv'] for c in world.runner.calls if FakeRunner.key(c['argv'])[:2] == ('soci', 'push')]
    assert pushes == [SOCI + ['push', '--existing-index', 'allow', '--platform', 'linux/amd64', IMAGE],
                      SOCI + ['push', '--existing-index', 'allow', '--platform', 'linux/arm64/v8', IMAGE]]
    assert [(i['platform'], i['manifest_digest'], i['index_digest']) for i in result['indexes']] == [
        ('linux/amd64', amd, D('a')), ('linux/arm64/v8', arm, D('b'))]
    removes = [c['argv'][-1] for c in world.runner.calls if FakeRunner.key(c['argv']) == ('soci', 'index', 'rm')]
    assert removes == [D('a'), D('b')]
    assert result['msg'] == 'indexed reg.example.internal/team/app:1 (2 manifest(s))'


def test_ensure_v1_default_platform_pull_matches_target(tmp_path):
    world = World(tmp_path, manifest=None)
    world.image_digest, _top, _amd, _arm = _multi_arch(world.client)
    world.run()
    pull = world.runner.calls[0]['argv']
    assert pull[-3:] == ['--platform', 'linux/amd64', IMAGE]


def test_ensure_v1_prune_false_with_match_is_idempotent(tmp_path):
    world = World(tmp_path, params=v1_params(prune=False))
    world.index({L_42A5: SMALL_1})
    world.index(GOOD_ZTOCS)
    result = world.run()
    assert world.runner.calls == []
    assert world.client.deleted == []
    assert result['changed'] is False


def test_ensure_v1_never_prunes_the_index_it_pushed(tmp_path):
    # span_size 1 MiB on very compressible data: zlib ends a deflate block every ~4.2 MB of output
    # (16383 matches of 258 bytes), and a span can only end at a block boundary, so soci writes
    # about 25 spans where 1 MiB "gives about 100": match_existing rejects the index soci rebuilds as is.
    world = World(tmp_path, params=v1_params(span_size=MiB))
    same = world.index({L_42A5: SMALL_1, L_99E9: SMALL_2, L_4B2B: GOOD_BIG})
    world.runner.listed = same + '\n'
    world.run()
    assert ('soci', 'push') in world.runner.keys()
    assert same not in world.client.deleted
