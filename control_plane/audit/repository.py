from control_plane.kit.repository import TenantRepository
from control_plane.models import AuditEvent


class AuditRepository(TenantRepository[AuditEvent]):
    model = AuditEvent
