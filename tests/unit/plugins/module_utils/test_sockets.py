from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import socket

from ansible_collections.lazypull.snapshotters.plugins.module_utils.sockets import probe_unix_socket


def test_listening_socket_answers(tmp_path):
    path = str(tmp_path / 'd.sock')
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    try:
        result = probe_unix_socket(path)
    finally:
        server.close()
    assert result == {'path': path, 'exists': True, 'is_socket': True, 'answers': True, 'error': None}


def test_stale_socket_does_not_answer(tmp_path):
    path = str(tmp_path / 'stale.sock')
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.close()  # the file stays, nobody listens: a crashed daemon
    result = probe_unix_socket(path)
    assert result['exists'] and result['is_socket'] and not result['answers']
    assert 'refused' in result['error']


def test_missing_path(tmp_path):
    result = probe_unix_socket(str(tmp_path / 'none.sock'))
    assert not result['exists'] and not result['answers']
    assert result['error']


def test_regular_file_is_not_a_socket(tmp_path):
    path = tmp_path / 'file'
    path.write_text('x')
    result = probe_unix_socket(str(path))
    assert result['exists'] and not result['is_socket'] and result['error'] == 'not a socket'
    assert os.path.exists(str(path))
