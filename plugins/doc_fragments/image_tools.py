# -*- coding: utf-8 -*-
# Copyright: lazypull.snapshotters contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """Connection and registry options shared by the image modules."""

    DOCUMENTATION = r'''
options:
  containerd_address:
    description: containerd's GRPC socket on the target host.
    type: str
    default: /run/containerd/containerd.sock
  namespace:
    description:
      - containerd namespace the module works in. Images it pulls or builds
        there are removed afterwards unless O(keep_local=true).
    type: str
    default: lazypull
  ctr_path:
    description: Path of C(ctr); searched on PATH and in /usr/local/bin when not given.
    type: path
  ctr_remote_path:
    description: Path of C(ctr-remote) (stargz-snapshotter's CLI).
    type: path
  nerdctl_path:
    description: Path of C(nerdctl); used for plain conversions when found.
    type: path
  soci_path:
    description: Path of C(soci) (soci-snapshotter's CLI).
    type: path
  ca_file:
    description:
      - PEM file of the CA that signed the registries' certificates. It is
        added to the system trust store for this run only (the tools and the
        module's own HTTPS requests); the host's store is not changed.
    type: path
  plain_http:
    description:
      - Talk plain HTTP to the registries. Only for registries you own on a
        trusted network; TLS is used otherwise.
    type: bool
    default: false
  registry_username:
    description:
      - User name for the registry the module writes to (the destination,
        or the image's own registry for an index). Never sent to another
        registry.
    type: str
    aliases: [username]
  registry_password:
    description:
      - Password or token for O(registry_username). It never appears in
        output, logs or a command line; the tools read it from private
        files (0600) that are removed when the module ends.
    type: str
    aliases: [password]
  ecr:
    description:
      - Get credentials from Amazon ECR (C(ecr:GetAuthorizationToken) via boto3).
      - When not set, registries whose host has the ECR shape
        (C(<account>.dkr.ecr.<region>.amazonaws.com)) get a token
        automatically; V(false) turns that off, V(true) also uses ECR for a
        destination host of another shape (for example a pull-through alias).
    type: bool
  ecr_region:
    description: AWS region for the ECR token; by default the region in the registry host.
    type: str
  ecr_profile:
    description: AWS profile (from the host's AWS config) for the ECR token.
    type: str
  keep_local:
    description: Keep the images the module pulled or built in containerd's content store.
    type: bool
    default: false
  command_timeout:
    description: Seconds any one tool may run before it is stopped.
    type: int
    default: 3600
notes:
  - Runs on the host that has containerd and the tools (C(ctr), C(ctr-remote),
    C(soci), optionally C(nerdctl)); ECR access needs boto3 there.
  - Credentials reach C(ctr)/C(ctr-remote)/C(nerdctl) through a private
    C(--hosts-dir) (hosts.toml with an Authorization header) and C(soci)
    through a private C(DOCKER_CONFIG).
'''
