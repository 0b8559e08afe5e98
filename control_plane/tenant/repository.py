from control_plane.kit.repository import RepositoryBase
from control_plane.models import Tenant


class TenantRepository(RepositoryBase[Tenant]):
    """A tenant's own row is scoped by its id."""

    model = Tenant
    tenant_field = "id"
