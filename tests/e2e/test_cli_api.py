"""A user's path over real HTTP: `atrium api` as a subprocess, httpx as the client."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import httpx
import pyotp
import pytest

from tests.support import ADMIN_EMAIL, PASSWORD

pytestmark = pytest.mark.e2e


def test_bootstrap_to_revoked_key_over_http(server: tuple[str, subprocess.Popen[str]]) -> None:
    base, proc = server
    with httpx.Client(base_url=base, timeout=10) as http:

        def login(email: str, **extra: str) -> httpx.Response:
            return http.post(
                "/api/v1/auth/token", data={"username": email, "password": PASSWORD, **extra}
            )

        def bearer(token: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {token}"}

        admin = login(ADMIN_EMAIL).json()["access_token"]
        tenant = http.post(
            "/api/v1/tenants", json={"name": "Acme", "slug": "acme"}, headers=bearer(admin)
        ).json()
        owner_body = {
            "email": "owner@acme.example.com",
            "password": PASSWORD,
            "role": "owner",
            "tenant_id": tenant["id"],
        }
        assert http.post("/api/v1/users", json=owner_body, headers=bearer(admin)).status_code == 201

        owner = login("owner@acme.example.com").json()["access_token"]
        secret = http.post("/api/v1/auth/mfa/setup", headers=bearer(owner)).json()["secret"]
        totp = pyotp.TOTP(secret)
        code = {"code": totp.now()}
        assert (
            http.post("/api/v1/auth/mfa/enable", json=code, headers=bearer(owner)).status_code
            == 204
        )
        assert login("owner@acme.example.com").json()["code"] == "mfa_required"
        next_code = totp.at(time.time() + 30)  # the current one was spent enabling MFA
        owner = login("owner@acme.example.com", totp_code=next_code).json()["access_token"]

        key = http.post(
            "/api/v1/api-keys",
            json={"name": "ci", "scopes": ["inference", "models:read"]},
            headers=bearer(owner),
        ).json()
        me = http.get("/api/v1/auth/me", headers=bearer(key["key"]))
        assert me.json() == {
            "api_key_id": key["id"],
            "tenant_id": tenant["id"],
            "scopes": ["inference", "models:read"],
        }
        revoked = http.delete(f"/api/v1/api-keys/{key['id']}", headers=bearer(owner))
        assert revoked.status_code == 204
        refused = http.get("/api/v1/auth/me", headers=bearer(key["key"]))
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        request_id = refused.headers["x-request-id"]

    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    access = [entry for entry in lines if entry.get("request_id") == request_id]
    assert access and access[0]["status"] == 401 and access[0]["route"] == "/api/v1/auth/me"
