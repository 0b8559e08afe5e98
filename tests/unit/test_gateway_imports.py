"""The gateway's imports from the control plane are a named, small surface (see
``serve_apps/gateway/__init__.py``); growing it is a decision, made here."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import serve_apps.gateway

# what the gateway's own modules import from the control plane, by name
SURFACE = {
    "control_plane.errors",
    "control_plane.auth.admission",
    "control_plane.auth.authenticator",
    "control_plane.auth.permissions",
    "control_plane.auth.tokens",
    "control_plane.db",
    "control_plane.kit.invalidation",
    "control_plane.kit.problems",
    "control_plane.kit.redis",
    "control_plane.plan.catalog",
    "control_plane.quota.backend",
    "control_plane.quota.service",
    "control_plane.usage.recorder",
}

# everything that surface loads, packages included
LOADED = {
    "control_plane",
    "control_plane.api_key",
    "control_plane.api_key.repository",
    "control_plane.auth",
    "control_plane.auth.admission",
    "control_plane.auth.authenticator",
    "control_plane.auth.permissions",
    "control_plane.auth.principal",
    "control_plane.auth.repository",  # the authenticator refuses ended sign-in sessions
    "control_plane.auth.tokens",
    "control_plane.db",
    "control_plane.errors",
    "control_plane.event",
    "control_plane.event.repository",
    "control_plane.event.service",
    "control_plane.event.types",
    "control_plane.kit",
    "control_plane.kit.clock",
    "control_plane.kit.context",
    "control_plane.kit.hooks",
    "control_plane.kit.ids",
    "control_plane.kit.invalidation",
    "control_plane.kit.pagination",
    "control_plane.kit.problems",
    "control_plane.kit.redis",
    "control_plane.kit.repository",
    "control_plane.models",
    "control_plane.models.api_key",
    "control_plane.models.audit",
    "control_plane.models.base",
    "control_plane.models.dataset",
    "control_plane.models.deployment",
    "control_plane.models.event",
    "control_plane.models.idempotency_key",
    "control_plane.models.invoice",
    "control_plane.models.job",
    "control_plane.models.model",
    "control_plane.models.model_alias",
    "control_plane.models.model_version",
    "control_plane.models.refresh_token",
    "control_plane.models.subscription",
    "control_plane.models.tenant",
    "control_plane.models.tenant_key",
    "control_plane.models.usage",
    "control_plane.models.user",
    "control_plane.models.webhook",
    "control_plane.plan",
    "control_plane.plan.catalog",
    "control_plane.quota",
    "control_plane.quota.backend",
    "control_plane.quota.periods",
    "control_plane.quota.service",
    "control_plane.tenant",
    "control_plane.tenant.repository",
    "control_plane.usage",
    "control_plane.usage.recorder",
    "control_plane.usage.repository",
    "control_plane.user",
    "control_plane.user.repository",
}

NEVER = {"control_plane.config", "control_plane.services", "control_plane.app"}

_PROBE = (
    "import sys, serve_apps.gateway.app; "
    "print(sorted(m for m in sys.modules if m.startswith('control_plane')))"
)


def _loaded_by_gateway() -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    loaded: list[str] = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    return set(loaded)


def _named_by_gateway() -> set[str]:
    named: set[str] = set()
    for source in Path(serve_apps.gateway.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "control_plane":
                named.update(f"control_plane.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "control_plane."
            ):
                named.add(str(node.module))
            elif isinstance(node, ast.Import):
                named.update(a.name for a in node.names if a.name.startswith("control_plane"))
    return named


def test_the_gateway_names_only_its_surface() -> None:
    assert _named_by_gateway() == SURFACE


def test_importing_the_gateway_loads_only_the_pinned_modules() -> None:
    loaded = _loaded_by_gateway()
    assert not loaded & NEVER
    assert loaded == LOADED, (
        f"new: {sorted(loaded - LOADED)}; gone (unpin them): {sorted(LOADED - loaded)}"
    )
