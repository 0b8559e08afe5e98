from __future__ import annotations

from datetime import datetime

from pydantic import Field, field_validator

from control_plane.event.types import EventType
from control_plane.kit.schemas import InputSchema, ReadSchema


class WebhookCreate(InputSchema):
    url: str = Field(min_length=8, max_length=2000, description="Public http(s) URL.")
    events: list[str] = Field(
        min_length=1, max_length=len(EventType) + 1, description="Event types, or ['*']."
    )

    @field_validator("events")
    @classmethod
    def _known(cls, events: list[str]) -> list[str]:
        unknown = sorted(set(events) - {*EventType, "*"})
        if unknown:
            raise ValueError(f"unknown event types: {', '.join(unknown)}")
        return sorted(set(events))


class WebhookRead(ReadSchema):
    id: str
    url: str
    events: list[str]
    enabled: bool
    consecutive_failures: int
    disabled_at: datetime | None
    created_at: datetime


class WebhookCreated(WebhookRead):
    secret: str = Field(description="`whsec_…` signing secret. Shown only in this response.")


class DeliveryRead(ReadSchema):
    id: str
    event_id: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
