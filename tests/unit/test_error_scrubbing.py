"""Errors stored for tenants (a deployment's, a model version's) carry neither host paths
nor what another tenant's applications reported."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cluster.rest import Application, applications_of
from control_plane.deployment.reconciler import GATEWAY_FAILING, Observed, Seen, _status
from control_plane.kit.slots import FairSlots
from control_plane.model.validation import Validator
from control_plane.models import ModelVersion
from tests.support import make_settings

TRACE = 'File "/opt/atrium/.venv/lib/python3.11/site-packages/ray/serve/x.py", line 3'


def _app(status: str, message: str = "", **deployments: str) -> Application:
    raw = {
        "status": status,
        "message": message,
        "deployments": {name: {"message": text} for name, text in deployments.items()},
    }
    return applications_of({"applications": {"app": raw}})["app"]


def test_a_failing_gateway_tells_shared_deployments_nothing_of_other_tenants() -> None:
    gateway = _app(
        "DEPLOY_FAILED",
        "replica crashed loading ten_globex/secret-model: CUDA error",
        Gateway=f"Traceback: {TRACE}",
    )
    for own in (False, True):
        assert _status(_app("RUNNING"), gateway, own=own) == Observed(Seen.FAILED, GATEWAY_FAILING)


def test_a_dedicated_deployment_reads_its_own_error_without_paths() -> None:
    app = _app("DEPLOY_FAILED", "", ModelServer=f"loading failed: {TRACE}")
    observed = _status(app, _app("RUNNING"), own=True)
    status, error = observed.status, observed.error
    assert status is Seen.FAILED
    assert error is not None and "loading failed" in error
    assert "/opt/atrium" not in error


def test_the_status_otherwise_follows_the_applications() -> None:
    running = _app("RUNNING")
    absent = Application()
    assert _status(absent, running, own=False) == Observed(Seen.READY)
    assert _status(running, running, own=True) == Observed(Seen.READY)
    assert _status(_app("DEPLOYING"), running, own=True) == Observed(Seen.PENDING)
    assert _status(absent, _app("DEPLOYING"), own=False) == Observed(Seen.PENDING)
    assert _status(_app("SOMETHING_NEW"), running, own=True) == Observed(Seen.PENDING)


class _Unreadable:
    """An artifact store whose scratch copy cannot be made."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch

    @contextlib.contextmanager
    def decrypted(self, *_args: Any, **_kwargs: Any) -> Iterator[Path]:
        raise FileNotFoundError(2, "No such file or directory", str(self.scratch / "dec-1"))
        yield self.scratch  # pragma: no cover


def test_an_unreadable_artifact_is_reported_without_the_scratch_path(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home", "sqlite+aiosqlite:///:memory:")
    artifacts: Any = _Unreadable(settings.home_dir / "tmp")
    none: Any = None
    validator = Validator(
        db=none,
        artifacts=artifacts,
        data_keys=none,
        settings=settings,
        sandbox=none,
        slots=FairSlots(1, 1),
    )
    version = ModelVersion(tenant_id="ten_a", sha256="0" * 64, format="onnx", signature=None)
    result = validator._probe(version, b"k" * 32)
    assert not result.ok
    assert result.error == "the stored artifact cannot be read: No such file or directory"
