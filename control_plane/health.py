from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from control_plane.deps import DatabaseDep, MetricsDep, Public, SettingsDep
from control_plane.errors import AtriumError, Forbidden, NotReady, Unauthorized, responses
from control_plane.kit.problems import problem
from control_plane.migrate import current_revision, head_revision
from control_plane.observability import check_metrics_access

router = APIRouter(tags=["health"])


@router.get("/healthz", dependencies=[Depends(Public())], responses=responses(AtriumError))
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get(
    "/readyz", dependencies=[Depends(Public())], response_model=None, responses=responses(NotReady)
)
async def readyz(db: DatabaseDep) -> Any:
    """The database answers and its schema is at the latest migration."""
    try:
        async with db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            current = await current_revision(conn)
    except Exception as exc:
        return problem(503, "not_ready", "Not ready", f"database unreachable: {type(exc).__name__}")
    if current != head_revision():
        return problem(503, "not_ready", "Not ready", f"migrations pending (at {current})")
    return {"status": "ready", "migration": current}


@router.get(
    "/metrics",
    dependencies=[Depends(Public())],
    response_class=Response,
    responses=responses(Unauthorized, Forbidden),
)
async def metrics(request: Request, settings: SettingsDep, process: MetricsDep) -> Response:
    """Prometheus metrics of this process (ATRIUM_METRICS_TOKEN protects them)."""
    check_metrics_access(request, settings)
    return Response(generate_latest(process.registry), media_type=CONTENT_TYPE_LATEST)
