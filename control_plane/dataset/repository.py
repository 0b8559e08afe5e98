from __future__ import annotations

from control_plane.kit.repository import RepositoryBase
from control_plane.models import Dataset


class DatasetRepository(RepositoryBase[Dataset]):
    model = Dataset
