from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.lazypull.snapshotters.plugins.module_utils import image_reference as r

DIGEST = 'sha256:' + 'a' * 64


@pytest.mark.parametrize('ref,expected', [
    ('10.89.213.10:5000/lazypull/sparse:1', ('10.89.213.10:5000', 'lazypull/sparse', '1', None)),
    ('registry.example.internal/team/llm-server', ('registry.example.internal', 'team/llm-server', None, None)),
    ('localhost/app:v1.2', ('localhost', 'app', 'v1.2', None)),
    ('reg.example.internal:443/a/b/c:1-esgz@' + DIGEST, ('reg.example.internal:443', 'a/b/c', '1-esgz', DIGEST)),
    ('reg.example.internal/x__y.z-w@' + DIGEST, ('reg.example.internal', 'x__y.z-w', None, DIGEST)),
    ('[::1]:5000/app:1', ('[::1]:5000', 'app', '1', None)),
])
def test_parse_valid(ref, expected):
    parts = r.parse(ref)
    assert (parts['registry'], parts['repository'], parts['tag'], parts['digest']) == expected
    assert parts['name'] == '%s/%s' % expected[:2]


@pytest.mark.parametrize('ref,message', [
    ('', 'empty'),
    (None, 'empty'),
    ('busybox:1', 'must name its registry'),
    ('library/busybox', 'must name its registry'),
    ('https://reg.example.internal/app:1', 'must not have a scheme'),
    ('reg.example.internal/App:1', 'lowercase'),
    ('reg.example.internal/app:', 'malformed'),
    ('reg.example.internal/app:-bad', 'malformed'),
    ('reg.example.internal/app@sha256:abc', 'malformed'),
    ('reg.example.internal/app@sha256:' + 'a' * 65, 'sha256 digest has 64'),
    (' reg.example.internal/app:1', 'whitespace'),
    ('reg.example.internal//app', 'malformed'),
    ('reg.example.internal/' + 'a' * 300, 'longer than 255'),
])
def test_parse_invalid(ref, message):
    with pytest.raises(r.ImageReferenceError, match=message):
        r.parse(ref)


def test_canonical_adds_latest_only_without_tag_or_digest():
    assert r.canonical('reg.example.internal/app') == 'reg.example.internal/app:latest'
    assert r.canonical('reg.example.internal/app:2') == 'reg.example.internal/app:2'
    assert r.canonical('reg.example.internal/app@' + DIGEST) == 'reg.example.internal/app@' + DIGEST
