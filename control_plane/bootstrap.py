"""Platform admins made from settings or the CLI."""

from __future__ import annotations

from control_plane.audit.service import record
from control_plane.auth.passwords import Passwords
from control_plane.auth.permissions import Role
from control_plane.db import Database
from control_plane.kit.ids import new_id
from control_plane.kit.repository import PLATFORM
from control_plane.models import User
from control_plane.user.repository import UserRepository


async def ensure_platform_admin(
    *, db: Database, passwords: Passwords, email: str, password: str, min_length: int
) -> bool:
    """Create the admin unless the email exists; True when created."""
    email = email.strip().lower()
    if len(password) < min_length:
        raise ValueError(f"password must have at least {min_length} characters")
    async with db.session_scope() as session:
        users = UserRepository(session, PLATFORM)
        if await users.by_email(email):
            return False
        user = users.add(
            User(
                id=new_id("usr"),
                tenant_id=None,
                email=email,
                password_hash=await passwords.hash(password),
                role=Role.PLATFORM_ADMIN.value,
            )
        )
        record(
            session,
            actor=None,
            action="user.create",
            tenant_id=None,
            target=("user", user.id),
            details={"email": email, "role": user.role, "via": "bootstrap"},
        )
    return True
