"""All tables; importing this package registers them on ``Base.metadata``."""

from control_plane.models.api_key import ApiKey
from control_plane.models.audit import AuditEvent
from control_plane.models.base import Base
from control_plane.models.dataset import Dataset
from control_plane.models.deployment import Deployment
from control_plane.models.event import Event, OutboxPending
from control_plane.models.idempotency_key import IdempotencyKey
from control_plane.models.invoice import Invoice
from control_plane.models.job import Job
from control_plane.models.model import Model
from control_plane.models.model_alias import ModelAlias
from control_plane.models.model_version import ModelVersion
from control_plane.models.refresh_token import RefreshToken
from control_plane.models.subscription import Subscription
from control_plane.models.tenant import Tenant
from control_plane.models.tenant_key import TenantKey
from control_plane.models.usage import UsageRecord
from control_plane.models.user import User
from control_plane.models.webhook import Webhook, WebhookDelivery

__all__ = [
    "ApiKey",
    "AuditEvent",
    "Base",
    "Dataset",
    "Deployment",
    "Event",
    "IdempotencyKey",
    "Invoice",
    "Job",
    "Model",
    "ModelAlias",
    "ModelVersion",
    "OutboxPending",
    "RefreshToken",
    "Subscription",
    "Tenant",
    "TenantKey",
    "UsageRecord",
    "User",
    "Webhook",
    "WebhookDelivery",
]
