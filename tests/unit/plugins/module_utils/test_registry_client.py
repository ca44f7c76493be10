from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json

import pytest

from ansible_collections.lazypull.snapshotters.plugins.module_utils import registry_client as rc

HOST = 'registry.example.internal'
BASE = 'https://' + HOST
REPO = 'team/app'
ALICE = rc.Credentials('alice', 's3cret')
ALICE_BASIC = 'Basic YWxpY2U6czNjcmV0'  # base64('alice:s3cret')
DIGEST = 'sha256:' + 'a' * 64
BEARER_CHALLENGE = {'WWW-Authenticate': 'Bearer realm="https://auth.example.internal/token",'
                                        'service="registry.example.internal"'}
BASIC_CHALLENGE = {'WWW-Authenticate': 'Basic realm="registry"'}
TOKEN_URL_PULL = ('https://auth.example.internal/token?service=registry.example.internal'
                  '&scope=repository%3Ateam%2Fapp%3Apull')
SOCI = 'application/vnd.amazon.soci.index.v1+json'
OCI_INDEX = 'application/vnd.oci.image.index.v1+json'


class FakeOpener(object):
    """Answers from a scripted list, in order; records every call.

    An entry is (status, headers, body) or an Exception to raise."""

    def __init__(self, *responses):
        self.responses = list(responses)
        self.calls = []

    def __call__(self, method, url, headers, data=None):
        self.calls.append((method, url, dict(headers), data))
        if not self.responses:
            raise AssertionError('unexpected request %s %s' % (method, url))
        answer = self.responses.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    @property
    def urls(self):
        return [call[1] for call in self.calls]

    def header(self, index, name):
        return self.calls[index][2].get(name)

    def done(self):
        return not self.responses


def make(*responses, **kwargs):
    opener = FakeOpener(*responses)
    return rc.RegistryClient(HOST, opener, **kwargs), opener


def ok(body=b'{}', headers=None):
    return 200, dict(headers or {}), body


def token(value='tok-1', key='token'):
    return 200, {'Content-Type': 'application/json'}, json.dumps({key: value}).encode()


def sha(body):
    return 'sha256:' + hashlib.sha256(body).hexdigest()


# --- small helpers -----------------------------------------------------------

def test_credentials_basic_is_exact_base64():
    assert ALICE.basic() == ALICE_BASIC
    assert rc.Credentials('robot$ci', u'p\u00e4ss').basic() == 'Basic cm9ib3QkY2k6cMOkc3M='


def test_credentials_repr_hides_password():
    creds = rc.Credentials('alice', 'hunter2-very-secret')
    for text in (repr(creds), str(creds), '%r' % [creds]):
        assert 'hunter2-very-secret' not in text
        assert "'alice'" in text
        assert '<hidden>' in text


@pytest.mark.parametrize('header,expected', [
    (None, (None, {})),
    ('', (None, {})),
    ('Basic realm="registry"', ('basic', {'realm': 'registry'})),
    ('  BEARER Realm="https://a/token",Service="svc",scope="repository:x/y:pull,push"',
     ('bearer', {'realm': 'https://a/token', 'service': 'svc', 'scope': 'repository:x/y:pull,push'})),
    ('Negotiate', ('negotiate', {})),
])
def test_parse_challenge(header, expected):
    assert rc.parse_challenge(header) == expected


def test_digest_of():
    assert rc.digest_of(b'') == 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'


@pytest.mark.parametrize('text,expected', [
    ('repository:team/app:pull,push', 'repository%3Ateam%2Fapp%3Apull%2Cpush'),
    ('Docker registry', 'Docker%20registry'),
    ('a-b_c.d~e', 'a-b_c.d~e'),
    ('application/vnd.oci+json', 'application%2Fvnd.oci%2Bjson'),
])
def test_quote(text, expected):
    assert rc._quote(text) == expected


def test_header_lookup_is_case_insensitive():
    assert rc._header({'Docker-Content-Digest': 'd'}, 'docker-content-digest') == 'd'
    assert rc._header(None, 'location') is None
    assert rc._header({'x': 'y'}, 'location') is None


def test_plain_http_uses_http_base():
    client, opener = make(ok(), plain_http=True)
    assert client.base == 'http://' + HOST
    client.request('GET', '/v2/', 'scope')
    assert opener.urls == ['http://%s/v2/' % HOST]


def test_https_is_the_default_base():
    client, _opener = make()
    assert client.base == BASE


# --- auth handshake ------------------------------------------------------------

def test_anonymous_200_sends_no_authorization():
    client, opener = make(ok(b'hello', {'X': '1'}))
    status, headers, body = client.request('GET', '/v2/', 'repository:team/app:pull', headers={'Accept': 'a/b'})
    assert (status, headers, body) == (200, {'X': '1'}, b'hello')
    assert opener.calls == [('GET', BASE + '/v2/', {'Accept': 'a/b'}, None)]


def test_basic_challenge_retries_with_basic_header():
    client, opener = make((401, BASIC_CHALLENGE, b''), ok(b'yes'), credentials=ALICE)
    status, _h, body = client.request('GET', '/v2/', 'repository:team/app:pull')
    assert (status, body) == (200, b'yes')
    assert len(opener.calls) == 2
    assert opener.header(0, 'Authorization') is None
    assert opener.header(1, 'Authorization') == ALICE_BASIC
    assert opener.urls == [BASE + '/v2/', BASE + '/v2/']


def test_basic_is_sent_directly_after_the_first_challenge():
    client, opener = make((401, BASIC_CHALLENGE, b''), ok(), ok(), credentials=ALICE)
    client.request('GET', '/v2/', 'repository:team/app:pull')
    client.request('GET', '/v2/other/manifests/1', 'repository:other:pull')
    assert len(opener.calls) == 3
    assert opener.header(2, 'Authorization') == ALICE_BASIC
    assert opener.done()


def test_basic_bad_credentials_raise():
    client, opener = make((401, BASIC_CHALLENGE, b''), (401, BASIC_CHALLENGE, b''), credentials=ALICE)
    with pytest.raises(rc.RegistryError) as err:
        client.request('GET', '/v2/', 'repository:team/app:pull')
    msg = str(err.value)
    assert 'registry %s rejected the credentials (401 Unauthorized)' % HOST == msg
    assert 's3cret' not in msg
    assert len(opener.calls) == 2


def test_basic_challenge_without_credentials():
    client, opener = make((401, BASIC_CHALLENGE, b''))
    with pytest.raises(rc.RegistryError, match='registry %s requires credentials and none were given' % HOST):
        client.request('GET', '/v2/', 'repository:team/app:pull')
    assert len(opener.calls) == 1


def test_bearer_challenge_fetches_token_with_basic_and_retries():
    client, opener = make((401, BEARER_CHALLENGE, b''), token('tok-1'), ok(b'done'), credentials=ALICE)
    status, _h, body = client.request('GET', '/v2/team/app/manifests/1', 'repository:team/app:pull')
    assert (status, body) == (200, b'done')
    assert opener.calls[1] == ('GET', TOKEN_URL_PULL, {'Authorization': ALICE_BASIC}, None)
    assert opener.urls[2] == BASE + '/v2/team/app/manifests/1'
    assert opener.header(2, 'Authorization') == 'Bearer tok-1'
    assert client._token == {'repository:team/app:pull': 'tok-1'}


def test_bearer_token_is_cached_per_scope():
    client, opener = make((401, BEARER_CHALLENGE, b''), token('tok-1'), ok(), ok(),
                          (401, BEARER_CHALLENGE, b''), token('tok-2'), ok(), credentials=ALICE)
    client.request('GET', '/v2/a', 'repository:team/app:pull')
    client.request('GET', '/v2/b', 'repository:team/app:pull')
    assert opener.header(3, 'Authorization') == 'Bearer tok-1'
    client.request('PUT', '/v2/c', 'repository:team/app:pull,push')
    assert opener.urls[5] == ('https://auth.example.internal/token?service=registry.example.internal'
                              '&scope=repository%3Ateam%2Fapp%3Apull%2Cpush')
    assert opener.header(6, 'Authorization') == 'Bearer tok-2'
    assert opener.done()


def test_bearer_access_token_key_and_anonymous_token_request():
    client, opener = make((401, {'www-authenticate': 'Bearer realm="https://auth.example.internal/token"'}, b''),
                          token('anon', key='access_token'), ok())
    client.request('GET', '/v2/', 'repository:team/app:pull')
    # no service in the challenge: only the scope; no credentials: no Authorization
    assert opener.calls[1] == ('GET', 'https://auth.example.internal/token?scope=repository%3Ateam%2Fapp%3Apull',
                               {}, None)
    assert opener.header(2, 'Authorization') == 'Bearer anon'


def test_bearer_service_is_url_quoted():
    challenge = {'WWW-Authenticate': 'Bearer realm="https://auth.example.internal/token",service="Docker registry"'}
    client, opener = make((401, challenge, b''), token(), ok())
    client.request('GET', '/v2/', 'repository:team/app:pull')
    assert opener.urls[1] == ('https://auth.example.internal/token?service=Docker%20registry'
                              '&scope=repository%3Ateam%2Fapp%3Apull')


def test_bearer_rejected_after_token_without_credentials_says_none_given():
    client, _opener = make((401, BEARER_CHALLENGE, b''), token(), (401, BEARER_CHALLENGE, b''))
    with pytest.raises(rc.RegistryError) as err:
        client.request('GET', '/v2/', 'repository:team/app:pull')
    assert str(err.value) == ('registry %s rejected the credentials (401 Unauthorized); none were given' % HOST)


@pytest.mark.parametrize('answer,message', [
    ((401, {}, b''), 'registry %s rejected the credentials (token endpoint answered 401)' % HOST),
    ((500, {}, b'oops'), 'registry %s token endpoint answered HTTP 500' % HOST),
    ((200, {}, b'<html>'), 'registry %s token endpoint sent no JSON' % HOST),
    ((200, {}, b'{"expires_in": 300}'), 'registry %s token endpoint sent no token' % HOST),
])
def test_token_endpoint_failures(answer, message):
    client, opener = make((401, BEARER_CHALLENGE, b''), answer, credentials=ALICE)
    with pytest.raises(rc.RegistryError) as err:
        client.request('GET', '/v2/', 'repository:team/app:pull')
    assert str(err.value) == message
    assert 's3cret' not in str(err.value)
    assert len(opener.calls) == 2  # no retry after a failed token request


def test_bearer_without_realm():
    client, opener = make((401, {'WWW-Authenticate': 'Bearer service="x"'}, b''))
    with pytest.raises(rc.RegistryError, match='sent a Bearer challenge without a realm'):
        client.request('GET', '/v2/', 'repository:team/app:pull')
    assert len(opener.calls) == 1


@pytest.mark.parametrize('headers,shown', [
    ({'WWW-Authenticate': 'Negotiate abc'}, "'negotiate'"),
    ({}, 'None'),
])
def test_unsupported_challenge(headers, shown):
    client, opener = make((401, headers, b''), credentials=ALICE)
    with pytest.raises(rc.RegistryError) as err:
        client.request('GET', '/v2/', 'repository:team/app:pull')
    assert str(err.value) == 'registry %s answered 401 with an unsupported challenge %s' % (HOST, shown)
    assert len(opener.calls) == 1


# --- transport -------------------------------------------------------------------

def test_transport_exception_is_unreachable_with_host():
    client, _opener = make(OSError('[Errno 111] Connection refused'))
    with pytest.raises(rc.RegistryError) as err:
        client.request('GET', '/v2/', 'repository:team/app:pull')
    assert str(err.value) == 'registry %s is unreachable: [Errno 111] Connection refused' % HOST


def test_registry_error_from_opener_passes_unchanged():
    original = rc.RegistryError('custom cause')
    client, _opener = make(original)
    with pytest.raises(rc.RegistryError) as err:
        client.request('GET', '/v2/', 'repository:team/app:pull')
    assert err.value is original


def test_redirect_to_other_host_drops_authorization():
    s3 = 'https://bucket.s3.eu-west-1.amazonaws.com/blob?X-Amz-Signature=abc'
    client, opener = make((401, BASIC_CHALLENGE, b''), (307, {'Location': s3}, b''), ok(b'blob-bytes'),
                          credentials=ALICE)
    status, _h, body = client.request('GET', '/v2/team/app/blobs/' + DIGEST, 'repository:team/app:pull',
                                      headers={'Accept': '*/*'})
    assert (status, body) == (200, b'blob-bytes')
    assert opener.header(1, 'Authorization') == ALICE_BASIC
    assert opener.calls[2] == ('GET', s3, {'Accept': '*/*'}, None)


def test_redirect_drops_lowercase_authorization_and_keeps_data():
    target = 'https://cdn.example.internal/x'
    client, opener = make((308, {'location': target}, b''), (201, {}, b''))
    status, _h, _b = client._send('PUT', BASE + '/v2/x', {'authorization': 'Bearer t', 'Content-Type': 'c'},
                                  data=b'payload')
    assert status == 201
    assert opener.calls[1] == ('PUT', target, {'Content-Type': 'c'}, b'payload')


def test_relative_redirect_is_resolved_against_base():
    client, opener = make((302, {'Location': '/v2/team/app/blobs/elsewhere'}, b''), ok(b'x'))
    client.request('GET', '/v2/team/app/blobs/' + DIGEST, 'repository:team/app:pull')
    assert opener.urls[1] == BASE + '/v2/team/app/blobs/elsewhere'


def test_relative_redirect_plain_http():
    client, opener = make((301, {'Location': '/v2/moved'}, b''), ok(), plain_http=True)
    client.request('GET', '/v2/x', 'scope')
    assert opener.urls[1] == 'http://%s/v2/moved' % HOST


def test_redirect_without_location():
    client, _opener = make((302, {}, b''))
    with pytest.raises(rc.RegistryError, match='registry %s redirected without a Location' % HOST):
        client.request('GET', '/v2/', 'scope')


def test_redirects_are_followed_at_most_three_times():
    loop = (307, {'Location': 'https://other.example.internal/loop'}, b'')
    client, opener = make(loop, loop, loop, loop)
    status, _h, _b = client.request('GET', '/v2/', 'scope')
    assert status == 307
    assert len(opener.calls) == 4
    assert opener.done()


def test_same_host_redirect_keeps_authorization():
    client, opener = make((401, BASIC_CHALLENGE, b''), (307, {'Location': '/v2/team/app/manifests/canonical'}, b''),
                          ok(b'{}'), credentials=ALICE)
    client.request('GET', '/v2/team/app/manifests/1', 'repository:team/app:pull')
    assert opener.urls[2] == BASE + '/v2/team/app/manifests/canonical'
    assert opener.header(2, 'Authorization') == ALICE_BASIC


@pytest.mark.parametrize('responses,expected', [
    ([(307, {'Location': '//cdn.example.internal/blob'}, b''), ok()],
     'https://cdn.example.internal/blob'),
    ([(307, {'Location': 'https://cdn.example.internal/a'}, b''), (302, {'Location': '/b'}, b''), ok()],
     'https://cdn.example.internal/b'),
], ids=['network-path', 'second-hop'])
def test_location_is_resolved_against_the_redirecting_url(responses, expected):
    client, opener = make(*responses)
    client.request('GET', '/v2/team/app/blobs/' + DIGEST, 'repository:team/app:pull')
    assert opener.urls[-1] == expected


# --- manifest ----------------------------------------------------------------------

def test_manifest_absent_is_none():
    client, opener = make((404, {}, b'{"errors": []}'))
    assert client.manifest(REPO, '1') is None
    assert opener.urls == [BASE + '/v2/team/app/manifests/1']


def test_manifest_sends_accept_for_all_manifest_types():
    client, opener = make(ok(b'{"mediaType": "x"}'))
    client.manifest(REPO, 'v1')
    accept = opener.header(0, 'Accept')
    assert accept.split(', ') == list(rc.MANIFEST_TYPES)
    assert opener.calls[0][0] == 'GET'


def test_manifest_digest_from_header_and_media_type_from_body():
    body = json.dumps({'schemaVersion': 2, 'mediaType': OCI_INDEX, 'manifests': []}).encode()
    client, _opener = make(ok(body, {'Docker-Content-Digest': DIGEST, 'Content-Type': 'ignored/type'}))
    digest, media_type, parsed, raw = client.manifest(REPO, '1')
    assert digest == DIGEST
    assert media_type == OCI_INDEX
    assert parsed == {'schemaVersion': 2, 'mediaType': OCI_INDEX, 'manifests': []}
    assert raw == body


def test_manifest_digest_computed_and_media_type_from_content_type():
    body = b'{"schemaVersion": 2, "layers": []}'
    ctype = 'application/vnd.docker.distribution.manifest.v2+json'
    client, _opener = make(ok(body, {'content-type': ctype}))
    digest, media_type, _parsed, _raw = client.manifest(REPO, '1')
    assert digest == sha(body)
    assert digest == 'sha256:' + hashlib.sha256(b'{"schemaVersion": 2, "layers": []}').hexdigest()
    assert media_type == ctype


def test_manifest_other_status_is_an_error():
    client, _opener = make((500, {}, b''))
    with pytest.raises(rc.RegistryError) as err:
        client.manifest(REPO, '1')
    assert str(err.value) == 'registry %s: GET manifest team/app:1 answered HTTP 500' % HOST


def test_manifest_not_json():
    client, _opener = make(ok(b'\x00not json'))
    with pytest.raises(rc.RegistryError, match='manifest team/app:1 is not JSON'):
        client.manifest(REPO, '1')


def test_manifest_uses_pull_scope_for_token():
    client, opener = make((401, BEARER_CHALLENGE, b''), token(), ok(b'{}'))
    client.manifest(REPO, '1')
    assert opener.urls[1] == TOKEN_URL_PULL


# --- blob ----------------------------------------------------------------------------

def test_blob_matching_digest():
    body = b'ztoc bytes'
    client, opener = make(ok(body))
    assert client.blob(REPO, sha(body)) == body
    assert opener.urls == [BASE + '/v2/team/app/blobs/' + sha(body)]


def test_blob_digest_mismatch():
    client, _opener = make(ok(b'tampered'))
    with pytest.raises(rc.RegistryError) as err:
        client.blob(REPO, DIGEST)
    assert str(err.value) == 'registry %s: blob %s does not match its digest' % (HOST, DIGEST)


def test_blob_status_error():
    client, _opener = make((404, {}, b''))
    with pytest.raises(rc.RegistryError, match='GET blob %s answered HTTP 404' % DIGEST):
        client.blob(REPO, DIGEST)


def test_blob_over_limit():
    body = b'x' * 11
    client, _opener = make(ok(body))
    with pytest.raises(rc.RegistryError, match='larger than 10 bytes'):
        client.blob(REPO, sha(body), limit=10)


def test_blob_sha512_digest():
    body = b'sha512 blob'
    digest = 'sha512:' + hashlib.sha512(body).hexdigest()
    client, _opener = make(ok(body))
    assert client.blob(REPO, digest) == body


# --- put / delete ------------------------------------------------------------------

def test_put_manifest_returns_header_digest_and_sends_content_type():
    body = b'{"schemaVersion": 2}'
    client, opener = make((201, {'Docker-Content-Digest': DIGEST}, b''))
    assert client.put_manifest(REPO, 'v1-soci', body, OCI_INDEX) == DIGEST
    method, url, headers, data = opener.calls[0]
    assert (method, url, data) == ('PUT', BASE + '/v2/team/app/manifests/v1-soci', body)
    assert headers == {'Content-Type': OCI_INDEX}


def test_put_manifest_computes_digest_without_header():
    body = b'{"schemaVersion": 2, "manifests": []}'
    client, _opener = make((200, {}, b''))
    assert client.put_manifest(REPO, 'v1', body, OCI_INDEX) == sha(body)


def test_put_manifest_uses_push_scope():
    client, opener = make((401, BEARER_CHALLENGE, b''), token('push-tok'), (201, {}, b''), credentials=ALICE)
    client.put_manifest(REPO, 'v1', b'{}', OCI_INDEX)
    assert opener.urls[1].endswith('&scope=repository%3Ateam%2Fapp%3Apull%2Cpush')
    assert opener.calls[2][2] == {'Content-Type': OCI_INDEX, 'Authorization': 'Bearer push-tok'}
    assert opener.calls[2][3] == b'{}'


def test_put_manifest_error():
    client, _opener = make((400, {}, b'{"errors": [{"code": "MANIFEST_INVALID"}]}'))
    with pytest.raises(rc.RegistryError) as err:
        client.put_manifest(REPO, 'v1', b'{}', OCI_INDEX)
    assert str(err.value) == 'registry %s: PUT manifest team/app:v1 answered HTTP 400' % HOST


@pytest.mark.parametrize('status,expected', [(202, True), (200, True), (404, False)])
def test_delete_manifest(status, expected):
    client, opener = make((status, {}, b''))
    assert client.delete_manifest(REPO, DIGEST) is expected
    assert opener.calls[0][:2] == ('DELETE', BASE + '/v2/team/app/manifests/' + DIGEST)


def test_delete_manifest_405_names_deletes():
    client, _opener = make((405, {}, b''))
    with pytest.raises(rc.RegistryError) as err:
        client.delete_manifest(REPO, DIGEST)
    assert 'does not allow deletes (HTTP 405)' in str(err.value)
    assert HOST in str(err.value)


def test_delete_manifest_other_error():
    client, _opener = make((500, {}, b''))
    with pytest.raises(rc.RegistryError, match='DELETE manifest %s answered HTTP 500' % DIGEST):
        client.delete_manifest(REPO, DIGEST)


def test_delete_manifest_uses_delete_scope():
    client, opener = make((401, BEARER_CHALLENGE, b''), token(), (202, {}, b''))
    client.delete_manifest(REPO, DIGEST)
    assert opener.urls[1].endswith('&scope=repository%3Ateam%2Fapp%3Apull%2Cpush%2Cdelete')


# --- referrers -----------------------------------------------------------------------

REFERRERS = {
    'schemaVersion': 2, 'mediaType': OCI_INDEX,
    'manifests': [
        {'digest': 'sha256:' + '1' * 64, 'artifactType': SOCI},
        {'digest': 'sha256:' + '2' * 64, 'artifactType': 'application/vnd.example.sbom'},
        {'digest': 'sha256:' + '3' * 64},
    ],
}


def test_referrers_api_filtered_by_artifact_type():
    client, opener = make(ok(json.dumps(REFERRERS).encode(), {'Content-Type': OCI_INDEX}))
    found = client.referrers(REPO, DIGEST, SOCI)
    assert found == [{'digest': 'sha256:' + '1' * 64, 'artifactType': SOCI}]
    assert opener.urls == [BASE + '/v2/team/app/referrers/' + DIGEST
                           + '?artifactType=application%2Fvnd.amazon.soci.index.v1%2Bjson']
    assert opener.header(0, 'Accept') == OCI_INDEX


def test_referrers_api_without_filter_returns_all():
    client, opener = make(ok(json.dumps(REFERRERS).encode(), {'Content-Type': OCI_INDEX}))
    assert client.referrers(REPO, DIGEST) == REFERRERS['manifests']
    assert opener.urls == [BASE + '/v2/team/app/referrers/' + DIGEST]


def test_referrers_api_404_falls_back_to_tag_schema():
    tag_index = {'schemaVersion': 2, 'mediaType': OCI_INDEX, 'manifests': [
        {'digest': 'sha256:' + '4' * 64, 'artifactType': SOCI},
        {'digest': 'sha256:' + '5' * 64, 'artifactType': 'other'},
    ]}
    client, opener = make((404, {}, b''), ok(json.dumps(tag_index).encode()))
    found = client.referrers(REPO, DIGEST, SOCI)
    assert found == [{'digest': 'sha256:' + '4' * 64, 'artifactType': SOCI}]
    assert opener.urls[1] == BASE + '/v2/team/app/manifests/sha256-' + 'a' * 64


def test_referrers_neither_api_nor_tag():
    client, opener = make((404, {}, b''), (404, {}, b''))
    assert client.referrers(REPO, DIGEST, SOCI) == []
    assert len(opener.calls) == 2


@pytest.mark.parametrize('first', [
    (200, {'Content-Type': 'text/html'}, b'<html></html>'),
    (200, {'Content-Type': 'application/json'}, b'not json'),
    (400, {}, b''),
], ids=['html', 'bad-json', 'status-400'])
def test_referrers_non_json_answers_fall_back(first):
    client, opener = make(first, (404, {}, b''))
    assert client.referrers(REPO, DIGEST) == []
    assert opener.urls[1] == BASE + '/v2/team/app/manifests/sha256-' + 'a' * 64


def test_referrers_json_without_content_type_is_used():
    client, opener = make(ok(json.dumps({'manifests': [{'digest': 'd'}]}).encode()))
    assert client.referrers(REPO, DIGEST) == [{'digest': 'd'}]
    assert len(opener.calls) == 1


# --- check_access --------------------------------------------------------------------

def test_check_access_with_credentials_on_anonymous_registry_switches_to_basic():
    client, opener = make(ok(), ok(), ok(b'{}'), credentials=ALICE)
    assert client.check_access(REPO) is True
    assert opener.header(0, 'Authorization') is None
    # the credentials are presented at once, not at the first real request
    assert opener.urls[1] == BASE + '/v2/'
    assert opener.header(1, 'Authorization') == ALICE_BASIC
    client.manifest(REPO, '1')
    assert opener.header(2, 'Authorization') == ALICE_BASIC


def test_check_access_bad_credentials_on_anonymous_registry_fail_early():
    client, _opener = make(ok(), (401, BASIC_CHALLENGE, b''), credentials=ALICE)
    with pytest.raises(rc.RegistryError, match='rejected the credentials'):
        client.check_access(REPO)


def test_check_access_anonymous_without_credentials_stays_anonymous():
    client, opener = make(ok(), ok(b'{}'))
    assert client.check_access(REPO) is True
    client.manifest(REPO, '1')
    assert opener.header(1, 'Authorization') is None


def test_check_access_404_on_v2_is_accepted():
    client, _opener = make((404, {}, b''))
    assert client.check_access(REPO) is True


def test_check_access_bearer_keeps_using_the_token():
    client, opener = make((401, BEARER_CHALLENGE, b''), token('t1'), ok(), ok(b'{}'), credentials=ALICE)
    client.check_access(REPO)
    assert opener.urls[0] == BASE + '/v2/'
    assert opener.urls[1] == TOKEN_URL_PULL
    client.manifest(REPO, '1')
    assert opener.header(3, 'Authorization') == 'Bearer t1'


def test_check_access_push_scope():
    client, opener = make((401, BEARER_CHALLENGE, b''), token(), ok(), credentials=ALICE)
    client.check_access(REPO, push=True)
    assert opener.urls[1] == ('https://auth.example.internal/token?service=registry.example.internal'
                              '&scope=repository%3Ateam%2Fapp%3Apull%2Cpush')


def test_check_access_bad_status():
    client, _opener = make((503, {}, b''))
    with pytest.raises(rc.RegistryError) as err:
        client.check_access(REPO)
    assert str(err.value) == 'registry %s answered HTTP 503 to /v2/' % HOST


def test_check_access_bad_basic_credentials():
    client, _opener = make((401, BASIC_CHALLENGE, b''), (401, BASIC_CHALLENGE, b''), credentials=ALICE)
    with pytest.raises(rc.RegistryError, match='rejected the credentials'):
        client.check_access(REPO)


# --- urls_opener -----------------------------------------------------------------------

class _Resp(object):
    def __init__(self, code, headers, body):
        self._code, self.headers, self._body = code, _Headers(headers), body

    def getcode(self):
        return self._code

    def read(self):
        return self._body


class _Headers(dict):
    pass


def test_urls_opener_success(monkeypatch):
    from ansible.module_utils import urls
    seen = {}

    def fake_open_url(url, **kwargs):
        seen['url'] = url
        seen.update(kwargs)
        return _Resp(200, {'Docker-Content-Digest': DIGEST}, b'body')

    monkeypatch.setattr(urls, 'open_url', fake_open_url)
    opener = rc.urls_opener(ca_file='/tmp/ca.pem', timeout=7)
    assert opener('GET', BASE + '/v2/', {'Accept': 'x'}) == (200, {'Docker-Content-Digest': DIGEST}, b'body')
    assert seen == {'url': BASE + '/v2/', 'method': 'GET', 'headers': {'Accept': 'x'}, 'data': None,
                    'validate_certs': True, 'ca_path': '/tmp/ca.pem', 'timeout': 7,
                    'follow_redirects': 'none'}


def test_urls_opener_http_error_becomes_status(monkeypatch):
    import io
    from ansible.module_utils import urls
    from ansible.module_utils.six.moves.urllib.error import HTTPError

    def fake_open_url(url, **kwargs):
        raise HTTPError(url, 401, 'Unauthorized', {'WWW-Authenticate': 'Basic realm="r"'}, io.BytesIO(b'denied'))

    monkeypatch.setattr(urls, 'open_url', fake_open_url)
    status, headers, body = rc.urls_opener()('GET', BASE + '/v2/', {})
    assert status == 401
    assert headers == {'WWW-Authenticate': 'Basic realm="r"'}
    assert body == b'denied'
