"""The JSON of an event as every consumer gets it: webhook requests and Redis Stream
entries alike."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from control_plane.models import Event


def _head(event_id: str, type_: str, tenant_id: str | None, created_at: datetime) -> str:
    stamp = created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    head = {"id": event_id, "type": type_, "tenant_id": tenant_id, "timestamp": stamp}
    return json.dumps(head, separators=(",", ":"))[:-1]


def spliced(
    event_id: str, type_: str, tenant_id: str | None, created_at: datetime, data_json: str
) -> str:
    """The event body with its stored ``data`` JSON inserted verbatim."""
    return f'{_head(event_id, type_, tenant_id, created_at)},"data":{data_json}}}'


def event_body(event: Event) -> str:
    """The JSON every consumer gets: webhook requests and Redis Stream entries alike."""
    data = json.dumps(event.data, separators=(",", ":"))
    return spliced(event.id, event.type, event.tenant_id, event.created_at, data)
