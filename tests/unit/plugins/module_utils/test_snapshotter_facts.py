from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.lazypull.snapshotters.plugins.module_utils import snapshotter_facts as sf

MOUNTINFO = r"""22 1 0:21 / / rw,relatime - overlay overlay rw
300 22 0:60 / /var/lib/containerd-stargz-grpc/snapshotter/snapshots/5/fs rw,nodev,relatime - fuse.rawBridge stargz rw,user_id=0
301 22 0:61 / /var/lib/soci-snapshotter-grpc/snapshotter/snapshots/9/fs rw,nodev,relatime - fuse.rawBridge soci rw,user_id=0
302 22 0:62 / /var/lib/containerd-stargz-grpc-other/x rw - fuse.rawBridge x rw
303 22 0:63 / /mnt/with\040space rw - fuse.sshfs host:/ rw
304 22 0:64 / /var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/1/fs rw - overlay overlay rw
"""

PLUGINS_LS = """TYPE                            ID         PLATFORMS     STATUS
io.containerd.snapshotter.v1    overlayfs  linux/amd64   ok
io.containerd.snapshotter.v1    stargz     -             ok
"""


def test_parse_mountinfo_unescapes_and_reads_type():
    mounts = sf.parse_mountinfo(MOUNTINFO)
    assert mounts[1] == {'mountpoint': '/var/lib/containerd-stargz-grpc/snapshotter/snapshots/5/fs',
                         'fstype': 'fuse.rawBridge', 'source': 'stargz'}
    assert mounts[4]['mountpoint'] == '/mnt/with space'


def test_fuse_mounts_under_root_only():
    mounts = sf.parse_mountinfo(MOUNTINFO)
    assert sf.fuse_mounts_under(mounts, '/var/lib/containerd-stargz-grpc') == [
        '/var/lib/containerd-stargz-grpc/snapshotter/snapshots/5/fs']
    assert sf.fuse_mounts_under(mounts, '/var/lib/containerd') == []


@pytest.mark.parametrize('output,expected', [
    ('containerd-stargz-grpc v0.14.3 debian-0.14.3-4-lazypull', '0.14.3'),
    ('soci-snapshotter-grpc version v0.4.1 0b1f31d', '0.4.1'),
    ('containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6', '1.7.24'),
    ('no version', None),
])
def test_version_of(output, expected):
    assert sf.version_of(output) == expected


@pytest.mark.parametrize('output,expected', [
    ('containerd-stargz-grpc v0.14.3 debian-0.14.3-4-lazypull', '0.14.3'),
    ('soci version 0.4.1-5+b3 0.4.1-5+b3', '0.4.1'),
    # ctr-remote prints the containerd version it was built with: not a snapshotter version
    ('ctr github.com/containerd/containerd 1.7.24~ds1', None),
])
def test_version_of_snapshotter_binaries(output, expected):
    assert sf.version_of(output, sf.snapshotter_version) == expected


def test_parse_toml_text():
    data, err = sf.parse_toml_text('a = 1\n[b]\nc = "x"\n')
    assert data == {'a': 1, 'b': {'c': 'x'}} and err is None
    data, err = sf.parse_toml_text('a = = 1')
    assert data is None and err.startswith('invalid TOML')


class FakeHost(object):
    def __init__(self, binaries, files, sockets, commands):
        self.binaries, self.files, self.sockets, self.commands = binaries, files, sockets, commands
        self.calls = []

    def which(self, name):
        return self.binaries.get(name)

    def run(self, binary, args):
        self.calls.append([binary] + args)
        return self.commands.get(tuple([binary] + args), (127, '', 'not found'))

    def readers(self):
        host = self

        class R(sf.Readers):
            def read(self, path):
                return host.files.get(path)
        return R(lambda p: {'path': p, 'answers': p in host.sockets, 'error': None if p in host.sockets else 'refused'})


def test_gather_assembles_everything():
    host = FakeHost(
        binaries={'containerd': '/usr/bin/containerd', 'ctr': '/usr/bin/ctr',
                  'containerd-stargz-grpc': '/usr/local/bin/containerd-stargz-grpc'},
        files={'/proc/self/mountinfo': MOUNTINFO,
               '/etc/containerd/config.toml': 'version = 2\n',
               '/etc/containerd-stargz-grpc/config.toml': 'noprefetch = true\n'},
        sockets={'/run/containerd-stargz-grpc/containerd-stargz-grpc.sock'},
        commands={('/usr/bin/containerd', '--version'): (0, 'containerd x 1.7.24~ds1 1.7.24~ds1-6', ''),
                  ('/usr/bin/ctr', '--address', '/run/c.sock', 'plugins', 'ls'): (0, PLUGINS_LS, ''),
                  ('/usr/local/bin/containerd-stargz-grpc', '--version'): (0, 'containerd-stargz-grpc v0.14.3 x', '')})
    facts = sf.gather(host.run, host.which, host.readers(), '/run/c.sock',
                      containerd_config_path='/etc/containerd/config.toml')
    assert facts['containerd']['version'] == '1.7.24'
    assert facts['containerd']['answers'] is True
    assert facts['containerd']['config'] == {'version': 2}
    stargz = facts['snapshotters']['stargz']
    assert stargz['installed'] and stargz['daemon']['version'] == '0.14.3'
    assert stargz['config'] == {'noprefetch': True}
    assert stargz['socket_answers'] is True
    assert stargz['proxy_plugin_status'] == 'ok'
    assert stargz['fuse_mounts'] == ['/var/lib/containerd-stargz-grpc/snapshotter/snapshots/5/fs']
    soci = facts['snapshotters']['soci']
    assert soci['installed'] is False and soci['socket_answers'] is False
    assert soci['proxy_plugin_status'] is None
    assert soci['config_error'] == 'missing'
    assert soci['fuse_mounts'] == ['/var/lib/soci-snapshotter-grpc/snapshotter/snapshots/9/fs']
    assert facts['fuse_mounts_total'] == 2


def test_gather_reports_containerd_down_and_custom_paths():
    host = FakeHost(binaries={'ctr': '/usr/bin/ctr'}, files={}, sockets=set(),
                    commands={('/usr/bin/ctr', '--address', '/x.sock', 'plugins', 'ls'):
                              (1, '', 'ctr: failed to dial "/x.sock": connection refused')})
    facts = sf.gather(host.run, host.which, host.readers(), '/x.sock',
                      snapshotters={'stargz': {'root': '/srv/stargz', 'socket': '/srv/s.sock'}})
    assert facts['containerd']['answers'] is False
    assert 'connection refused' in facts['containerd']['error'][0]
    assert facts['snapshotters']['stargz']['socket'] == '/srv/s.sock'
    assert facts['snapshotters']['stargz']['fuse_mounts'] == []


def test_validate_overrides():
    assert sf.validate_overrides(None) == {}
    assert sf.validate_overrides({'stargz': {'root': '/x', 'cli': None}}) == {'stargz': {'root': '/x'}}
    with pytest.raises(ValueError, match='unknown keys rot'):
        sf.validate_overrides({'stargz': {'rot': '/x'}})
    with pytest.raises(ValueError, match='must be a dict'):
        sf.validate_overrides({'stargz': '/x'})
