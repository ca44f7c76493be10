# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)
"""Amazon ECR registry credentials from `ecr.get_authorization_token`.

The token is decoded into (username, password) and handed back in a
Credentials object whose repr hides it; callers register it with no_log.
The boto3 session is a seam (`session_factory`), so tests use botocore's
Stubber.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import re

from ansible_collections.lazypull.snapshotters.plugins.module_utils.registry_client import Credentials

# <account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]
ECR_HOST = re.compile(r'^(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$')


class EcrAuthError(Exception):
    """No ECR token; the message names the cause, never the token."""


def parse_ecr_host(host):
    """(account, region) of an ECR registry host, or None for other hosts."""
    match = ECR_HOST.match(host.split(':', 1)[0])
    if not match:
        return None
    return match.group('account'), match.group('region')


def default_session_factory(region=None, profile=None):
    try:
        import boto3
    except ImportError:
        raise EcrAuthError('ECR access needs boto3 on the host running the module (pip install boto3)')
    return boto3.session.Session(region_name=region, profile_name=profile)


def ecr_credentials(host, region=None, profile=None, session_factory=default_session_factory):
    """Credentials for an ECR host. `region` defaults to the host's own."""
    parsed = parse_ecr_host(host)
    account = parsed[0] if parsed else None
    region = region or (parsed[1] if parsed else None)
    if not region:
        raise EcrAuthError('cannot tell the AWS region of %s: set ecr_region' % host)
    try:
        client = session_factory(region=region, profile=profile).client('ecr', region_name=region)
        kwargs = {'registryIds': [account]} if account else {}
        answer = client.get_authorization_token(**kwargs)
    except EcrAuthError:
        raise
    except Exception as exc:  # botocore ClientError, NoCredentialsError, ProfileNotFound...
        raise EcrAuthError('ecr.get_authorization_token for %s failed: %s' % (host, _brief(exc)))
    data = answer.get('authorizationData') or []
    if not data or not data[0].get('authorizationToken'):
        raise EcrAuthError('ecr.get_authorization_token for %s returned no token' % host)
    try:
        decoded = base64.b64decode(data[0]['authorizationToken']).decode('utf-8')
    except (ValueError, UnicodeDecodeError):
        raise EcrAuthError('ecr.get_authorization_token for %s returned a token that is not base64' % host)
    username, sep, password = decoded.partition(':')
    if not sep or not password:
        raise EcrAuthError('ecr.get_authorization_token for %s returned a token without user:password' % host)
    return Credentials(username, password), data[0].get('expiresAt')


def _brief(exc):
    """The error's class and code, without echoing request parameters."""
    response = getattr(exc, 'response', None)
    if isinstance(response, dict) and response.get('Error'):
        err = response['Error']
        return '%s: %s' % (err.get('Code', type(exc).__name__), err.get('Message', ''))
    return '%s: %s' % (type(exc).__name__, exc)
