"""Only the tenant-scoped repository base builds queries on tenant-owned tables."""

from __future__ import annotations

import ast
from pathlib import Path

import control_plane
from control_plane.models import Base, Tenant
from control_plane.models.base import TenantOwned

ROOT = Path(control_plane.__file__).parent
ALLOWED = {ROOT / "kit" / "repository.py"}
BUILDERS = {"select", "update", "delete", "insert"}


def _tenant_models() -> set[str]:
    owned = {m.class_.__name__ for m in Base.registry.mappers if issubclass(m.class_, TenantOwned)}
    return owned | {Tenant.__name__}


def _offences(path: Path, models: set[str]) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        name = getattr(node.func, "id", getattr(node.func, "attr", None))
        first = node.args[0]
        if name in BUILDERS and isinstance(first, ast.Name) and first.id in models:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}({first.id})")
    return found


def test_tenant_tables_are_queried_only_through_the_repository_base() -> None:
    models = _tenant_models()
    assert {"User", "ApiKey", "AuditEvent", "Tenant"} <= models
    offences = [o for p in ROOT.rglob("*.py") if p not in ALLOWED for o in _offences(p, models)]
    assert offences == []


def test_the_check_itself_catches_a_raw_select(tmp_path: Path) -> None:
    sneaky = ROOT / "_probe_sneaky.py"
    sneaky.write_text("from sqlalchemy import select\nq = select(ApiKey)\n")
    try:
        assert _offences(sneaky, _tenant_models()) == ["_probe_sneaky.py:2 select(ApiKey)"]
    finally:
        sneaky.unlink()
