"""Rasa tracker events, as `GET /conversations/{id}/tracker` exports them or an event broker
publishes them, and the summary handoff answers.

https://rasa.com/docs/rasa/pages/http-api (tracker) and
https://rasa.com/docs/rasa/action-server/events (event types)
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, RootModel

from schemas.common import Record
from schemas.vendors import VendorModel


class ParsedIntent(VendorModel):
    name: str | None = None
    confidence: float | None = None


class Entity(VendorModel):
    entity: str
    value: Any = None


class ParseData(VendorModel):
    intent: ParsedIntent | None = None
    entities: list[Entity] = []


class Event(VendorModel):
    """One tracker event; which fields matter depends on `event`."""

    event: str
    timestamp: float | None = None
    sender_id: str | None = None
    text: str | None = None
    parse_data: ParseData | None = None
    message_id: str | None = None
    input_channel: str | None = None
    name: str | None = None
    value: Any = None


class Tracker(VendorModel):
    sender_id: str
    events: list[Event]
    slots: dict[str, Any] | None = None


class RasaPayload(RootModel[Tracker | Event | list[Event]]):
    """A whole tracker, one broker event, or a list of broker events (each with `sender_id`)."""


class HandoffSummary(Record):
    id: str
    status: str
    continuation_code: str | None = None


class ConversationSummary(Record):
    conversation_id: str
    customer_id: str | None = None
    appended: int
    duplicates: int
    facts: list[str]
    handoff: HandoffSummary | None = None
    slots: dict[str, str] | None = Field(default=None, description=(
        "slots to set on the conversation (`last_human_note`, ...) after an agent handed the "
        "customer back"))


class IngestSummary(Record):
    conversations: list[ConversationSummary]
    ignored: int
