from __future__ import annotations

from control_plane.kit.repository import TenantRepository
from control_plane.models import Dataset


class DatasetRepository(TenantRepository[Dataset]):
    model = Dataset
