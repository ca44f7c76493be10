from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import os
import stat
from types import SimpleNamespace

import pytest

tomllib = pytest.importorskip('tomllib')

from ansible_collections.lazypull.snapshotters.plugins.module_utils import image_tools as it  # noqa: E402
from ansible_collections.lazypull.snapshotters.plugins.module_utils.ecr_auth import EcrAuthError  # noqa: E402
from ansible_collections.lazypull.snapshotters.plugins.module_utils.registry_client import (  # noqa: E402
    Credentials, RegistryClient)

SRC = 'src.example.internal'
DEST = 'dest.example.internal:5000'
ECR = '123456789012.dkr.ecr.eu-west-1.amazonaws.com'
ALICE = Credentials('alice', 's3cret')
ALICE_B64 = 'YWxpY2U6czNjcmV0'  # base64('alice:s3cret')
DIGEST_A = 'sha256:' + 'a' * 64
DIGEST_B = 'sha256:' + 'b' * 64
FAKE_PEM = '-----BEGIN CERTIFICATE-----\nMIIBfakeCAcert\n-----END CERTIFICATE-----\n'
SYSTEM_PEM = '-----BEGIN CERTIFICATE-----\nMIIBsystemroot\n-----END CERTIFICATE-----\n'


def mode(path):
    return stat.S_IMODE(os.stat(str(path)).st_mode)


def read(path):
    with open(str(path)) as handle:
        return handle.read()


def test_argument_spec_hides_the_password():
    assert it.ARGUMENT_SPEC['registry_password']['no_log'] is True
    assert it.ARGUMENT_SPEC['plain_http']['default'] is False
    assert it.REQUIRED_TOGETHER == [('registry_username', 'registry_password')]


# --- TOML --------------------------------------------------------------------------

def test_hosts_toml_full():
    text = it.hosts_toml(DEST, ca_bundle='/run/x/ca-bundle.pem', authorization='Basic ' + ALICE_B64)
    data = tomllib.loads(text)
    url = 'https://' + DEST
    assert data == {
        'server': url,
        'host': {url: {
            'capabilities': ['pull', 'resolve', 'push'],
            'ca': '/run/x/ca-bundle.pem',
            'header': {'Authorization': 'Basic ' + ALICE_B64},
        }},
    }
    assert text.startswith('server = "https://dest.example.internal:5000"\n')
    assert '[host."https://dest.example.internal:5000"]\n' in text
    assert text.endswith('\n')


def test_hosts_toml_minimal_has_a_host_table_and_no_ca_or_header():
    data = tomllib.loads(it.hosts_toml(SRC))
    assert data == {'server': 'https://' + SRC,
                    'host': {'https://' + SRC: {'capabilities': ['pull', 'resolve', 'push']}}}


def test_hosts_toml_plain_http_drops_ca():
    data = tomllib.loads(it.hosts_toml('10.0.0.5:5000', plain_http=True, ca_bundle='/x/ca.pem',
                                       authorization='Basic abc'))
    assert data['server'] == 'http://10.0.0.5:5000'
    assert list(data['host']) == ['http://10.0.0.5:5000']
    table = data['host']['http://10.0.0.5:5000']
    assert 'ca' not in table
    assert table['header'] == {'Authorization': 'Basic abc'}


def test_hosts_toml_ipv6_host():
    data = tomllib.loads(it.hosts_toml('[::1]:5000'))
    assert data['server'] == 'https://[::1]:5000'
    assert 'https://[::1]:5000' in data['host']


@pytest.mark.parametrize('text', [
    'plain',
    'with "double" quotes',
    'back\\slash \\" and \\\\ pairs',
    "single ' quote",
    'tab\tnewline\ncr\r',
    'ctrl \x00 \x01 \x1f \x7f',
    u'caf\u00e9 \u4e2d\u6587',
    '',
])
def test_toml_string_round_trips(text):
    assert tomllib.loads('k = %s' % it.toml_string(text))['k'] == text


def test_toml_string_astral_character():
    text = u'/tmp/\U0001F600/ca-bundle.pem'
    assert tomllib.loads('k = %s' % it.toml_string(text))['k'] == text


def test_toml_string_quotes_are_escaped_in_hosts_toml():
    data = tomllib.loads(it.hosts_toml(SRC, ca_bundle='/odd "dir"\\ca.pem'))
    assert data['host']['https://' + SRC]['ca'] == '/odd "dir"\\ca.pem'


# --- docker config --------------------------------------------------------------------

def test_docker_config():
    text = it.docker_config({DEST: ALICE, ECR: Credentials('AWS', u'p\u00e4ss:w')})
    assert text.endswith('\n')
    data = json.loads(text)
    assert sorted(data) == ['auths']
    assert data['auths'][DEST] == {'auth': ALICE_B64}
    assert base64.b64decode(data['auths'][ECR]['auth']).decode('utf-8') == u'AWS:p\u00e4ss:w'
    assert sorted(data['auths']) == [ECR, DEST]


def test_docker_config_empty():
    assert json.loads(it.docker_config({})) == {'auths': {}}


# --- credentials_for -----------------------------------------------------------------

class FakeEcr(object):
    def __init__(self, error=None):
        self.calls = []
        self.error = error

    def __call__(self, host, region=None, profile=None):
        self.calls.append((host, region, profile))
        if self.error:
            raise self.error
        return Credentials('AWS', 'token-for-' + host), None


def params(**kwargs):
    base = {'registry_username': None, 'registry_password': None, 'ecr': None,
            'ecr_region': None, 'ecr_profile': None}
    base.update(kwargs)
    return base


def test_credentials_for_username_only_for_primary_host():
    ecr = FakeEcr()
    result = it.credentials_for(params(registry_username='alice', registry_password='s3cret'),
                                {SRC, DEST}, DEST, ecr_factory=ecr)
    assert sorted(result) == [DEST]
    assert (result[DEST].username, result[DEST].password) == ('alice', 's3cret')
    assert SRC not in result
    assert ecr.calls == []


def test_credentials_for_nothing_given():
    ecr = FakeEcr()
    assert it.credentials_for(params(), [SRC, DEST], DEST, ecr_factory=ecr) == {}
    assert ecr.calls == []


def test_credentials_for_ecr_host_auto_detected():
    ecr = FakeEcr()
    result = it.credentials_for(params(registry_username='alice', registry_password='s3cret',
                                       ecr_region='eu-central-1', ecr_profile='ci'),
                                [ECR, DEST], DEST, ecr_factory=ecr)
    assert ecr.calls == [(ECR, 'eu-central-1', 'ci')]
    assert result[ECR].password == 'token-for-' + ECR
    assert result[DEST].username == 'alice'


def test_credentials_for_ecr_primary_without_username():
    ecr = FakeEcr()
    result = it.credentials_for(params(), [SRC, ECR], ECR, ecr_factory=ecr)
    assert ecr.calls == [(ECR, None, None)]
    assert sorted(result) == [ECR]


def test_credentials_for_ecr_false_disables():
    ecr = FakeEcr()
    result = it.credentials_for(params(ecr=False, registry_username='alice', registry_password='s3cret'),
                                [ECR, DEST], DEST, ecr_factory=ecr)
    assert ecr.calls == []
    assert sorted(result) == [DEST]


def test_credentials_for_ecr_false_with_ecr_primary():
    ecr = FakeEcr()
    assert it.credentials_for(params(ecr=False), [ECR], ECR, ecr_factory=ecr) == {}
    assert ecr.calls == []


def test_credentials_for_ecr_true_forces_primary_only():
    ecr = FakeEcr()
    result = it.credentials_for(params(ecr=True, ecr_region='us-east-1'), [SRC, DEST], DEST, ecr_factory=ecr)
    assert ecr.calls == [(DEST, 'us-east-1', None)]
    assert sorted(result) == [DEST]
    assert result[DEST].username == 'AWS'


def test_credentials_for_username_wins_over_ecr_true():
    ecr = FakeEcr()
    result = it.credentials_for(params(ecr=True, registry_username='alice', registry_password='s3cret'),
                                [ECR], ECR, ecr_factory=ecr)
    assert ecr.calls == []
    assert result[ECR].username == 'alice'


def test_credentials_for_ecr_error_propagates():
    ecr = FakeEcr(error=EcrAuthError('no token'))
    with pytest.raises(EcrAuthError, match='no token'):
        it.credentials_for(params(), [ECR], ECR, ecr_factory=ecr)


# --- RegistryAccess -------------------------------------------------------------------

class OpenerFactory(object):
    def __init__(self):
        self.calls = []

    def __call__(self, ca_file):
        self.calls.append(ca_file)

        def opener(method, url, headers, data=None):
            raise AssertionError('no network in unit tests')
        opener.ca_file = ca_file
        return opener


@pytest.fixture
def root(tmp_path):
    path = tmp_path / 'root'
    path.mkdir()
    return path


@pytest.fixture
def system_bundle(tmp_path, monkeypatch):
    path = tmp_path / 'system-ca.crt'
    path.write_text(SYSTEM_PEM)
    monkeypatch.setattr(it, 'SYSTEM_BUNDLES', (str(tmp_path / 'absent.crt'), str(path)))
    return path


@pytest.fixture
def ca_file(tmp_path):
    path = tmp_path / 'extra-ca.pem'
    path.write_text(FAKE_PEM)
    return path


def test_registry_access_files_and_modes(root):
    access = it.RegistryAccess({'plain_http': False}, {DEST: ALICE}, [SRC, DEST, SRC],
                               opener_factory=OpenerFactory(), temp_root=str(root))
    try:
        assert os.path.dirname(access.dir) == str(root)
        assert os.path.basename(access.dir).startswith('lazypull-registry-')
        assert mode(access.dir) == 0o700
        assert access.hosts == [DEST, SRC]
        assert access.hosts_dir == os.path.join(access.dir, 'hosts')
        assert access.ca_bundle is None
        assert sorted(os.listdir(access.hosts_dir)) == [DEST, SRC]
        for host in (SRC, DEST):
            host_dir = os.path.join(access.hosts_dir, host)
            assert mode(host_dir) == 0o700
            assert os.listdir(host_dir) == ['hosts.toml']
            toml_path = os.path.join(host_dir, 'hosts.toml')
            assert mode(toml_path) == 0o600
            assert read(toml_path) == it.hosts_toml(host, False, None,
                                                    ALICE.basic() if host == DEST else None)
        dest = tomllib.loads(read(os.path.join(access.hosts_dir, DEST, 'hosts.toml')))
        assert dest['host']['https://' + DEST]['header'] == {'Authorization': 'Basic ' + ALICE_B64}
        src = tomllib.loads(read(os.path.join(access.hosts_dir, SRC, 'hosts.toml')))
        assert 'header' not in src['host']['https://' + SRC]
        config = os.path.join(access.dir, 'docker', 'config.json')
        assert access.docker_config_dir == os.path.dirname(config)
        assert mode(access.docker_config_dir) == 0o700
        assert mode(config) == 0o600
        assert json.loads(read(config)) == {'auths': {DEST: {'auth': ALICE_B64}}}
        assert not os.path.exists(os.path.join(access.dir, 'ca-bundle.pem'))
    finally:
        access.close()
    assert not os.path.exists(access.dir)
    assert list(root.iterdir()) == []


def test_registry_access_plain_http(root, ca_file, system_bundle):
    with it.RegistryAccess({'plain_http': True, 'ca_file': str(ca_file)}, {}, [DEST],
                           opener_factory=OpenerFactory(), temp_root=str(root)) as access:
        data = tomllib.loads(read(os.path.join(access.hosts_dir, DEST, 'hosts.toml')))
    assert data['server'] == 'http://' + DEST
    assert data['host'] == {'http://' + DEST: {'capabilities': ['pull', 'resolve', 'push']}}


def test_registry_access_ca_bundle(root, ca_file, system_bundle):
    with it.RegistryAccess({'ca_file': str(ca_file)}, {DEST: ALICE}, [DEST],
                           opener_factory=OpenerFactory(), temp_root=str(root)) as access:
        assert access.ca_bundle == os.path.join(access.dir, 'ca-bundle.pem')
        assert mode(access.ca_bundle) == 0o600
        bundle = read(access.ca_bundle)
        assert bundle == SYSTEM_PEM + '\n' + FAKE_PEM
        assert bundle.count('BEGIN CERTIFICATE') == 2
        data = tomllib.loads(read(os.path.join(access.hosts_dir, DEST, 'hosts.toml')))
        assert data['host']['https://' + DEST]['ca'] == access.ca_bundle
        assert access.env() == {'DOCKER_CONFIG': access.docker_config_dir, 'SSL_CERT_FILE': access.ca_bundle}
        directory = access.dir
    assert not os.path.exists(directory)


def test_registry_access_ca_bundle_without_system_store(root, ca_file, monkeypatch, tmp_path):
    monkeypatch.setattr(it, 'SYSTEM_BUNDLES', (str(tmp_path / 'none-1'), str(tmp_path / 'none-2')))
    with it.RegistryAccess({'ca_file': str(ca_file)}, {}, [DEST], opener_factory=OpenerFactory(),
                           temp_root=str(root)) as access:
        assert read(access.ca_bundle) == FAKE_PEM


def test_registry_access_missing_ca_file_removes_dir(root, tmp_path):
    missing = str(tmp_path / 'nope.pem')
    with pytest.raises(it.ToolError) as err:
        it.RegistryAccess({'ca_file': missing}, {DEST: ALICE}, [DEST], opener_factory=OpenerFactory(),
                          temp_root=str(root))
    assert str(err.value) == 'ca_file %s does not exist' % missing
    assert list(root.iterdir()) == []


def test_registry_access_non_pem_ca_file(root, tmp_path, system_bundle):
    bad = tmp_path / 'ca.der'
    bad.write_text('just some text, no certificate here\n')
    with pytest.raises(it.ToolError) as err:
        it.RegistryAccess({'ca_file': str(bad)}, {DEST: ALICE}, [DEST], opener_factory=OpenerFactory(),
                          temp_root=str(root))
    assert str(err.value) == 'ca_file %s holds no PEM certificate' % bad
    assert list(root.iterdir()) == []


def test_registry_access_env_has_no_secret(root):
    creds = {DEST: ALICE, ECR: Credentials('AWS', 'ecr-token-value')}
    with it.RegistryAccess({}, creds, [DEST, ECR], opener_factory=OpenerFactory(), temp_root=str(root)) as access:
        env = access.env()
        assert env == {'DOCKER_CONFIG': access.docker_config_dir}
        secrets = it.secrets_of(creds)
        assert secrets  # non-empty, so the loop below checks something
        for value in env.values():
            for secret in secrets:
                assert secret not in value


def test_registry_access_client(root, ca_file, system_bundle):
    factory = OpenerFactory()
    with it.RegistryAccess({'plain_http': True, 'ca_file': str(ca_file)}, {DEST: ALICE}, [SRC, DEST],
                           opener_factory=factory, temp_root=str(root)) as access:
        dest = access.client(DEST)
        assert isinstance(dest, RegistryClient)
        assert access.client(DEST) is dest
        assert dest.credentials is ALICE
        assert dest.base == 'http://' + DEST
        assert dest.opener.ca_file == access.ca_bundle
        src = access.client(SRC)
        assert src.credentials is None
        assert factory.calls == [access.ca_bundle, access.ca_bundle]


def test_registry_access_close_twice_and_context_exit_on_error(root):
    with pytest.raises(RuntimeError):
        with it.RegistryAccess({}, {}, [SRC], opener_factory=OpenerFactory(), temp_root=str(root)) as access:
            assert os.path.isdir(access.dir)
            raise RuntimeError('module failed')
    assert not os.path.exists(access.dir)
    access.close()  # idempotent
    assert list(root.iterdir()) == []


def test_registry_access_dir_is_private_even_with_open_umask(root):
    old = os.umask(0)
    try:
        access = it.RegistryAccess({}, {DEST: ALICE}, [DEST], opener_factory=OpenerFactory(), temp_root=str(root))
    finally:
        os.umask(old)
    try:
        assert mode(access.dir) == 0o700
        assert mode(os.path.join(access.hosts_dir, DEST)) == 0o700
        assert mode(os.path.join(access.hosts_dir, DEST, 'hosts.toml')) == 0o600
        assert mode(os.path.join(access.docker_config_dir, 'config.json')) == 0o600
    finally:
        access.close()


def test_secrets_of():
    creds = {DEST: ALICE, ECR: Credentials('AWS', 'tok')}
    assert it.secrets_of(creds) == {'s3cret', ALICE_B64, 'tok', base64.b64encode(b'AWS:tok').decode()}
    assert it.secrets_of({}) == set()


# --- ToolRunner ---------------------------------------------------------------------------

class FakeRun(object):
    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def __call__(self, argv, env, timeout):
        self.calls.append((list(argv), env, timeout))
        return self.answers.pop(0)


def test_tool_runner_records_calls():
    run = FakeRun((0, 'out', 'err'), (0, '', ''))
    runner = it.ToolRunner(run, timeout=99)
    assert runner.run(['/usr/bin/ctr', 'version'], env={'A': '1'}) == (0, 'out', 'err')
    runner.run(['/usr/bin/ctr', 'images', 'ls'])
    assert run.calls == [(['/usr/bin/ctr', 'version'], {'A': '1'}, 99), (['/usr/bin/ctr', 'images', 'ls'], {}, 99)]
    assert [c['cmd'] for c in runner.calls] == [['/usr/bin/ctr', 'version'], ['/usr/bin/ctr', 'images', 'ls']]
    assert [c['rc'] for c in runner.calls] == [0, 0]
    assert all(isinstance(c['seconds'], float) and c['seconds'] >= 0 for c in runner.calls)


def test_tool_runner_failure_has_command_and_stderr_tail():
    err = '\n'.join('line %d' % i for i in range(20)) + '\n\n'
    runner = it.ToolRunner(FakeRun((1, 'ignored stdout', err)))
    with pytest.raises(it.ToolError) as exc:
        runner.run(['/usr/local/bin/ctr-remote', 'image', 'optimize', 'a', 'b'])
    expected_tail = '\n'.join('line %d' % i for i in range(8, 20))
    assert str(exc.value) == ('ctr-remote failed (rc=1): /usr/local/bin/ctr-remote image optimize a b\n'
                              + expected_tail)
    assert 'line 7' not in str(exc.value)
    assert 'ignored stdout' not in str(exc.value)
    assert runner.calls[0]['rc'] == 1


def test_tool_runner_failure_uses_stdout_without_stderr_and_what():
    runner = it.ToolRunner(FakeRun((2, 'fatal: from stdout', '')))
    with pytest.raises(it.ToolError) as exc:
        runner.run(['soci', 'push'], what='soci push')
    assert str(exc.value) == 'soci push failed (rc=2): soci push\nfatal: from stdout'


def test_tool_runner_check_false_returns():
    runner = it.ToolRunner(FakeRun((3, 'o', 'e')))
    assert runner.run(['x'], check=False) == (3, 'o', 'e')
    assert runner.calls[0]['rc'] == 3


@pytest.mark.parametrize('text,lines,expected', [
    (None, 12, ''),
    ('', 12, ''),
    ('  a\nb\nc  \n', 2, 'b\nc'),
    ('one', 12, 'one'),
])
def test_tail(text, lines, expected):
    assert it.tail(text, lines) == expected


class FakeModule(object):
    def __init__(self, bins):
        self.bins = bins
        self.bin_calls = []
        self.run_calls = []

    def get_bin_path(self, name, required=False, opt_dirs=None):
        self.bin_calls.append((name, required, opt_dirs))
        return self.bins.get(name)

    def run_command(self, cmd, environ_update=None):
        self.run_calls.append((cmd, environ_update))
        return 0, 'ok', ''


def test_module_run_command_wraps_with_timeout():
    module = FakeModule({'timeout': '/usr/bin/timeout'})
    run = it.module_run_command(module)
    assert run(['ctr', 'version'], {'A': '1'}, 60) == (0, 'ok', '')
    assert module.run_calls == [(['/usr/bin/timeout', '--kill-after=30', '60', 'ctr', 'version'], {'A': '1'})]


@pytest.mark.parametrize('bins,timeout', [({}, 60), ({'timeout': '/usr/bin/timeout'}, 0)])
def test_module_run_command_without_timeout(bins, timeout):
    module = FakeModule(bins)
    it.module_run_command(module)(['ctr', 'version'], {}, timeout)
    assert module.run_calls == [(['ctr', 'version'], {})]


# --- find_binary ---------------------------------------------------------------------------

def test_find_binary_explicit_executable(tmp_path):
    path = tmp_path / 'ctr'
    path.write_text('#!/bin/sh\n')
    path.chmod(0o755)
    finder = FakeModule({})
    assert it.find_binary(finder, 'ctr', configured=str(path)) == str(path)
    assert finder.bin_calls == []


@pytest.mark.parametrize('kind', ['not-executable', 'missing', 'directory'])
def test_find_binary_explicit_bad_path(tmp_path, kind):
    path = tmp_path / 'ctr'
    if kind == 'not-executable':
        path.write_text('#!/bin/sh\n')
        path.chmod(0o644)
    elif kind == 'directory':
        path.mkdir()
    with pytest.raises(it.ToolError) as err:
        it.find_binary(FakeModule({'ctr': '/usr/bin/ctr'}), 'ctr', configured=str(path))
    assert str(err.value) == '%s is not an executable file' % path


def test_find_binary_via_module():
    module = FakeModule({'ctr-remote': '/usr/local/bin/ctr-remote'})
    assert it.find_binary(module, 'ctr-remote') == '/usr/local/bin/ctr-remote'
    assert module.bin_calls == [('ctr-remote', False, ['/usr/local/bin', '/usr/local/sbin'])]


def test_find_binary_via_plain_finder():
    calls = []

    def finder(name, required=False, opt_dirs=None):
        calls.append((name, required, opt_dirs))
        return '/opt/bin/' + name

    assert it.find_binary(finder, 'soci') == '/opt/bin/soci'
    assert calls == [('soci', False, ['/usr/local/bin', '/usr/local/sbin'])]


def test_find_binary_missing_names_the_option():
    with pytest.raises(it.ToolError) as err:
        it.find_binary(FakeModule({}), 'ctr-remote')
    assert str(err.value) == ('ctr-remote not found on PATH or in /usr/local/bin '
                              '(install it or set ctr_remote_path)')


def test_find_binary_missing_not_required():
    assert it.find_binary(FakeModule({}), 'nerdctl', required=False) is None


# --- platforms and commands ------------------------------------------------------------------

@pytest.mark.parametrize('platforms,expected', [
    (None, []),
    ([], []),
    (['all'], ['--all-platforms']),
    (['linux/amd64'], ['--platform', 'linux/amd64']),
    (['linux/amd64', 'linux/arm64/v8'], ['--platform', 'linux/amd64', '--platform', 'linux/arm64/v8']),
])
def test_platform_args(platforms, expected):
    assert it.platform_args(platforms) == expected


@pytest.mark.parametrize('platforms', [
    [], ['all'], ['linux/amd64'], ['linux/arm64/v8', 'linux/arm/v7', 'windows/amd64', 'linux/386', 'linux/ppc64le',
                                   'linux/x86_64'],
])
def test_validate_platforms_good(platforms):
    assert it.validate_platforms(platforms) is None


@pytest.mark.parametrize('bad', ['Linux/amd64', 'linux', 'linux/', 'linux/amd64/', 'linux/amd64 ', 'linux/arm64/v8/x',
                                 '/amd64', 'linux/arm-64', 'al'])
def test_validate_platforms_bad(bad):
    with pytest.raises(ValueError) as err:
        it.validate_platforms(['linux/amd64', bad])
    assert str(err.value) == 'platforms: %r is not os/arch[/variant] (e.g. linux/amd64)' % bad


@pytest.mark.parametrize('platforms', [['all', 'linux/amd64'], ['linux/amd64', 'all'], ['all', 'all']])
def test_validate_platforms_all_combined(platforms):
    with pytest.raises(ValueError, match="'all' cannot be combined with other platforms"):
        it.validate_platforms(platforms)


CTR_PARAMS = {'containerd_address': '/run/containerd/containerd.sock', 'namespace': 'lazypull'}
ACCESS = SimpleNamespace(hosts_dir='/tmp/lazypull-registry-x/hosts')


def test_ctr_prefix():
    assert it.ctr_prefix('/usr/bin/ctr', CTR_PARAMS) == ['/usr/bin/ctr', '--address', '/run/containerd/containerd.sock',
                                                         '--namespace', 'lazypull']


def test_pull_command():
    cmd = it.pull_command('/usr/bin/ctr', dict(CTR_PARAMS, plain_http=False), SRC + '/app:1', ACCESS, ['linux/amd64'])
    assert cmd == ['/usr/bin/ctr', '--address', '/run/containerd/containerd.sock', '--namespace', 'lazypull',
                   'image', 'pull', '--hosts-dir', '/tmp/lazypull-registry-x/hosts',
                   '--platform', 'linux/amd64', SRC + '/app:1']


def test_pull_command_plain_http_and_flag():
    cmd = it.pull_command('ctr-remote', dict(CTR_PARAMS, plain_http=True), DEST + '/app:1', ACCESS, ['all'],
                          hosts_dir_flag='--hosts-dir-x')
    assert cmd == ['ctr-remote', '--address', '/run/containerd/containerd.sock', '--namespace', 'lazypull',
                   'image', 'pull', '--hosts-dir-x', '/tmp/lazypull-registry-x/hosts', '--plain-http',
                   '--all-platforms', DEST + '/app:1']


def test_push_command():
    cmd = it.push_command('/usr/bin/ctr', CTR_PARAMS, DEST + '/app:1-esgz', 'local/app:1-esgz', ACCESS, [])
    assert cmd == ['/usr/bin/ctr', '--address', '/run/containerd/containerd.sock', '--namespace', 'lazypull',
                   'image', 'push', '--hosts-dir', '/tmp/lazypull-registry-x/hosts',
                   DEST + '/app:1-esgz', 'local/app:1-esgz']


def test_push_command_plain_http():
    cmd = it.push_command('ctr', dict(CTR_PARAMS, plain_http=True), 'r/a:1', 'l/a:1', ACCESS, ['linux/arm64'])
    assert cmd[5:] == ['image', 'push', '--hosts-dir', '/tmp/lazypull-registry-x/hosts', '--plain-http',
                       '--platform', 'linux/arm64', 'r/a:1', 'l/a:1']


@pytest.mark.parametrize('stdout,expected', [
    ('pushed %s\nindex %s\n' % (DIGEST_A, DIGEST_B), DIGEST_B),
    ('digest: %s' % DIGEST_A, DIGEST_A),
    ('nothing here', None),
    ('', None),
    (None, None),
    ('sha256:' + 'A' * 64, None),
    ('sha256:' + 'a' * 63, None),
])
def test_parse_digest_line(stdout, expected):
    assert it.parse_digest_line(stdout) == expected
