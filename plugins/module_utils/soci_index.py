# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)
"""SOCI indexes: which manifest version, the soci commands, their output,
and whether an index in the registry already matches the wanted options.

soci records no build options in an index, so they are read back from the
index itself: which layers got a zTOC tells min_layer_size, and the number
of spans in a zTOC (with its layer's uncompressed size) tells span_size.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import struct

ARTIFACT_TYPE_V1 = 'application/vnd.amazon.soci.index.v1+json'
ARTIFACT_TYPE_V2 = 'application/vnd.amazon.soci.index.v2+json'
LAYER_DIGEST = 'com.amazon.soci.image-layer-digest'
INDEX_DIGEST_ANNOTATION = 'com.amazon.soci.index-digest'
DEFAULT_SPAN_SIZE = 4 << 20
DEFAULT_MIN_LAYER_SIZE = 10 << 20
V2_MIN_VERSION = (0, 10, 0)
# Layer types soci can index (gzip and uncompressed tar; 0.4.x has no zstd).
INDEXABLE = re.compile(r'(tar\+gzip|tar\.gzip|rootfs\.diff\.tar\.gzip|tar)$')


class SociError(ValueError):
    """Bad options or an unusable answer from soci."""


def parse_soci_version(text):
    """`soci version v0.4.1 <rev>` or Debian's `soci version 0.4.1-5+b3 ...` -> (0, 4, 1)."""
    match = re.search(r'soci version v?(\d+)\.(\d+)\.(\d+)', text or '')
    if not match:
        raise SociError('cannot read a version from soci --version: %r' % (text or '').strip()[:120])
    return tuple(int(x) for x in match.groups())


def choose_manifest_version(wanted, installed):
    """v1 (soci create + push) or v2 (soci convert, soci >= 0.10)."""
    if wanted == 'v2' and installed < V2_MIN_VERSION:
        raise SociError('manifest_version v2 needs soci >= 0.10.0 (soci convert); installed %s'
                        % '.'.join(str(x) for x in installed))
    if wanted:
        return wanted
    return 'v2' if installed >= V2_MIN_VERSION else 'v1'


def validate_sizes(span_size, min_layer_size):
    if span_size is not None and span_size < (64 << 10):
        raise SociError('span_size must be at least 65536 bytes (got %s)' % span_size)
    if min_layer_size is not None and min_layer_size < 0:
        raise SociError('min_layer_size must not be negative (got %s)' % min_layer_size)


def size_args(span_size, min_layer_size):
    args = []
    if span_size is not None:
        args += ['--span-size', str(span_size)]
    if min_layer_size is not None:
        args += ['--min-layer-size', str(min_layer_size)]
    return args


def create_command(prefix, ref, span_size, min_layer_size, platform_args):
    return prefix + ['create'] + size_args(span_size, min_layer_size) + platform_args + [ref]


def convert_command(prefix, src, dest, span_size, min_layer_size, platform_args):
    return prefix + ['convert'] + size_args(span_size, min_layer_size) + platform_args + [src, dest]


def push_command(prefix, ref, plain_http, platform_args):
    cmd = prefix + ['push', '--existing-index', 'allow']
    if plain_http:
        cmd.append('--plain-http')
    return cmd + platform_args + [ref]


def parse_create_output(stdout):
    """{'indexed': {layer: ztoc}, 'skipped': {layer: reason}} from `soci create`."""
    indexed, skipped = {}, {}
    for line in (stdout or '').splitlines():
        match = re.match(r'^layer (sha256:[0-9a-f]{64}) -> ztoc (sha256:[0-9a-f]{64})', line.strip())
        if match:
            indexed[match.group(1)] = match.group(2)
            continue
        match = re.match(r'^ztoc skipped - layer (sha256:[0-9a-f]{64}) \(([^)]*)\) (.*)$', line.strip())
        if match:
            skipped[match.group(1)] = match.group(3)
    return {'indexed': indexed, 'skipped': skipped}


def parse_index_list(stdout):
    """Digests from `soci index list -q`, newest first as soci prints them."""
    return re.findall(r'^(sha256:[0-9a-f]{64})\s*$', stdout or '', re.M)


def index_ztocs(index_manifest):
    """{image layer digest: zTOC descriptor}: v1 indexes keep them in
    `layers` (0.4.x) or `blobs` (artifact manifests)."""
    found = {}
    for desc in (index_manifest.get('layers') or index_manifest.get('blobs') or []):
        layer = (desc.get('annotations') or {}).get(LAYER_DIGEST)
        if layer:
            found[layer] = desc
    return found


def expected_layers(image_manifest, min_layer_size):
    """Layers soci builds a zTOC for: indexable type and size >= min_layer_size."""
    limit = DEFAULT_MIN_LAYER_SIZE if min_layer_size is None else min_layer_size
    return sorted(l['digest'] for l in image_manifest.get('layers', [])
                  if l.get('size', 0) >= limit and INDEXABLE.search(l.get('mediaType', '')))


def _table_field(buf, table, field):
    """Offset of a flatbuffer table field, or None when absent."""
    vtable = table - struct.unpack_from('<i', buf, table)[0]
    vt_size = struct.unpack_from('<H', buf, vtable)[0]
    slot = 4 + 2 * field
    if slot >= vt_size:
        return None
    off = struct.unpack_from('<H', buf, vtable + slot)[0]
    return table + off if off else None


def ztoc_spans(blob):
    """(uncompressed archive size, number of spans) from a zTOC (flatbuffers:
    Ztoc.uncompressed_archive_size is field 3, compression_info field 5,
    CompressionInfo.max_span_id field 1)."""
    try:
        root = struct.unpack_from('<I', blob, 0)[0]
        size_at = _table_field(blob, root, 3)
        info_ref = _table_field(blob, root, 5)
        if size_at is None or info_ref is None:
            raise SociError('zTOC lacks its size or compression info')
        uncompressed = struct.unpack_from('<q', blob, size_at)[0]
        info = info_ref + struct.unpack_from('<I', blob, info_ref)[0]
        span_at = _table_field(blob, info, 1)
        max_span = struct.unpack_from('<i', blob, span_at)[0] if span_at is not None else 0
    except struct.error:
        raise SociError('zTOC is truncated or not a flatbuffer')
    return uncompressed, max_span + 1


def ztoc_recorded_span_size(blob):
    """The span size soci wrote into a gzip zTOC, or None. The checkpoints
    (CompressionInfo field 3, a byte vector) start with the zinfo header:
    int32 checkpoint count, then int64 span size."""
    try:
        root = struct.unpack_from('<I', blob, 0)[0]
        info_ref = _table_field(blob, root, 5)
        if info_ref is None:
            return None
        info = info_ref + struct.unpack_from('<I', blob, info_ref)[0]
        ref = _table_field(blob, info, 3)
        if ref is None:
            return None
        vector = ref + struct.unpack_from('<I', blob, ref)[0]
        length = struct.unpack_from('<I', blob, vector)[0]
        if length < 12:
            return None
        span = struct.unpack_from('<q', blob, vector + 4 + 4)[0]
    except struct.error:
        return None
    return span if span > 0 else None


def spans_match(uncompressed, spans, span_size):
    """True when `spans` is what span_size gives for this layer. A span ends
    at the first deflate block boundary past span_size, so spans run a little
    long: allow floor(U/S)-20% .. ceil(U/S)+1."""
    size = span_size or DEFAULT_SPAN_SIZE
    if uncompressed <= size:
        return spans == 1
    ideal = float(uncompressed) / size
    return int(ideal * 0.8) <= spans <= int(ideal) + 2


def match_existing(image_manifest, candidates, span_size, min_layer_size, read_manifest, read_blob):
    """First existing index (descriptor from the referrers list) built with
    these options, as (digest, index manifest), or (None, reasons)."""
    wanted = expected_layers(image_manifest, min_layer_size)
    sizes = dict((l['digest'], l.get('size', 0)) for l in image_manifest.get('layers', []))
    reasons = []
    for desc in candidates:
        index = read_manifest(desc['digest'])
        ztocs = index_ztocs(index)
        have = sorted(ztocs)
        if have != wanted:
            reasons.append('%s indexes %d layers, the options select %d' % (desc['digest'], len(have), len(wanted)))
            continue
        if ztocs:
            # One zTOC is enough (span size is one setting per index): the
            # largest layer's, as a small layer may fit in one span of any size.
            layer = max(ztocs, key=lambda digest: sizes.get(digest, 0))
            ztoc = ztocs[layer]
            blob = read_blob(ztoc['digest'])
            recorded = ztoc_recorded_span_size(blob)
            if recorded is not None:
                if recorded != (span_size or DEFAULT_SPAN_SIZE):
                    reasons.append('%s was built with span_size %d' % (desc['digest'], recorded))
                    continue
                return desc['digest'], index
            # No zinfo header (uncompressed layers): estimate from the span count.
            uncompressed, spans = ztoc_spans(blob)
            if not spans_match(uncompressed, spans, span_size):
                reasons.append('%s: layer %s has %d spans, span_size %s gives about %d'
                               % (desc['digest'], layer[:19], spans, span_size or DEFAULT_SPAN_SIZE,
                                  uncompressed // (span_size or DEFAULT_SPAN_SIZE)))
                continue
        return desc['digest'], index
    return None, reasons


def useless_index_warning(indexed, skipped, min_layer_size):
    if skipped and not indexed:
        return ('every layer (%d) is smaller than min_layer_size %s: the index has no zTOC and '
                'soci will pull this image eagerly. Lower min_layer_size.'
                % (len(skipped), DEFAULT_MIN_LAYER_SIZE if min_layer_size is None else min_layer_size))
    return None


ARCHITECTURES = {'x86_64': 'amd64', 'aarch64': 'arm64', 'armv7l': 'arm', 's390x': 's390x', 'ppc64le': 'ppc64le'}


def host_platform(machine=None):
    """This host's platform as containerd names it (linux/amd64, linux/arm64...)."""
    import os
    machine = machine or os.uname()[4]
    return 'linux/%s' % ARCHITECTURES.get(machine, machine)


def platform_matches(name, wanted):
    """'linux/arm64' matches 'linux/arm64/v8'; a wanted variant must match exactly."""
    return name == wanted or (wanted.count('/') == 1 and name.startswith(wanted + '/'))


def target_manifests(client, repository, top_digest, top_doc, platforms, default_platform=None):
    """[(platform string, manifest digest, manifest)] the index is built for."""
    if not top_doc.get('manifests'):
        return [(None, top_digest, top_doc)]
    wanted = platforms or [default_platform or host_platform()]
    out = []
    for desc in top_doc['manifests']:
        plat = desc.get('platform') or {}
        name = '/'.join(x for x in (plat.get('os'), plat.get('architecture'), plat.get('variant')) if x)
        if wanted == ['all'] or any(platform_matches(name, w) for w in wanted):
            out.append((name, desc['digest'], client.manifest(repository, desc['digest'])[2]))
    if not out:
        raise SociError('image has no manifest for platform(s) %s' % ', '.join(wanted))
    return out


def remove_indexes(client, repository, image_digest, digests):
    """Delete SOCI index manifests and drop them from the referrers tag index."""
    for digest in digests:
        client.delete_manifest(repository, digest)
    tag = image_digest.replace(':', '-')
    found = client.manifest(repository, tag)
    if found is None:
        return
    tag_digest, media_type, doc, _raw = found
    kept = [m for m in doc.get('manifests') or [] if m.get('digest') not in digests]
    if len(kept) == len(doc.get('manifests') or []):
        return
    if kept:
        doc['manifests'] = kept
        import json
        client.put_manifest(repository, tag, json.dumps(doc, separators=(',', ':')).encode('utf-8'),
                            media_type or 'application/vnd.oci.image.index.v1+json')
    else:
        client.delete_manifest(repository, tag_digest)


def ensure_v1(params, ref, tools, runner, access, check_mode, timer):
    """manifest_version v1: `soci create` + `soci push`, state present/absent."""
    from ansible_collections.lazypull.snapshotters.plugins.module_utils import image_tools

    started = timer()
    client = access.client(ref['registry'])
    repo = ref['repository']
    client.check_access(repo, push=params['push'] or params['state'] == 'absent')
    found = client.manifest(repo, ref['digest'] or ref['tag'] or 'latest')
    if found is None:
        raise image_tools.RegistryError('image %s not found in registry %s' % (params['image'], ref['registry']))
    top_digest, _type, top_doc, _raw = found
    targets = target_manifests(client, repo, top_digest, top_doc, params.get('platforms'))
    span, min_size = params.get('span_size'), params.get('min_layer_size')

    def read_manifest(digest):
        return client.manifest(repo, digest)[2]

    def read_blob(digest):
        return client.blob(repo, digest)

    result = {'changed': False, 'image_digest': top_digest, 'manifest_version': 'v1', 'indexes': []}
    stale, missing = {}, []
    for platform, digest, manifest in targets:
        candidates = client.referrers(repo, digest, ARTIFACT_TYPE_V1)
        if params['state'] == 'absent':
            if candidates:
                stale[digest] = [c['digest'] for c in candidates]
            continue
        layers = manifest.get('layers', [])
        if not expected_layers(manifest, min_size):
            # soci refuses to build an index without zTOCs; it would be useless anyway.
            warning = useless_index_warning([], layers, min_size) or 'the image has no layers to index'
            result.setdefault('warnings', []).append(warning)
            result['indexes'].append({'platform': platform, 'manifest_digest': digest, 'index_digest': None,
                                      'ztocs': 0, 'layers_indexed': 0, 'layers_skipped': len(layers),
                                      'warning': warning})
            continue
        match, reasons = match_existing(manifest, candidates, span, min_size, read_manifest, read_blob)
        if match:
            index = read_manifest(match)
            ztocs = index_ztocs(index)
            result['indexes'].append({'platform': platform, 'manifest_digest': digest, 'index_digest': match,
                                      'ztocs': len(ztocs), 'layers_indexed': len(ztocs),
                                      'layers_skipped': len(layers) - len(ztocs)})
            others = [c['digest'] for c in candidates if c['digest'] != match]
            if others and params.get('prune', True):
                stale[digest] = others
        else:
            missing.append((platform, digest, manifest, [c['digest'] for c in candidates], reasons))

    if params['state'] == 'absent':
        result['removed'] = sorted(d for ds in stale.values() for d in ds)
        result['changed'] = bool(result['removed'])
        if result['changed'] and not check_mode:
            for digest, indexes in stale.items():
                remove_indexes(client, repo, digest, indexes)
        result['elapsed'] = round(timer() - started, 3)
        return result

    result['changed'] = bool(missing) or bool(stale)
    if not result['changed']:
        result['msg'] = ('no index built: nothing to index' if result.get('warnings') else
                         'an index with these options exists for every platform')
        result['elapsed'] = round(timer() - started, 3)
        return result
    if check_mode:
        result['msg'] = 'would index %d manifest(s)%s' % (
            len(missing), '; ' + '; '.join(r for m in missing for r in m[4]) if any(m[4] for m in missing) else '')
        result['elapsed'] = round(timer() - started, 3)
        return result

    env = access.env()
    ctr = image_tools.ctr_prefix(tools['ctr'], params)
    soci = image_tools.ctr_prefix(tools['soci'], params)
    image = params['image']
    steps = {}
    created = []
    try:
        if missing:
            t0 = timer()
            pull_platforms = (['all'] if params.get('platforms') == ['all']
                              else sorted(set(m[0] for m in missing if m[0])))
            runner.run(image_tools.pull_command(tools['ctr'], params, image, access, pull_platforms),
                       env=env, what='pull of %s' % image)
            steps['pull'] = round(timer() - t0, 3)
        for platform, digest, manifest, old, _reasons in missing:
            plat = ['--platform', platform] if platform else []
            t0 = timer()
            _rc, out, _err = runner.run(create_command(soci, image, span, min_size, plat), env=env,
                                        what='soci create')
            steps['create'] = round(steps.get('create', 0) + timer() - t0, 3)
            parsed = parse_create_output(out)
            _rc, listed, _err = runner.run(soci + ['index', 'list', '-q', '--ref', image] + plat, env=env,
                                           what='soci index list')
            digests = parse_index_list(listed)
            if not digests:
                raise SociError('soci create made no index for %s' % image)
            created.append(digests[0])
            layers = [l['digest'] for l in manifest.get('layers', [])]
            entry = {'platform': platform, 'manifest_digest': digest, 'index_digest': digests[0],
                     'ztocs': len(parsed['indexed']), 'layers_indexed': len(parsed['indexed']),
                     'layers_skipped': len(layers) - len(parsed['indexed']),
                     'skipped': parsed['skipped']}
            warning = useless_index_warning(parsed['indexed'], parsed['skipped'], min_size)
            if warning:
                entry['warning'] = warning
                result.setdefault('warnings', []).append(warning)
            result['indexes'].append(entry)
            # soci builds byte-identical indexes: never prune the one just pushed.
            old = [d for d in old if d != digests[0]]
            if old and params.get('prune', True):
                stale[digest] = old
            if params['push']:
                t0 = timer()
                runner.run(push_command(soci, image, params.get('plain_http'), plat), env=env, what='soci push')
                steps['push'] = round(steps.get('push', 0) + timer() - t0, 3)
        if params['push'] and stale:
            # Another index for the same image would compete with the new one.
            for digest, indexes in stale.items():
                remove_indexes(client, repo, digest, indexes)
            result['removed'] = sorted(d for ds in stale.values() for d in ds)
    finally:
        if not params.get('keep_local'):
            for digest in created if params['push'] else []:
                runner.run(soci + ['index', 'rm', digest], env=env, check=False, what='cleanup')
            if missing and params['push']:
                runner.run(ctr + ['image', 'rm', '--sync', image], check=False, what='cleanup')
    result.update(steps=steps, elapsed=round(timer() - started, 3),
                  msg='indexed %s (%d manifest(s))' % (image, len(missing)))
    return result


def ensure_v2(params, ref, dest, tools, runner, access, check_mode, timer):
    """manifest_version v2: `soci convert` makes a new image (the original
    manifests plus SOCI indexes); it records source digest and options like
    image_convert does, and is pushed by digest before its tag is written."""
    import json
    from ansible_collections.lazypull.snapshotters.plugins.module_utils import image_tools
    from ansible_collections.lazypull.snapshotters.plugins.module_utils.image_convert import (
        ANNOTATION_OPTIONS, ANNOTATION_SOURCE, annotate, is_current)

    started = timer()
    _client, dest_client, found = image_tools.source_and_destination(
        access, ref, dest, 'image %s' % params['image'])
    src_digest = found[0]
    options_json = json.dumps({'soci': 'v2', 'span_size': params.get('span_size'),
                               'min_layer_size': params.get('min_layer_size'),
                               'platforms': sorted(params.get('platforms') or [])},
                              sort_keys=True, separators=(',', ':'))
    tag = dest['tag'] or 'latest'
    existing = dest_client.manifest(dest['repository'], tag)
    result = {'changed': False, 'image_digest': src_digest, 'manifest_version': 'v2', 'dest': params['dest']}
    if params['state'] == 'absent':
        if existing is not None and existing[2].get('annotations', {}).get(ANNOTATION_SOURCE) == src_digest:
            result.update(changed=True, removed=[existing[0]])
            if not check_mode:
                dest_client.delete_manifest(dest['repository'], existing[0])
        return result
    if existing is not None and is_current(existing[2], src_digest, options_json):
        result.update(index_digest=(existing[2].get('annotations') or {}).get(INDEX_DIGEST_ANNOTATION),
                      dest_digest=existing[0], elapsed=round(timer() - started, 3))
        return result
    result['changed'] = True
    if check_mode:
        return result
    ctr = image_tools.ctr_prefix(tools['ctr'], params)
    soci = image_tools.ctr_prefix(tools['soci'], params)
    plat = image_tools.platform_args(params.get('platforms') or [])
    local_dest = '%s:%s' % (dest['name'], tag)
    env = access.env()
    try:
        runner.run(image_tools.pull_command(tools['ctr'], params, params['image'], access,
                                            params.get('platforms') or []), env=env, what='pull')
        _rc, out, _err = runner.run(convert_command(soci, params['image'], local_dest, params.get('span_size'),
                                                    params.get('min_layer_size'), plat), env=env, what='soci convert')
        _rc, listed, _err = runner.run(ctr + ['image', 'ls', 'name==' + local_dest], env=env, what='ctr image ls')
        converted = image_tools.parse_digest_line(listed)
        if not converted:
            raise SociError('soci convert left no image %s' % local_dest)
        _rc, text, _err = runner.run(ctr + ['content', 'get', converted], what='ctr content get')
        body, final = annotate(text, {ANNOTATION_SOURCE: src_digest, ANNOTATION_OPTIONS: options_json})
        if params['push']:
            runner.run(image_tools.push_command(tools['ctr'], params, '%s@%s' % (dest['name'], converted),
                                                local_dest, access, params.get('platforms') or []),
                       env=env, what='push')
            dest_client.put_manifest(dest['repository'], tag, body,
                                     json.loads(text).get('mediaType') or 'application/vnd.oci.image.index.v1+json')
    finally:
        if not params.get('keep_local') and params['push']:
            runner.run(ctr + ['image', 'rm', '--sync', params['image'], local_dest], check=False, what='cleanup')
    result.update(dest_digest=final, converted_digest=converted, elapsed=round(timer() - started, 3))
    return result
