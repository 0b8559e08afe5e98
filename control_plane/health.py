from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from control_plane.kit.deps import Public, ServicesDep
from control_plane.kit.problems import problem
from control_plane.migrate import current_revision, head_revision
from control_plane.observability import check_metrics_access

router = APIRouter(tags=["health"])


@router.get("/healthz", dependencies=[Public()])
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", dependencies=[Public()], response_model=None)
async def readyz(services: ServicesDep) -> Any:
    """The database answers and its schema is at the latest migration."""
    try:
        async with services.db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            current = await current_revision(conn)
    except Exception as exc:
        return problem(503, "not_ready", "Not ready", f"database unreachable: {type(exc).__name__}")
    if current != head_revision():
        return problem(503, "not_ready", "Not ready", f"migrations pending (at {current})")
    return {"status": "ready", "migration": current}


@router.get("/metrics", dependencies=[Public()], response_class=Response)
async def metrics(request: Request, services: ServicesDep) -> Response:
    """Prometheus metrics of this process (ATRIUM_METRICS_TOKEN protects them)."""
    check_metrics_access(request, services.settings)
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
