# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)
"""What the image modules share: connection and registry options, private
registry access files, and the one seam to the binaries (ctr, ctr-remote,
nerdctl, soci).

Credentials never go on a command line. For each run a private directory
(0700) is made and removed afterwards:
- hosts/<host>/hosts.toml  containerd's registry host config with the
  Authorization header (ctr, ctr-remote, nerdctl via --hosts-dir);
- docker/config.json       for soci push and nerdctl (DOCKER_CONFIG);
- ca-bundle.pem            the system CAs plus `ca_file` (SSL_CERT_FILE for
  Go tools that read only the system store, and the module's own HTTPS).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import os
import re
import shutil
import tempfile
import time

from ansible_collections.lazypull.snapshotters.plugins.module_utils.ecr_auth import (
    EcrAuthError, ecr_credentials, parse_ecr_host)
from ansible_collections.lazypull.snapshotters.plugins.module_utils.image_reference import ImageReferenceError
from ansible_collections.lazypull.snapshotters.plugins.module_utils.registry_client import (
    Credentials, RegistryClient, RegistryError, urls_opener)

# Declared once, used by every image module (doc fragment: lazypull.snapshotters.image_tools).
ARGUMENT_SPEC = dict(
    containerd_address=dict(type='str', default='/run/containerd/containerd.sock'),
    namespace=dict(type='str', default='lazypull'),
    ctr_path=dict(type='path'),
    ctr_remote_path=dict(type='path'),
    nerdctl_path=dict(type='path'),
    soci_path=dict(type='path'),
    ca_file=dict(type='path'),
    plain_http=dict(type='bool', default=False),
    registry_username=dict(type='str', aliases=['username']),
    registry_password=dict(type='str', no_log=True, aliases=['password']),
    ecr=dict(type='bool'),
    ecr_region=dict(type='str'),
    ecr_profile=dict(type='str'),
    keep_local=dict(type='bool', default=False),
    command_timeout=dict(type='int', default=3600),
)
REQUIRED_TOGETHER = [('registry_username', 'registry_password')]

SYSTEM_BUNDLES = ('/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt',
                  '/etc/ssl/cert.pem')


class ToolError(Exception):
    """A tool failed; the message has the command (secret-free) and its stderr tail."""


def tail(text, lines=12):
    return '\n'.join((text or '').strip().splitlines()[-lines:])


class ToolRunner(object):
    """The seam to the binaries: `run(argv, env)` -> stdout, or ToolError."""

    def __init__(self, run_command, timeout=3600):
        self._run_command = run_command
        self.timeout = timeout
        self.calls = []  # (argv, seconds): what ran, for results and tests

    def run(self, argv, env=None, check=True, what=None):
        started = time.monotonic()
        rc, out, err = self._run_command(argv, env or {}, self.timeout)
        self.calls.append({'cmd': list(argv), 'seconds': round(time.monotonic() - started, 3), 'rc': rc})
        if check and rc != 0:
            name = what or os.path.basename(argv[0])
            raise ToolError('%s failed (rc=%s): %s\n%s' % (name, rc, ' '.join(argv), tail(err or out)))
        return rc, out, err


def module_run_command(module):
    """ToolRunner's run_command over AnsibleModule.run_command (which also
    masks no_log values in anything it reports)."""
    def run_command(argv, env, timeout):
        # `timeout` bounds the tool; coreutils timeout keeps run_command simple.
        timeout_bin = module.get_bin_path('timeout')
        cmd = ([timeout_bin, '--kill-after=30', str(timeout)] + list(argv)) if timeout_bin and timeout else argv
        return module.run_command(cmd, environ_update=env)
    return run_command


def find_binary(module_or_finder, name, configured=None, required=True):
    """An explicit path must exist; otherwise search PATH (+ /usr/local/bin)."""
    if configured:
        if not os.path.isfile(configured) or not os.access(configured, os.X_OK):
            raise ToolError('%s is not an executable file' % configured)
        return configured
    finder = getattr(module_or_finder, 'get_bin_path', module_or_finder)
    found = finder(name, required=False, opt_dirs=['/usr/local/bin', '/usr/local/sbin'])
    if not found and required:
        raise ToolError('%s not found on PATH or in /usr/local/bin (install it or set %s_path)'
                        % (name, name.replace('-', '_')))
    return found


def toml_string(text):
    """A TOML basic string. JSON's escapes of quotes, backslashes and control
    characters are valid TOML; other characters stay literal (TOML has no
    surrogate-pair escapes)."""
    return json.dumps(text, ensure_ascii=False).replace('\x7f', '\\u007f')


def hosts_toml(host, plain_http=False, ca_bundle=None, authorization=None):
    """containerd hosts.toml for one registry. Settings go in a [host."URL"]
    table: containerd 1.7 rejects a file without one ("invalid `host` tree")."""
    url = '%s://%s' % ('http' if plain_http else 'https', host)
    table = 'host.%s' % toml_string(url)
    lines = ['server = %s' % toml_string(url), '', '[%s]' % table,
             'capabilities = ["pull", "resolve", "push"]']
    if ca_bundle and not plain_http:
        lines.append('ca = %s' % toml_string(ca_bundle))
    if authorization:
        lines += ['', '[%s.header]' % table, 'Authorization = %s' % toml_string(authorization)]
    return '\n'.join(lines) + '\n'


def docker_config(credentials_by_host):
    auths = {}
    for host, creds in sorted(credentials_by_host.items()):
        token = base64.b64encode(('%s:%s' % (creds.username, creds.password)).encode('utf-8'))
        auths[host] = {'auth': token.decode('ascii')}
    return json.dumps({'auths': auths}, indent=2, sort_keys=True) + '\n'


def _write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as handle:
        handle.write(text)


def credentials_for(params, hosts, primary_host, ecr_factory=ecr_credentials):
    """{host: Credentials}. Username/password belong to `primary_host`
    (the registry written to), never sent to another registry; ECR hosts
    get a token each (`ecr: false` turns that off, `ecr: true` requires it)."""
    result = {}
    for host in hosts:
        if params.get('registry_username') and host == primary_host:
            result[host] = Credentials(params['registry_username'], params['registry_password'])
            continue
        wants_ecr = params.get('ecr')
        if wants_ecr is False:
            continue
        if parse_ecr_host(host) or (wants_ecr and host == primary_host):
            creds, _expires = ecr_factory(host, region=params.get('ecr_region'),
                                          profile=params.get('ecr_profile'))
            result[host] = creds
    return result


class RegistryAccess(object):
    """Private files for one module run; use as a context manager."""

    def __init__(self, params, credentials, hosts, opener_factory=urls_opener, temp_root=None):
        self.params = params
        self.credentials = credentials
        self.hosts = sorted(set(hosts))
        self.opener_factory = opener_factory
        self.dir = tempfile.mkdtemp(prefix='lazypull-registry-', dir=temp_root)
        os.chmod(self.dir, 0o700)
        self.hosts_dir = os.path.join(self.dir, 'hosts')
        self.docker_config_dir = os.path.join(self.dir, 'docker')
        self.ca_bundle = None
        self._clients = {}
        try:
            self._write()
        except Exception:
            self.close()
            raise

    def _write(self):
        ca_file = self.params.get('ca_file')
        if ca_file:
            if not os.path.isfile(ca_file):
                raise ToolError('ca_file %s does not exist' % ca_file)
            parts = []
            for bundle in SYSTEM_BUNDLES:
                if os.path.isfile(bundle):
                    with open(bundle) as handle:
                        parts.append(handle.read())
                    break
            with open(ca_file) as handle:
                extra = handle.read()
            if 'BEGIN CERTIFICATE' not in extra:
                raise ToolError('ca_file %s holds no PEM certificate' % ca_file)
            parts.append(extra)
            self.ca_bundle = os.path.join(self.dir, 'ca-bundle.pem')
            _write_private(self.ca_bundle, '\n'.join(p.strip() + '\n' for p in parts))
        for host in self.hosts:
            host_dir = os.path.join(self.hosts_dir, host)
            os.makedirs(host_dir, mode=0o700)
            creds = self.credentials.get(host)
            _write_private(os.path.join(host_dir, 'hosts.toml'),
                           hosts_toml(host, self.params.get('plain_http'), self.ca_bundle,
                                      creds.basic() if creds else None))
        os.makedirs(self.docker_config_dir, mode=0o700)
        _write_private(os.path.join(self.docker_config_dir, 'config.json'), docker_config(self.credentials))

    def env(self):
        """Environment for the tools: never credentials themselves, only paths."""
        env = {'DOCKER_CONFIG': self.docker_config_dir}
        if self.ca_bundle:
            env['SSL_CERT_FILE'] = self.ca_bundle
        return env

    def client(self, host):
        if host not in self._clients:
            self._clients[host] = RegistryClient(host, self.opener_factory(self.ca_bundle),
                                                 self.credentials.get(host), self.params.get('plain_http'))
        return self._clients[host]

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def secrets_of(credentials):
    """Every string that must never be printed: passwords and their encodings."""
    values = set()
    for creds in credentials.values():
        values.add(creds.password)
        values.add(creds.basic().split(' ', 1)[1])
    return values


def module_runner(module, params):
    """The ToolRunner of one module run (bounded by O(command_timeout))."""
    return ToolRunner(module_run_command(module), params['command_timeout'])


def module_registry_access(module, params, hosts, write_host):
    """RegistryAccess to these registries; the credentials' secrets become
    no_log values before any tool or request can print them."""
    creds = credentials_for(params, set(hosts), write_host)
    module.no_log_values.update(secrets_of(creds))
    return RegistryAccess(params, creds, hosts)


def run_or_fail(module, body, input_errors=()):
    """body() -> the module result. Bad input fails as 'invalid input: ...';
    a tool, registry or ECR failure with its own message."""
    try:
        return body()
    except tuple(input_errors) + (ImageReferenceError, ValueError) as exc:
        module.fail_json(msg='invalid input: %s' % exc)
    except (ToolError, RegistryError, EcrAuthError) as exc:
        module.fail_json(msg=str(exc))


def source_and_destination(access, src, dest, what, push=True):
    """(src_client, dest_client, the source's manifest) with read access to
    the source and (push) write access to the destination checked first; a
    clear error naming `what` when the source does not exist."""
    src_client = access.client(src['registry'])
    dest_client = access.client(dest['registry'])
    src_client.check_access(src['repository'])
    found = src_client.manifest(src['repository'], src['digest'] or src['tag'] or 'latest')
    if found is None:
        raise RegistryError('%s not found in registry %s' % (what, src['registry']))
    dest_client.check_access(dest['repository'], push=push)
    return src_client, dest_client, found


def ctr_prefix(path, params):
    return [path, '--address', params['containerd_address'], '--namespace', params['namespace']]


def platform_args(platforms):
    """`--platform` per entry, `--all-platforms` for ['all'], nothing for []."""
    if not platforms:
        return []
    if platforms == ['all']:
        return ['--all-platforms']
    args = []
    for plat in platforms:
        args += ['--platform', plat]
    return args


PLATFORM = re.compile(r'^[a-z0-9]+/[a-z0-9_]+(?:/[a-z0-9]+)?$')


def validate_platforms(platforms):
    if 'all' in platforms and len(platforms) > 1:
        raise ValueError("platforms: 'all' cannot be combined with other platforms")
    for plat in platforms:
        if plat != 'all' and not PLATFORM.match(plat):
            raise ValueError('platforms: %r is not os/arch[/variant] (e.g. linux/amd64)' % plat)


def pull_command(ctr, params, ref, access, platforms, hosts_dir_flag='--hosts-dir'):
    cmd = ctr_prefix(ctr, params) + ['image', 'pull', hosts_dir_flag, access.hosts_dir]
    if params.get('plain_http'):
        cmd.append('--plain-http')
    return cmd + platform_args(platforms) + [ref]


def push_command(ctr, params, remote_ref, local_ref, access, platforms):
    cmd = ctr_prefix(ctr, params) + ['image', 'push', '--hosts-dir', access.hosts_dir]
    if params.get('plain_http'):
        cmd.append('--plain-http')
    return cmd + platform_args(platforms) + [remote_ref, local_ref]


def parse_digest_line(stdout):
    """The last `sha256:<64 hex>` printed (ctr-remote and soci print it last)."""
    found = re.findall(r'sha256:[0-9a-f]{64}', stdout or '')
    return found[-1] if found else None


__all__ = ['ARGUMENT_SPEC', 'REQUIRED_TOGETHER', 'EcrAuthError', 'RegistryAccess', 'RegistryError',
           'ToolError', 'ToolRunner']
