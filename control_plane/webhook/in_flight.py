"""Which deliveries this process is sending, so one receiver cannot take every slot."""

from __future__ import annotations

from collections import Counter

from control_plane.models import WebhookDelivery


class InFlight:
    """The deliveries this process is sending: at most ``total`` at once, ``per_tenant``
    of one tenant and ``per_webhook`` to one webhook."""

    def __init__(self, *, total: int, per_tenant: int, per_webhook: int) -> None:
        self._caps = (total, per_tenant, per_webhook)
        self._count = 0
        self._tenants: Counter[str] = Counter()
        self._webhooks: Counter[str] = Counter()

    @property
    def free(self) -> int:
        return self._caps[0] - self._count

    def full_tenants(self) -> list[str]:
        return [t for t, n in self._tenants.items() if n >= self._caps[1]]

    def full_webhooks(self) -> list[str]:
        return [w for w, n in self._webhooks.items() if n >= self._caps[2]]

    def take(self, delivery: WebhookDelivery) -> bool:
        """Count ``delivery`` in, unless a cap is reached."""
        total, per_tenant, per_webhook = self._caps
        if (
            self._count >= total
            or self._tenants[delivery.tenant_id] >= per_tenant
            or self._webhooks[delivery.webhook_id] >= per_webhook
        ):
            return False
        self._count += 1
        self._tenants[delivery.tenant_id] += 1
        self._webhooks[delivery.webhook_id] += 1
        return True

    def done(self, delivery: WebhookDelivery) -> None:
        self._count -= 1
        self._tenants[delivery.tenant_id] -= 1
        self._webhooks[delivery.webhook_id] -= 1
        if not self._tenants[delivery.tenant_id]:
            del self._tenants[delivery.tenant_id]
        if not self._webhooks[delivery.webhook_id]:
            del self._webhooks[delivery.webhook_id]
