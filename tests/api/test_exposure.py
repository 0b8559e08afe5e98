"""What the platform's own routes show, and to whom: /internal (Serve replicas only) and
/metrics (protectable in production)."""

from __future__ import annotations

from collections.abc import Callable

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient

from tests.api.world import Api

VERSION = "/internal/v1/model-versions/mv_ghost"
TOKEN = "i" * 40
LOOPBACK = ("127.0.0.1", 40000)


def _from(api: Api, address: str) -> TestClient:
    """The same running app, reached from another client address."""
    return TestClient(api.client.app, client=(address, 40000), raise_server_exceptions=False)


def _internal(api: Api, address: str = "127.0.0.1", **headers: str) -> httpx.Response:
    return _from(api, address).get(VERSION, headers=headers)


@pytest.mark.parametrize("token", ["", " ", "   "])
def test_an_empty_internal_token_opens_nothing(make_client: Callable[..., Api], token: str) -> None:
    api = make_client(internal_token=token)
    assert _internal(api, Authorization="Bearer ").status_code == 403
    assert _internal(api, Authorization="Bearer").status_code == 403
    assert _internal(api, Authorization=f"Bearer {token}").status_code == 403


def test_internal_routes_answer_the_token_from_loopback(make_client: Callable[..., Api]) -> None:
    api = make_client(internal_token=TOKEN)
    assert _internal(api, Authorization=f"Bearer {TOKEN}").status_code == 404  # let in
    assert _internal(api, "::1", Authorization=f"Bearer {TOKEN}").status_code == 404
    assert _internal(api, Authorization=f"Bearer {TOKEN}x").status_code == 403
    assert _internal(api, Authorization=f"Basic {TOKEN}").status_code == 403


def test_internal_routes_refuse_other_networks_even_with_the_token(
    make_client: Callable[..., Api],
) -> None:
    api = make_client(internal_token=TOKEN)
    refused = _internal(api, "10.1.2.3", Authorization=f"Bearer {TOKEN}")
    assert refused.status_code == 403
    assert "ATRIUM_INTERNAL_NETWORKS" in refused.json()["detail"]
    # a proxy on loopback relaying an outside request does not make it local
    relayed = _internal(api, **{"Authorization": f"Bearer {TOKEN}", "X-Forwarded-For": "1.2.3.4"})
    assert relayed.status_code == 403


def test_internal_networks_admit_the_ray_nodes(make_client: Callable[..., Api]) -> None:
    api = make_client(internal_token=TOKEN, internal_networks=["10.0.0.0/8"])
    assert _internal(api, "10.1.2.3", Authorization=f"Bearer {TOKEN}").status_code == 404
    assert _internal(api, "192.168.1.1", Authorization=f"Bearer {TOKEN}").status_code == 403
    assert _internal(api, Authorization=f"Bearer {TOKEN}").status_code == 403  # not listed


def test_metrics_need_their_token_when_one_is_set(make_client: Callable[..., Api]) -> None:
    api = make_client(metrics_token="m" * 40)
    refused = api.get("/metrics")
    assert refused.status_code == 401
    assert refused.json()["code"] == "unauthorized"
    assert api.get("/metrics", "wrong" * 8).status_code == 401
    assert _from(api, "127.0.0.1").get("/metrics").status_code == 401  # loopback too
    scraped = api.get("/metrics", "m" * 40)
    assert scraped.status_code == 200
    assert "atrium_http_requests" in scraped.text


def test_production_metrics_without_a_token_answer_loopback_only(api: Api) -> None:
    assert api.get("/metrics").status_code == 200  # local and test: open
    production = api.services.settings.model_copy(update={"environment": "production"})
    api.services.settings = production
    refused = _from(api, "10.1.2.3").get("/metrics")
    assert refused.status_code == 403
    assert "ATRIUM_METRICS_TOKEN" in refused.json()["detail"]
    assert _from(api, "127.0.0.1").get("/metrics").status_code == 200
