from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import datetime
import sys

import pytest

boto3 = pytest.importorskip('boto3')
from botocore.exceptions import NoCredentialsError, ProfileNotFound  # noqa: E402
from botocore.stub import Stubber  # noqa: E402

from ansible_collections.lazypull.snapshotters.plugins.module_utils import ecr_auth  # noqa: E402
from ansible_collections.lazypull.snapshotters.plugins.module_utils.registry_client import Credentials  # noqa: E402

ACCOUNT = '123456789012'
HOST = '%s.dkr.ecr.eu-west-1.amazonaws.com' % ACCOUNT
SECRET = 'ecr-secret-token-value'
TOKEN = 'QVdTOmVjci1zZWNyZXQtdG9rZW4tdmFsdWU='  # base64('AWS:ecr-secret-token-value')
EXPIRES = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)


def b64(text):
    return base64.b64encode(text if isinstance(text, bytes) else text.encode('utf-8')).decode('ascii')


# --- parse_ecr_host ------------------------------------------------------------------

@pytest.mark.parametrize('host,expected', [
    (HOST, (ACCOUNT, 'eu-west-1')),
    (HOST + ':443', (ACCOUNT, 'eu-west-1')),
    ('000000000001.dkr.ecr-fips.us-gov-west-1.amazonaws.com', ('000000000001', 'us-gov-west-1')),
    ('123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn', (ACCOUNT, 'cn-north-1')),
    ('123456789012.dkr.ecr.cn-northwest-1.amazonaws.com.cn:5000', (ACCOUNT, 'cn-northwest-1')),
])
def test_parse_ecr_host_valid(host, expected):
    assert ecr_auth.parse_ecr_host(host) == expected


@pytest.mark.parametrize('host', [
    'registry.example.internal',
    'registry.example.internal:5000',
    'localhost',
    'public.ecr.aws',
    '12345678901.dkr.ecr.eu-west-1.amazonaws.com',       # 11 digits
    '1234567890123.dkr.ecr.eu-west-1.amazonaws.com',     # 13 digits
    'x123456789012.dkr.ecr.eu-west-1.amazonaws.com',
    '123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.example',
    '123456789012.dkr.ecr.eu-west-1.amazonaws.com.cn.cn',
    '123456789012.dkr.ecr.eu_west_1.amazonaws.com',
    '123456789012.ecr.eu-west-1.amazonaws.com',
    '123456789012.dkr.ecr.amazonaws.com',
    '',
])
def test_parse_ecr_host_invalid(host):
    assert ecr_auth.parse_ecr_host(host) is None


# --- ecr_credentials with botocore's Stubber -------------------------------------------

class FakeSession(object):
    def __init__(self, client):
        self._client = client
        self.client_calls = []

    def client(self, name, **kwargs):
        self.client_calls.append((name, kwargs))
        return self._client


class Factory(object):
    """session_factory: records its kwargs, returns a FakeSession around `client`."""

    def __init__(self, client):
        self.session = FakeSession(client)
        self.calls = []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        return self.session


@pytest.fixture
def stubbed():
    client = boto3.session.Session(region_name='eu-west-1', aws_access_key_id='x',
                                   aws_secret_access_key='y').client('ecr')
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def auth_data(token=TOKEN, expires=EXPIRES):
    item = {'proxyEndpoint': 'https://' + HOST, 'expiresAt': expires}
    if token is not None:
        item['authorizationToken'] = token
    return {'authorizationData': [item]}


def test_ecr_credentials_decodes_token(stubbed):
    client, stubber = stubbed
    stubber.add_response('get_authorization_token', auth_data(), expected_params={'registryIds': [ACCOUNT]})
    factory = Factory(client)
    creds, expires = ecr_auth.ecr_credentials(HOST, session_factory=factory)
    assert isinstance(creds, Credentials)
    assert (creds.username, creds.password) == ('AWS', SECRET)
    assert creds.basic() == 'Basic ' + TOKEN
    assert expires == EXPIRES
    assert factory.calls == [{'region': 'eu-west-1', 'profile': None}]
    assert factory.session.client_calls == [('ecr', {'region_name': 'eu-west-1'})]
    assert SECRET not in repr(creds)


def test_ecr_credentials_region_and_profile_override(stubbed):
    client, stubber = stubbed
    stubber.add_response('get_authorization_token', auth_data(), expected_params={'registryIds': [ACCOUNT]})
    factory = Factory(client)
    ecr_auth.ecr_credentials(HOST + ':443', region='us-east-2', profile='ci', session_factory=factory)
    assert factory.calls == [{'region': 'us-east-2', 'profile': 'ci'}]
    assert factory.session.client_calls == [('ecr', {'region_name': 'us-east-2'})]


def test_ecr_credentials_non_ecr_host_with_region_sends_no_registry_ids(stubbed):
    client, stubber = stubbed
    stubber.add_response('get_authorization_token', auth_data(), expected_params={})
    creds, _expires = ecr_auth.ecr_credentials('ecr-proxy.example.internal', region='eu-west-1',
                                               session_factory=Factory(client))
    assert creds.password == SECRET


def test_ecr_credentials_service_error_names_code_not_secret(stubbed):
    client, stubber = stubbed
    stubber.add_client_error('get_authorization_token', service_error_code='AccessDeniedException',
                             service_message='User is not authorized to perform ecr:GetAuthorizationToken',
                             http_status_code=400, expected_params={'registryIds': [ACCOUNT]})
    with pytest.raises(ecr_auth.EcrAuthError) as err:
        ecr_auth.ecr_credentials(HOST, session_factory=Factory(client))
    msg = str(err.value)
    assert msg == ('ecr.get_authorization_token for %s failed: AccessDeniedException: '
                   'User is not authorized to perform ecr:GetAuthorizationToken' % HOST)
    assert SECRET not in msg and TOKEN not in msg


def test_ecr_credentials_empty_authorization_data(stubbed):
    client, stubber = stubbed
    stubber.add_response('get_authorization_token', {'authorizationData': []})
    with pytest.raises(ecr_auth.EcrAuthError) as err:
        ecr_auth.ecr_credentials(HOST, session_factory=Factory(client))
    assert str(err.value) == 'ecr.get_authorization_token for %s returned no token' % HOST


def test_ecr_credentials_missing_authorization_data_key(stubbed):
    client, stubber = stubbed
    stubber.add_response('get_authorization_token', {})
    with pytest.raises(ecr_auth.EcrAuthError, match='returned no token'):
        ecr_auth.ecr_credentials(HOST, session_factory=Factory(client))


def test_ecr_credentials_entry_without_token(stubbed):
    client, stubber = stubbed
    stubber.add_response('get_authorization_token', auth_data(token=None))
    with pytest.raises(ecr_auth.EcrAuthError, match='returned no token'):
        ecr_auth.ecr_credentials(HOST, session_factory=Factory(client))


@pytest.mark.parametrize('token,message,secret', [
    ('!!!not-base64!!!', 'returned a token that is not base64', 'not-base64'),
    (b64(b'\xff\xfe' + SECRET.encode()), 'returned a token that is not base64', SECRET),
    (b64('AWS' + SECRET), 'returned a token without user:password', SECRET),
    (b64('AWS:'), 'returned a token without user:password', 'AWS:'),
], ids=['not-base64', 'not-utf8', 'no-colon', 'empty-password'])
def test_ecr_credentials_bad_token(stubbed, token, message, secret):
    client, stubber = stubbed
    stubber.add_response('get_authorization_token', auth_data(token=token))
    with pytest.raises(ecr_auth.EcrAuthError) as err:
        ecr_auth.ecr_credentials(HOST, session_factory=Factory(client))
    msg = str(err.value)
    assert msg == 'ecr.get_authorization_token for %s %s' % (HOST, message)
    assert secret not in msg
    assert token not in msg


def test_region_missing_for_non_ecr_host():
    def factory(**kwargs):
        raise AssertionError('no session may be made without a region')

    with pytest.raises(ecr_auth.EcrAuthError) as err:
        ecr_auth.ecr_credentials('registry.example.internal', session_factory=factory)
    assert str(err.value) == 'cannot tell the AWS region of registry.example.internal: set ecr_region'
    assert 'ecr_region' in str(err.value)


@pytest.mark.parametrize('exc,brief', [
    (NoCredentialsError(), 'NoCredentialsError: Unable to locate credentials'),
    (ProfileNotFound(profile='nope'), 'ProfileNotFound: The config profile (nope) could not be found'),
    (RuntimeError('boom'), 'RuntimeError: boom'),
])
def test_session_errors_are_wrapped(exc, brief):
    def factory(**kwargs):
        raise exc

    with pytest.raises(ecr_auth.EcrAuthError) as err:
        ecr_auth.ecr_credentials(HOST, session_factory=factory)
    assert str(err.value) == 'ecr.get_authorization_token for %s failed: %s' % (HOST, brief)


def test_ecr_auth_error_from_factory_is_not_wrapped():
    original = ecr_auth.EcrAuthError('ECR access needs boto3')

    def factory(**kwargs):
        raise original

    with pytest.raises(ecr_auth.EcrAuthError) as err:
        ecr_auth.ecr_credentials(HOST, session_factory=factory)
    assert err.value is original


def test_brief_without_error_dict():
    class Odd(Exception):
        response = {'Error': {}}

    # an empty Error dict is falsy: falls back to class and message
    assert ecr_auth._brief(Odd('m')) == 'Odd: m'

    class WithCodeOnly(Exception):
        response = {'Error': {'Code': 'Throttling'}}

    assert ecr_auth._brief(WithCodeOnly('ignored')) == 'Throttling: '


def test_secret_never_in_any_exception_message(stubbed):
    """Every failure path, with a token that holds SECRET: no message shows it."""
    client, stubber = stubbed
    stubber.add_client_error('get_authorization_token', service_error_code='AccessDeniedException',
                             service_message='denied')
    stubber.add_response('get_authorization_token', {'authorizationData': []})
    stubber.add_response('get_authorization_token', auth_data(token='%%' + SECRET))
    stubber.add_response('get_authorization_token', auth_data(token=b64('AWS' + SECRET)))
    stubber.add_response('get_authorization_token', auth_data(token=b64(b'\xff' + SECRET.encode())))
    messages = []
    for _attempt in range(5):
        with pytest.raises(ecr_auth.EcrAuthError) as err:
            ecr_auth.ecr_credentials(HOST, session_factory=Factory(client))
        messages.append(str(err.value))
        messages.append(repr(err.value))
    assert len(set(messages)) >= 4
    for msg in messages:
        assert SECRET not in msg
        assert HOST in msg


# --- default_session_factory ----------------------------------------------------------

def test_default_session_factory_makes_a_boto3_session(monkeypatch, tmp_path):
    monkeypatch.setenv('AWS_CONFIG_FILE', str(tmp_path / 'config'))
    monkeypatch.setenv('AWS_SHARED_CREDENTIALS_FILE', str(tmp_path / 'credentials'))
    session = ecr_auth.default_session_factory(region='ap-southeast-2')
    assert isinstance(session, boto3.session.Session)
    assert session.region_name == 'ap-southeast-2'


def test_default_session_factory_without_boto3(monkeypatch):
    monkeypatch.setitem(sys.modules, 'boto3', None)
    with pytest.raises(ecr_auth.EcrAuthError) as err:
        ecr_auth.default_session_factory(region='eu-west-1')
    assert 'needs boto3' in str(err.value)
    with pytest.raises(ecr_auth.EcrAuthError, match='pip install boto3'):
        ecr_auth.ecr_credentials(HOST)


def test_ecr_credentials_against_moto(monkeypatch, tmp_path):
    moto = pytest.importorskip('moto')
    monkeypatch.setenv('AWS_CONFIG_FILE', str(tmp_path / 'config'))
    monkeypatch.setenv('AWS_SHARED_CREDENTIALS_FILE', str(tmp_path / 'credentials'))
    monkeypatch.setenv('AWS_ACCESS_KEY_ID', 'testing')
    monkeypatch.setenv('AWS_SECRET_ACCESS_KEY', 'testing')
    monkeypatch.delenv('AWS_PROFILE', raising=False)
    with moto.mock_aws():
        creds, expires = ecr_auth.ecr_credentials(HOST)
    assert (creds.username, creds.password) == ('AWS', '%s-auth-token' % ACCOUNT)
    assert expires.year == 2015
