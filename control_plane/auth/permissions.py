"""Who may do what: the single table mapping roles and key scopes to actions.

Every route declares the action it needs (``Authorize(Action.X)``); a user holds
the actions of their role, an API key the actions of its scopes that its
creator's role still holds.
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    SELF_READ = "self:read"
    TENANTS_ADMIN = "tenants:admin"  # create, list, update, delete any tenant
    TENANT_READ = "tenant:read"  # read one's own tenant
    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    USERS_MANAGE_OWNERS = "users:manage-owners"
    KEYS_READ = "keys:read"
    KEYS_WRITE = "keys:write"
    AUDIT_READ = "audit:read"
    INFERENCE = "inference"
    MODELS_READ = "models:read"
    MODELS_WRITE = "models:write"
    JOBS_READ = "jobs:read"
    JOBS_WRITE = "jobs:write"
    PLUGINS_READ = "plugins:read"
    PLUGINS_WRITE = "plugins:write"
    USAGE_READ = "usage:read"
    PLANS_READ = "plans:read"
    EVENTS_READ = "events:read"
    BILLING_READ = "billing:read"
    WEBHOOKS_WRITE = "webhooks:write"


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    DEVELOPER = "developer"
    VIEWER = "viewer"
    PLATFORM_ADMIN = "platform_admin"


# API key scopes as API.md names them, and the actions each grants.
SCOPE_ACTIONS: dict[str, frozenset[Action]] = {
    "inference": frozenset({Action.INFERENCE}),
    "models:read": frozenset({Action.MODELS_READ}),
    "models:write": frozenset({Action.MODELS_READ, Action.MODELS_WRITE}),
    "jobs:read": frozenset({Action.JOBS_READ}),
    "jobs:write": frozenset({Action.JOBS_READ, Action.JOBS_WRITE}),
    "plugins:read": frozenset({Action.PLUGINS_READ}),
    "plugins:write": frozenset({Action.PLUGINS_READ, Action.PLUGINS_WRITE}),
    "keys:write": frozenset({Action.KEYS_READ, Action.KEYS_WRITE}),
    "usage:read": frozenset({Action.USAGE_READ}),
}
KEY_BASE_ACTIONS = frozenset({Action.SELF_READ, Action.TENANT_READ, Action.PLANS_READ})

_VIEWER = frozenset(
    {
        Action.SELF_READ,
        Action.TENANT_READ,
        Action.INFERENCE,
        Action.MODELS_READ,
        Action.JOBS_READ,
        Action.PLUGINS_READ,
        Action.USAGE_READ,
        Action.KEYS_READ,
        Action.KEYS_WRITE,
        Action.PLANS_READ,
        Action.EVENTS_READ,
    }
)
_DEVELOPER = _VIEWER | {Action.MODELS_WRITE, Action.JOBS_WRITE, Action.PLUGINS_WRITE}
_ADMIN = _DEVELOPER | {
    Action.USERS_READ,
    Action.USERS_WRITE,
    Action.AUDIT_READ,
    Action.BILLING_READ,
    Action.WEBHOOKS_WRITE,
}

ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.VIEWER: _VIEWER,
    Role.DEVELOPER: _DEVELOPER,
    Role.ADMIN: _ADMIN,
    Role.OWNER: _ADMIN | {Action.USERS_MANAGE_OWNERS},
    Role.PLATFORM_ADMIN: frozenset(
        {
            Action.SELF_READ,
            Action.TENANTS_ADMIN,
            Action.TENANT_READ,
            Action.USERS_READ,
            Action.USERS_WRITE,
            Action.USERS_MANAGE_OWNERS,
            Action.AUDIT_READ,
            Action.PLANS_READ,
            Action.EVENTS_READ,
            Action.BILLING_READ,
        }
    ),
}


def actions_of_scopes(scopes: list[str] | tuple[str, ...]) -> frozenset[Action]:
    granted: set[Action] = set(KEY_BASE_ACTIONS)
    for scope in scopes:
        granted |= SCOPE_ACTIONS[scope]
    return frozenset(granted)
