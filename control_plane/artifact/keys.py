"""Tenants' data keys: made on first use, stored wrapped by the master key."""

from __future__ import annotations

import base64
import hashlib
import secrets

from sqlalchemy.exc import IntegrityError

from control_plane.artifact.crypto import MasterKey, new_data_key
from control_plane.config import Settings
from control_plane.db import Database
from control_plane.kit.ids import new_id
from control_plane.kit.repository import PLATFORM, RepositoryBase
from control_plane.kit.secret_files import home_secret, write_private
from control_plane.models import TenantKey


class TenantKeyRepository(RepositoryBase[TenantKey]):
    model = TenantKey


def master_key_text(settings: Settings) -> str:
    """ATRIUM_MASTER_KEY, or (outside production) one generated and kept in home."""
    return home_secret(settings.master_key, settings.home_dir / "master.key", new_master_key)


class DataKeys:
    def __init__(self, db: Database, master_b64: str) -> None:
        self._db = db
        self._master = MasterKey.from_b64(master_b64)
        self._master_id = hashlib.sha256(master_b64.encode()).hexdigest()[:16]
        self._cache: dict[str, bytes] = {}

    async def for_tenant(self, tenant_id: str) -> bytes:
        """The tenant's data key, created (once, even under races) on first use."""
        if tenant_id in self._cache:
            return self._cache[tenant_id]
        key = await self._load(tenant_id)
        if key is None:
            try:
                async with self._db.sessionmaker() as session, session.begin():
                    fresh = new_data_key()
                    TenantKeyRepository(session, tenant_id).add(
                        TenantKey(
                            id=new_id("tkey"),
                            tenant_id=tenant_id,
                            wrapped=self._master.wrap(fresh, tenant_id),
                            master_key_id=self._master_id,
                        )
                    )
            except IntegrityError:
                pass  # another process made it first
            key = await self._load(tenant_id)
        assert key is not None
        self._cache[tenant_id] = key
        return key

    async def _load(self, tenant_id: str) -> bytes | None:
        async with self._db.sessionmaker() as session:
            row = await TenantKeyRepository(session, tenant_id).first()
        return None if row is None else self._master.unwrap(row.wrapped, tenant_id)


async def rewrap_all(db: Database, old_b64: str, new_b64: str) -> int:
    """Re-wrap every tenant's data key under a new master key, in one transaction.
    Blobs are untouched: their data keys do not change."""
    old, new = MasterKey.from_b64(old_b64), MasterKey.from_b64(new_b64)
    new_id_ = hashlib.sha256(new_b64.encode()).hexdigest()[:16]
    async with db.sessionmaker() as session, session.begin():
        rows = await TenantKeyRepository(session, PLATFORM).all()
        for row in rows:
            row.wrapped = new.wrap(old.unwrap(row.wrapped, row.tenant_id), row.tenant_id)
            row.master_key_id = new_id_
    return len(rows)


def store_master_key(settings: Settings, new_b64: str) -> None:
    """Replace the generated master key in ATRIUM_HOME (atomically)."""
    write_private(settings.home_dir / "master.key", new_b64)


def new_master_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()
