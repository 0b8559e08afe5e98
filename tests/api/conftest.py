from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from control_plane.app import create_app
from control_plane.config import Settings
from tests.api.databases import (
    PostgresDatabase,
    SqliteDatabase,
    TestDatabase,
    postgres_base_url,
)
from tests.api.world import Api, World, build_world
from tests.support import make_settings, service_missing

_databases: dict[str, TestDatabase] = {}


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> TestDatabase:
    """Every API test runs once on SQLite and once on the real Postgres."""
    kind: str = request.param
    if kind not in _databases:
        _databases[kind] = _open(kind, tmp_path_factory.mktemp("sqlite"))
    return _databases[kind]


def _open(kind: str, directory: Path) -> TestDatabase:
    if kind == "sqlite":
        return SqliteDatabase(directory)
    url = postgres_base_url()
    if url is None:
        service_missing("Postgres (ATRIUM_TEST_DATABASE_URL)")
        raise AssertionError("unreachable")
    try:
        return PostgresDatabase(url)
    except OperationalError as exc:
        service_missing(f"Postgres at ATRIUM_TEST_DATABASE_URL ({exc.orig})")
        raise


@pytest.fixture(scope="session", autouse=True)
def _close_databases() -> Iterator[None]:
    yield
    for db in _databases.values():
        db.close()


@pytest.fixture
def make_client(database: TestDatabase, tmp_path: Path) -> Iterator[Callable[..., Api]]:
    """Start the app (lifespan included) on this test's fresh database."""
    url = database.url_for(tmp_path)
    clients: list[TestClient] = []

    def start(**overrides: Any) -> Api:
        settings: Settings = make_settings(tmp_path / "home", url, **overrides)
        client = TestClient(create_app(settings), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return Api(client, settings)

    yield start
    for client in reversed(clients):
        client.__exit__(None, None, None)


@pytest.fixture
def api(make_client: Callable[..., Api]) -> Api:
    return make_client()


@pytest.fixture
def world(api: Api) -> World:
    """Two tenants: acme (owner, admin, developer, viewer) and globex (owner)."""
    return build_world(api)
