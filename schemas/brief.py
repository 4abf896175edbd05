"""The context brief: everything an agent needs so the customer never repeats themselves."""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict, Field

from schemas import examples as ex
from schemas.common import Record
from schemas.conversations import Fact, Turn
from schemas.handoffs import Handoff
from schemas.verification import Verification


class KnownIdentity(Record):
    kind: str
    value: str
    verified: bool = False
    linked: bool = False
    channel: str | None = None
    first_seen: datetime | None = None


class CustomerView(Record):
    id: str
    identities: list[KnownIdentity]
    created_at: datetime | None = None
    merged: list[str] = []


class JourneyStep(Record):
    channel: str
    conversation_id: str
    source: str | None = None
    started_at: datetime


class Flag(Record):
    """A risk or frustration term a customer used. `kind` is `risk` or `frustration`;
    `category` says which risk (legal, churn, complaint, vulnerability) or the lexicon's own
    kind for a term a tenant added."""

    kind: str
    term: str
    category: str | None = None
    turn_id: str | None = None
    conversation_id: str | None = None
    count: int = 1
    phrase: str | None = None


class HumanContact(Record):
    """How the customer's last conversation with a person ended: who, how, and their note, for
    the bot or AI agent that talks to them next."""

    handoff_id: str
    agent_id: str
    status: str
    outcome: str
    note: str | None = None
    handed_back_to: str | None = None
    at: datetime | None = None


class Merge(Record):
    customer_id: str
    via: str
    at: datetime


class Brief(Record):
    model_config = ConfigDict(json_schema_extra=ex.examples(ex.BRIEF))

    customer: CustomerView
    verifications: list[Verification]
    facts: dict[str, Fact]
    do_not_ask: list[str]
    handoffs: list[Handoff]
    journey: list[JourneyStep]
    turns: list[Turn]
    flags: list[Flag]
    merges: list[Merge] = []
    last_human_contact: HumanContact | None = None
    summary: str | None = None
    generated_at: datetime


class AcceptResult(Record):
    model_config = ConfigDict(json_schema_extra=ex.examples(ex.ACCEPT_RESULT))

    handoff: Handoff
    context: Brief
    panel_url: str | None = Field(
        default=None, description="the agent panel on this hand-off, signed in for the agent")
