from control_plane.kit.repository import RepositoryBase
from control_plane.models import Invoice, Subscription


class InvoiceRepository(RepositoryBase[Invoice]):
    model = Invoice


class SubscriptionRepository(RepositoryBase[Subscription]):
    model = Subscription
