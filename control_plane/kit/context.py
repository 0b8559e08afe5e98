"""Per-request facts that audit records and logs need, without threading them through."""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
client_address_var: ContextVar[str | None] = ContextVar("client_address", default=None)


def current_request_id() -> str | None:
    return request_id_var.get()


def current_client_address() -> str | None:
    return client_address_var.get()
