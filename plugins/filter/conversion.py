# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)
"""Summaries of image_convert / soci_index results for playbooks."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

COLUMNS = ('image', 'variant', 'result', 'changed', 'source MB', 'result MB', 'files', 'zTOCs', 'seconds')


def _mb(value):
    return '%.1f' % (value / 1e6) if isinstance(value, (int, float)) else '-'


def conversion_rows(results, variant=None):
    """Registered loop results of image_convert / soci_index -> table rows.
    The image is the loop item's `src` (or `image`); the variant is the
    argument, else the item's `variant`."""
    if not isinstance(results, list):
        raise AnsibleFilterError('conversion_rows expects a list of registered results')
    rows = []
    for res in results:
        if not isinstance(res, dict) or res.get('skipped'):
            continue
        item = res.get('item') or {}
        if res.get('failed'):
            outcome = 'FAILED: %s' % str(res.get('msg', ''))[:60]
        elif 'indexes' in res:
            outcome = ', '.join(str(i.get('index_digest') or 'no index')[:19] for i in res['indexes'])
        else:
            outcome = '%s@%s' % (res.get('dest', item.get('dest', '?')), str(res.get('dest_digest', ''))[7:19])
        ztocs = '-'
        if res.get('indexes'):
            indexes = res['indexes']
            ztocs = '%d (%d skipped)' % (sum(i.get('ztocs', 0) for i in indexes),
                                         sum(i.get('layers_skipped', 0) for i in indexes))
        files = res.get('prioritized_files')
        rows.append([str(item.get('src', item.get('image', '?'))), str(variant or item.get('variant', '?')), outcome,
                     'yes' if res.get('changed') else 'no', _mb(res.get('src_size')), _mb(res.get('dest_size')),
                     '-' if files is None else str(files), ztocs,
                     '%.1f' % res['elapsed'] if isinstance(res.get('elapsed'), (int, float)) else '-'])
    return rows


def markdown_table(rows, columns=COLUMNS):
    """A Markdown table (also readable as plain text)."""
    rows = [[str(c) for c in row] for row in rows]
    columns = list(columns)
    for row in rows:
        if len(row) != len(columns):
            raise AnsibleFilterError('markdown_table: a row has %d cells, the header %d' % (len(row), len(columns)))
    widths = [max([len(columns[i])] + [len(r[i]) for r in rows]) for i in range(len(columns))]

    def line(cells):
        return '| ' + ' | '.join(c.ljust(widths[i]) for i, c in enumerate(cells)) + ' |'

    out = [line(columns), '|' + '|'.join('-' * (w + 2) for w in widths) + '|']
    return '\n'.join(out + [line(r) for r in rows])


class FilterModule(object):
    def filters(self):
        return {'conversion_rows': conversion_rows, 'markdown_table': markdown_table}
