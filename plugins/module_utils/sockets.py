# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)
"""Does a daemon listen on a unix socket? (containerd's `ctr plugins ls`
reports a proxy plugin `ok` even when nothing listens behind it.)"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import socket
import stat


def probe_unix_socket(path, timeout=2.0):
    """Connect to `path`; report what was found without raising."""
    result = {'path': path, 'exists': False, 'is_socket': False, 'answers': False, 'error': None}
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        result['error'] = os.strerror(err.errno) if err.errno else str(err)
        return result
    result['exists'] = True
    result['is_socket'] = stat.S_ISSOCK(mode)
    if not result['is_socket']:
        result['error'] = 'not a socket'
        return result
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        result['answers'] = True
    except socket.timeout:
        result['error'] = 'timed out after %.1f s' % timeout
    except OSError as err:
        if err.errno == errno.ECONNREFUSED:
            result['error'] = 'connection refused (stale socket, no daemon listens)'
        else:
            result['error'] = os.strerror(err.errno) if err.errno else str(err)
    finally:
        sock.close()
    return result
