"""One ``Idempotency-Key`` mechanism for every POST that starts work, as the IETF's
draft-ietf-httpapi-idempotency-key-header and Stripe do it.

The first request with a key claims (tenant, scope, key) by an INSERT committed at once,
so a concurrent retry sees the claim; it then runs, and its answer is kept for 24 h
(2xx and 4xx; a 5xx, a "try again" 4xx or an exception frees the key for a retry).
Expired rows are deleted when a later claim is made (no background task)."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from control_plane.db import Database
from control_plane.errors import IdempotencyConflict, IdempotencyInFlight, ValidationFailed
from control_plane.idempotency.repository import IdempotencyRepository
from control_plane.kit.clock import utcnow
from control_plane.kit.ids import new_id
from control_plane.kit.repository import PLATFORM
from control_plane.models import IdempotencyKey

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
IN_FLIGHT, COMPLETED = "in_flight", "completed"
TTL = timedelta(hours=24)
# a claim whose request never finished (its process died) is given up after this
LEASE = timedelta(minutes=10)
_KEY = re.compile(r"[\x20-\x7e]{1,255}")
# 4xx answers that mean "try again later" are not kept: the retry runs again
_TRANSIENT = frozenset({408, 425, 429})
_CLAIM_TRIES = 3


@dataclass(frozen=True)
class Stored:
    """An answer as it is sent, and sent again to a retry."""

    status_code: int
    headers: dict[str, str]
    body: bytes


async def run_once(
    db: Database,
    *,
    tenant_id: str,
    key: str | None,
    scope: str,
    body: bytes,
    call: Callable[[], Awaitable[Stored]],
) -> tuple[Stored, bool]:
    """``call()`` once per (tenant, ``scope``, ``key``): the answer and whether it is a
    replay. ``call`` must have made its work durable (committed) when it returns.

    No key: just ``call()``. Same key, other body: 422 ``idempotency_conflict``; first
    request still running: 409 ``idempotency_in_flight``; done: its answer again, with
    ``Idempotent-Replayed: true``. A bad key is a 422 naming the header."""
    if key is None:
        return await call(), False
    if not _KEY.fullmatch(key):
        raise ValidationFailed(
            f"{HEADER}: 1 to 255 printable ASCII characters", extra={"field": HEADER}
        )
    claim = await _claim(db, tenant_id, scope=scope, key=key, fingerprint=request_hash(scope, body))
    if isinstance(claim, Stored):
        return claim, True
    try:
        answer = await call()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await _settle(db, tenant_id, claim, None)
        raise
    await _settle(db, tenant_id, claim, answer)
    return answer, False


def request_hash(scope: str, body: bytes) -> str:
    """The request's fingerprint: its method and route (``scope``) and its raw body."""
    return hashlib.sha256(scope.encode() + b"\n" + body).hexdigest()


def kept(status_code: int) -> bool:
    """Whether an answer is final for its key (2xx, 3xx, 4xx but "try again later")."""
    return status_code < 500 and status_code not in _TRANSIENT


async def _claim(
    db: Database, tenant_id: str, *, scope: str, key: str, fingerprint: str
) -> str | Stored:
    """The id of our claim on the key, or the answer its completed first request got."""
    for _ in range(_CLAIM_TRIES):
        claim_id = await _insert(db, tenant_id, scope=scope, key=key, fingerprint=fingerprint)
        if claim_id is not None:
            return claim_id
        async with db.sessionmaker() as session:
            held = await IdempotencyRepository(session, tenant_id).find(scope, key)
        if held is None:
            continue  # freed since our insert collided with it
        if _lapsed(held, utcnow()):
            await _delete(db, tenant_id, held.id)
            continue
        return _answer(held, fingerprint)
    raise IdempotencyInFlight(
        f"the {HEADER} is being claimed by other requests; retry shortly",
        headers={"Retry-After": "1"},
    )


async def _insert(
    db: Database, tenant_id: str, *, scope: str, key: str, fingerprint: str
) -> str | None:
    """Claim the key in a transaction of its own; None if someone holds it. Expired keys
    (of every tenant) go first."""
    now = utcnow()
    row = IdempotencyKey(
        id=new_id("idem"),
        tenant_id=tenant_id,
        scope=scope,
        key=key,
        request_hash=fingerprint,
        state=IN_FLIGHT,
        created_at=now,
        expires_at=now + TTL,
    )
    async with db.sessionmaker() as session:
        await IdempotencyRepository(session, PLATFORM).delete_where(
            IdempotencyKey.expires_at <= now
        )
        IdempotencyRepository(session, tenant_id).add(row)
        try:
            await session.commit()
        except IntegrityError:
            return None
    return row.id


def _lapsed(held: IdempotencyKey, now: datetime) -> bool:
    abandoned = held.state == IN_FLIGHT and held.created_at <= now - LEASE
    return abandoned or held.expires_at <= now


def _answer(held: IdempotencyKey, fingerprint: str) -> Stored:
    if held.request_hash != fingerprint:
        raise IdempotencyConflict(
            f"this {HEADER} was first sent with another request to {held.scope}; "
            "use a new key for a new request",
            extra={"field": HEADER},
        )
    if held.state != COMPLETED or held.status_code is None or held.body is None:
        raise IdempotencyInFlight(
            f"the first request with this {HEADER} is still running; retry shortly",
            headers={"Retry-After": "1"},
        )
    return Stored(held.status_code, {**(held.headers or {}), REPLAYED: "true"}, held.body)


async def _settle(db: Database, tenant_id: str, claim_id: str, answer: Stored | None) -> None:
    """Keep a final answer for retries; otherwise free the key so a retry runs again. The
    work is done either way: a failure here is logged (the claim lapses after LEASE)."""
    try:
        if answer is not None and kept(answer.status_code):
            async with db.sessionmaker.begin() as session:
                await IdempotencyRepository(session, tenant_id).update_where(
                    IdempotencyKey.id == claim_id,
                    state=COMPLETED,
                    status_code=answer.status_code,
                    headers=answer.headers,
                    body=answer.body,
                )
        else:
            await _delete(db, tenant_id, claim_id)
    except SQLAlchemyError:
        log.exception("could not settle idempotency claim %s", claim_id)


async def _delete(db: Database, tenant_id: str, claim_id: str) -> None:
    async with db.sessionmaker.begin() as session:
        await IdempotencyRepository(session, tenant_id).delete_where(IdempotencyKey.id == claim_id)
