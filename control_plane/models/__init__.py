"""All tables; importing this package registers them on ``Base.metadata``."""

from control_plane.models.api_key import ApiKey
from control_plane.models.audit import AuditEvent
from control_plane.models.base import Base
from control_plane.models.event import Event, OutboxPending, Webhook, WebhookDelivery
from control_plane.models.invoice import Invoice
from control_plane.models.refresh_token import RefreshToken
from control_plane.models.registry import Dataset, Deployment, Model, ModelAlias, ModelVersion
from control_plane.models.subscription import Subscription
from control_plane.models.tenant import Tenant
from control_plane.models.tenant_key import TenantKey
from control_plane.models.usage import UsageRecord
from control_plane.models.user import User

__all__ = [
    "ApiKey",
    "AuditEvent",
    "Base",
    "Dataset",
    "Deployment",
    "Event",
    "Invoice",
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
