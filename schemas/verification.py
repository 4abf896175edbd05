"""Verified identities: who proved what, how, and until when."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from schemas import examples as ex
from schemas.common import Channel, ConversationId, CustomerRef, Identity, Model, Name, Record

Method = Literal["pin", "otp", "kba", "voice_biometrics", "document", "agent", "other"]
Level = Literal["low", "medium", "high"]


class VerifyIn(Model):
    """An `ivr` or `agent` key states that the customer proved `identity`."""

    model_config = ConfigDict(json_schema_extra=ex.examples(ex.VERIFY_IN))
    customer: CustomerRef | None = None
    conversation_id: ConversationId | None = None
    identity: Identity
    method: Method
    level: Level = "medium"
    channel: Channel | None = None
    source: Name | None = None
    expires_in: Annotated[int, Field(ge=30, le=30 * 86400)] = 1800


class VerifyResult(Record):
    model_config = ConfigDict(json_schema_extra=ex.examples(ex.VERIFY_RESULT))

    customer_id: str
    verified: bool
    merged: list[str]
    expires_at: datetime


class Verification(Record):
    identity: Identity
    method: str
    level: str
    verified_at: datetime
    expires_at: datetime
    expired: bool = False
    channel: str | None = None
    conversation_id: str | None = None
    source: str | None = None
    verified_by: str | None = None
