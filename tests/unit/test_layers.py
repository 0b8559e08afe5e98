"""The house's layers, pinned: ``kit/`` (shared bits every domain uses) depends on
nothing above it, and no route takes the whole ``Services`` container."""

from __future__ import annotations

import ast
from pathlib import Path

import control_plane

ROOT = Path(control_plane.__file__).parent
# what kit may import from the control plane: itself and the foundations below domains
BELOW_KIT = ("control_plane.kit", "control_plane.errors", "control_plane.models.base")


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_kit_imports_nothing_above_it() -> None:
    above = {
        f"{path.name}: {module}"
        for path in (ROOT / "kit").glob("*.py")
        for module in _imports(path)
        if module.startswith("control_plane") and not module.startswith(BELOW_KIT)
    }
    assert above == set()


def test_no_route_takes_the_whole_container() -> None:
    takers = {
        str(path.relative_to(ROOT))
        for path in ROOT.rglob("*.py")
        if path.name != "deps.py" and "ServicesDep" in path.read_text()
    }
    assert takers == set()
