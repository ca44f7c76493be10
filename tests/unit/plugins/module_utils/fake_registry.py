"""Stand-ins for a registry client and RegistryAccess, shared by the image
module tests (test_image_convert, test_soci_index)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os


def sha(body):
    if not isinstance(body, bytes):
        body = body.encode('utf-8')
    return 'sha256:' + hashlib.sha256(body).hexdigest()


class FakeRegistryClient(object):
    """Manifests by (repository, tag or digest); records access checks.
    Subclasses add what their module's tests need to see (events, PUTs, blobs)."""

    def __init__(self, events):
        self.events = events
        self.store = {}
        self.access = []
        self.puts = []

    def store_doc(self, repository, doc, tags=()):
        raw = json.dumps(doc).encode('utf-8')
        entry = (sha(raw), doc.get('mediaType'), doc, raw)
        self.store[(repository, entry[0])] = entry
        for tag in tags:
            self.store[(repository, tag)] = entry
        return entry[0]

    def store_body(self, repository, reference, body, media_type):
        """What a manifest PUT leaves in the registry: the body under its tag and its digest."""
        digest = sha(body)
        entry = (digest, media_type, json.loads(body.decode('utf-8')), body)
        self.store[(repository, reference)] = entry
        self.store[(repository, digest)] = entry
        return digest

    def check_access(self, repository, push=False):
        self.access.append((repository, push))
        return True

    def manifest(self, repository, reference):
        found = self.store.get((repository, reference))
        if found is None:
            return None
        digest, media_type, doc, raw = found
        return digest, media_type, json.loads(json.dumps(doc)), raw


class FakeAccess(object):
    """RegistryAccess: a client per registry host (an unknown host is a KeyError), a private dir."""

    def __init__(self, tmp_path, clients):
        self.clients = clients
        self.dir = str(tmp_path)
        self.hosts_dir = os.path.join(str(tmp_path), 'hosts')

    def client(self, host):
        return self.clients[host]

    def env(self):
        return {'DOCKER_CONFIG': os.path.join(self.dir, 'docker')}
