"""One exception hierarchy; each error carries its HTTP status and stable code."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field


class AtriumError(Exception):
    """Base of every error the API answers with a Problem Details body."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal server error"
    # Keep what the request wrote (an audit record, a revoked token family) despite the error.
    persist: ClassVar[bool] = False

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extra = extra or {}


class BadRequest(AtriumError):
    status, code, title = 400, "bad_request", "Bad request"


class ValidationFailed(AtriumError):
    status, code, title = 422, "validation_error", "Validation error"


class ModelRejected(ValidationFailed):
    """The uploaded model failed its sandboxed load; the version is discarded (committed)."""

    code, title = "model_rejected", "Model rejected"
    persist = True


class Unauthorized(AtriumError):
    status, code, title = 401, "unauthorized", "Not authenticated"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.headers.setdefault("WWW-Authenticate", "Bearer")


class LoginFailed(Unauthorized):
    persist = True


class RefreshTokenReused(Unauthorized):
    persist = True


class MfaRequired(Unauthorized):
    code, title = "mfa_required", "MFA code required"


class InvalidTotp(Unauthorized):
    code, title = "invalid_totp", "Invalid or already used MFA code"
    persist = True


class ReauthenticationRequired(Unauthorized):
    """A change to one's own account from a sign-in that is too old, or with a wrong
    ``current_password``: send the current password (RFC 9470's step-up, 401)."""

    code, title = "reauthentication_required", "Reauthentication required"
    persist = True

    def __init__(self, detail: str | None = None, *, max_age: int, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.headers["WWW-Authenticate"] = (
            f'Bearer error="insufficient_user_authentication", max_age={max_age}'
        )


class TenantRequired(Unauthorized):
    """The email and password fit accounts in more than one tenant: name the tenant."""

    code, title = "tenant_required", "Tenant required"


class Forbidden(AtriumError):
    status, code, title = 403, "forbidden", "Forbidden"


class PlanLimitExceeded(Forbidden):
    """A count the plan caps (deployments, dedicated replicas) would be exceeded."""

    code, title = "plan_limit_reached", "Plan limit reached"


class TenantSuspended(Forbidden):
    code, title = "tenant_suspended", "Tenant suspended"


class NotFound(AtriumError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(AtriumError):
    status, code, title = 409, "conflict", "Conflict"


class IdempotencyInFlight(Conflict):
    """The first request with this ``Idempotency-Key`` is still running: retry shortly."""

    code, title = "idempotency_in_flight", "Request with this Idempotency-Key in progress"


class IdempotencyConflict(ValidationFailed):
    """This ``Idempotency-Key`` was first sent with another request (route or body)."""

    code, title = "idempotency_conflict", "Idempotency-Key reused for another request"


class MethodNotAllowed(AtriumError):
    status, code, title = 405, "method_not_allowed", "Method not allowed"


class PayloadTooLarge(AtriumError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class StorageQuotaExceeded(PayloadTooLarge):
    code, title = "storage_quota_exceeded", "Storage quota exceeded"


class UnsupportedMediaType(AtriumError):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


class RateLimited(AtriumError):
    status, code, title = 429, "rate_limited", "Too many requests"
    persist = True

    def __init__(self, detail: str | None = None, *, retry_after: int, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.headers["Retry-After"] = str(max(1, retry_after))


class QuotaExceeded(AtriumError):
    status, code, title = 429, "quota_exceeded", "Quota exceeded"

    def __init__(self, detail: str | None = None, *, retry_after: int, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.headers["Retry-After"] = str(max(1, retry_after))


class PredictionFailed(AtriumError):
    """The tenant's model raised on this request; its worker lives on."""


class WorkerFailed(AtriumError):
    """The tenant's runtime worker died or broke the protocol mid-request; it is replaced."""

    code, title = "worker_failed", "Worker failed"


class MemoryLimitExceeded(WorkerFailed):
    """The tenant's runtime worker went past its memory cap; it is replaced."""

    code, title = "memory_limit_exceeded", "Memory limit exceeded"


class NotReady(AtriumError):
    status, code, title = 503, "not_ready", "Not ready"


class Overloaded(AtriumError):
    """Too many requests are already queued; the caller may retry shortly."""

    status, code, title = 503, "overloaded", "Overloaded"

    def __init__(self, detail: str | None = None, *, retry_after: int = 1, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.headers["Retry-After"] = str(max(1, retry_after))


class PredictionTimeout(AtriumError):
    """A prediction ran past its deadline; the worker that ran it is replaced."""

    status, code, title = 504, "prediction_timeout", "Prediction timeout"


class ClusterUnavailable(AtriumError):
    status, code, title = 503, "cluster_unavailable", "Cluster unavailable"


class SandboxUnavailable(AtriumError):
    """Tenant-supplied code or files would have to run, and no sandbox can be started."""

    status, code, title = 503, "sandbox_unavailable", "Sandbox unavailable"


class ProblemDetails(BaseModel):
    """RFC 9457 Problem Details, as every error is answered (``application/problem+json``)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="`urn:atrium:problem:<code>`.")
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable and machine-readable; one code, one status.")
    instance: str | None = Field(None, description="The request's path.")
    request_id: str | None = None


def responses(*errors: type[AtriumError]) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: each status it can answer, with its codes
    (Polar's ``PolarError.schema()``), so the OpenAPI document lists them."""
    by_status: dict[int, list[type[AtriumError]]] = {}
    for error in errors:
        by_status.setdefault(error.status, []).append(error)
    return {
        status: {
            "model": ProblemDetails,
            "description": "; ".join(f"`{e.code}`: {e.title}" for e in group),
        }
        for status, group in sorted(by_status.items())
    }
