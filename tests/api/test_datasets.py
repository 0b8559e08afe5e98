"""Datasets: CSV and Parquet tables read through on upload, described, stored encrypted."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.api.registry import assert_nothing_left, blobs, problem
from tests.api.world import World

CSV = b"age,income,city,churned\n34,52000.5,Lyon,0\n51,61000,Paris,1\n29,38000.25,Nice,0\n"


def _parquet() -> bytes:
    table = pa.table({"x": [1.0, 2.0, 3.0, 4.0], "label": ["a", "b", "a", "b"]})
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=2)
    return sink.getvalue()


def _upload(world: World, filename: str, content: bytes, token: str | None = None, **fields: str):  # type: ignore[no-untyped-def]
    return world.api.post(
        "/api/v1/datasets",
        token or world.acme["developer"].token,
        files={"file": (filename, content)},
        data=fields,
    )


def test_csv_is_described_and_listed(world: World) -> None:
    response = _upload(world, "customers.csv", CSV, name="customers")
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert (dataset["format"], dataset["rows"], dataset["size_bytes"]) == ("csv", 3, len(CSV))
    assert dataset["columns"] == [
        {"name": "age", "type": "int64"},
        {"name": "income", "type": "double"},
        {"name": "city", "type": "string"},
        {"name": "churned", "type": "int64"},
    ]
    token = world.acme["viewer"].token
    assert world.api.get(f"/api/v1/datasets/{dataset['id']}", token).json() == dataset
    assert [d["name"] for d in world.api.get("/api/v1/datasets", token).json()["items"]] == [
        "customers"
    ]


def test_parquet_by_declared_format(world: World) -> None:
    data = _parquet()
    response = _upload(world, "blob", data, name="points", format="parquet")
    assert response.status_code == 201, response.text
    assert response.json()["rows"] == 4
    assert response.json()["columns"] == [
        {"name": "x", "type": "double"},
        {"name": "label", "type": "string"},
    ]


def test_the_stored_file_is_what_was_uploaded(world: World) -> None:
    dataset = _upload(world, "customers.csv", CSV, name="customers").json()
    services = world.api.services

    async def content() -> bytes:
        key = await services.data_keys.for_tenant(world.acme.id)
        data: bytes = services.artifacts.read_all(world.acme.id, dataset["sha256"], key)
        return data

    assert world.api.client.portal.call(content) == CSV  # type: ignore[union-attr]
    (path,) = blobs(world.api, world.acme.id)
    assert CSV not in Path(path).read_bytes()  # encrypted at rest


@pytest.mark.parametrize(
    ("filename", "content", "fields", "message"),
    [
        ("bad.csv", b"a,b\n1,2\n3\n", {"name": "ragged"}, "not a readable csv"),
        ("bad.parquet", _parquet()[:-40], {"name": "cut"}, "not a readable parquet"),
        ("bad.csv", b"a,a\n1,2\n", {"name": "twice"}, "repeated column name(s): a"),
        ("bad.csv", b"a,b\n", {"name": "header-only"}, "no rows"),
        ("bad.csv", b"\x9f\xff,b\n1,2\n", {"name": "latin"}, "header is not UTF-8"),
        ("bad.csv", b'a,b\n1,"2\n3,4\n', {"name": "quote"}, "quoted field is never closed"),
        ("data.bin", CSV, {"name": "what"}, "format"),
        ("data.csv", CSV, {"name": "../../etc"}, "name"),
        ("data.csv", CSV, {}, "name"),
    ],
)
def test_bad_tables_are_refused_and_nothing_is_kept(
    world: World, filename: str, content: bytes, fields: dict[str, str], message: str
) -> None:
    body = problem(_upload(world, filename, content, **fields), 422)
    assert message in body["detail"]
    assert_nothing_left(world.api, world.acme.id)


def test_empty_and_duplicate(world: World) -> None:
    problem(_upload(world, "e.csv", b"", name="empty"), 422)
    assert _upload(world, "c.csv", CSV, name="customers").status_code == 201
    problem(_upload(world, "c.csv", CSV + b"1,2,x,0\n", name="customers"), 409, "conflict")
    assert len(blobs(world.api, world.acme.id)) == 1


def test_delete_purges_and_other_tenants_see_nothing(world: World) -> None:
    api = world.api
    dataset = _upload(world, "c.csv", CSV, name="customers").json()
    other = world.globex["owner"].token
    problem(api.get(f"/api/v1/datasets/{dataset['id']}", other), 404)
    problem(api.delete(f"/api/v1/datasets/{dataset['id']}", other), 404)
    assert api.get("/api/v1/datasets", other).json()["items"] == []
    assert (
        api.delete(f"/api/v1/datasets/{dataset['id']}", world.acme["developer"].token).status_code
        == 204
    )
    assert_nothing_left(api, world.acme.id)
