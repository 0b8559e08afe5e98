import os

import pytest
from redis import Redis as SyncRedis
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.support import service_missing

# Tests never read a developer's own ATRIUM_HOME or .env by accident.
os.environ.pop("ATRIUM_HOME", None)
os.environ.pop("ATRIUM_DATABASE_URL", None)
os.environ.pop("ATRIUM_REDIS_URL", None)


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("ATRIUM_TEST_REDIS_URL")
    if not url:
        service_missing("Redis (ATRIUM_TEST_REDIS_URL)")
        raise AssertionError("unreachable")
    try:
        SyncRedis.from_url(url, socket_connect_timeout=2).ping()
    except RedisConnectionError as exc:
        service_missing(f"Redis at ATRIUM_TEST_REDIS_URL ({exc})")
    return url
