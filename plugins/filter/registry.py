# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)
"""Registry credential helpers for playbooks."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64

from ansible.errors import AnsibleFilterError


def docker_auth_entry(credential):
    """{registry, username, password} -> the `auths` value of a docker config.json."""
    if not isinstance(credential, dict):
        raise AnsibleFilterError('docker_auth_entry expects a dict with username and password')
    missing = [k for k in ('registry', 'username', 'password') if not credential.get(k)]
    if missing:
        # Never echo the credential itself.
        raise AnsibleFilterError('registry credential for %r lacks %s'
                                 % (credential.get('registry', '?'), ', '.join(missing)))
    token = '%s:%s' % (credential['username'], credential['password'])
    return {'auth': base64.b64encode(token.encode('utf-8')).decode('ascii')}


class FilterModule(object):
    def filters(self):
        return {'docker_auth_entry': docker_auth_entry}
