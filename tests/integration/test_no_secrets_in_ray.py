"""Ray's dashboard shows every Serve application's config to whoever holds Ray's token:
it names the secrets file the replicas read, and holds no secret itself."""

from __future__ import annotations

import json
import stat

import httpx
import pytest

from tests.integration.platform import Platform, tenant_with_key

pytestmark = [pytest.mark.ray, pytest.mark.slow]
HOME_SECRETS = ("internal.key", "secret.key", "master.key", "ray.token")


def _applications(platform: Platform) -> str:
    token = (platform.home / "ray.token").read_text().strip()
    response = httpx.get(
        f"http://127.0.0.1:{platform.dashboard_port}/api/serve/applications/",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.text


def _secrets(platform: Platform) -> list[str]:
    """The database URL, Redis URL and internal token the replicas use, the secrets
    kept in ATRIUM_HOME, and every ATRIUM_ setting's value that is neither a number
    (ports, periods) nor the home directory (where the secrets file is, by design)."""
    kept = json.loads((platform.home / "serve-secrets.json").read_text())
    values = [v for v in kept.values() if v]
    values += [(platform.home / name).read_text().strip() for name in HOME_SECRETS]
    values += [
        value
        for name, value in platform.env().items()
        if name.startswith("ATRIUM_") and name != "ATRIUM_HOME" and not _number(value)
    ]
    return values


def _number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def test_serve_applications_carry_no_secret(platform: Platform) -> None:
    document = _applications(platform)
    secrets_file = platform.home / "serve-secrets.json"
    assert json.dumps(str(secrets_file)) in document  # the replicas are told where to look
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    kept = json.loads(secrets_file.read_text())
    assert kept["database_url"].endswith("atrium.db")
    assert kept["internal_token"] == (platform.home / "internal.key").read_text().strip()
    leaked = [value for value in _secrets(platform) if value in document]
    assert leaked == []


def test_the_gateway_reads_the_database_through_the_secrets_file(platform: Platform) -> None:
    _, _, key = tenant_with_key(platform.api, "sealed", ["inference"])
    headers = {"Authorization": f"Bearer {key}"}
    response = httpx.get(f"{platform.serve}/v2/models/nothing", headers=headers, timeout=30)
    assert response.status_code == 404, response.text  # the key was found: not 401 or 500
    response = httpx.get(f"{platform.serve}/v2/models/nothing", timeout=30)
    assert response.status_code == 401, response.text
