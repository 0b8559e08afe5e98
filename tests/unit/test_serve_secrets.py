"""The Serve config the reconciler applies holds no secret: replicas read them from a
file (mode 0600) whose path is all the config carries."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from control_plane.config import Settings
from control_plane.deployment.render import Desired, render
from control_plane.deployment.secrets import revision, serve_secrets_file
from control_plane.deployment.targets import Resolved
from control_plane.models import Deployment
from serve_apps.gateway.config import GatewayConfig, RoutingTable
from serve_apps.runtime.cache import RuntimeConfig
from serve_apps.runtime.secrets import SecretsFileError, ServeSecrets

DATABASE_URL = "postgresql+psycopg://atrium:db-pass-canary@db.internal:5432/atrium"
REDIS_URL = "redis://:redis-pass-canary@redis.internal:6379/0"
TOKEN = "internal-token-canary-0123456789abcdef"
OTHER_SECRETS: dict[str, Any] = {
    "secret_key": "secret-key-canary-0123456789abcdef0123456789",
    "master_key": "bWFzdGVyLWtleS1jYW5hcnktMDEyMzQ1Njc4OWFiY2RlZg==",
    "s3_secret_access_key": "s3-secret-canary",
    "jwt_private_key": "jwt-private-key-canary",
    "ray_auth_token": "ray-token-canary",
}


def _settings(home: Path, **values: Any) -> Settings:
    return Settings(
        _env_file=None,
        home=home,
        database_url=DATABASE_URL,
        redis_url=REDIS_URL,
        **OTHER_SECRETS,
        **values,
    )


def _deployment(mode: str, **values: Any) -> Desired:
    deployment = Deployment(
        id=f"dep_{mode}",
        tenant_id="ten_1",
        name=f"churn-{mode}",
        model_id="mod_1",
        mode=mode,
        traffic=[{"version": 1, "alias": None, "weight": 100}],
        batching={"max_batch_size": 8, "batch_wait_timeout_ms": 2.0},
        max_queued_requests=100,
        **{
            "timeout_ms": 30_000,
            "resources": {"num_cpus": 1.0, "num_gpus": 0.0},
            "autoscaling": {"min_replicas": 1, "max_replicas": 1, "target_ongoing_requests": 2.0},
            **values,
        },
    )
    target = Resolved("ver_1", 1, 100, None, "onnx", {"inputs": [], "outputs": []})
    return Desired(deployment, [target])


def _rendered(settings: Settings, wanted: list[Desired]) -> dict[str, Any]:
    path = serve_secrets_file(settings, internal_token=TOKEN)
    return render(
        settings,
        wanted,
        secrets_file=str(path),
        secrets_revision=revision(path),
        control_url=settings.control_url,
    )


def test_the_serve_config_holds_no_secret(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    config = _rendered(settings, [_deployment("shared"), _deployment("dedicated")])
    text = json.dumps(config)
    for secret in [DATABASE_URL, REDIS_URL, TOKEN, *OTHER_SECRETS.values()]:
        assert secret not in text
    for password in ("db-pass-canary", "redis-pass-canary"):
        assert password not in text
    path = str(tmp_path / "serve-secrets.json")
    assert {app["args"]["secrets_file"] for app in config["applications"]} == {path}


def test_the_replicas_read_their_config_and_the_secrets_file(tmp_path: Path) -> None:
    config = _rendered(_settings(tmp_path), [_deployment("dedicated")])
    gateway, dedicated = config["applications"]
    GatewayConfig.model_validate(gateway["args"])
    secrets = ServeSecrets.load(RuntimeConfig.model_validate(dedicated["args"]).secrets_file)
    assert secrets == ServeSecrets(
        database_url=DATABASE_URL, redis_url=REDIS_URL, internal_token=TOKEN
    )


def test_the_secrets_file_is_owner_only_and_rewritten_only_when_it_changes(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path)
    path = serve_secrets_file(settings, internal_token=TOKEN)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.utime(path, ns=(1, 1))  # a known mtime: an unneeded rewrite would change it
    assert revision(serve_secrets_file(settings, internal_token=TOKEN)) == "1"
    serve_secrets_file(settings, internal_token="rotated-token")
    assert revision(path) != "1"
    assert ServeSecrets.load(path).internal_token == "rotated-token"


def test_a_mounted_secrets_file_is_named_not_written(tmp_path: Path) -> None:
    mounted = tmp_path / "mounted" / "serve-secrets.json"
    settings = _settings(tmp_path, serve_secrets_file=mounted)
    assert serve_secrets_file(settings, internal_token=TOKEN) == mounted
    assert not mounted.exists()
    assert not (tmp_path / "serve-secrets.json").exists()


def test_a_missing_or_bad_secrets_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.json"
    with pytest.raises(SecretsFileError, match=re.escape(str(missing))):
        ServeSecrets.load(missing)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"database_url": DATABASE_URL}))
    with pytest.raises(SecretsFileError, match="internal_token") as raised:
        ServeSecrets.load(bad)
    assert str(bad) in str(raised.value)
    assert DATABASE_URL not in str(raised.value)


def test_deadlines_and_tenant_concurrency_reach_the_gateway(tmp_path: Path) -> None:
    settings = _settings(tmp_path, gateway_tenant_concurrency=7)
    config = _rendered(settings, [_deployment("shared", timeout_ms=2500)])
    gateway = config["applications"][0]
    assert GatewayConfig.model_validate(gateway["args"]).tenant_max_in_flight == 7
    table = RoutingTable.model_validate(gateway["deployments"][0]["user_config"])
    assert table.routes["ten_1/churn-shared"].timeout_s == 2.5
