from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _no_ray(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Unit tests must not start Ray: a call to ray.init fails the test."""
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is a core dependency
        yield
        return

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("unit tests must not call ray.init")

    monkeypatch.setattr(ray, "init", refuse)
    yield
