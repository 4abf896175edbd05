"""Rasa tracker events: a whole tracker as `GET /conversations/{id}/tracker` exports it, or the
events an event broker publishes (one, or a list, each with its `sender_id`).

`user` events become customer turns (intent, confidence, entities), `bot` events bot turns and
`slot` events facts; a configured action (or the `handoff_request` slot) asks for a human. Other
events (actions, `session_started`, pauses, ...) are counted and left out. Event types:
https://rasa.com/docs/rasa/action-server/events; `docs/adapters/rasa.md` says how to send them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from adapters import conventions as c
from adapters.base import Adapter, Core, build
from handoff.api.bodies import parse, render
from handoff.api.routing import Routes
from handoff.api.state import SETTINGS
from handoff.kernel.errors import Unprocessable
from schemas.conversations import AppendTurns, FactValue, TurnIn
from schemas.handoffs import HandoffIn
from schemas.vendors.rasa import (
    ConversationSummary,
    Event,
    HandoffSummary,
    IngestSummary,
    RasaPayload,
    Tracker,
)

NAME = "rasa"
MAX_TURNS = 500  # per append, as the core API takes them
# Slots Rasa keeps for itself: which slot a form asks for next, a session's start metadata.
INTERNAL_SLOTS = frozenset({"requested_slot", "session_started_metadata"})
routes = Routes()


@dataclass
class Plan:
    """Everything one conversation's events ask for, validated before anything is written."""

    sender: str  # as Rasa names it: the chat identity
    conversation: str
    appends: list[AppendTurns] = field(default_factory=list)
    facts: dict[str, FactValue] = field(default_factory=dict)
    handoff: tuple[HandoffIn, str] | None = None


@routes.route("POST", f"/v1/adapters/{NAME}/events", roles=("bot",), body=RasaPayload,
              response=IngestSummary,
              summary="Rasa tracker or broker events: turns, slots as facts, hand-off action")
async def ingest(request: web.Request) -> web.StreamResponse:
    payload = (await parse(request, RasaPayload)).root
    core = Core(request)
    handoff_actions = request.app[SETTINGS].rasa_handoff_actions
    plans, ignored = [], 0
    for session, located, slots in conversations(core, payload):
        plan, skipped = planned(core, session, located, slots, handoff_actions)
        plans.append(plan)
        ignored += skipped
    return render(request, IngestSummary(
        conversations=[await carry_out(core, plan) for plan in plans], ignored=ignored))


Located = list[tuple[str, Event]]


def conversations(core: Core, payload: Tracker | Event | list[Event]
                  ) -> list[tuple[tuple[str, str], Located, dict[str, Any]]]:
    """Events grouped by sender (as `c.session` gives it), each with where it sat in the body
    (for errors)."""
    if isinstance(payload, Tracker):
        session = c.session(core, payload.sender_id, where="sender_id")
        return [(session, [(f"events.{n}", e) for n, e in enumerate(payload.events)],
                 payload.slots or {})]
    listed = [("event", payload)] if isinstance(payload, Event) else \
        [(str(n), e) for n, e in enumerate(payload)]
    groups: dict[tuple[str, str], Located] = {}
    for where, event in listed:
        session = c.session(core, event.sender_id, where=f"{where}.sender_id")
        groups.setdefault(session, []).append((where, event))
    return [(session, located, {}) for session, located in groups.items()]


def planned(core: Core, session: tuple[str, str], located: Located, slots: dict[str, Any],
            handoff_actions: list[str]) -> tuple[Plan, int]:
    """The turns, facts and hand-off one conversation's events ask for, and how many events
    were left out."""
    sender, conversation = session
    plan, turns, ignored = Plan(sender, conversation), [], 0
    slots = dict(slots)
    trigger: tuple[str, Event] | None = None
    intent: str | None = None
    for where, event in located:
        kind = event.event
        if kind in ("user", "bot") and event.text:
            turns.append(turn(core, conversation, where, event))
            if kind == "user" and turns[-1].intent:
                intent = turns[-1].intent
        elif kind == "slot" and event.name and event.name not in INTERNAL_SLOTS:
            slots[event.name] = event.value
            plan.facts |= c.facts([(event.name, event.value)], where=f"{where}.value")
            if event.name == "handoff_request" and c.truthy(event.value):
                trigger = (where, event)
        elif kind == "action" and event.name in handoff_actions:
            trigger = (where, event)
        else:
            ignored += 1
    customer = {"identities": [{"kind": "chat", "value": sender},
                               *c.claims(core, slots.items())]}
    for start in range(0, len(turns), MAX_TURNS):
        last = start + MAX_TURNS >= len(turns)
        plan.appends.append(build(AppendTurns, {
            "customer": customer, "channel": "chat", "source": NAME,
            "turns": turns[start:start + MAX_TURNS],
            "facts": (plan.facts or None) if last else None}, where="events"))
    if trigger is not None:
        where, event = trigger
        body = build(HandoffIn, {
            "customer": customer, "conversation_id": conversation, "channel": "chat",
            "source": NAME,
            "reason": "customer_request", "continuation": True, "intent": intent,
            **c.handoff_fields(slots)}, where="slots")
        # The same event in a later export or a redelivery names the same hand-off.
        key = core.digest(conversation, event.event, event.name, event.timestamp)
        plan.handoff = (body, f"{NAME}:{key}")
    return plan, ignored


def turn(core: Core, conversation: str, where: str, event: Event) -> TurnIn:
    """A user or bot event as a turn; the id is Rasa's message id, else a digest of the event."""
    assert event.text is not None
    turn_id = (core.vendor_id(event.message_id) if event.message_id else
               "rasa-" + core.digest(conversation, event.event, event.timestamp, event.text))
    more: dict[str, Any] = {}
    parse_data = event.parse_data if event.event == "user" else None
    if parse_data is not None:
        if parse_data.intent is not None:
            more["intent"] = parse_data.intent.name
            more["confidence"] = parse_data.intent.confidence
        entities = {e.entity: c.scalar(e.value) for e in parse_data.entities}
        more["entities"] = entities or None
    return c.turn(turn_id, "customer" if event.event == "user" else "bot", event.text,
                  moment(event, where) or core.now(), where=where, **more)


def moment(event: Event, where: str) -> datetime | None:
    """An event's epoch-seconds timestamp as a time; 422 for one no calendar has."""
    if event.timestamp is None:
        return None
    try:
        return datetime.fromtimestamp(event.timestamp, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise Unprocessable("an event timestamp is out of range",
                            [{"loc": [where, "timestamp"], "msg": "epoch seconds expected"}]
                            ) from exc


async def carry_out(core: Core, plan: Plan) -> ConversationSummary:
    summary = ConversationSummary(conversation_id=plan.conversation, appended=0, duplicates=0,
                                  facts=sorted(plan.facts))
    for body in plan.appends:
        done = await core.append_turns(plan.conversation, body)
        summary.customer_id = done.customer_id
        summary.appended += done.appended
        summary.duplicates += done.duplicates
    if not plan.appends and plan.facts:
        written = await c.record(core, plan.conversation, customer=None, channel="chat",
                                 source=NAME,
                                 turns=[], known=plan.facts, ref=f"chat:{plan.sender}",
                                 where="events")
        if written is None:  # nobody to tell about yet: the customer has not said anything
            summary.facts = []
        else:
            summary.customer_id = written.customer_id
    if plan.handoff is not None:
        handoff, _ = await core.request_handoff(*plan.handoff)
        summary.customer_id = handoff.customer_id
        summary.handoff = HandoffSummary(id=handoff.id, status=handoff.status,
                                         continuation_code=handoff.continuation_code)
    if summary.customer_id is not None:
        # After an agent handed the customer back: slots for the bot to set (`SlotSet`) so its
        # next turn continues from the agent's note.
        summary.slots = c.human_contact(
            await core.last_human_contact(summary.customer_id)) or None
    return summary


adapter = Adapter(name=NAME, routes=routes,
                  summary="Rasa tracker and broker events: turns, slots as facts, hand-offs")
