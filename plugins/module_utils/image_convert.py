# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)
"""eStargz / zstd:chunked conversion: options, commands, what a converted
image records about itself, and the report of sizes.

A converted image records its source digest and the conversion options in
annotations of its top-level manifest (or index); a later run compares them
and does nothing when they match.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json

FORMATS = ('estargz', 'zstdchunked')
ANNOTATION_SOURCE = 'lazypull.snapshotters.source-digest'
ANNOTATION_OPTIONS = 'lazypull.snapshotters.convert-options'
ANNOTATION_PRIORITIZED = 'lazypull.snapshotters.prioritized-files'
INDEX_TYPE = 'application/vnd.oci.image.index.v1+json'
MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json'


class ConvertError(ValueError):
    """Bad conversion options; the message names the option."""


def validate(params):
    fmt = params['format']
    if fmt not in FORMATS:
        raise ConvertError('format must be one of %s, got %r' % (', '.join(FORMATS), fmt))
    level = params.get('compression_level')
    if level is not None:
        low, high = (0, 9) if fmt == 'estargz' else (1, 22)
        if not low <= level <= high:
            raise ConvertError('compression_level for %s must be %d..%d, got %d' % (fmt, low, high, level))
    chunk = params.get('chunk_size')
    if chunk is not None and chunk <= 0:
        raise ConvertError('chunk_size must be a positive number of bytes, got %d' % chunk)
    optimize_only = [k for k in ('entrypoint', 'args', 'env', 'period', 'wait_on_line', 'cwd')
                     if params.get(k) not in (None, [], {})]
    if optimize_only and not params.get('optimize'):
        raise ConvertError('%s only apply with optimize: true' % ', '.join(optimize_only))
    if params.get('optimize'):
        if params.get('period') is not None and params['period'] <= 0:
            raise ConvertError('period must be a positive number of seconds, got %s' % params['period'])
        if fmt == 'zstdchunked' and chunk is not None:
            raise ConvertError('chunk_size does not apply to an optimized zstdchunked conversion '
                               '(ctr-remote optimize ignores it)')
    for key in ('entrypoint', 'args'):
        value = params.get(key)
        if value is not None and not all(isinstance(v, str) for v in value):
            raise ConvertError('%s must be a list of strings' % key)
    for key, value in (params.get('env') or {}).items():
        if not key or '=' in key or '\n' in key:
            raise ConvertError('env: %r is not a variable name' % key)
        if '\n' in str(value):
            raise ConvertError('env: the value of %s has a line break (one variable per line)' % key)


def options_record(params):
    """Canonical JSON of everything that changes the output. Environment
    values are hashed: they may be secrets and this lands in a registry."""
    env = params.get('env') or {}
    record = {
        'format': params['format'],
        'optimize': bool(params.get('optimize')),
        'compression_level': params.get('compression_level'),
        'chunk_size': params.get('chunk_size'),
        'platforms': sorted(params.get('platforms') or []),
    }
    if record['optimize']:
        record.update({
            'entrypoint': params.get('entrypoint'),
            'args': params.get('args'),
            'cwd': params.get('cwd'),
            'period': params.get('period'),
            'wait_on_line': params.get('wait_on_line'),
            'env_sha256': hashlib.sha256(json.dumps(env, sort_keys=True).encode('utf-8')).hexdigest()
            if env else None,
        })
    return json.dumps(record, sort_keys=True, separators=(',', ':'))


def recorded(manifest):
    annotations = (manifest or {}).get('annotations') or {}
    return annotations.get(ANNOTATION_SOURCE), annotations.get(ANNOTATION_OPTIONS)


def is_current(dest_manifest, source_digest, options_json):
    return recorded(dest_manifest) == (source_digest, options_json)


def _format_flags(params, optimize):
    fmt = params['format']
    level, chunk = params.get('compression_level'), params.get('chunk_size')
    flags = ['--oci']
    if fmt == 'zstdchunked':
        flags.append('--zstdchunked')
        if level is not None:
            flags += ['--zstdchunked-compression-level', str(level)]
        if chunk is not None and not optimize:
            flags += ['--zstdchunked-chunk-size', str(chunk)]
    else:
        if not optimize:
            flags.append('--estargz')
        if level is not None:
            flags += ['--estargz-compression-level', str(level)]
        if chunk is not None:
            flags += ['--estargz-chunk-size', str(chunk)]
    return flags


def convert_command(tool, prefix, params, src, dest, platform_args):
    """Plain conversion with nerdctl or ctr-remote (same flags for both)."""
    if tool not in ('nerdctl', 'ctr-remote'):
        raise ConvertError('unknown conversion tool %r' % tool)
    return prefix + ['image', 'convert'] + _format_flags(params, False) + platform_args + [src, dest]


def optimize_command(prefix, params, src, dest, platform_args, record_out, env_file=None):
    """Workload-optimized conversion: ctr-remote runs the image once and
    puts the files it opened first, prefetched."""
    cmd = prefix + ['image', 'optimize'] + _format_flags(params, True)
    if params.get('period') is not None:
        cmd += ['--period', str(params['period'])]
    if params.get('wait_on_line'):
        cmd += ['--wait-on-line', params['wait_on_line']]
    if params.get('entrypoint') is not None:
        cmd += ['--entrypoint', json.dumps(params['entrypoint'])]
    if params.get('args') is not None:
        cmd += ['--args', json.dumps(params['args'])]
    if params.get('cwd'):
        cmd += ['--cwd', params['cwd']]
    if env_file:
        cmd += ['--env-file', env_file]  # values stay off the command line
    cmd += ['--record-out', record_out]
    return cmd + platform_args + [src, dest]


def env_file_text(env):
    return ''.join('%s=%s\n' % (k, v) for k, v in sorted((env or {}).items()))


def count_prioritized(record_text):
    """Distinct files in a `ctr-remote optimize --record-out` log (JSON lines)."""
    paths = set()
    for line in (record_text or '').splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get('path'):
            paths.add((entry.get('layerIndex'), entry['path']))
    return len(paths)


def annotate(manifest_text, annotations):
    """(bytes, digest) of the manifest with `annotations` added."""
    doc = json.loads(manifest_text)
    merged = dict(doc.get('annotations') or {})
    merged.update(annotations)
    doc['annotations'] = merged
    body = json.dumps(doc, separators=(',', ':')).encode('utf-8')
    return body, 'sha256:' + hashlib.sha256(body).hexdigest()


def platform_manifest_descriptor(index, platform=None):
    """The descriptor for `platform` ('os/arch[/variant]'), default linux/amd64,
    else the first one."""
    manifests = index.get('manifests') or []
    want = (platform or 'linux/amd64').split('/')
    for desc in manifests:
        plat = desc.get('platform') or {}
        have = [plat.get('os'), plat.get('architecture')] + ([plat['variant']] if plat.get('variant') else [])
        if have[:len(want)] == want:
            return desc
    return manifests[0] if manifests else None


def layer_report(src_manifest, dest_manifest):
    """Per layer: digests and sizes before and after, plus totals."""
    src_layers = src_manifest.get('layers') or []
    dest_layers = dest_manifest.get('layers') or []
    rows = []
    for index in range(max(len(src_layers), len(dest_layers))):
        src = src_layers[index] if index < len(src_layers) else {}
        dest = dest_layers[index] if index < len(dest_layers) else {}
        rows.append({'index': index, 'src_digest': src.get('digest'), 'src_size': src.get('size'),
                     'dest_digest': dest.get('digest'), 'dest_size': dest.get('size'),
                     'dest_media_type': dest.get('mediaType')})
    total_src = sum(r['src_size'] or 0 for r in rows)
    total_dest = sum(r['dest_size'] or 0 for r in rows)
    return rows, total_src, total_dest


def supports_zstdchunked(help_text):
    return '--zstdchunked' in (help_text or '')


def _local_manifest(runner, ctr_prefix, digest):
    _rc, out, _err = runner.run(ctr_prefix + ['content', 'get', digest], what='ctr content get')
    return out


def convert(params, src, dest, tools, runner, access, check_mode, timer):
    """The whole verb; returns the module result.

    `src`/`dest` are parsed references (image_reference.parse), `tools` a
    dict of binary paths (ctr, ctr-remote, nerdctl or None), `access` a
    RegistryAccess, `timer` a monotonic clock.
    """
    from ansible_collections.lazypull.snapshotters.plugins.module_utils import image_tools

    started = timer()
    src_client, dest_client, found = image_tools.source_and_destination(
        access, src, dest, 'source image %s' % params['src'], push=params.get('push', True))
    src_digest, _src_type, src_doc, _raw = found
    options_json = options_record(params)
    dest_tag = dest['tag'] or 'latest'
    existing = dest_client.manifest(dest['repository'], dest_tag)
    result = {'changed': False, 'src_digest': src_digest, 'dest': params['dest'],
              'options': json.loads(options_json)}

    # Sizes are reported for one platform: the first asked for, else linux/amd64.
    report_platform = (params.get('platforms') or [None])[0] if params.get('platforms') != ['all'] else None
    src_manifest = src_doc
    if src_doc.get('manifests'):
        desc = platform_manifest_descriptor(src_doc, report_platform)
        src_manifest = src_client.manifest(src['repository'], desc['digest'])[2]

    if existing is not None and is_current(existing[2], src_digest, options_json):
        dest_doc = existing[2]
        if dest_doc.get('manifests'):
            desc = platform_manifest_descriptor(dest_doc, report_platform)
            dest_doc = dest_client.manifest(dest['repository'], desc['digest'])[2]
        rows, total_src, total_dest = layer_report(src_manifest, dest_doc)
        prioritized = (existing[2].get('annotations') or {}).get(ANNOTATION_PRIORITIZED)
        result.update(dest_digest=existing[0], layers=rows, src_size=total_src, dest_size=total_dest,
                      prioritized_files=int(prioritized) if prioritized else None,
                      tool=None, elapsed=round(timer() - started, 3),
                      msg='%s is already a conversion of %s with these options' % (params['dest'], src_digest))
        return result

    why = ('%s does not exist' % params['dest'] if existing is None else
           '%s records %s' % (params['dest'], 'other options' if recorded(existing[2])[0] == src_digest
                              else 'another source (or none)'))
    result['changed'] = True
    if check_mode:
        result.update(msg='would convert %s to %s (%s)' % (params['src'], params['dest'], why),
                      elapsed=round(timer() - started, 3))
        return result

    ctr = image_tools.ctr_prefix(tools['ctr'], params)
    plat = image_tools.platform_args(params.get('platforms') or [])
    env = access.env()
    steps = {}
    src_local = params['src']
    local_dest = '%s:%s' % (dest['name'], dest_tag)
    cleanup = [src_local] if params.get('push', True) else []
    if params.get('push', True):
        cleanup.append(local_dest)
    try:
        t0 = timer()
        runner.run(image_tools.pull_command(tools['ctr'], params, src_local, access, params.get('platforms') or []),
                   env=env, what='pull of %s' % params['src'])
        steps['pull'] = round(timer() - t0, 3)
        prioritized = None
        t0 = timer()
        if params.get('optimize'):
            tool = 'ctr-remote'
            record_out = access.dir + '/optimize-record.json'
            env_file = None
            if params.get('env'):
                env_file = access.dir + '/optimize.env'
                image_tools._write_private(env_file, env_file_text(params['env']))
            prefix = image_tools.ctr_prefix(tools['ctr-remote'], params)
            _rc, out, _err = runner.run(optimize_command(prefix, params, src_local, local_dest, plat, record_out, env_file),
                                        env=env, what='ctr-remote image optimize')
            try:
                with open(record_out) as handle:
                    prioritized = count_prioritized(handle.read())
            except (IOError, OSError):
                prioritized = 0
        else:
            tool = 'nerdctl' if tools.get('nerdctl') else 'ctr-remote'
            prefix = image_tools.ctr_prefix(tools[tool], params)
            _rc, out, _err = runner.run(convert_command(tool, prefix, params, src_local, local_dest, plat),
                                        env=env, what='%s image convert' % tool)
        steps['convert'] = round(timer() - t0, 3)
        converted = image_tools.parse_digest_line(out)
        if not converted:
            raise image_tools.ToolError('%s printed no digest for %s' % (tool, local_dest))

        manifest_text = _local_manifest(runner, ctr, converted)
        annotations = {ANNOTATION_SOURCE: src_digest, ANNOTATION_OPTIONS: options_json}
        if prioritized is not None:
            annotations[ANNOTATION_PRIORITIZED] = str(prioritized)
        body, final_digest = annotate(manifest_text, annotations)
        top = json.loads(manifest_text)
        dest_manifest = top
        if top.get('manifests'):
            desc = platform_manifest_descriptor(top, report_platform)
            dest_manifest = json.loads(_local_manifest(runner, ctr, desc['digest']))
        rows, total_src, total_dest = layer_report(src_manifest, dest_manifest)

        result.update(dest_digest=final_digest, layers=rows, src_size=total_src, dest_size=total_dest,
                      prioritized_files=prioritized, tool=tool, converted_digest=converted)
        if params.get('push', True):
            t0 = timer()
            # Blobs and the unannotated manifest go by digest: no tag is written
            # until the final, annotated manifest is in place.
            by_digest = '%s@%s' % (dest['name'], converted)
            runner.run(image_tools.push_command(tools['ctr'], params, by_digest, local_dest, access,
                                                params.get('platforms') or []),
                       env=env, what='push of %s' % params['dest'])
            pushed = dest_client.put_manifest(dest['repository'], dest_tag, body,
                                              top.get('mediaType') or (INDEX_TYPE if top.get('manifests') else MANIFEST_TYPE))
            if pushed != final_digest:
                raise image_tools.RegistryError('registry %s stored %s, expected %s' % (dest['registry'], pushed, final_digest))
            steps['push'] = round(timer() - t0, 3)
    finally:
        if not params.get('keep_local') and cleanup:
            runner.run(ctr + ['image', 'rm', '--sync'] + cleanup, check=False, what='cleanup')
    result.update(steps=steps, elapsed=round(timer() - started, 3),
                  msg='converted %s to %s (%s)' % (params['src'], params['dest'], why))
    return result
