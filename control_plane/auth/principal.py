"""The authenticated caller of a request."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from control_plane.auth.permissions import (
    ROLE_ACTIONS,
    SCOPE_ACTIONS,
    Action,
    Role,
    actions_of_scopes,
)


@dataclass(frozen=True, slots=True)
class Principal:
    kind: Literal["user", "api_key"]
    user_id: str
    tenant_id: str | None
    role: Role
    email: str
    mfa_enabled: bool = False
    api_key_id: str | None = None
    scopes: tuple[str, ...] = ()
    key_expires_at: datetime | None = None
    session_id: str | None = None
    auth_time: float | None = None  # access tokens: when this session's sign-in happened
    key_rps: float | None = None
    actions: frozenset[Action] = field(default=frozenset())

    @classmethod
    def for_user(
        cls, *, user_id: str, tenant_id: str | None, role: Role, email: str, mfa_enabled: bool
    ) -> Principal:
        return cls(
            kind="user",
            user_id=user_id,
            tenant_id=tenant_id,
            role=role,
            email=email,
            mfa_enabled=mfa_enabled,
            actions=ROLE_ACTIONS[role],
        )

    def with_key(
        self,
        *,
        api_key_id: str,
        scopes: list[str],
        expires_at: datetime | None,
        rate_limit_rps: float | None = None,
    ) -> Principal:
        """The same user acting through a key: only the scopes its role still holds."""
        held = ROLE_ACTIONS[self.role]
        effective = [scope for scope in scopes if SCOPE_ACTIONS[scope] <= held]
        return Principal(
            kind="api_key",
            user_id=self.user_id,
            tenant_id=self.tenant_id,
            role=self.role,
            email=self.email,
            api_key_id=api_key_id,
            scopes=tuple(effective),
            key_expires_at=expires_at,
            key_rps=rate_limit_rps,
            actions=actions_of_scopes(effective) & held,
        )

    @property
    def is_platform_admin(self) -> bool:
        return self.role is Role.PLATFORM_ADMIN

    @property
    def actor_id(self) -> str:
        return self.api_key_id or self.user_id

    def can(self, action: Action) -> bool:
        return action in self.actions
