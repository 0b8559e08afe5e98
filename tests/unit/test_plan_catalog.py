from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from control_plane.config import Settings
from control_plane.plan.catalog import CatalogError, Limit, load_catalog

SHIPPED = Settings(_env_file=None).plans_file


def test_the_shipped_catalogue_is_valid_and_complete() -> None:
    catalog = load_catalog(SHIPPED)
    assert {"free", "pro", "enterprise"} <= catalog.plans.keys()
    for plan in catalog.plans.values():
        assert all(limit.value in plan.limits.model_fields_set for limit in Limit)
    assert catalog.plans["pro"].overage[Limit.MONTHLY_PREDICTIONS].per == 1000


def _broken(tmp_path: Path, change: dict[str, object]) -> Path:
    raw = yaml.safe_load(SHIPPED.read_text())
    raw["plans"]["pro"]["limits"].update(change)
    path = tmp_path / "plans.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"api_rps": -1}, "plans.pro.limits.api_rps"),
        ({"bananas": 3}, "plans.pro.limits.bananas"),
        ({"max_deployments": "many"}, "plans.pro.limits.max_deployments"),
    ],
)
def test_a_bad_field_is_named(tmp_path: Path, change: dict[str, object], named: str) -> None:
    with pytest.raises(CatalogError, match=named.replace(".", r"\.")):
        load_catalog(_broken(tmp_path, change))


def test_a_missing_limit_and_unreadable_yaml_are_named(tmp_path: Path) -> None:
    raw = yaml.safe_load(SHIPPED.read_text())
    del raw["plans"]["free"]["limits"]["storage_gb"]
    path = tmp_path / "plans.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(CatalogError, match=r"plans\.free\.limits\.storage_gb"):
        load_catalog(path)
    path.write_text("plans: [unclosed")
    with pytest.raises(CatalogError, match="cannot read"):
        load_catalog(path)
