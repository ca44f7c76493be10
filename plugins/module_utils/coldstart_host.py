# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)
"""The real host behind coldstart's `Host` seam: commands, a streamed
process, files, sockets, URLs and clocks."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import subprocess
import threading
import time
from datetime import datetime

from ansible_collections.lazypull.snapshotters.plugins.module_utils.coldstart import ColdstartError
from ansible_collections.lazypull.snapshotters.plugins.module_utils.snapshotter_facts import Readers
from ansible_collections.lazypull.snapshotters.plugins.module_utils.sockets import probe_unix_socket

try:
    import queue
except ImportError:  # pragma: no cover - Python 2 never runs this module
    import Queue as queue  # noqa: N813


class StreamedProcess(object):
    """A process whose output lines are read by a thread and time-stamped
    when they arrive (the run's milestones need arrival times)."""

    def __init__(self, argv, clock):
        self._clock = clock
        self._queue = queue.Queue()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self):
        for raw in iter(self.proc.stdout.readline, b''):
            self._queue.put((self._clock(), raw.decode('utf-8', 'replace').rstrip('\r\n')))
        self.proc.stdout.close()

    def lines(self):
        out = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    def poll(self):
        code = self.proc.poll()
        if code is not None:
            self._thread.join(timeout=5)  # drain the pipe before the caller reads the rest
        return code

    def wait(self):
        self.proc.wait()
        self._thread.join(timeout=5)


class SystemHost(Readers):
    """Readers gives read() (None when a file cannot be read)."""

    def __init__(self, module):
        super(SystemHost, self).__init__(probe_unix_socket)
        self.module = module
        self.clock = time.monotonic
        self.sleep = time.sleep

    def run(self, argv, check=True):
        rc, out, err = self.module.run_command(argv)
        if check and rc != 0:
            raise ColdstartError('%s failed (rc=%s): %s' % (' '.join(argv), rc, (err or out).strip()[-800:]))
        return rc, out, err

    def spawn(self, argv):
        return StreamedProcess(argv, self.clock)

    def write(self, path, text):
        with open(path, 'w') as handle:
            handle.write(text)

    def clear_dir(self, path):
        """Remove what is in `path`, keep `path` (it may be a mount point)."""
        if not os.path.isdir(path):
            return
        for name in os.listdir(path):
            full = os.path.join(path, name)
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full)
            else:
                os.unlink(full)

    def wait_socket(self, path, timeout):
        deadline = self.clock() + timeout
        while self.clock() < deadline:
            if probe_unix_socket(path)['answers']:
                return True
            self.sleep(0.2)
        return False

    def http_ok(self, url):
        from ansible.module_utils.urls import open_url
        try:
            resp = open_url(url, timeout=2, validate_certs=False, follow_redirects='all')
            return 200 <= resp.getcode() < 300
        except Exception:  # not up yet: refused, reset, 5xx...
            return False

    def utcnow(self):
        return datetime.utcnow().strftime('%Y-%m-%dT%H:%M:%S.%fZ')
