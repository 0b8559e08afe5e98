"""One real local Ray cluster for the whole test session (started on first use)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.platform import Platform


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    import ray

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        _temp_dir=str(tmp_path_factory.mktemp("ray")),
    )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """One `atrium up` for the session (its own Ray head, Serve on a free port)."""
    running = Platform(
        tmp_path_factory.mktemp("platform") / "home",
        extra_env={"ATRIUM_INFERENCE_MAX_BODY_BYTES": str(256 * 1024)},
    )
    running.start()
    yield running
    running.stop()
