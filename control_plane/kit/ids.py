"""Opaque, time-sortable identifiers with a type prefix."""

from ulid import ULID


def new_id(prefix: str) -> str:
    """``<prefix>_<ulid>``: sorts by creation time, unguessable, opaque to clients."""
    return f"{prefix}_{str(ULID()).lower()}"
