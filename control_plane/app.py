"""create_app(): middleware, routers, error handlers, lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi_offline import FastAPIOffline

from control_plane import health, openapi
from control_plane.api_key.endpoints import router as api_key_router
from control_plane.audit.endpoints import router as audit_router
from control_plane.auth.endpoints import router as auth_router
from control_plane.auth.endpoints import wellknown
from control_plane.billing.endpoints import router as billing_router
from control_plane.bootstrap import ensure_platform_admin
from control_plane.config import Settings
from control_plane.dataset.endpoints import router as dataset_router
from control_plane.deployment.endpoints import router as deployment_router
from control_plane.event.endpoints import router as event_router
from control_plane.job.dashboard import router as dashboard_router
from control_plane.job.endpoints import cluster as cluster_router
from control_plane.job.endpoints import jobs as job_router
from control_plane.job.ray_api import router as ray_api_router
from control_plane.kit import problems
from control_plane.kit.body_limit import BodyLimitMiddleware
from control_plane.kit.forwarded import ClientAddressMiddleware
from control_plane.model.endpoints import router as model_router
from control_plane.model.internal import router as internal_router
from control_plane.observability import Metrics, ObservabilityMiddleware
from control_plane.plan.endpoints import router as plan_router
from control_plane.quota.endpoints import router as quota_router
from control_plane.services import Services
from control_plane.tenant.endpoints import router as tenant_router
from control_plane.usage.endpoints import router as usage_router
from control_plane.user.endpoints import router as user_router
from control_plane.webhook.endpoints import router as webhook_router

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    wellknown,
    auth_router,
    tenant_router,
    user_router,
    api_key_router,
    audit_router,
    plan_router,
    quota_router,
    usage_router,
    event_router,
    webhook_router,
    billing_router,
    model_router,
    dataset_router,
    deployment_router,
    job_router,
    cluster_router,
    ray_api_router,
    dashboard_router,
    internal_router,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = Services.build(settings, metrics)
        app.state.services = services
        if settings.bootstrap_admin_email and settings.bootstrap_admin_password:
            await ensure_platform_admin(
                db=services.db,
                passwords=services.passwords,
                email=settings.bootstrap_admin_email,
                password=settings.bootstrap_admin_password.get_secret_value(),
                min_length=settings.password_min_length,
            )
        await services.start()
        try:
            yield
        finally:
            await services.stop()

    # /docs (Swagger UI 5) and /redoc load their JS and CSS from the installed package,
    # under /static-offline-docs, so they render with no internet access
    app = FastAPIOffline(
        title="Atrium",
        version="0.1.0",
        description="Multi-tenant ML platform: identity, tenants, models, serving, jobs, plugins.",
        lifespan=lifespan,
    )
    problems.install(app)
    # inside the observability middleware: its 413s are logged and carry the request id
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    # inside the observability middleware too, which logs the address it sets
    app.add_middleware(ClientAddressMiddleware, trusted_proxies=settings.trusted_proxies)
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
    for router in ROUTERS:
        app.include_router(router)
    openapi.install(app, ROUTERS)
    return app
