from control_plane.kit.repository import TenantRepository
from control_plane.models import Invoice, Subscription


class InvoiceRepository(TenantRepository[Invoice]):
    model = Invoice


class SubscriptionRepository(TenantRepository[Subscription]):
    model = Subscription
