"""The inference gateway (Serve's HTTP ingress): ``app`` routes and renders errors,
``endpoints`` speaks the protocols (``protocol`` parses them), ``dataplane`` resolves,
checks, queues and meters, ``client`` reaches the tenant's sandboxed worker.

What it takes from the control plane is this surface, and only this (pinned, with
everything it pulls in, by ``tests/unit/test_gateway_imports.py``):

- ``control_plane.errors`` and ``control_plane.kit.problems.error_body``: the same
  errors and Problem Details bodies as the API, so a code has one title everywhere;
- ``control_plane.auth.admission`` (``Admission``, the one policy ``Authorize`` uses
  too), ``.auth.authenticator``, ``.auth.tokens`` (``TokenVerifier``) and
  ``.auth.permissions`` (``Action``): who is calling and whether they may infer, by
  the control plane's own rules (API keys by hash, access tokens by its public keys);
- ``control_plane.quota.service``, ``.quota.backend``, ``.usage.recorder`` and
  ``.plan.catalog``: rate limits, the monthly prediction quota, and metering;
- ``control_plane.db`` (``Database``), ``.kit.redis`` and ``.kit.invalidation``: the
  connections those need, built from the gateway's own config and secrets file.

Never the control plane's ``Settings`` (``control_plane.config``), its composition
root (``control_plane.services``) or its FastAPI app (``control_plane.app``).
"""
