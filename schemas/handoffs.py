"""Hand-offs from a bot or IVR to a human, and the continuation codes that join channels."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, get_args

from pydantic import ConfigDict, Field, StringConstraints

from schemas import examples as ex
from schemas.common import (
    Channel,
    ConversationId,
    CustomerRef,
    Model,
    Name,
    Record,
    ShortText,
    Slug,
)

Reason = Literal["customer_request", "bot_failure", "high_value", "frustration", "risk", "policy"]
Status = Literal["pending", "accepted", "resolved", "cancelled", "expired", "handed_back"]
# The statuses in order, for a query parameter's choices and its OpenAPI enum.
HANDOFF_STATUSES: tuple[str, ...] = get_args(Status)
Outcome = Literal["resolved", "needs_follow_up"]
Priority = Annotated[int, Field(ge=1, le=5, description="1 is the most urgent")]


class HandoffIn(Model):
    model_config = ConfigDict(json_schema_extra=ex.examples(ex.HANDOFF_IN))

    customer: CustomerRef | None = None
    conversation_id: ConversationId | None = None
    channel: Channel | None = None
    source: Name | None = None
    reason: Reason
    priority: Priority = 3
    queue: Slug = "general"
    intent: Annotated[str, StringConstraints(max_length=200)] | None = None
    summary: ShortText | None = None
    continuation: bool = False


class Handoff(Record):
    model_config = ConfigDict(json_schema_extra=ex.examples(ex.HANDOFF_OUT))

    id: str
    status: Status
    customer_id: str
    conversation_id: str | None = None
    channel: str | None = None
    source: str | None = None
    reason: str
    priority: int
    queue: str
    intent: str | None = None
    summary: str | None = None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    agent_id: str | None = None
    accepted_at: datetime | None = None
    closed_at: datetime | None = None
    note: str | None = None
    outcome: Outcome | None = Field(default=None, description="how a handed-back hand-off ended")
    handed_back_to: str | None = Field(
        default=None, description="`bot`, or the queue a hand-back sent the customer to")
    continuation_code: str | None = None
    continuation_expires_at: datetime | None = None


class AcceptIn(Model):
    model_config = ConfigDict(json_schema_extra=ex.examples(ex.ACCEPT_IN))

    agent_id: Name


class ResolveIn(Model):
    agent_id: Name | None = None
    note: ShortText | None = None


class HandBackIn(Model):
    """An agent gives the customer back to the bot (or to a queue) with a note the bot continues
    from; the note, outcome and agent join the customer's brief as its last human contact."""

    model_config = ConfigDict(json_schema_extra=ex.examples(ex.HAND_BACK_IN))

    note: Annotated[str, StringConstraints(min_length=1, max_length=4000)]
    to: Annotated[Slug, Field(description="`bot`, or a queue")] = "bot"
    outcome: Outcome = "resolved"
    agent_id: Name | None = None


class CancelIn(Model):
    note: ShortText | None = None


class RedeemIn(Model):
    model_config = ConfigDict(json_schema_extra=ex.examples(ex.REDEEM_IN))

    customer: CustomerRef | None = None
    conversation_id: ConversationId
    channel: Channel = "voice"
    source: Name | None = None


class RedeemResult(Record):
    model_config = ConfigDict(json_schema_extra=ex.examples(ex.REDEEM_RESULT))

    customer_id: str
    handoff_id: str | None = None
    merged: list[str] = []
