from control_plane.kit.repository import TenantRepository
from control_plane.models import Event, Webhook, WebhookDelivery


class EventRepository(TenantRepository[Event]):
    model = Event


class WebhookRepository(TenantRepository[Webhook]):
    model = Webhook


class DeliveryRepository(TenantRepository[WebhookDelivery]):
    model = WebhookDelivery
