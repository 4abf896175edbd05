"""Transcript turns and the facts that ride along with them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, ConfigDict, Field, StringConstraints

from schemas import examples as ex
from schemas.common import Channel, ConversationId, CustomerRef, Model, Name, Record, TurnRole

Scalar = str | int | float | bool
FactKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")]
Entities = Annotated[dict[FactKey, Scalar | None], Field(max_length=50)]


class FactInput(Model):
    """A fact with its own provenance flags; a bare scalar is shorthand for `{"value": x}`."""

    value: Scalar
    verified: bool = False


FactValue = Annotated[str, StringConstraints(max_length=2000)] | int | float | bool | FactInput
FactsBody = Annotated[dict[FactKey, FactValue], Field(max_length=100)]


class TurnIn(Model):
    id: Name
    role: TurnRole
    text: Annotated[str, StringConstraints(max_length=16000)]
    ts: AwareDatetime
    intent: Annotated[str, StringConstraints(max_length=200)] | None = None
    confidence: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    entities: Entities | None = None


class AppendTurns(Model):
    """Turns for one conversation; `customer`, `channel`, `source` are needed on the first post."""

    model_config = ConfigDict(json_schema_extra=ex.examples(ex.APPEND_TURNS))
    customer: CustomerRef | None = None
    channel: Channel | None = None
    source: Name | None = None
    turns: Annotated[list[TurnIn], Field(min_length=1, max_length=500)]
    facts: FactsBody | None = None


class AppendResult(Record):
    model_config = ConfigDict(json_schema_extra=ex.examples(ex.APPEND_RESULT))

    customer_id: str
    conversation_id: str
    appended: int
    duplicates: int


class Turn(Record):
    """A stored turn as agents read it."""

    id: str
    conversation_id: str
    channel: str
    role: str
    text: str
    ts: datetime
    intent: str | None = None
    confidence: float | None = None
    entities: dict[str, Scalar | None] | None = None
    source: str | None = None
    cursor: str | None = None


class PutFacts(Model):
    facts: FactsBody
    conversation_id: ConversationId | None = None
    channel: Channel | None = None
    source: Name | None = None


class Fact(Record):
    value: Scalar
    verified: bool = False
    channel: str | None = None
    conversation_id: str | None = None
    turn_id: str | None = None
    source: str | None = None
    at: datetime


class FactsResult(Record):
    customer_id: str
    updated: list[str]
