"""Every event type there is: what ``emit`` writes and what a webhook may subscribe to."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    TENANT_CREATED = "tenant.created"
    TENANT_UPDATED = "tenant.updated"
    TENANT_SUSPENDED = "tenant.suspended"
    TENANT_ACTIVATED = "tenant.activated"
    TENANT_PLAN_CHANGED = "tenant.plan_changed"
    TENANT_LIMITS_CHANGED = "tenant.limits_changed"
    USER_CREATED = "user.created"
    USER_UPDATED = "user.updated"
    USER_DELETED = "user.deleted"
    API_KEY_CREATED = "api_key.created"
    API_KEY_REVOKED = "api_key.revoked"
    INVOICE_ISSUED = "invoice.issued"
    QUOTA_THRESHOLD = "quota.threshold"
    WEBHOOK_DISABLED = "webhook.disabled"
    MODEL_CREATED = "model.created"
    MODEL_DELETED = "model.deleted"
    MODEL_VERSION_READY = "model_version.ready"
    MODEL_VERSION_FAILED = "model_version.failed"
    DATASET_CREATED = "dataset.created"
    DEPLOYMENT_READY = "deployment.ready"
    DEPLOYMENT_FAILED = "deployment.failed"
    JOB_SUCCEEDED = "job.succeeded"
    JOB_FAILED = "job.failed"
    PLUGIN_INSTALLED = "plugin.installed"
