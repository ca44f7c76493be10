from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

from ansible_collections.lazypull.snapshotters.plugins.module_utils import lazy_probe as lp
from ansible_collections.lazypull.snapshotters.plugins.module_utils.coldstart import REMOTE_LABEL, ColdstartError
from ansible_collections.lazypull.snapshotters.plugins.module_utils.lazy_probe import ProbeError

CTR = '/usr/bin/ctr'
CTR_REMOTE = '/usr/local/bin/ctr-remote'
SOCI = '/usr/local/bin/soci'
ADDRESS = '/run/containerd/containerd.sock'
NS = 'lazypull-probe'
CID = 'lazypull-probe-0123456789ab'
IMAGE = 'registry.lab:5000/lazypull/probe:1-esgz'
PATHS = {'ctr': CTR, 'ctr-remote': CTR_REMOTE, 'soci': SOCI}
ROOTS = {'stargz': '/var/lib/containerd-stargz-grpc', 'soci': '/var/lib/soci-snapshotter-grpc'}
MANIFEST = 'sha256:' + 'a' * 64
CONFIG = 'sha256:' + 'c' * 64
LAYERS = ['sha256:' + '1' * 64, 'sha256:' + '2' * 64]
COMMAND = ['sh', '-c', 'cat /bin/busybox > /dev/null && echo lazypull-probe-ok']
EXPECT = 'lazypull-probe-ok'


def make_params(**overrides):
    """The module's argument_spec defaults, with ctr_path resolved as main() does."""
    params = {'image': IMAGE, 'snapshotter': 'stargz', 'namespace': NS, 'containerd_address': ADDRESS,
              'hosts_dir': '/etc/containerd/certs.d', 'plain_http': False, 'ctr_path': CTR,
              'ctr_remote_path': None, 'soci_path': None, 'snapshotters': {}, 'command': list(COMMAND),
              'expect': EXPECT, 'require_lazy': True, 'timeout': 120}
    params.update(overrides)
    return params


def base(namespace=NS):
    return [CTR, '--address', ADDRESS, '--namespace', namespace]


def manifest_text(layers=None):
    layers = LAYERS if layers is None else layers
    return json.dumps({'schemaVersion': 2, 'mediaType': 'application/vnd.oci.image.manifest.v1+json',
                       'config': {'digest': CONFIG, 'size': 1234},
                       'layers': [{'digest': d, 'size': 1000 * (n + 1),
                                   'mediaType': 'application/vnd.oci.image.layer.v1.tar+gzip'}
                                  for n, d in enumerate(layers)]})


class FakeHost(object):
    """lazy_probe's host seam over a small model of containerd: per namespace
    tasks, containers, images, content and snapshots, plus the host's FUSE
    mounts (each owned by a namespace). It answers exactly the commands the
    probe should issue; anything else fails the test.

    pull: 'lazy' (remote snapshots + FUSE mounts, no layer blobs), 'full'
    (every blob stored, plain snapshots) or a (rc, out, err) failure.
    after_pull: called with the namespace after a successful pull (to bend the model).
    run_reply: (rc, out, err) of `timeout ... ctr run --rm`; 124/137 leave
    the container and its task behind, as a killed ctr client does."""

    def __init__(self, pull='lazy', run_reply=(0, 'lazypull-probe-ok\n', ''), pull_seconds=2.5, run_seconds=0.75,
                 after_pull=None):
        self.now = 1000.0
        self.log = []
        self.state = {}
        self.mounts = []  # (mountpoint, fstype, namespace)
        self.pull = pull
        self.run_reply = run_reply
        self.pull_seconds = pull_seconds
        self.run_seconds = run_seconds
        self.after_pull = after_pull
        self.stuck_tasks = set()  # tasks a SIGKILL does not end (a process stuck in a FUSE read)

    # --- the model -------------------------------------------------------
    def space(self, name=NS):
        return self.state.setdefault(name, {'tasks': {}, 'containers': {}, 'images': {}, 'content': {}, 'leases': {},
                                            'snapshots': {'overlayfs': {}, 'stargz': {}, 'soci': {}}})

    def add_fuse(self, snapshotter, n, namespace='k8s.io'):
        self.mounts.append(('%s/snapshotter/snapshots/%d/fs' % (ROOTS[snapshotter], n), 'fuse.rawBridge', namespace))

    def fuse(self, namespace=NS):
        return [m[0] for m in self.mounts if m[2] == namespace]

    def _gc(self, namespace):
        """What `images rm --sync` collects once nothing references it."""
        st = self.space(namespace)
        if not st['images']:
            st['content'].clear()
            for snaps in st['snapshots'].values():
                snaps.clear()
            self.mounts = [m for m in self.mounts if m[2] != namespace]

    def _pull(self, argv):
        namespace = argv[argv.index('--namespace') + 1]
        snapshotter = argv[argv.index('--snapshotter') + 1]
        self.now += self.pull_seconds
        if isinstance(self.pull, tuple):
            self.space(namespace)['content'][MANIFEST] = manifest_text()  # a partial pull leaves blobs behind
            return self.pull
        st = self.space(namespace)
        st['images'][argv[-1]] = MANIFEST
        st['content'][MANIFEST] = manifest_text()
        st['content'][CONFIG] = '{}'
        parent = ''
        for n, layer in enumerate(LAYERS):
            key = 'sha256:chain%d' % n
            lazy = self.pull == 'lazy' and snapshotter != 'overlayfs'
            st['snapshots'][snapshotter][key] = {'parent': parent, 'remote': lazy}
            parent = key
            if lazy:
                self.add_fuse(snapshotter, 100 + n, namespace)
            else:
                st['content'][layer] = 'layer blob'
        if self.after_pull:
            self.after_pull(namespace)
        return 0, 'done: 1.2s\n', ''

    def _run_container(self, argv):
        assert argv[1] == '--signal=KILL' and argv[2].isdigit(), argv
        inner = argv[3:]
        namespace = inner[inner.index('--namespace') + 1]
        cid = inner[inner.index('--rm') + 4]
        self.now += self.run_seconds
        if self.run_reply[0] in (124, 137):
            self.space(namespace)['containers'][cid] = 'stargz'
            self.space(namespace)['tasks'][cid] = 'RUNNING'
        return self.run_reply

    def _ctr(self, argv):
        rest = argv[1:]
        namespace = None
        while rest and rest[0] in ('--address', '--namespace'):
            if rest[0] == '--address':
                assert rest[1] == ADDRESS, argv
            else:
                namespace = rest[1]
            rest = rest[2:]
        assert namespace is not None, 'ctr without --namespace: %s' % argv
        st = self.space(namespace)
        if rest in (['tasks', 'ls', '-q'], ['containers', 'ls', '-q'], ['images', 'ls', '-q'], ['content', 'ls', '-q'],
                    ['leases', 'ls', '-q']):
            return 0, ''.join('%s\n' % k for k in st[rest[0]]), ''
        if rest[:2] == ['leases', 'rm'] and len(rest) > 2:
            for lease in rest[2:]:
                st['leases'].pop(lease)
            self._gc(namespace)  # what the lease held goes unless an image refers to it
            return 0, '', ''
        if rest[:2] == ['content', 'rm'] and len(rest) > 2:
            for digest in rest[2:]:
                st['content'].pop(digest)
            return 0, '', ''
        if rest[:4] == ['tasks', 'kill', '--signal', 'SIGKILL'] and len(rest) == 5:
            if rest[4] not in self.stuck_tasks:
                st['tasks'][rest[4]] = 'STOPPED'
            return 0, '', ''
        if rest[:3] == ['tasks', 'rm', '-f'] and len(rest) == 4:
            if st['tasks'].get(rest[3]) == 'RUNNING':
                return 1, '', 'ctr: task must be stopped before deletion: running: failed precondition'
            st['tasks'].pop(rest[3], None)
            return 0, '', ''
        if rest[:2] == ['containers', 'rm'] and len(rest) > 2:
            errors = []  # ctr goes on with the next id, then fails
            for cid in rest[2:]:
                if cid in st['tasks']:
                    errors.append('ctr: failed to delete container "%s": cannot delete a non stopped container' % cid)
                else:
                    st['containers'].pop(cid)
            return (1 if errors else 0), '', '\n'.join(errors)
        if rest[:3] == ['images', 'rm', '--sync'] and len(rest) > 3:
            for ref in rest[3:]:
                st['images'].pop(ref)
            self._gc(namespace)
            return 0, '', ''
        if rest[:2] == ['images', 'ls'] and len(rest) == 3 and rest[2].startswith('name=='):
            ref = rest[2][len('name=='):]
            out = 'REF TYPE DIGEST SIZE PLATFORMS LABELS\n'
            if ref in st['images']:
                out += '%s application/vnd.oci.image.manifest.v1+json %s 3.0 KiB linux/amd64 -\n' % (ref, st['images'][ref])
            return 0, out, ''
        if rest[:2] == ['content', 'get'] and len(rest) == 3:
            if rest[2] not in st['content']:
                return 1, '', 'ctr: %s: not found' % rest[2]
            return 0, st['content'][rest[2]], ''
        if rest[:2] == ['snapshots', '--snapshotter'] and rest[3:] == ['ls']:
            snaps = st['snapshots'][rest[2]]
            return 0, 'KEY PARENT KIND\n' + ''.join('%s %s Committed\n' % (k, v['parent']) for k, v in sorted(snaps.items())), ''
        if rest[:2] == ['snapshots', '--snapshotter'] and rest[3:4] == ['info'] and len(rest) == 5:
            snap = st['snapshots'][rest[2]][rest[4]]
            labels = {REMOTE_LABEL: 'remote snapshot'} if snap['remote'] else {}
            return 0, json.dumps({'Kind': 'Committed', 'Name': rest[4], 'Parent': snap['parent'], 'Labels': labels}), ''
        raise AssertionError('unexpected ctr command: %s' % argv)

    # --- the seam ----------------------------------------------------------
    def run(self, argv, check=True):
        argv = list(argv)
        self.log.append(('run', argv))
        if argv[0] == 'timeout':
            rc, out, err = self._run_container(argv)
        elif argv[0] in (CTR_REMOTE, SOCI) and argv[5:7] == ['image', 'rpull']:
            rc, out, err = self._pull(argv)
        elif argv[0] == CTR and argv[5:7] == ['image', 'pull']:
            rc, out, err = self._pull(argv)
        elif argv[0] == CTR:
            rc, out, err = self._ctr(argv)
        else:
            raise AssertionError('unexpected command: %s' % argv)
        if check and rc != 0:
            raise ColdstartError('%s failed (rc=%s): %s' % (' '.join(argv), rc, err))
        return rc, out, err

    def read(self, path):
        self.log.append(('read', path))
        if path != '/proc/self/mountinfo':
            raise AssertionError('unexpected read: %s' % path)
        lines = ['22 1 0:21 / / rw,relatime - ext4 /dev/root rw',
                 '60 22 0:50 / /var/lib/containerd-stargz-grpc rw,relatime - ext4 /dev/root rw']
        for number, (point, fstype, _ns) in enumerate(self.mounts, 300):
            lines.append('%d 60 0:%d / %s rw,nodev,relatime - %s stargz rw,user_id=0' % (number, number, point, fstype))
        return '\n'.join(lines) + '\n'

    def clock(self):
        return self.now

    # --- helpers for assertions --------------------------------------------
    def runs(self):
        return [entry[1] for entry in self.log if entry[0] == 'run']

    def verbs(self):
        """Each command without the ctr/--address/--namespace prefix (other binaries: as is)."""
        return [argv[5:] if argv[:5] == base() else argv for argv in self.runs()]


def clear_listings(snapshotter='stargz'):
    """What clear_namespace runs in an empty namespace."""
    return [['tasks', 'ls', '-q'], ['containers', 'ls', '-q'], ['leases', 'ls', '-q'], ['images', 'ls', '-q'],
            ['content', 'ls', '-q']] + what_is_left(snapshotter)


def what_is_left(snapshotter='stargz'):
    return [['containers', 'ls', '-q'], ['images', 'ls', '-q'], ['content', 'ls', '-q'],
            ['snapshots', '--snapshotter', snapshotter, 'ls']]


def rpull(tool=CTR_REMOTE, snapshotter='stargz', extra=()):
    return ([tool, '--address', ADDRESS, '--namespace', NS, 'image', 'rpull', '--hosts-dir', '/etc/containerd/certs.d']
            + list(extra) + ['--snapshotter', snapshotter, IMAGE])


def run_argv(snapshotter='stargz', timeout=120, command=None):
    command = COMMAND if command is None else command
    return ['timeout', '--signal=KILL', str(timeout)] + base() + ['run', '--rm', '--snapshotter', snapshotter, IMAGE, CID] + command


def stargz_lazy_verbs():
    """What a lazy stargz probe with a command runs, in order."""
    return clear_listings() + [
        rpull(),
        ['images', 'ls', 'name==' + IMAGE], ['content', 'get', MANIFEST], ['content', 'ls', '-q'],
        ['snapshots', '--snapshotter', 'stargz', 'ls'],
        ['snapshots', '--snapshotter', 'stargz', 'info', 'sha256:chain0'],
        ['snapshots', '--snapshotter', 'stargz', 'info', 'sha256:chain1'],
        run_argv(),
        ['tasks', 'ls', '-q'], ['containers', 'ls', '-q'], ['leases', 'ls', '-q'], ['images', 'ls', '-q'],
        ['images', 'rm', '--sync', IMAGE], ['content', 'ls', '-q']] + what_is_left()


FALLBACK_PROBLEM = ('the pull of %s on stargz was not lazy (a fallback to a full pull): no snapshot carries the remote label; '
                    'no new FUSE mount under the snapshotter root; containerd downloaded all 2 layer(s)' % IMAGE)


# --- validate ----------------------------------------------------------------

def test_validate_accepts_the_module_defaults():
    assert lp.validate(make_params()) is None
    assert lp.validate(make_params(snapshotter='overlayfs', command=[], expect=None)) is None


@pytest.mark.parametrize('overrides, message', [
    ({'snapshotter': 'zfs'}, "snapshotter must be one of overlayfs, stargz, soci, got 'zfs'"),
    ({'timeout': 0}, 'timeout must be positive'),
    ({'timeout': -5}, 'timeout must be positive'),
    ({'command': []}, 'expect needs a command to run'),
    ({'expect': '[ok'}, 'expect is not a valid regular expression: unterminated character set at position 0'),
])
def test_validate_refuses(overrides, message):
    with pytest.raises(ProbeError) as exc:
        lp.validate(make_params(**overrides))
    assert str(exc.value) == message


# --- clear_namespace -------------------------------------------------------

def test_clear_namespace_of_an_empty_namespace_only_lists():
    host = FakeHost()
    assert lp.clear_namespace(host, make_params()) == {}
    assert host.verbs() == clear_listings()


def test_clear_namespace_removes_an_interrupted_probe_and_leaves_other_namespaces_alone():
    host = FakeHost()
    st = host.space()
    st['tasks'] = {'lazypull-probe-old': 'RUNNING'}
    st['containers'] = {'lazypull-probe-old': 'stargz', 'lazypull-probe-created': 'stargz'}
    st['images'] = {IMAGE: MANIFEST, 'registry.lab:5000/lazypull/probe:1': MANIFEST}
    st['content'] = {MANIFEST: manifest_text()}
    host.add_fuse('stargz', 7, NS)
    workload = host.space('k8s.io')
    workload['containers'] = {'web': 'overlayfs'}
    workload['images'] = {'nginx:1': MANIFEST}
    host.add_fuse('stargz', 1, 'k8s.io')

    assert lp.clear_namespace(host, make_params()) == {}

    assert host.verbs() == [
        ['tasks', 'ls', '-q'],
        ['tasks', 'kill', '--signal', 'SIGKILL', 'lazypull-probe-old'], ['tasks', 'rm', '-f', 'lazypull-probe-old'],
        ['containers', 'ls', '-q'], ['containers', 'rm', 'lazypull-probe-old', 'lazypull-probe-created'],
        ['leases', 'ls', '-q'],
        ['images', 'ls', '-q'], ['images', 'rm', '--sync', IMAGE, 'registry.lab:5000/lazypull/probe:1'],
        ['content', 'ls', '-q']] + what_is_left()
    assert (st['tasks'], st['containers'], st['images'], st['content']) == ({}, {}, {}, {})
    assert host.fuse() == []
    assert workload['containers'] == {'web': 'overlayfs'} and workload['images'] == {'nginx:1': MANIFEST}
    assert host.fuse('k8s.io') == ['/var/lib/containerd-stargz-grpc/snapshotter/snapshots/1/fs']


def test_clear_namespace_reports_what_it_could_not_remove():
    host = FakeHost()
    st = host.space()
    st['tasks'] = {'stuck': 'RUNNING'}
    st['containers'] = {'stuck': 'stargz', 'done': 'stargz'}
    st['images'] = {IMAGE: MANIFEST}
    host.stuck_tasks.add('stuck')
    assert lp.clear_namespace(host, make_params()) == {'containers': 1}
    assert st['containers'] == {'stuck': 'stargz'}
    assert st['images'] == {}


def test_blobs_left_by_an_interrupted_pull_do_not_make_a_lazy_pull_a_fallback():
    host = FakeHost(pull='lazy')
    host.space()['content'] = dict((layer, 'layer blob') for layer in LAYERS)  # an earlier pull, killed before it made an image
    result = lp.probe(host, make_params(), PATHS, CID)
    assert (result['lazy'], result['layers_fetched'], result['problem']) == (True, 0, None)
    assert ['content', 'rm'] + LAYERS in host.verbs()


def test_blobs_held_by_the_lease_of_a_killed_pull_are_released_before_the_probe():
    host = FakeHost(pull='lazy')
    host.space()['leases'] = {'lazypull-probe-killed': {}}
    host.space()['content'] = dict((layer, 'layer blob') for layer in LAYERS)
    result = lp.probe(host, make_params(), PATHS, CID)
    assert (result['lazy'], result['layers_fetched'], result['problem']) == (True, 0, None)
    assert host.verbs()[:4] == [['tasks', 'ls', '-q'], ['containers', 'ls', '-q'], ['leases', 'ls', '-q'],
                                ['leases', 'rm', 'lazypull-probe-killed']]


# --- judge, run_command ------------------------------------------------------

@pytest.mark.parametrize('snapshotter, layers, fetched, remote, fuse, expected', [
    ('stargz', 2, 1, 1, 1, (True, None)),
    ('soci', 0, 0, 3, 2, (True, None)),  # layers unknown: no byte evidence either way
    ('stargz', 2, 2, 2, 2, (False, 'the pull of %s on stargz was not lazy (a fallback to a full pull): '
                                   'containerd downloaded all 2 layer(s)' % IMAGE)),
    ('overlayfs', 2, 2, 0, 0, (False, None)),
])
def test_judge(snapshotter, layers, fetched, remote, fuse, expected):
    params = make_params(snapshotter=snapshotter)
    assert lp.judge(params, [{'digest': d} for d in LAYERS[:layers]], LAYERS[:fetched], remote, fuse) == expected


def test_run_command_is_bounded_by_timeout_kill():
    params = make_params(snapshotter='soci', timeout=30, command=['true'])
    assert lp.run_command(params, CID) == ['timeout', '--signal=KILL', '30', CTR, '--address', ADDRESS, '--namespace', NS,
                                           'run', '--rm', '--snapshotter', 'soci', IMAGE, CID, 'true']


# --- probe: laziness ---------------------------------------------------------

def test_lazy_stargz_probe():
    host = FakeHost(pull='lazy')
    result = lp.probe(host, make_params(), PATHS, CID)
    assert result == {'image': IMAGE, 'snapshotter': 'stargz', 'namespace': NS, 'pull_seconds': 2.5,
                      'layers': 2, 'layers_fetched': 0, 'remote_snapshots': 2, 'fuse_mounts': 2,
                      'lazy': True, 'fallback': False, 'run_seconds': 0.75, 'exit_code': 0,
                      'output': ['lazypull-probe-ok'], 'ok': True, 'problem': None}
    assert host.verbs() == stargz_lazy_verbs()
    assert host.fuse() == [] and host.space()['content'] == {}


def test_fuse_mounts_are_counted_as_the_difference_before_and_after():
    host = FakeHost(pull='lazy')
    for n in (1, 2, 3):  # a workload's lazily pulled containers
        host.add_fuse('stargz', n, 'k8s.io')
    host.add_fuse('soci', 4, 'k8s.io')
    result = lp.probe(host, make_params(), PATHS, CID)
    assert (result['fuse_mounts'], result['lazy'], result['ok']) == (2, True, True)
    assert len(host.fuse('k8s.io')) == 4


def test_pre_existing_fuse_mounts_alone_do_not_prove_laziness():
    def no_mounts(namespace):
        host.mounts = [m for m in host.mounts if m[2] != namespace]

    host = FakeHost(pull='lazy', after_pull=no_mounts)
    for n in (1, 2, 3):
        host.add_fuse('stargz', n, 'k8s.io')
    result = lp.probe(host, make_params(), PATHS, CID)
    assert (result['fuse_mounts'], result['remote_snapshots'], result['layers_fetched']) == (0, 2, 0)
    assert result['lazy'] is False and result['ok'] is False
    assert result['problem'] == ('the pull of %s on stargz was not lazy (a fallback to a full pull): '
                                 'no new FUSE mount under the snapshotter root' % IMAGE)


def test_fallback_fails_when_laziness_is_required():
    host = FakeHost(pull='full')
    result = lp.probe(host, make_params(), PATHS, CID)
    assert (result['ok'], result['lazy'], result['fallback']) == (False, False, True)
    assert (result['layers'], result['layers_fetched'], result['remote_snapshots'], result['fuse_mounts']) == (2, 2, 0, 0)
    assert result['problem'] == FALLBACK_PROBLEM
    assert result['exit_code'] == 0  # the command still ran
    assert host.space()['content'] == {}


def test_fallback_is_ok_but_reported_when_laziness_is_not_required():
    host = FakeHost(pull='full')
    result = lp.probe(host, make_params(require_lazy=False), PATHS, CID)
    assert (result['ok'], result['lazy'], result['fallback']) == (True, False, True)
    assert result['problem'] == FALLBACK_PROBLEM


def test_overlayfs_probe_uses_ctr_pull_and_needs_no_proof():
    host = FakeHost(pull='full')
    params = make_params(snapshotter='overlayfs', command=['true'], expect=None, plain_http=True)
    result = lp.probe(host, params, {'ctr': CTR}, CID)
    assert result == {'image': IMAGE, 'snapshotter': 'overlayfs', 'namespace': NS, 'pull_seconds': 2.5,
                      'layers': 2, 'layers_fetched': 2, 'remote_snapshots': 0, 'fuse_mounts': 0,
                      'lazy': False, 'fallback': False, 'run_seconds': 0.75, 'exit_code': 0,
                      'output': ['lazypull-probe-ok'], 'ok': True, 'problem': None}
    pull = base() + ['image', 'pull', '--hosts-dir', '/etc/containerd/certs.d', '--plain-http', '--snapshotter', 'overlayfs', IMAGE]
    n = len(clear_listings())
    assert host.runs()[n] == pull
    assert not [v for v in host.verbs() if v[0] == 'snapshots' and 'info' in v]  # no proof asked of overlayfs
    assert ('read', '/proc/self/mountinfo') not in host.log
    assert host.runs()[n + 4] == run_argv('overlayfs', command=['true'])


def test_soci_probe_pulls_with_soci_rpull_and_counts_mounts_under_its_root():
    host = FakeHost(pull='lazy')
    host.add_fuse('stargz', 1, 'k8s.io')
    result = lp.probe(host, make_params(snapshotter='soci', plain_http=True), PATHS, CID)
    assert host.runs()[len(clear_listings('soci'))] == rpull(SOCI, 'soci', extra=['--plain-http'])
    assert (result['lazy'], result['fuse_mounts'], result['remote_snapshots'], result['ok']) == (True, 2, 2, True)
    assert ['snapshots', '--snapshotter', 'soci', 'ls'] in host.verbs()


def test_fuse_mounts_are_looked_for_under_an_overridden_root():
    host = FakeHost(pull='lazy')  # the fake mounts under the default root
    params = make_params(snapshotters={'stargz': {'root': '/data/stargz'}})
    result = lp.probe(host, params, PATHS, CID)
    assert (result['fuse_mounts'], result['lazy'], result['ok']) == (0, False, False)


def test_probe_reads_the_layers_of_its_architecture_from_an_index():
    index = 'sha256:' + 'e' * 64
    arm = 'sha256:' + 'f' * 64

    def an_index(namespace):
        st = host.space(namespace)
        st['images'][IMAGE] = index
        st['content'][index] = json.dumps({'manifests': [
            {'digest': MANIFEST, 'platform': {'architecture': 'amd64', 'os': 'linux'}},
            {'digest': arm, 'platform': {'architecture': 'arm64', 'os': 'linux'}}]})
        st['content'][arm] = manifest_text(LAYERS + ['sha256:' + '3' * 64])

    host = FakeHost(pull='lazy', after_pull=an_index)
    result = lp.probe(host, make_params(), PATHS, CID, architecture='arm64')
    assert (result['layers'], result['layers_fetched']) == (3, 0)
    assert ['content', 'get', arm] in host.verbs()


# --- probe: failures and the command ------------------------------------------

def test_pull_failure_raises_and_still_clears_the_namespace():
    host = FakeHost(pull=(1, '', 'ctr-remote: failed to resolve reference "%s": not found\n' % IMAGE))
    with pytest.raises(ProbeError) as exc:
        lp.probe(host, make_params(), PATHS, CID)
    assert str(exc.value) == ('pull of %s on stargz failed (rc=1): ctr-remote: failed to resolve reference "%s": not found'
                              % (IMAGE, IMAGE))
    # the failed pull left its manifest blob: removed by the cleanup
    assert host.verbs() == clear_listings() + [rpull()] + [
        ['tasks', 'ls', '-q'], ['containers', 'ls', '-q'], ['leases', 'ls', '-q'], ['images', 'ls', '-q'],
        ['content', 'ls', '-q'], ['content', 'rm', MANIFEST]] + what_is_left()
    assert host.space()['content'] == {}
    assert not [argv for argv in host.runs() if argv[0] == 'timeout']


def test_namespace_that_cannot_be_emptied_stops_the_probe_before_the_pull():
    host = FakeHost()
    host.space()['tasks'] = {'stuck': 'RUNNING'}
    host.space()['containers'] = {'stuck': 'stargz'}
    host.stuck_tasks.add('stuck')
    with pytest.raises(ProbeError) as exc:
        lp.probe(host, make_params(), PATHS, CID)
    assert str(exc.value) == "namespace lazypull-probe could not be emptied before the probe: {'containers': 1}"
    assert not [argv for argv in host.runs() if argv[0] != CTR]


def test_without_a_command_nothing_runs():
    host = FakeHost(pull='lazy')
    result = lp.probe(host, make_params(command=[], expect=None), PATHS, CID)
    assert result['ok'] is True and result['lazy'] is True
    assert 'exit_code' not in result and 'run_seconds' not in result
    assert not [argv for argv in host.runs() if argv[0] == 'timeout']


def test_command_that_exits_non_zero_fails_the_probe():
    host = FakeHost(run_reply=(2, 'starting\n', 'sh: cat: /bin/busybox: Input/output error\n'))
    result = lp.probe(host, make_params(), PATHS, CID)
    assert (result['ok'], result['lazy'], result['exit_code'], result['output']) == (False, True, 2, ['starting'])
    assert result['problem'] == 'the probe container exited 2: sh: cat: /bin/busybox: Input/output error'


def test_command_that_does_not_print_the_expected_line_fails_the_probe():
    host = FakeHost(run_reply=(0, 'something else\n', ''))
    result = lp.probe(host, make_params(), PATHS, CID)
    assert (result['ok'], result['exit_code']) == (False, 0)
    assert result['problem'] == "the probe container did not print 'lazypull-probe-ok'"


def test_expect_matches_any_line_of_the_output():
    host = FakeHost(run_reply=(0, 'line 1\nlazypull-probe-ok\nline 3\n', ''))
    result = lp.probe(host, make_params(expect='^lazypull-probe-ok$'), PATHS, CID)
    assert (result['ok'], result['problem'], result['output']) == (True, None, ['line 1', 'lazypull-probe-ok', 'line 3'])


@pytest.mark.parametrize('rc', [124, 137])
def test_killed_command_names_the_timeout_and_its_container_is_removed(rc):
    host = FakeHost(run_reply=(rc, '', ''))
    result = lp.probe(host, make_params(timeout=30), PATHS, CID)
    assert (result['ok'], result['exit_code']) == (False, rc)
    assert result['problem'] == 'the probe container exited %d (killed after 30 s): ' % rc
    assert host.verbs()[-14:] == [run_argv(timeout=30), ['tasks', 'ls', '-q'], ['tasks', 'kill', '--signal', 'SIGKILL', CID],
                                  ['tasks', 'rm', '-f', CID], ['containers', 'ls', '-q'], ['containers', 'rm', CID],
                                  ['leases', 'ls', '-q'], ['images', 'ls', '-q'], ['images', 'rm', '--sync', IMAGE],
                                  ['content', 'ls', '-q']] + what_is_left()
    assert 'cleanup_left' not in result and host.space()['containers'] == {}


def test_laziness_problem_wins_over_a_failed_command():
    host = FakeHost(pull='full', run_reply=(1, '', 'boom\n'))
    result = lp.probe(host, make_params(), PATHS, CID)
    assert (result['ok'], result['exit_code'], result['problem']) == (False, 1, FALLBACK_PROBLEM)


def test_command_failure_is_the_problem_when_laziness_is_not_required():
    host = FakeHost(pull='full', run_reply=(1, '', 'boom\n'))
    result = lp.probe(host, make_params(require_lazy=False), PATHS, CID)
    assert (result['ok'], result['fallback'], result['problem']) == (False, True, 'the probe container exited 1: boom')


def test_what_the_cleanup_could_not_remove_is_reported():
    host = FakeHost(run_reply=(137, '', ''))
    host.stuck_tasks.add(CID)  # the killed container hangs in a FUSE read
    result = lp.probe(host, make_params(), PATHS, CID)
    assert result['cleanup_left'] == {'containers': 1}
    assert host.space()['containers'] == {CID: 'stargz'}
    assert host.space()['images'] == {}
