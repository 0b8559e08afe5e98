"""`atrium up` as a user runs it: a real process with its own Ray head, control plane,
reconciler and Serve applications, reached only over HTTP. One harness, shared with
the benchmarks (``bench/serving_common.py``)."""

from __future__ import annotations

from bench.serving_common import Client, Platform, tenant_with_key, token

__all__ = ["Client", "Platform", "tenant_with_key", "token"]
