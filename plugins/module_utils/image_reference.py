# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)
"""Image references, parsed and validated before anything touches a registry.

Follows the grammar of the distribution reference package. References must
name their registry: the conversion modules copy registry to registry, and an
implicit default registry would be a surprise on a private fleet.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

_COMPONENT = r'[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*'
_DOMAIN_PART = r'(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])'
_DOMAIN = r'(?:%s(?:\.%s)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?' % (_DOMAIN_PART, _DOMAIN_PART)
_TAG = r'[\w][\w.-]{0,127}'
_DIGEST = r'[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}'
_REFERENCE = re.compile(r'^(?P<registry>%s)/(?P<repository>%s(?:/%s)*)(?::(?P<tag>%s))?(?:@(?P<digest>%s))?$'
                        % (_DOMAIN, _COMPONENT, _COMPONENT, _TAG, _DIGEST))
MAX_NAME = 255


class ImageReferenceError(ValueError):
    """A malformed image reference."""


def _looks_like_registry(first):
    return '.' in first or ':' in first or first == 'localhost' or first.startswith('[')


def parse(reference):
    """{registry, repository, tag, digest, name} or ImageReferenceError naming the problem."""
    if not isinstance(reference, str) or not reference.strip():
        raise ImageReferenceError('empty image reference')
    if reference != reference.strip():
        raise ImageReferenceError('image reference %r has surrounding whitespace' % reference)
    ref = reference
    if '://' in ref:
        raise ImageReferenceError('image reference %r must not have a scheme (write host[:port]/repo[:tag])' % ref)
    first = ref.split('/', 1)[0]
    if '/' not in ref or not _looks_like_registry(first):
        raise ImageReferenceError('image reference %r must name its registry: host[:port]/repository[:tag]' % ref)
    match = _REFERENCE.match(ref)
    if not match:
        repo = ref.split('/', 1)[1].split('@', 1)[0].rsplit(':', 1)[0]
        if repo != repo.lower():
            raise ImageReferenceError('image reference %r: repository must be lowercase' % ref)
        raise ImageReferenceError('image reference %r is malformed (expected host[:port]/repository[:tag][@digest])' % ref)
    parts = match.groupdict()
    name = '%s/%s' % (parts['registry'], parts['repository'])
    if len(name) > MAX_NAME:
        raise ImageReferenceError('image reference %r: name longer than %d characters' % (ref, MAX_NAME))
    digest = parts['digest'] or ''
    if digest.startswith('sha256:') and len(digest) != len('sha256:') + 64:
        raise ImageReferenceError('image reference %r: a sha256 digest has 64 hex digits' % ref)
    parts['name'] = name
    return parts


def canonical(reference):
    """The reference with an explicit tag (`latest` when neither tag nor digest is given)."""
    parts = parse(reference)
    if parts['digest']:
        return '%s%s@%s' % (parts['name'], (':' + parts['tag']) if parts['tag'] else '', parts['digest'])
    return '%s:%s' % (parts['name'], parts['tag'] or 'latest')
