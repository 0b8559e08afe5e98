from control_plane.kit.repository import TenantRepository
from control_plane.models import Tenant


class TenantRepo(TenantRepository[Tenant]):
    """A tenant's own row is scoped by its id."""

    model = Tenant
    tenant_field = "id"
