"""What the MCP server's tools take and answer: the REST bodies, with the path parameters the
REST routes take in their URL as fields. Their JSON schemas are the tools' input and output
schemas."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints

from schemas.common import ConversationId, CustomerRef, Model, Name, Record, ShortText, Slug
from schemas.conversations import AppendTurns, Scalar
from schemas.handoffs import HandoffIn, Priority, Reason

# A customer as a REST path names it: `cus_...` or `kind:value` (e.g. `phone:+15550104477`).
Ref = Annotated[str, StringConstraints(min_length=1, max_length=300,
                                       pattern=r"^[^\x00-\x1f\x7f]+$")]
ContextTurns = Annotated[int, Field(ge=0, le=50, description="how many of the latest turns")]


class ContextIn(Model):
    """`get_customer_context`: the brief of one customer."""

    ref: Annotated[Ref, Field(description="cus_... or kind:value, e.g. chat:visitor-42")]
    turns: ContextTurns = 20


class AppendTurnsIn(AppendTurns):
    """`append_turns`: turns of one conversation (`customer` and `channel` on its first post)."""

    model_config = ConfigDict(json_schema_extra=None)
    conversation_id: ConversationId


class RequestHandoffIn(HandoffIn):
    """`request_handoff`: ask for a human. Retrying with the same `idempotency_key` answers the
    hand-off the first call made instead of making a second one."""

    model_config = ConfigDict(json_schema_extra=None)
    customer: CustomerRef
    conversation_id: ConversationId
    queue: Slug
    reason: Reason
    priority: Priority = 3
    summary: Annotated[str, StringConstraints(min_length=1, max_length=4000)]
    continuation: bool = True
    idempotency_key: Annotated[Name | None, Field(
        description="the same key on a retry answers the same hand-off")] = None


class ReaskIn(Model):
    """`check_reask`: would this reply ask for something the customer already gave?"""

    ref: Ref
    text: Annotated[str, StringConstraints(max_length=16000)]


class HandoffRef(Model):
    """`get_handoff`: one hand-off by id."""

    handoff_id: Name


class QueueIn(Model):
    """`list_queue`: the tenant's hand-offs, most urgent and then oldest first."""

    queue: Slug | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 20


class AcceptHandoffIn(Model):
    """`accept_handoff`: claim a hand-off for one agent (exactly one agent wins)."""

    handoff_id: Name
    agent_id: Name


class KnownValue(Record):
    """What the customer's context holds under one fact key or identity kind."""

    key: str
    value: Scalar | None = None


class ReaskWarning(Record):
    """One topic the text asks for although the context already has it, with what it has."""

    topic: str
    phrase: str
    known: list[KnownValue]


class ReaskResult(Record):
    """`check_reask`'s answer: `ok` when the text asks for nothing the context holds."""

    ok: bool
    reasks: list[ReaskWarning]


class ToolProblem(Record):
    """A failed tool call: the service's problem+json title, status and detail."""

    title: str
    status: int
    detail: ShortText | None = None
