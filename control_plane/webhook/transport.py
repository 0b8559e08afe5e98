"""The one HTTP client webhooks are sent with.

- Every connection resolves its host once, vets every address (``ssrf``), and connects
  to a vetted address. The URL keeps its host name, so TLS verifies the certificate for
  it, SNI and ``Host`` name it, and pooled connections are keyed by it; there is no
  second lookup between the check and the connect for DNS rebinding to answer.
  (httpx cannot take a network backend yet, so the transport's httpcore pool is built
  here with one: the place a resolver belongs in httpcore.)
- An attempt has one deadline for all of it: resolving, connecting, TLS, sending and
  reading. A receiver that drips its answer a byte at a time is cut off there.
- At most ``MAX_RESPONSE_BYTES`` of an answer are read; then the connection is closed.
- No proxies from the environment (a proxy would resolve the name itself), no redirects.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from control_plane.errors import ValidationFailed
from control_plane.webhook.ssrf import Resolver, system_resolver, vetted_addresses

MAX_RESPONSE_BYTES = 64 * 1024


class VettingBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to vetted, public addresses."""

    def __init__(
        self,
        allowed_hosts: Iterable[str],
        *,
        resolver: Resolver = system_resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._allowed = list(allowed_hosts)
        self._resolver = resolver
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await vetted_addresses(host, port, self._allowed, self._resolver)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        failure: Exception | None = None
        for address in addresses or [host]:  # None: a host the operator allowed
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks are not sent over Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _Transport(httpx.AsyncHTTPTransport):
    """httpx's transport over an httpcore pool that uses ``backend`` for connections."""

    def __init__(
        self,
        backend: httpcore.AsyncNetworkBackend,
        *,
        verify: ssl.SSLContext | bool,
        limits: httpx.Limits,
    ) -> None:
        super().__init__(verify=verify, limits=limits, trust_env=False)
        ssl_context = httpx.create_ssl_context(verify=verify, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


@dataclass(frozen=True)
class Outcome:
    ok: bool
    code: int | None
    error: str | None


class WebhookClient:
    def __init__(
        self,
        *,
        allowed_hosts: Iterable[str],
        timeout_s: float,
        max_connections: int = 100,
        resolver: Resolver = system_resolver,
        network: httpcore.AsyncNetworkBackend | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._timeout_s = timeout_s
        backend = VettingBackend(allowed_hosts, resolver=resolver, inner=network)
        limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=min(20, max_connections),
            keepalive_expiry=30,
        )
        self._http = httpx.AsyncClient(
            transport=_Transport(backend, verify=verify, limits=limits),
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def post(self, url: str, body: str | bytes, headers: dict[str, str]) -> Outcome:
        """POST ``body``; the outcome of the attempt, within its deadline, never raising
        for what the receiver or the network does."""
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._post(url, body, headers)
        except TimeoutError:
            return Outcome(False, None, f"timed out after {self._timeout_s:g} s")
        except ValidationFailed as exc:
            return Outcome(False, None, exc.detail)
        except httpx.HTTPError as exc:
            return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:500])

    async def _post(self, url: str, body: str | bytes, headers: dict[str, str]) -> Outcome:
        async with self._http.stream("POST", url, content=body, headers=headers) as response:
            read = 0
            async for chunk in response.aiter_raw():  # raw: no decompression either
                read += len(chunk)
                if read >= MAX_RESPONSE_BYTES:
                    break  # leaving the block closes the stream (and the connection)
        if 200 <= response.status_code < 300:
            return Outcome(True, response.status_code, None)
        return Outcome(False, response.status_code, "non-2xx response")
