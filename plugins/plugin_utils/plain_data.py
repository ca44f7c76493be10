# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)
"""Controller-side helpers shared by the filters."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def to_plain(value):
    """Ansible's tagged/lazy containers to plain Python types (for TOML
    writers and the config models, which check types strictly)."""
    if isinstance(value, dict):
        return dict((str(k), to_plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


def prune_none(value):
    """null in YAML means "leave this key out" (lets users drop a default)."""
    if isinstance(value, dict):
        return dict((k, prune_none(v)) for k, v in value.items() if v is not None)
    if isinstance(value, (list, tuple)):
        return [prune_none(v) for v in value if v is not None]
    return value
