# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)
"""A small OCI distribution client: what the image modules ask a registry.

Only reads and one write (a manifest PUT): resolve a tag to a digest, read a
manifest or a small blob, list referrers, check that credentials work. Blobs
are moved by the container tools, never by this client.

The HTTP transport is a seam (`opener(method, url, headers, data)` returning
`(status, headers, body)`), so token handshakes, redirects and error
messages are unit-tested without a registry.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import json
import re

from ansible.module_utils.six.moves.urllib.parse import urljoin, urlparse

MANIFEST_TYPES = (
    'application/vnd.oci.image.index.v1+json',
    'application/vnd.docker.distribution.manifest.list.v2+json',
    'application/vnd.oci.image.manifest.v1+json',
    'application/vnd.docker.distribution.manifest.v2+json',
)
INDEX_TYPES = MANIFEST_TYPES[:2]
REDIRECTS = (301, 302, 303, 307, 308)


class RegistryError(Exception):
    """A registry could not be used; the message names host and cause."""


class Credentials(object):
    """Basic credentials for one registry host. repr() never shows the secret."""

    def __init__(self, username, password):
        self.username = username
        self.password = password

    def basic(self):
        raw = ('%s:%s' % (self.username, self.password)).encode('utf-8')
        return 'Basic ' + base64.b64encode(raw).decode('ascii')

    def __repr__(self):
        return 'Credentials(username=%r, password=<hidden>)' % self.username


def parse_challenge(header):
    """`Bearer realm="x",service="y"` -> ('bearer', {'realm': 'x', 'service': 'y'})."""
    if not header:
        return None, {}
    scheme, _sep, rest = header.strip().partition(' ')
    params = dict((k.lower(), v) for k, v in re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


def digest_of(body, algorithm='sha256'):
    return '%s:%s' % (algorithm, hashlib.new(algorithm, body).hexdigest())


class RegistryClient(object):
    """One registry host. `scheme` is https unless plain HTTP was asked for."""

    def __init__(self, host, opener, credentials=None, plain_http=False):
        self.host = host
        self.base = '%s://%s' % ('http' if plain_http else 'https', host)
        self.opener = opener
        self.credentials = credentials
        self._token = {}  # scope -> bearer token

    # --- transport -------------------------------------------------------
    def _send(self, method, url, headers, data=None, follow=3):
        try:
            status, resp_headers, body = self.opener(method, url, headers, data)
        except RegistryError:
            raise
        except Exception as exc:  # transport errors: DNS, refused, TLS
            raise RegistryError('registry %s is unreachable: %s' % (self.host, exc))
        if status in REDIRECTS and follow > 0:
            location = _header(resp_headers, 'location')
            if not location:
                raise RegistryError('registry %s redirected without a Location' % self.host)
            target = urljoin(url, location)
            if urlparse(target).netloc != urlparse(url).netloc:
                # Blob storage on another host (S3 for ECR) must not see the
                # registry's Authorization header.
                headers = dict((k, v) for k, v in headers.items() if k.lower() != 'authorization')
            return self._send(method, target, headers, data, follow - 1)
        return status, resp_headers, body

    def _auth_header(self, scope):
        if scope in self._token:
            return {'Authorization': 'Bearer ' + self._token[scope]}
        if self.credentials is not None and self._token.get(None) == 'basic':
            return {'Authorization': self.credentials.basic()}
        return {}

    def request(self, method, path, scope, headers=None, data=None):
        """One request with the auth handshake the registry asks for."""
        url = self.base + path
        merged = dict(headers or {})
        merged.update(self._auth_header(scope))
        status, resp_headers, body = self._send(method, url, merged, data)
        if status != 401:
            return status, resp_headers, body
        scheme, params = parse_challenge(_header(resp_headers, 'www-authenticate'))
        if scheme == 'basic':
            if self.credentials is None:
                raise RegistryError('registry %s requires credentials and none were given' % self.host)
            self._token[None] = 'basic'
        elif scheme == 'bearer':
            self._token[scope] = self._fetch_token(params, scope)
        else:
            raise RegistryError('registry %s answered 401 with an unsupported challenge %r'
                                % (self.host, scheme))
        merged = dict(headers or {})
        merged.update(self._auth_header(scope))
        status, resp_headers, body = self._send(method, url, merged, data)
        if status == 401:
            raise RegistryError('registry %s rejected the credentials (401 Unauthorized)%s'
                                % (self.host, '' if self.credentials else '; none were given'))
        return status, resp_headers, body

    def _fetch_token(self, params, scope):
        realm = params.get('realm')
        if not realm:
            raise RegistryError('registry %s sent a Bearer challenge without a realm' % self.host)
        query = []
        if params.get('service'):
            query.append('service=' + _quote(params['service']))
        if scope:
            query.append('scope=' + _quote(scope))
        url = realm + ('?' + '&'.join(query) if query else '')
        headers = {}
        if self.credentials is not None:
            headers['Authorization'] = self.credentials.basic()
        status, _h, body = self._send('GET', url, headers)
        if status == 401:
            raise RegistryError('registry %s rejected the credentials (token endpoint answered 401)'
                                % self.host)
        if status != 200:
            raise RegistryError('registry %s token endpoint answered HTTP %s' % (self.host, status))
        try:
            data = json.loads(body.decode('utf-8'))
        except ValueError:
            raise RegistryError('registry %s token endpoint sent no JSON' % self.host)
        token = data.get('token') or data.get('access_token')
        if not token:
            raise RegistryError('registry %s token endpoint sent no token' % self.host)
        return token

    # --- API ---------------------------------------------------------------
    def check_access(self, repository, push=False):
        """Fail early, before any work: unreachable, TLS, or bad credentials."""
        scope = 'repository:%s:%s' % (repository, 'pull,push' if push else 'pull')
        status, _h, _b = self.request('GET', '/v2/', scope)
        if status not in (200, 404):
            raise RegistryError('registry %s answered HTTP %s to /v2/' % (self.host, status))
        if self.credentials is not None and self._token.get(None) != 'basic' and scope not in self._token:
            # A registry open to anonymous reads accepted /v2/ without asking;
            # present the credentials now, so bad ones fail before any work.
            self._token[None] = 'basic'
            status, _h, _b = self._send('GET', self.base + '/v2/', {'Authorization': self.credentials.basic()})
            if status == 401:
                raise RegistryError('registry %s rejected the credentials (401 Unauthorized)' % self.host)
        return True

    def manifest(self, repository, reference):
        """(digest, media_type, parsed JSON, raw bytes) or None when absent."""
        scope = 'repository:%s:pull' % repository
        status, headers, body = self.request(
            'GET', '/v2/%s/manifests/%s' % (repository, reference), scope,
            headers={'Accept': ', '.join(MANIFEST_TYPES)})
        if status == 404:
            return None
        if status != 200:
            raise RegistryError('registry %s: GET manifest %s:%s answered HTTP %s'
                                % (self.host, repository, reference, status))
        digest = _header(headers, 'docker-content-digest') or digest_of(body)
        try:
            parsed = json.loads(body.decode('utf-8'))
        except ValueError:
            raise RegistryError('registry %s: manifest %s:%s is not JSON' % (self.host, repository, reference))
        media_type = parsed.get('mediaType') or _header(headers, 'content-type')
        return digest, media_type, parsed, body

    def blob(self, repository, digest, limit=256 << 20):
        scope = 'repository:%s:pull' % repository
        status, _h, body = self.request('GET', '/v2/%s/blobs/%s' % (repository, digest), scope)
        if status != 200:
            raise RegistryError('registry %s: GET blob %s answered HTTP %s' % (self.host, digest, status))
        if len(body) > limit:
            raise RegistryError('registry %s: blob %s larger than %d bytes' % (self.host, digest, limit))
        algorithm = digest.split(':', 1)[0]
        if algorithm not in ('sha256', 'sha384', 'sha512') or digest_of(body, algorithm) != digest:
            raise RegistryError('registry %s: blob %s does not match its digest' % (self.host, digest))
        return body

    def put_manifest(self, repository, reference, body, media_type):
        scope = 'repository:%s:pull,push' % repository
        status, headers, _b = self.request(
            'PUT', '/v2/%s/manifests/%s' % (repository, reference), scope,
            headers={'Content-Type': media_type}, data=body)
        if status not in (200, 201):
            raise RegistryError('registry %s: PUT manifest %s:%s answered HTTP %s'
                                % (self.host, repository, reference, status))
        return _header(headers, 'docker-content-digest') or digest_of(body)

    def delete_manifest(self, repository, digest):
        """Delete by digest; absent counts as deleted."""
        scope = 'repository:%s:pull,push,delete' % repository
        status, _h, _b = self.request('DELETE', '/v2/%s/manifests/%s' % (repository, digest), scope)
        if status == 405:
            raise RegistryError('registry %s does not allow deletes (HTTP 405); enable them to remove indexes'
                                % self.host)
        if status not in (200, 202, 404):
            raise RegistryError('registry %s: DELETE manifest %s answered HTTP %s' % (self.host, digest, status))
        return status != 404

    def referrers(self, repository, digest, artifact_type=None):
        """Descriptors referring to `digest`: the referrers API, else the
        `sha256-<hex>` tag schema registries without that API use."""
        scope = 'repository:%s:pull' % repository
        path = '/v2/%s/referrers/%s' % (repository, digest)
        if artifact_type:
            path += '?artifactType=' + _quote(artifact_type)
        status, headers, body = self.request('GET', path, scope,
                                             headers={'Accept': 'application/vnd.oci.image.index.v1+json'})
        index = None
        if status == 200 and 'json' in (_header(headers, 'content-type') or 'json'):
            try:
                index = json.loads(body.decode('utf-8'))
            except ValueError:
                index = None
        if index is None:
            found = self.manifest(repository, digest.replace(':', '-'))
            index = found[2] if found else {'manifests': []}
        manifests = index.get('manifests') or []
        if artifact_type:
            manifests = [m for m in manifests if m.get('artifactType') == artifact_type]
        return manifests


def _header(headers, name):
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value
    return None


def _quote(text):
    safe = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~'
    return ''.join(c if c in safe else '%%%02X' % ord(c) for c in text)


def urls_opener(ca_file=None, timeout=60):
    """The real transport: ansible's open_url, TLS verified (CA file added to
    the system store), redirects handled by the client."""
    from ansible.module_utils.urls import open_url
    from ansible.module_utils.six.moves.urllib.error import HTTPError

    def opener(method, url, headers, data=None):
        try:
            resp = open_url(url, method=method, headers=headers, data=data, validate_certs=True,
                            ca_path=ca_file, timeout=timeout, follow_redirects='none')
            return resp.getcode(), dict(resp.headers.items()), resp.read()
        except HTTPError as err:
            body = err.read() if hasattr(err, 'read') else b''
            return err.code, dict(err.headers.items()) if err.headers else {}, body or b''
    return opener
