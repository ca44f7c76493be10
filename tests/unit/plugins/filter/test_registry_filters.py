from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.lazypull.snapshotters.plugins.filter.registry import docker_auth_entry


def test_docker_auth_entry_encodes_user_and_password():
    entry = docker_auth_entry({'registry': 'r:5000', 'username': 'u', 'password': 'p:w'})
    assert base64.b64decode(entry['auth']).decode() == 'u:p:w'


@pytest.mark.parametrize('cred', [{'registry': 'r', 'username': 'u'}, {'registry': 'r', 'password': 's3cret'}, 'x'])
def test_docker_auth_entry_rejects_incomplete_credentials_without_echoing_them(cred):
    with pytest.raises(AnsibleFilterError) as err:
        docker_auth_entry(cred)
    assert 's3cret' not in str(err.value)
