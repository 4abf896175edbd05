"""Shapes shared by every part of the API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from schemas import examples as ex

Channel = Literal["chat", "voice", "sms", "email", "social", "other"]
Role = Literal["bot", "ivr", "agent", "supervisor", "admin"]
TurnRole = Literal["customer", "bot", "agent", "system"]

IdentityKind = Annotated[
    str, StringConstraints(pattern=r"^(phone|email|account|chat|crm|x-[a-z0-9][a-z0-9_-]{0,31})$")
]
# Printable, no control characters: these end up in Redis keys, logs and SSE lines.
Name = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
# A Name that is not `.` or `..`: those are path segments a browser or proxy rewrites, so a
# conversation so named could not be written to by URL (the agent panel's replies would 404).
CONVERSATION_PATTERN = (r"^(?:[^.\x00-\x1f\x7f][^\x00-\x1f\x7f]*"
                        r"|\.[^.\x00-\x1f\x7f][^\x00-\x1f\x7f]*"
                        r"|\.\.[^\x00-\x1f\x7f]+)$")
ConversationId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=CONVERSATION_PATTERN)]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
ShortText = Annotated[str, StringConstraints(max_length=4000)]


class Model(BaseModel):
    """Base for request bodies: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class Record(BaseModel):
    """Base for responses and stored records."""

    model_config = ConfigDict(extra="ignore")


class Identity(Model):
    """One way of recognising a customer, e.g. `{"kind": "phone", "value": "+15550104477"}`."""

    kind: IdentityKind
    value: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class CustomerRef(Model):
    """How a writer names the customer it is talking to."""

    identities: Annotated[list[Identity], Field(min_length=1, max_length=20)]


T = TypeVar("T")


class Page(Record, Generic[T]):
    """A page of a list; pass `next` as `before=` for the following page."""

    items: list[T]
    next: str | None = None


class ProblemError(Record):
    loc: list[str | int]
    msg: str


class Problem(Record):
    """RFC 9457 problem details."""

    model_config = ConfigDict(json_schema_extra=ex.examples(ex.PROBLEM))

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[ProblemError] | None = None
    request_id: str | None = None


class Health(Record):
    status: str
    redis: str | None = None
    detail: dict[str, Any] | None = None


Timestamp = datetime
