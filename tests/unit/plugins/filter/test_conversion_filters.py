from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.lazypull.snapshotters.plugins.filter.conversion import (
    COLUMNS, conversion_rows, markdown_table)

CONVERTED = {'changed': True, 'dest': 'r.example.internal/app:1-esgz', 'dest_digest': 'sha256:' + 'ab' * 32,
             'src_size': 315739434, 'dest_size': 315800000, 'prioritized_files': 7, 'elapsed': 15.94,
             'item': {'src': 'r.example.internal/app:1'}}
INDEXED = {'changed': False, 'indexes': [{'index_digest': 'sha256:' + 'cd' * 32, 'ztocs': 3, 'layers_skipped': 2}],
           'elapsed': 0.12, 'item': {'src': 'r.example.internal/app:1'}}


def test_rows_for_a_conversion_and_an_index():
    rows = conversion_rows([CONVERTED], 'estargz') + conversion_rows([INDEXED], 'soci')
    assert rows[0] == ['r.example.internal/app:1', 'estargz', 'r.example.internal/app:1-esgz@abababababab',
                       'yes', '315.7', '315.8', '7', '-', '15.9']
    assert rows[1] == ['r.example.internal/app:1', 'soci', 'sha256:cdcdcdcdcdcd', 'no', '-', '-', '-',
                       '3 (2 skipped)', '0.1']


def test_skipped_results_are_left_out_and_failures_shown():
    failed = {'failed': True, 'msg': 'registry r.example.internal rejected the credentials',
              'item': {'src': 'r.example.internal/app:2', 'variant': 'estargz-optimized'}}
    rows = conversion_rows([{'skipped': True, 'item': {}}, failed])
    assert len(rows) == 1
    assert rows[0][1] == 'estargz-optimized'
    assert rows[0][2].startswith('FAILED: registry r.example.internal rejected')


def test_an_index_that_was_not_built():
    rows = conversion_rows([{'changed': False, 'indexes': [{'index_digest': None, 'ztocs': 0, 'layers_skipped': 1}],
                             'item': {'src': 'x.example.internal/b:1'}}], 'soci')
    assert rows[0][2] == 'no index' and rows[0][7] == '0 (1 skipped)'


def test_rows_need_a_list():
    with pytest.raises(AnsibleFilterError, match='list'):
        conversion_rows({'results': []})


def test_markdown_table_pads_columns():
    table = markdown_table([['a', '1'], ['bbb', '22']], ['name', 'n'])
    assert table.split('\n') == ['| name | n  |', '|------|----|', '| a    | 1  |', '| bbb  | 22 |']


def test_markdown_table_default_header_and_row_width_check():
    assert markdown_table([]).startswith('| ' + COLUMNS[0])
    with pytest.raises(AnsibleFilterError, match='2 cells, the header 9'):
        markdown_table([['a', 'b']])
