"""Walk every route of the OpenAPI document as another tenant, against acme's objects."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from control_plane.kit.ids import new_id
from control_plane.models import Base, Job
from tests.api.registry import new_model, upload
from tests.api.world import Api, World, close_a_period_with_an_invoice
from tests.models import onnx

# Routes only platform admins may call answer 403 to anyone else, whatever the object, so
# they confirm nothing; every other route answers 404 as if the object did not exist.
ADMIN_ONLY = {
    ("PATCH", "/api/v1/tenants/{tenant_id}"),
    ("DELETE", "/api/v1/tenants/{tenant_id}"),
    ("PUT", "/api/v1/tenants/{tenant_id}/plan"),
    ("PUT", "/api/v1/tenants/{tenant_id}/limits"),
    # only Atrium's own replicas (internal token) may call these
    ("GET", "/internal/v1/model-versions/{version_id}"),
    ("GET", "/internal/v1/model-versions/{version_id}/artifact"),
}
# a package lives in the caller's own Ray cluster, named by its content: there is no other
# tenant's object to find (calling them would start the caller's cluster)
OWN_CLUSTER_ONLY = {
    ("GET", "/api/v1/ray/api/packages/{protocol}/{name}"),
    ("PUT", "/api/v1/ray/api/packages/{protocol}/{name}"),
}
# written by background work (batched key use, the outbox relay), not by requests
BACKGROUND_COLUMNS = {"last_used_at"}
BACKGROUND_TABLES = {"outbox_pending"}
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PATCH", "/api/v1/tenants/{tenant_id}"): {"name": "Pwned", "status": "suspended"},
    ("PATCH", "/api/v1/users/{user_id}"): {"email": "pwned@globex.example.com", "role": "viewer"},
    ("PUT", "/api/v1/tenants/{tenant_id}/plan"): {"plan": "enterprise"},
    ("PUT", "/api/v1/tenants/{tenant_id}/limits"): {"limits": {"api_rps": 1}},
    ("PATCH", "/api/v1/models/{model_id}"): {"name": "pwned"},
    ("PUT", "/api/v1/models/{model_id}/aliases/{alias}"): {"version": 1},
    ("PATCH", "/api/v1/deployments/{deployment_id}"): {"version": 1},
}
# ids that do not exist, valid in form (a version is a number, an alias a slug)
GHOSTS = {"version": "999999", "alias": "ghost"}


def _targets(world: World) -> dict[str, str]:
    api, owner = world.api, world.acme["owner"].token
    acme_key = api.new_key(owner, ["inference"])
    invoice_id = close_a_period_with_an_invoice(world)
    # subscribed to an event nothing here emits, so no delivery runs during the walk
    webhook = api.created(
        "/api/v1/webhooks",
        owner,
        {"url": "https://hooks.example.com/x", "events": ["job.failed"]},
    )
    model = new_model(api, owner)
    with tempfile.TemporaryDirectory() as folder:
        artifact = onnx(Path(folder))[0]
        version = upload(api, owner, model["id"], artifact, "onnx", wait=True).json()
    api.call("PUT", f"/api/v1/models/{model['id']}/aliases/champion", owner, json={"version": 1})
    dataset = api.post(
        "/api/v1/datasets", owner, files={"file": ("d.csv", b"a,b\n1,2\n")}, data={"name": "d"}
    )
    body = {"name": "churn", "model_id": model["id"], "version": 1}
    deployment = api.post("/api/v1/deployments", owner, json=body).json()
    job = _job(api, world.acme.id, world.acme["owner"].id)
    return {
        "job_id": job.id,
        "submission_id": job.submission_id,
        "path": "api/jobs/",
        "deployment_id": deployment["id"],
        "version_id": version["id"],
        "model_id": model["id"],
        "version": "1",
        "alias": "champion",
        "dataset_id": dataset.json()["id"],
        "tenant_id": world.acme.id,
        "user_id": world.acme["developer"].id,
        "key_id": acme_key["id"],
        "webhook_id": webhook["id"],
        "invoice_id": invoice_id,
    }


def _job(api: Api, tenant_id: str, user_id: str) -> Job:
    """A finished Ray job of acme's (its cluster need not run for the walk)."""
    job = Job(
        id=new_id("job"),
        tenant_id=tenant_id,
        kind="ray",
        submission_id="raysubmit_acme0000000001",
        status="succeeded",
        entrypoint="python train.py",
        params={},
        metrics={},
        created_by=user_id,
    )

    async def add() -> None:
        async with api.services.db.sessionmaker() as session:
            session.add(job)
            await session.commit()

    assert api.client.portal is not None
    api.client.portal.call(add)
    return job


def _routes(api: Api) -> list[tuple[str, str]]:
    paths = api.client.get("/openapi.json").json()["paths"]
    return [(method.upper(), path) for path, ops in paths.items() if "{" in path for method in ops]


def _snapshot(api: Api) -> dict[str, list[tuple[Any, ...]]]:
    async def dump() -> dict[str, list[tuple[Any, ...]]]:
        tables: dict[str, list[tuple[Any, ...]]] = {}
        async with api.services.db.engine.connect() as conn:
            for table in Base.metadata.sorted_tables:
                if table.name in BACKGROUND_TABLES:
                    continue
                columns = [c.name for c in table.columns if c.name not in BACKGROUND_COLUMNS]
                rows = await conn.execute(
                    text(f"SELECT {', '.join(columns)} FROM {table.name} ORDER BY id")  # noqa: S608
                )
                tables[table.name] = [tuple(r) for r in rows]
        return tables

    assert api.client.portal is not None
    result: dict[str, list[tuple[Any, ...]]] = api.client.portal.call(dump)
    return result


@pytest.mark.parametrize("credential", ["owner-token", "owner-key"])
def test_another_tenant_sees_nothing_and_changes_nothing(world: World, credential: str) -> None:
    api = world.api
    targets = _targets(world)
    caller = world.globex["owner"].token
    if credential == "owner-key":
        scopes = [
            "inference",
            "models:read",
            "models:write",
            "keys:write",
            "usage:read",
            "jobs:write",
        ]
        caller = api.new_key(caller, scopes)["key"]
    routes = _routes(api)
    assert routes, "the OpenAPI document lists no routes with ids"
    before = _snapshot(api)
    for method, template in routes:
        if (method, template) in OWN_CLUSTER_ONLY:
            continue
        names = re.findall(r"{(\w+)}", template)
        missing = [n for n in names if n not in targets]
        assert not missing, f"{method} {template}: add a target object for {missing}"
        body = BODIES.get((method, template))
        response = api.call(method, template.format(**targets), caller, json=body)
        # exactly as if the object did not exist
        ghost = api.call(
            method,
            template.format(**{n: GHOSTS.get(n, "x_nothing") for n in names}),
            caller,
            json=body,
        )
        label = f"{method} {template}: {response.status_code}"
        assert response.status_code == ghost.status_code, label
        assert response.json()["code"] == ghost.json()["code"], label
        if credential == "owner-token":
            assert response.status_code == (403 if (method, template) in ADMIN_ONLY else 404), label
        assert response.status_code in (403, 404), label
        assert response.headers["content-type"] == "application/problem+json"
    assert _snapshot(api) == before
