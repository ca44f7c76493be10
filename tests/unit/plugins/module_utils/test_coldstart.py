from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

import pytest

from ansible_collections.lazypull.snapshotters.plugins.module_utils import coldstart as cs
from ansible_collections.lazypull.snapshotters.plugins.module_utils.coldstart import ColdstartError

CTR = '/usr/bin/ctr'
ADDRESS = '/run/containerd/containerd.sock'
NS = 'lazypull-bench'
CID = 'lazypull-0123456789ab'
STARGZ_ROOT = '/var/lib/containerd-stargz-grpc'
SOCI_ROOT = '/var/lib/soci-snapshotter-grpc'
STARGZ_SOCK = '/run/containerd-stargz-grpc/containerd-stargz-grpc.sock'
SOCI_SOCK = '/run/soci-snapshotter-grpc/soci-snapshotter-grpc.sock'
IMAGE = 'registry.lab:5000/lazypull/sparse:1-esgz'
PATHS = {'ctr': CTR, 'ctr-remote': '/usr/local/bin/ctr-remote', 'soci': '/usr/local/bin/soci'}
MANIFEST = 'sha256:' + 'a' * 64
INDEX = 'sha256:' + 'b' * 64
ARM_MANIFEST = 'sha256:' + 'c' * 64


def make_params(**overrides):
    """The module's defaults (what AnsibleModule hands coldstart.measure)."""
    params = {'image': IMAGE, 'snapshotter': 'stargz', 'namespace': NS, 'containerd_address': ADDRESS,
              'hosts_dir': '/etc/containerd/certs.d', 'plain_http': False, 'ctr_path': CTR,
              'ctr_remote_path': None, 'soci_path': None, 'reset': True, 'force_reset': False,
              'reset_snapshotters': ['stargz', 'soci'], 'snapshotters': {}, 'drop_caches': True,
              'ready': 'exit', 'ready_line': None, 'ready_url': None, 'net_host': False, 'env': {}, 'args': [],
              'milestones': [], 'expected_output': None, 'timeout': 600, 'output_lines': 20}
    params.update(overrides)
    return params


def base(namespace=NS):
    return [CTR, '--address', ADDRESS, '--namespace', namespace]


def net_dev(eth0, lo=987654321):
    return ('Inter-|   Receive                                                |  Transmit\n'
            ' face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls'
            ' carrier compressed\n'
            '    lo: %d     100    0    0    0     0          0         0 %d     100    0    0    0     0'
            '       0          0\n'
            '  eth0: %d    5000    0    0    0     0          0         0    12345     100    0    0    0     0'
            '       0          0\n' % (lo, lo, eth0))


class FakeProcess(object):
    """The process of `ctr tasks start`: lines() hands out one scripted batch
    per call, poll() answers None `polls` times, then the exit code."""

    def __init__(self, host, argv, batches, polls, exit_code):
        self.host = host
        self.argv = argv
        self.started = host.now
        self.batches = list(batches)
        self.polls_left = polls
        self.exit_code = exit_code
        self.killed = False
        self.waited = False

    def lines(self):
        if not self.batches:
            return []
        return [(self.started + offset, line) for offset, line in self.batches.pop(0)]

    def poll(self):
        if self.killed:
            return 137
        if self.polls_left is None:
            return None
        if self.polls_left > 0:
            self.polls_left -= 1
            return None
        return self.exit_code

    def wait(self):
        self.waited = True
        self.host.log.append(('wait', self.argv))


class FakeHost(object):
    """coldstart's Host seam over a small model of containerd (one state per
    namespace), FUSE mounts, sockets, a URL and a clock that moves on sleep.

    Every call is appended to `log` as (kind, argv-or-args). `rules` answer
    argv patterns before the model does: on(words..., rc=, out=, err=,
    seconds=, effect=) matches when `words` occur contiguously in argv."""

    def __init__(self, start=1000.0):
        self.now = start
        self.log = []
        self.rules = []
        self.state = {}
        self.mounts = []  # (mountpoint, fstype)
        self.net_dev_reads = []
        self.written = {}
        self.socket_answers = {}
        self.url_answers = []
        self.tasks = []
        self.procs = []
        self.sleeps = []

    # --- the model -------------------------------------------------------
    def ns(self, name=NS):
        if name not in self.state:
            self.state[name] = {'containers': {}, 'images': {}, 'content': {},
                                'snapshots': {'overlayfs': {}, 'stargz': {}, 'soci': {}}}
        return self.state[name]

    def add_snapshot(self, snapshotter, key, parent='', remote=False, namespace=NS):
        labels = {cs.REMOTE_LABEL: 'remote snapshot'} if remote else {}
        self.ns(namespace)['snapshots'][snapshotter][key] = {'parent': parent, 'labels': labels}

    def add_fuse(self, point, fstype='fuse.rawBridge'):
        self.mounts.append((point, fstype))

    def on(self, *words, **reply):
        self.rules.append((list(words), reply))

    def script_task(self, batches=(), polls=0, exit_code=0):
        """The next `tasks start`: polls=None never exits by itself."""
        self.tasks.append((batches, polls, exit_code))

    # --- the seam ----------------------------------------------------------
    def run(self, argv, check=True):
        argv = list(argv)
        self.log.append(('run', argv))
        reply = None
        for words, spec in reversed(self.rules):
            if _contains(argv, words):
                reply = spec
                break
        if reply is not None:
            self.now += reply.get('seconds', 0)
            if reply.get('effect'):
                reply['effect'](argv)
            out = reply.get('out', '')
            if isinstance(out, list):
                out = out.pop(0) if len(out) > 1 else out[0]
            rc, err = reply.get('rc', 0), reply.get('err', '')
        else:
            rc, out, err = self._ctr(argv)
        if check and rc != 0:
            raise ColdstartError('%s failed (rc=%s): %s' % (' '.join(argv), rc, (err or out).strip()))
        return rc, out, err

    def _ctr(self, argv):
        if argv[0] != CTR:
            return 0, '', ''
        rest = argv[1:]
        namespace = 'default'
        while rest and rest[0] in ('--address', '--namespace'):
            if rest[0] == '--namespace':
                namespace = rest[1]
            rest = rest[2:]
        if rest == ['namespaces', 'ls', '-q']:
            return 0, ''.join('%s\n' % n for n in sorted(self.state)), ''
        st = self.ns(namespace)
        if rest[:2] == ['containers', 'ls']:
            return 0, ''.join('%s\n' % c for c in st['containers']), ''
        if rest[:2] == ['containers', 'info']:
            if rest[2] not in st['containers']:
                return 1, '', 'ctr: container "%s" in namespace "%s": not found' % (rest[2], namespace)
            return 0, json.dumps({'ID': rest[2], 'Snapshotter': st['containers'][rest[2]]}), ''
        if rest[:2] == ['containers', 'rm']:
            if rest[2] not in st['containers']:
                return 1, '', 'ctr: container "%s": not found' % rest[2]
            del st['containers'][rest[2]]
            return 0, '', ''
        if rest[:2] == ['container', 'create']:
            words = rest[2:]
            snapshotter = None
            while words[0].startswith('--'):
                if words[0] == '--snapshotter':
                    snapshotter = words[1]
                words = words[1:] if words[0] == '--net-host' else words[2:]
            st['containers'][words[1]] = snapshotter  # words: image, id, args...
            return 0, '', ''
        if rest[:1] == ['tasks']:
            if rest[1] == 'kill':
                for proc in self.procs:
                    if proc.argv[-1] == rest[-1]:
                        proc.killed = True
            return 0, '', ''
        if rest[:2] == ['images', 'ls'] and len(rest) > 2 and rest[2].startswith('name=='):
            ref = rest[2][len('name=='):]
            head = 'REF TYPE DIGEST SIZE PLATFORMS LABELS\n'
            if ref not in st['images']:
                return 0, head, ''
            return 0, head + '%s application/vnd.oci.image.manifest.v1+json %s 10.0 MiB linux/amd64 -\n' % (
                ref, st['images'][ref]), ''
        if rest[:2] == ['images', 'ls']:
            return 0, ''.join('%s\n' % r for r in st['images']), ''
        if rest[:2] == ['images', 'rm']:
            for ref in rest[2:]:
                st['images'].pop(ref, None)
            return 0, '', ''
        if rest[:2] == ['content', 'ls']:
            return 0, ''.join('%s\n' % d for d in st['content']), ''
        if rest[:2] == ['content', 'rm']:
            for digest in rest[2:]:
                st['content'].pop(digest, None)
            return 0, '', ''
        if rest[:2] == ['content', 'get']:
            if rest[2] not in st['content']:
                return 1, '', 'ctr: content digest %s: not found' % rest[2]
            return 0, st['content'][rest[2]], ''
        if rest[:1] == ['snapshots']:
            snaps = st['snapshots'][rest[2]]
            verb = rest[3:]
            if verb == ['ls']:
                return 0, 'KEY PARENT KIND\n' + ''.join(
                    '%s %s Committed\n' % (k, v['parent']) for k, v in sorted(snaps.items())), ''
            if verb[0] == 'rm':
                if any(v['parent'] == verb[1] for v in snaps.values()):
                    return 1, '', 'ctr: cannot remove snapshot %s: has children' % verb[1]
                snaps.pop(verb[1], None)
                return 0, '', ''
            if verb[0] == 'info':
                info = snaps[verb[1]]
                return 0, json.dumps({'Kind': 'Committed', 'Name': verb[1], 'Parent': info['parent'],
                                      'Labels': info['labels']}, indent=4), ''
        return 0, '', ''

    def spawn(self, argv):
        self.log.append(('spawn', list(argv)))
        batches, polls, exit_code = self.tasks.pop(0) if self.tasks else ((), 0, 0)
        proc = FakeProcess(self, list(argv), batches, polls, exit_code)
        self.procs.append(proc)
        return proc

    def read(self, path):
        self.log.append(('read', path))
        if path == '/proc/self/mountinfo':
            lines = ['22 1 0:21 / / rw,relatime - overlay overlay rw']
            for number, (point, fstype) in enumerate(self.mounts, 300):
                lines.append('%d 22 0:%d / %s rw,nodev,relatime - %s stargz rw,user_id=0'
                             % (number, number, point.replace(' ', '\\040'), fstype))
            return '\n'.join(lines) + '\n'
        if path == '/proc/net/dev':
            if not self.net_dev_reads:
                return net_dev(0)
            value = self.net_dev_reads.pop(0) if len(self.net_dev_reads) > 1 else self.net_dev_reads[0]
            return net_dev(value)
        return None

    def write(self, path, text):
        self.log.append(('write', path, text))
        self.written[path] = text

    def clear_dir(self, path):
        self.log.append(('clear_dir', path))

    def wait_socket(self, path, timeout):
        self.log.append(('wait_socket', path, timeout))
        return self.socket_answers.get(path, True)

    def http_ok(self, url):
        self.log.append(('http_ok', url))
        return self.url_answers.pop(0) if self.url_answers else False

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds

    def utcnow(self):
        return 'T+%.3f' % self.now

    # --- helpers for assertions --------------------------------------------
    def runs(self):
        return [entry[1] for entry in self.log if entry[0] == 'run']

    def ran(self, *words):
        return [argv for argv in self.runs() if _contains(argv, list(words))]

    def index(self, predicate):
        for number, entry in enumerate(self.log):
            if predicate(entry):
                return number
        raise AssertionError('no log entry matches')

    def first_run(self, *words):
        return self.index(lambda e: e[0] == 'run' and _contains(e[1], list(words)))

    def last_run(self, *words):
        hits = [n for n, e in enumerate(self.log) if e[0] == 'run' and _contains(e[1], list(words))]
        assert hits, 'no run of %s' % (words,)
        return hits[-1]


def _contains(argv, words):
    if not words:
        return True
    for start in range(len(argv) - len(words) + 1):
        if argv[start:start + len(words)] == words:
            return True
    return False


def dirty_host():
    """Leftovers of an earlier run: a container, an image with content,
    snapshot chains (child before parent in listing order) and FUSE mounts."""
    host = FakeHost()
    st = host.ns()
    st['containers']['old-1'] = 'stargz'
    st['containers']['old-2'] = 'overlayfs'
    st['images'][IMAGE] = MANIFEST
    st['content'][MANIFEST] = '{}'
    st['content']['sha256:' + 'd' * 64] = ''
    host.add_snapshot('overlayfs', 'o-1')
    host.add_snapshot('overlayfs', 'o-2', parent='o-1')
    host.add_snapshot('stargz', 'a-root', remote=True)  # listed before its children: removed in rounds
    host.add_snapshot('stargz', 'b-mid', parent='a-root', remote=True)
    host.add_snapshot('stargz', 'c-leaf', parent='b-mid')
    host.add_snapshot('soci', 's-1', remote=True)
    host.add_fuse(STARGZ_ROOT + '/snapshotter/snapshots/5/fs')
    host.add_fuse(STARGZ_ROOT + '/snapshotter/snapshots/5/fs/nested')
    host.add_fuse(STARGZ_ROOT + '/snapshotter/snapshots/12/fs')
    host.add_fuse(SOCI_ROOT + '/snapshotter/snapshots/9/fs')
    host.add_fuse('/mnt/sshfs', fstype='fuse.sshfs')

    def umount(argv):
        host.mounts = [m for m in host.mounts if m[0] != argv[-1]]
    host.on('umount', '-l', effect=umount)
    return host


# --- validate --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('overrides,message', [
    ({'ready': 'line'}, 'ready: line needs ready_line'),
    ({'ready': 'url'}, 'ready: url needs ready_url'),
    ({'ready': 'url', 'ready_url': 'ftp://127.0.0.1:8080/health'}, 'ready_url must start with http:// or https://'),
    ({'ready_url': 'localhost:8080/health'}, 'ready_url must start with http'),
    ({'ready': 'line', 'ready_line': 'model (loaded'}, 'ready_line is not a valid regular expression'),
    ({'milestones': [{'name': 'imported', 'regex': '[unclosed'}]},
     'milestone imported is not a valid regular expression'),
    ({'milestones': [{'regex': 'imported'}]}, 'each milestone needs a name and a regex'),
    ({'milestones': [{'name': 'imported'}]}, 'each milestone needs a name and a regex'),
    ({'milestones': ['imported']}, 'each milestone needs a name and a regex'),
    ({'timeout': 0}, 'timeout must be positive'),
    ({'timeout': -5}, 'timeout must be positive'),
])
def test_validate_errors(overrides, message):
    with pytest.raises(ColdstartError, match=re.escape(message)):
        cs.validate(make_params(**overrides))


@pytest.mark.parametrize('overrides', [
    {},
    {'ready': 'line', 'ready_line': r'model loaded in \d+'},
    {'ready': 'url', 'ready_url': 'http://127.0.0.1:8080/health', 'net_host': True},
    {'ready': 'url', 'ready_url': 'https://127.0.0.1:8443/'},
    {'milestones': [{'name': 'imported', 'regex': 'lazypull-llm: imported'}], 'timeout': 1},
])
def test_validate_accepts(overrides):
    cs.validate(make_params(**overrides))


# --- commands --------------------------------------------------------------------------------------------------

def test_pull_command_stargz_uses_ctr_remote_rpull_with_hosts_dir():
    assert cs.pull_command(make_params(), PATHS) == [
        '/usr/local/bin/ctr-remote', '--address', ADDRESS, '--namespace', NS, 'image', 'rpull',
        '--hosts-dir', '/etc/containerd/certs.d', '--snapshotter', 'stargz', IMAGE]


def test_pull_command_soci_uses_soci_rpull_plain_http_without_hosts_dir():
    params = make_params(snapshotter='soci', hosts_dir=None, plain_http=True, image='reg:5000/lazypull/sparse:1')
    assert cs.pull_command(params, PATHS) == [
        '/usr/local/bin/soci', '--address', ADDRESS, '--namespace', NS, 'image', 'rpull',
        '--plain-http', '--snapshotter', 'soci', 'reg:5000/lazypull/sparse:1']


def test_pull_command_overlayfs_uses_ctr_image_pull():
    params = make_params(snapshotter='overlayfs', plain_http=True, image='reg:5000/lazypull/sparse:1')
    assert cs.pull_command(params, PATHS) == [
        CTR, '--address', ADDRESS, '--namespace', NS, 'image', 'pull',
        '--hosts-dir', '/etc/containerd/certs.d', '--plain-http', '--snapshotter', 'overlayfs',
        'reg:5000/lazypull/sparse:1']


def test_create_command_sorts_env_and_appends_args():
    params = make_params(net_host=True, env={'ZED': '1', 'ALPHA': 'a=b'}, args=['serve', '--port', '8080'])
    assert cs.create_command(params, CID) == [
        CTR, '--address', ADDRESS, '--namespace', NS, 'container', 'create', '--snapshotter', 'stargz',
        '--net-host', '--env', 'ALPHA=a=b', '--env', 'ZED=1', IMAGE, CID, 'serve', '--port', '8080']


def test_create_command_minimal():
    assert cs.create_command(make_params(snapshotter='overlayfs', env=None, args=None), CID) == [
        CTR, '--address', ADDRESS, '--namespace', NS, 'container', 'create', '--snapshotter', 'overlayfs',
        IMAGE, CID]


# --- parsers ---------------------------------------------------------------------------------------------------

def test_parse_ids_takes_the_first_column_and_skips_blank_lines():
    assert cs.parse_ids('c1\n\n  \nc2 image:1 io.containerd.runc.v2\n') == ['c1', 'c2']
    assert cs.parse_ids('') == []
    assert cs.parse_ids(None) == []


def test_parse_snapshot_keys_skips_the_header():
    text = 'KEY                 PARENT  KIND\nsha256:aa         sha256:bb Committed\n\nlazypull-1 sha256:aa Active\n'
    assert cs.parse_snapshot_keys(text) == ['sha256:aa', 'lazypull-1']
    assert cs.parse_snapshot_keys('KEY PARENT KIND\n') == []
    assert cs.parse_snapshot_keys(None) == []


def test_rx_bytes_skips_loopback_and_headers():
    text = net_dev(5000000) + '  ens5: 250 3 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n docker0:\n'
    assert cs.rx_bytes(text) == 5000250
    assert cs.rx_bytes(net_dev(0, lo=10 ** 12)) == 0
    assert cs.rx_bytes(None) == 0


def test_snapshotter_settings_merge_overrides():
    settings = cs.snapshotter_settings(make_params(snapshotters={'stargz': {'root': '/data/stargz'}}))
    assert settings['stargz']['root'] == '/data/stargz'
    assert settings['stargz']['service'] == 'stargz-snapshotter'
    assert settings['soci']['root'] == SOCI_ROOT


# --- cold reset ------------------------------------------------------------------------------------------------

def test_cold_reset_empties_everything_in_order():
    host = dirty_host()
    state = cs.cold_reset(host, make_params())
    assert state == {'containers': 0, 'images': 0, 'content': 0, 'fuse_mounts': 0, 'other_content': 0,
                     'snapshots': {'overlayfs': 0, 'stargz': 0, 'soci': 0}}
    b = base()
    # containers: task killed, task removed, container removed, each of them
    for cid in ('old-1', 'old-2'):
        assert host.first_run(*b + ['tasks', 'kill', '-s', 'KILL', cid]) < host.first_run(*b + ['tasks', 'rm', '-f', cid])
        assert host.first_run(*b + ['tasks', 'rm', '-f', cid]) < host.first_run(*b + ['containers', 'rm', cid])
    assert host.ran(*b + ['images', 'rm', '--sync', IMAGE])
    # snapshots: children first, in rounds until the listing is empty
    rm_stargz = [argv[-1] for argv in host.ran(*b + ['snapshots', '--snapshotter', 'stargz', 'rm'])]
    assert rm_stargz == ['a-root', 'b-mid', 'c-leaf', 'a-root', 'b-mid', 'a-root']
    assert len(host.ran(*b + ['snapshots', '--snapshotter', 'stargz', 'ls'])) == 4 + 1  # 4 rounds + cold_state
    assert [argv[-1] for argv in host.ran('snapshots', '--snapshotter', 'overlayfs', 'rm')] == ['o-1', 'o-2', 'o-1']
    assert host.ran(*b + ['content', 'rm'])
    order = [host.last_run('containers', 'rm'), host.first_run('images', 'rm', '--sync'),
             host.first_run('snapshots', '--snapshotter', 'overlayfs', 'rm'),
             host.last_run('snapshots', '--snapshotter', 'soci', 'rm'),
             host.first_run('content', 'rm'),
             host.first_run('systemctl', 'stop'),
             host.first_run('umount'),
             host.index(lambda e: e[0] == 'clear_dir'),
             host.first_run('systemctl', 'start'),
             host.index(lambda e: e[0] == 'wait_socket'),
             host.first_run('sync'),
             host.index(lambda e: e[0] == 'write')]
    assert order == sorted(order)
    assert host.ran('systemctl', 'stop', 'stargz-snapshotter', 'soci-snapshotter')
    assert host.ran('systemctl', 'start', 'stargz-snapshotter', 'soci-snapshotter')
    # only FUSE mounts under the roots, deepest first; other FUSE mounts are left alone
    assert [argv[-1] for argv in host.ran('umount', '-l')] == [
        STARGZ_ROOT + '/snapshotter/snapshots/5/fs/nested', STARGZ_ROOT + '/snapshotter/snapshots/5/fs',
        STARGZ_ROOT + '/snapshotter/snapshots/12/fs', SOCI_ROOT + '/snapshotter/snapshots/9/fs']
    assert host.mounts == [('/mnt/sshfs', 'fuse.sshfs')]
    assert [e[1] for e in host.log if e[0] == 'clear_dir'] == [
        STARGZ_ROOT, SOCI_ROOT, '/var/lib/soci-snapshotter-grpc/content']
    assert [e[1:] for e in host.log if e[0] == 'wait_socket'] == [(STARGZ_SOCK, 30), (SOCI_SOCK, 30)]
    assert host.written == {'/proc/sys/vm/drop_caches': '3\n'}


def test_cold_reset_of_one_snapshotter_with_overrides_and_no_drop():
    host = FakeHost()
    host.add_fuse('/data/stargz/snapshotter/snapshots/1/fs')
    host.on('umount', '-l', effect=lambda argv: host.mounts.remove((argv[-1], 'fuse.rawBridge')))
    params = make_params(reset_snapshotters=['stargz'], drop_caches=False,
                         snapshotters={'stargz': {'root': '/data/stargz', 'service': 'my-stargz',
                                                  'socket': '/run/my-stargz.sock'}})
    cs.cold_reset(host, params)
    assert host.ran('systemctl', 'stop', 'my-stargz') and host.ran('systemctl', 'start', 'my-stargz')
    assert [argv[-1] for argv in host.ran('umount', '-l')] == ['/data/stargz/snapshotter/snapshots/1/fs']
    assert [e[1] for e in host.log if e[0] == 'clear_dir'] == ['/data/stargz']
    assert [e[1] for e in host.log if e[0] == 'wait_socket'] == ['/run/my-stargz.sock']
    assert not host.ran('snapshots', '--snapshotter', 'soci')
    assert not host.ran('sync') and host.written == {}


def test_cold_reset_without_lazy_snapshotters_touches_no_service():
    host = FakeHost()
    cs.cold_reset(host, make_params(reset_snapshotters=[]))
    assert not host.ran('systemctl') and not [e for e in host.log if e[0] in ('clear_dir', 'wait_socket')]


def test_cold_reset_refuses_when_an_image_remains():
    host = dirty_host()
    host.on('images', 'rm', rc=0)  # "succeeds" but the image stays
    with pytest.raises(ColdstartError, match='not cold after the reset, refusing to measure') as info:
        cs.cold_reset(host, make_params())
    assert '"images": 1' in str(info.value)
    assert '"content": 0' in str(info.value)


def test_cold_reset_refuses_when_a_fuse_mount_survives():
    host = dirty_host()
    host.on('umount', '-l', rc=32, err='umount: target is busy')
    with pytest.raises(ColdstartError, match='"fuse_mounts": 4'):
        cs.cold_reset(host, make_params())


def test_cold_reset_fails_when_a_socket_never_answers():
    host = dirty_host()
    host.socket_answers[SOCI_SOCK] = False
    with pytest.raises(ColdstartError, match='soci-snapshotter did not answer on %s within 30 s' % SOCI_SOCK):
        cs.cold_reset(host, make_params())
    assert not host.written  # no measurement preparation after the failure


def test_is_cold():
    cold = {'containers': 0, 'images': 0, 'content': 0, 'fuse_mounts': 0, 'other_content': 0,
            'snapshots': {'overlayfs': 0, 'stargz': 0, 'soci': None}}
    assert cs.is_cold(cold)
    for key in ('containers', 'images', 'content', 'fuse_mounts'):
        assert not cs.is_cold(dict(cold, **{key: 1}))
    assert not cs.is_cold(dict(cold, snapshots={'overlayfs': 0, 'stargz': 2, 'soci': 0}))


# --- what the pull left ----------------------------------------------------------------------------------------

def test_remote_snapshots_counts_only_labelled_ones():
    host = FakeHost()
    host.add_snapshot('stargz', 'sha256:l1', remote=True)
    host.add_snapshot('stargz', 'sha256:l2', parent='sha256:l1', remote=True)
    host.add_snapshot('stargz', 'sha256:l3', parent='sha256:l2')
    assert cs.remote_snapshots(host, make_params()) == 2
    assert cs.remote_snapshots(host, make_params(snapshotter='soci')) == 0
    host.log = []
    assert cs.remote_snapshots(host, make_params(snapshotter='overlayfs')) == 0
    assert host.log == []


def test_remote_snapshots_when_listing_fails():
    host = FakeHost()
    host.on('--snapshotter', 'stargz', 'ls', rc=1, err='snapshotter not loaded: stargz')
    assert cs.remote_snapshots(host, make_params()) == 0


def layer(size):
    return {'mediaType': 'application/vnd.oci.image.layer.v1.tar+gzip', 'size': size,
            'digest': 'sha256:' + '%064x' % size}


def test_image_compressed_size_of_a_manifest():
    host = FakeHost()
    host.ns()['images'][IMAGE] = MANIFEST
    host.ns()['content'][MANIFEST] = json.dumps({'schemaVersion': 2, 'config': {'size': 1234},
                                                 'layers': [layer(4000000), layer(6000000)]})
    assert cs.image_compressed_size(host, make_params(), 'amd64') == 10000000


def test_image_compressed_size_via_an_index_picks_the_architecture():
    host = FakeHost()
    host.ns()['images'][IMAGE] = INDEX
    host.ns()['content'][INDEX] = json.dumps({'schemaVersion': 2, 'manifests': [
        {'digest': ARM_MANIFEST, 'platform': {'architecture': 'arm64', 'os': 'linux'}},
        {'digest': MANIFEST, 'platform': {'architecture': 'amd64', 'os': 'linux'}}]})
    host.ns()['content'][MANIFEST] = json.dumps({'layers': [layer(100), layer(200)]})
    host.ns()['content'][ARM_MANIFEST] = json.dumps({'layers': [layer(7)]})
    assert cs.image_compressed_size(host, make_params(), 'amd64') == 300
    assert cs.image_compressed_size(host, make_params(), 'arm64') == 7
    # no manifest for the platform: the first one
    assert cs.image_compressed_size(host, make_params(), 's390x') == 7


def test_image_compressed_size_unknown():
    host = FakeHost()
    assert cs.image_compressed_size(host, make_params(), 'amd64') is None  # no such image
    host.ns()['images'][IMAGE] = MANIFEST
    assert cs.image_compressed_size(host, make_params(), 'amd64') is None  # manifest not in content
    host.ns()['content'][MANIFEST] = json.dumps({'manifests': []})
    assert cs.image_compressed_size(host, make_params(), 'amd64') is None


# --- judge -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('snapshotter,fuse,remote,fetched,compressed,expected', [
    ('overlayfs', 0, 0, 10 ** 9, 10 ** 6, (False, False)),
    ('overlayfs', 3, 3, 10, 10 ** 6, (False, False)),
    ('stargz', 2, 2, 100000, 10000000, (True, False)),
    ('soci', 1, 5, 100000, 10000000, (True, False)),
    ('stargz', 2, 2, 8999999, 10000000, (True, False)),
    ('stargz', 2, 2, 9000000, 10000000, (False, True)),  # 90 % of the image: a full pull
    ('stargz', 2, 2, 12000000, 10000000, (False, True)),
    ('stargz', 0, 2, 100000, 10000000, (False, True)),  # no FUSE mount
    ('soci', 2, 0, 100000, 10000000, (False, True)),  # no remote snapshot
    ('stargz', 2, 2, None, 10000000, (True, False)),  # bytes unknown: FUSE + remote decide
    ('stargz', 0, 2, None, 10000000, (False, True)),
    ('stargz', 2, 2, 10 ** 9, None, (True, False)),  # image size unknown
])
def test_judge(snapshotter, fuse, remote, fetched, compressed, expected):
    assert cs.judge(snapshotter, fuse, remote, fetched, compressed) == expected


def test_milestones_first_match_only():
    stones = cs.Milestones([{'name': 'imported', 'regex': r'imported \w+'},
                            {'name': 'token', 'regex': 'first token'},
                            {'name': 'never', 'regex': 'does not happen'}])
    stones.feed(0.1234567, 'boot')
    stones.feed(0.5, 'imported torch')
    stones.feed(0.9, 'imported numpy')
    stones.feed(1.25, 'first token; imported again')
    assert stones.result() == {'imported': 0.5, 'token': 1.25, 'never': None}
    assert cs.Milestones(None).result() == {}


# --- run until ready -------------------------------------------------------------------------------------------

def test_run_until_exit():
    host = FakeHost()
    host.script_task([[(0.01, 'starting')], [], [(0.07, 'done')]], polls=2, exit_code=0)
    params = make_params(milestones=[{'name': 'started', 'regex': 'start'}, {'name': 'done', 'regex': 'done'}])
    ready_at, exit_code, lines, stones, timed_out = cs.run_until_ready(host, params, CID)
    assert host.log[0] == ('spawn', base() + ['tasks', 'start', CID])
    assert exit_code == 0 and not timed_out
    assert ready_at == pytest.approx(0.1)  # when the exit was seen (two 50 ms sleeps)
    assert lines == ['starting', 'done']
    assert stones == {'started': 0.01, 'done': 0.07}
    assert host.sleeps == [0.05, 0.05]
    assert not host.ran('tasks', 'kill')


def test_run_until_exit_keeps_the_exit_code():
    host = FakeHost()
    host.script_task([[(0.0, 'Traceback')]], polls=0, exit_code=3)
    ready_at, exit_code, lines, _stones, timed_out = cs.run_until_ready(host, make_params(), CID)
    assert (exit_code, timed_out, lines) == (3, False, ['Traceback'])
    assert ready_at == pytest.approx(0.0)


def test_run_until_ready_line_then_kill():
    host = FakeHost()
    host.script_task([[(0.01, 'loading')], [(0.03, 'weights 50%'), (0.07, 'model loaded in 3 s'),
                                            (0.08, 'model loaded again')]], polls=None)
    params = make_params(ready='line', ready_line=r'model loaded in \d+')
    ready_at, exit_code, lines, _stones, timed_out = cs.run_until_ready(host, params, CID)
    assert ready_at == pytest.approx(0.07)  # the line's own time stamp, not the loop's
    assert exit_code is None and not timed_out
    assert lines == ['loading', 'weights 50%', 'model loaded in 3 s', 'model loaded again']
    assert host.ran(*base() + ['tasks', 'kill', '-s', 'KILL', CID])
    assert host.procs[0].waited


def test_run_until_ready_url():
    host = FakeHost()
    host.url_answers = [False, False, True]
    host.script_task([[(0.0, 'listening')]], polls=None)
    params = make_params(ready='url', ready_url='http://127.0.0.1:8080/health')
    ready_at, exit_code, lines, _stones, timed_out = cs.run_until_ready(host, params, CID)
    assert ready_at == pytest.approx(0.1)
    assert (exit_code, timed_out, lines) == (None, False, ['listening'])
    assert [e for e in host.log if e[0] == 'http_ok'] == [('http_ok', 'http://127.0.0.1:8080/health')] * 3
    assert host.ran('tasks', 'kill', '-s', 'KILL', CID)


def test_run_until_ready_times_out_and_kills():
    host = FakeHost()
    host.script_task([[(0.0, 'hanging')]], polls=None)
    params = make_params(ready='line', ready_line='never', timeout=1)
    ready_at, exit_code, lines, _stones, timed_out = cs.run_until_ready(host, params, CID)
    assert timed_out and ready_at is None and exit_code is None
    assert lines == ['hanging']
    assert 1.0 < host.now - 1000.0 < 1.1  # stopped at the first check past the timeout
    assert host.ran(*base() + ['tasks', 'kill', '-s', 'KILL', CID])
    assert host.procs[0].waited


def test_run_until_exit_times_out():
    host = FakeHost()
    host.script_task([], polls=None)
    ready_at, exit_code, _lines, _stones, timed_out = cs.run_until_ready(host, make_params(timeout=1), CID)
    assert (ready_at, exit_code, timed_out) == (None, None, True)


def test_lines_arriving_after_exit_are_recorded():
    host = FakeHost()
    host.script_task([[(0.0, 'one')], [], [(0.04, 'ready now'), (0.05, 'bye')]], polls=1, exit_code=0)
    params = make_params(ready='line', ready_line='ready now', milestones=[{'name': 'bye', 'regex': 'bye'}])
    ready_at, exit_code, lines, stones, timed_out = cs.run_until_ready(host, params, CID)
    assert lines == ['one', 'ready now', 'bye']
    assert ready_at == pytest.approx(0.04)
    assert stones == {'bye': 0.05}
    assert (exit_code, timed_out) == (0, False)
    assert not host.ran('tasks', 'kill')


# --- measure ---------------------------------------------------------------------------------------------------

def lazy_pull(host, snapshotter='stargz', image=IMAGE, layers=(4000000, 6000000)):
    """What an rpull leaves: image, manifest, remote snapshots, FUSE mounts."""
    def effect(argv):
        st = host.ns()
        st['images'][image] = MANIFEST
        st['content'][MANIFEST] = json.dumps({'layers': [layer(size) for size in layers]})
        root = STARGZ_ROOT if snapshotter == 'stargz' else SOCI_ROOT
        parent = ''
        for number, size in enumerate(layers, 1):
            host.add_snapshot(snapshotter, 'sha256:%d' % size, parent=parent, remote=snapshotter != 'overlayfs')
            parent = 'sha256:%d' % size
            if snapshotter != 'overlayfs':
                host.add_fuse('%s/snapshotter/snapshots/%d/fs' % (root, number))
    return effect


def measured_host(snapshotter='stargz', rx=(5000000, 5800000), batches=None, polls=2, exit_code=0):
    host = dirty_host()
    host.net_dev_reads = list(rx)
    host.on('rpull' if snapshotter != 'overlayfs' else 'pull', seconds=2.5, effect=lazy_pull(host, snapshotter))
    host.on('container', 'create', seconds=0.25, effect=lambda argv: host.ns()['containers'].update({CID: snapshotter}))
    host.script_task(batches if batches is not None else
                     [[(0.02, 'sparse: reading 3 of 2000 files')], [(0.06, 'sparse: ok 42')]],
                     polls=polls, exit_code=exit_code)
    return host


def test_measure_happy_path():
    host = measured_host()
    params = make_params(expected_output='ok 42', milestones=[{'name': 'reading', 'regex': 'reading'}])
    result = cs.measure(host, params, PATHS, CID)
    assert result == {
        'image': IMAGE, 'snapshotter': 'stargz', 'ready': 'exit',
        'reset': {'containers': 0, 'images': 0, 'content': 0, 'fuse_mounts': 0, 'other_content': 0,
                  'snapshots': {'overlayfs': 0, 'stargz': 0, 'soci': 0}},
        'started_at': 'T+1000.000', 'finished_at': 'T+1002.850',
        'pull_seconds': 2.5, 'create_seconds': 0.25, 'run_seconds': 0.1, 'total_seconds': 2.85,
        'fuse_mounts': 2, 'remote_snapshots': 2, 'rx_bytes': 800000, 'image_compressed_size': 10000000,
        'exit_code': 0, 'timed_out': False, 'milestones': {'reading': 0.02},
        'output_tail': ['sparse: reading 3 of 2000 files', 'sparse: ok 42'],
        'lazy': True, 'fallback': False, 'ok': True}
    # reset, then pull, create, start, clean-up, in that order
    steps = [host.index(lambda e: e[0] == 'write'),
             host.first_run('image', 'rpull'), host.first_run('container', 'create'),
             host.index(lambda e: e[0] == 'spawn'), host.first_run('tasks', 'rm', '-f', CID),
             host.first_run('containers', 'rm', CID)]
    assert steps == sorted(steps)
    assert host.ran(PATHS['ctr-remote'], '--address', ADDRESS, '--namespace', NS, 'image', 'rpull')
    assert CID not in host.ns()['containers']


def test_measure_counts_a_big_fetch_as_fallback():
    host = measured_host(rx=(0, 9500000))
    result = cs.measure(host, make_params(), PATHS, CID)
    assert (result['lazy'], result['fallback'], result['ok']) == (False, True, True)


def test_measure_overlayfs_is_never_lazy():
    host = measured_host(snapshotter='overlayfs', rx=(0, 10100000))
    params = make_params(snapshotter='overlayfs', image=IMAGE)
    result = cs.measure(host, params, PATHS, CID)
    assert host.ran(*base() + ['image', 'pull', '--hosts-dir', '/etc/containerd/certs.d', '--snapshotter', 'overlayfs'])
    assert (result['fuse_mounts'], result['remote_snapshots'], result['lazy'], result['fallback']) == (0, 0, False, False)
    assert not host.ran('snapshots', '--snapshotter', 'overlayfs', 'info')


def test_measure_failing_pull_raises_with_stderr():
    host = measured_host()
    host.on('rpull', rc=1, seconds=0.3, out='fetching...',
            err='ctr-remote: failed to resolve reference "%s": not found\n' % IMAGE)
    with pytest.raises(ColdstartError) as info:
        cs.measure(host, make_params(), PATHS, CID)
    assert str(info.value) == 'pull of %s failed (rc=1): ctr-remote: failed to resolve reference "%s": not found' % (
        IMAGE, IMAGE)
    assert not host.ran('container', 'create')
    assert not [e for e in host.log if e[0] == 'spawn']


def test_measure_failing_create_raises_with_stderr():
    host = measured_host()
    host.on('container', 'create', rc=1, err='ctr: failed to prepare extraction snapshot: no space left on device\n')
    with pytest.raises(ColdstartError, match=r'container create failed \(rc=1\): ctr: failed to prepare extraction'):
        cs.measure(host, make_params(), PATHS, CID)
    assert not [e for e in host.log if e[0] == 'spawn']


def test_measure_failing_create_still_cleans_up():
    host = measured_host()
    host.on('container', 'create', rc=1, err='ctr: failed to create container: timeout')
    with pytest.raises(ColdstartError):
        cs.measure(host, make_params(), PATHS, CID)
    assert host.ran('tasks', 'rm', '-f', CID)
    assert host.ran('containers', 'rm', CID)


def test_measure_cleans_up_when_the_run_raises():
    host = measured_host()

    def boom(argv):
        raise RuntimeError('spawn failed')
    host.spawn = boom
    with pytest.raises(RuntimeError):
        cs.measure(host, make_params(), PATHS, CID)
    assert host.ran('tasks', 'rm', '-f', CID) and host.ran('containers', 'rm', CID)


def test_measure_expected_output_missing():
    host = measured_host()
    result = cs.measure(host, make_params(expected_output='sparse: ok 43'), PATHS, CID)
    assert result['ok'] is False
    assert result['problem'] == "expected output 'sparse: ok 43' not seen"
    assert result['run_seconds'] == 0.1


def test_measure_nonzero_exit():
    host = measured_host(exit_code=2)
    result = cs.measure(host, make_params(), PATHS, CID)
    assert (result['ok'], result['exit_code'], result['problem']) == (False, 2, 'exit code 2')
    assert result['total_seconds'] == 2.85


def test_measure_timeout():
    host = measured_host(polls=None)
    result = cs.measure(host, make_params(timeout=1), PATHS, CID)
    assert result['timed_out'] is True and result['ok'] is False
    assert (result['run_seconds'], result['total_seconds']) == (None, None)
    assert result['problem'] == 'not ready within 1 s'
    assert host.ran('tasks', 'kill', '-s', 'KILL', CID)


def test_measure_task_exits_before_the_ready_line():
    host = measured_host(exit_code=1)
    result = cs.measure(host, make_params(ready='line', ready_line='never printed'), PATHS, CID)
    assert result['ok'] is False and result['run_seconds'] is None
    assert 'problem' in result


def test_measure_output_lines_zero():
    host = measured_host()
    result = cs.measure(host, make_params(output_lines=0), PATHS, CID)
    assert result['output_tail'] == []


def test_measure_output_tail_is_the_tail():
    host = measured_host()
    result = cs.measure(host, make_params(output_lines=1), PATHS, CID)
    assert result['output_tail'] == ['sparse: ok 42']


def test_measure_without_reset():
    host = measured_host()
    host.ns()['containers'].clear()
    result = cs.measure(host, make_params(reset=False), PATHS, CID)
    assert result['reset'] is None
    assert not host.ran('systemctl') and not host.ran('images', 'rm')
    assert not [argv for argv in host.runs() if 'snapshots' in argv and 'rm' in argv]
    assert not [e for e in host.log if e[0] in ('clear_dir', 'wait_socket', 'write')]
    assert result['pull_seconds'] == 2.5 and result['ok'] is True


# --- busy elsewhere --------------------------------------------------------------------------------------------

def test_busy_elsewhere():
    host = FakeHost()
    host.ns('default')['containers'].update({'web': 'stargz', 'db': 'overlayfs'})
    host.ns(NS)['containers'].update({'leftover': 'stargz'})
    host.ns('k8s.io')['containers'].update({'pod-1': 'soci'})
    host.ns('empty')
    # every container elsewhere counts: the reset removes all namespaces' images and content
    busy = 'default/web on stargz, default/db on overlayfs, k8s.io/pod-1 on soci'
    assert cs.busy_elsewhere(host, make_params()) == busy
    assert cs.busy_elsewhere(host, make_params(reset_snapshotters=[])) == busy
    assert host.ran(CTR, '--address', ADDRESS, 'namespaces', 'ls', '-q')
    assert not host.ran('--namespace', NS, 'containers', 'info')


def test_busy_elsewhere_survives_odd_answers():
    host = FakeHost()
    host.ns('default')['containers'].update({'web': 'stargz', 'gone': 'stargz'})
    host.on('containers', 'info', 'web', out='not json')
    host.on('containers', 'info', 'gone', rc=1, err='not found')
    assert cs.busy_elsewhere(host, make_params()) == 'default/web on unknown, default/gone on unknown'
    host = FakeHost()
    host.on('namespaces', 'ls', rc=1, err='connection refused')
    assert cs.busy_elsewhere(host, make_params()) == ''


def test_cold_reset_removes_content_other_namespaces_hold():
    """Blobs are shared between namespaces: one left in `default` would be
    reused by the benchmark's pull and never fetched (seen in the lab)."""
    host = FakeHost()
    host.ns('default')['images']['reg.example.internal/app:1'] = 'sha256:' + 'a' * 64
    host.ns('default')['content']['sha256:' + 'b' * 64] = '{}'
    state = cs.cold_reset(host, make_params())
    assert state['other_content'] == 0
    assert host.ns('default')['content'] == {} and host.ns('default')['images'] == {}


def test_cold_reset_fails_when_another_namespace_keeps_content():
    host = FakeHost()
    host.ns('default')['content']['sha256:' + 'b' * 64] = '{}'
    host.on('--namespace', 'default', 'content', 'rm', rc=1, err='in use')
    with pytest.raises(cs.ColdstartError, match='"other_content": 1'):
        cs.cold_reset(host, make_params())
