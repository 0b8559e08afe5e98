"""One way to open Redis: a blocking pool, so bursts wait for a connection, not fail."""

from redis.asyncio import BlockingConnectionPool, Redis


def connect(url: str, *, max_connections: int = 64) -> Redis:
    pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=10)
    return Redis.from_pool(pool)  # closing the client closes its pool
