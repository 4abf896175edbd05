"""What every chatbot adapter reads the same way, whatever the vendor calls it.

Bots keep what they learn in name/value maps (Dialogflow session parameters, Lex slots and
session attributes, Rasa slots). handoff reads those maps by one convention:

- a name starting with `handoff_` belongs to handoff: `handoff_queue`, `handoff_priority`,
  `handoff_reason` and `handoff_summary` shape a hand-off, `handoff_request` asks for one, and
  the `handoff_id`/`handoff_code`/... that handoff writes back are never read as facts;
- every other name with a value is a fact (objects and lists as compact JSON text);
- `email`, `account` and `account_number` are also identity *claims*: recorded with the
  customer, never trusted to find or merge another customer (a phone number a customer typed or
  said is never an identity: on a voice channel it would be trusted as the caller's own).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from adapters.base import Core, build
from handoff.api.params import NAME
from handoff.kernel.errors import NotFound, Unprocessable
from schemas.brief import HumanContact
from schemas.conversations import AppendResult, AppendTurns, FactValue, PutFacts, TurnIn

CONTROL = "handoff_"
CLAIM_KINDS = {"email": "email", "account": "account", "account_number": "account"}
HANDOFF_FIELDS = {"handoff_queue": "queue", "handoff_priority": "priority",
                  "handoff_reason": "reason", "handoff_summary": "summary"}
TRUE = frozenset({"true", "yes", "1", "on"})


def truthy(value: object) -> bool:
    """Whether a vendor value means yes: true, "true", "yes", "1", 1."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    return isinstance(value, str) and value.strip().lower() in TRUE


def scalar(value: Any) -> str | int | float | bool | None:
    """A fact value: scalars as they are, objects and lists as compact JSON, None as None."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def facts(pairs: Iterable[tuple[str, Any]], *, where: str) -> dict[str, FactValue]:
    """The facts among vendor name/value pairs; a name or value that cannot be a fact is 422
    naming `where.name`."""
    found: dict[str, FactValue] = {}
    for name, raw in pairs:
        value = scalar(raw)
        if value is None or value == "" or name.startswith(CONTROL):
            continue
        found.update(build(PutFacts, {"facts": {name: value}}, where=f"{where}.{name}").facts)
    return found


def claims(core: Core, pairs: Iterable[tuple[str, Any]]) -> list[dict[str, str]]:
    """Identity claims among vendor name/value pairs; malformed ones stay mere facts."""
    found = []
    for name, value in pairs:
        kind = CLAIM_KINDS.get(name.lower())
        if kind and isinstance(value, str | int) and core.claimable(kind, str(value)):
            found.append({"kind": kind, "value": str(value)})
    return found


def party(core: Core, session: str, channel: str, caller: str | None,
          pairs: Iterable[tuple[str, Any]]) -> tuple[dict[str, Any] | None, str | None]:
    """Who a bot is talking to: (the customer to write as, the ref to address them by).

    On chat the session is the channel's own identity; on a call only the caller's number is,
    and only when the telephony said it. Everything else the bot heard is a claim.
    """
    owned = ([{"kind": "phone", "value": caller}] if caller else []) if channel == "voice" \
        else [{"kind": "chat", "value": session}]
    identities = owned + claims(core, pairs)
    ref = f"phone:{caller}" if caller else (f"chat:{session}" if channel == "chat" else None)
    return ({"identities": identities} if identities else None), ref


def handoff_fields(params: Mapping[str, Any]) -> dict[str, Any]:
    """The hand-off's queue, priority, reason and summary where the bot set them."""
    return {field: params[name] for name, field in HANDOFF_FIELDS.items()
            if params.get(name) not in (None, "")}


def turn(turn_id: str, role: str, text: str, ts: datetime, *, where: str,
         **more: Any) -> TurnIn:
    return build(TurnIn, {"id": turn_id, "role": role, "text": text, "ts": ts, **more},
                 where=where)


async def record(core: Core, conversation_id: str, *, customer: dict[str, Any] | None,
                 channel: str, source: str, turns: list[TurnIn],
                 known: dict[str, FactValue], ref: str | None, where: str
                 ) -> AppendResult | None:
    """Append the turns (with the facts riding along); with no turns, set the facts on a
    customer already known by `ref`. None when there was nothing to write, or nobody to write
    facts about yet (a bot that has heard nothing from the customer has learned nothing)."""
    if turns:
        body = build(AppendTurns, {"customer": customer, "channel": channel, "source": source,
                                   "turns": turns, "facts": known or None}, where=where)
        return await core.append_turns(conversation_id, body)
    if known and ref is not None:
        update = build(PutFacts, {"facts": known, "conversation_id": conversation_id,
                                  "channel": channel, "source": source}, where=where)
        try:
            done = await core.put_facts(ref, update)
        except NotFound:
            return None
        return AppendResult(customer_id=done.customer_id, conversation_id=conversation_id,
                            appended=0, duplicates=0)
    return None


def session(core: Core, value: str | None, *, where: str) -> tuple[str, str]:
    """A vendor's session id: (as given, as a conversation id); 1 to 128 printable characters,
    else 422.

    As the chat identity it stays as the vendor gave it, so `chat:<session>` finds the customer
    (the core masks and hashes one that looks like a card number); as a conversation id it is
    what `Core.vendor_id` makes of it: a keyed digest when it holds a card number or is `.` or
    `..` (which the API refuses as a conversation id, since a URL cannot carry it).
    """
    if value is None or not NAME.match(value):
        raise Unprocessable(f"{where} cannot be a conversation id",
                            [{"loc": [where], "msg": "1 to 128 printable characters required"}])
    return value, core.vendor_id(value)


def human_contact(contact: HumanContact | None) -> dict[str, str]:
    """The last human contact as the flat string map bot platforms keep per session
    (`last_human_note`, `last_human_outcome`, `last_human_agent`, `last_human_handoff_id`,
    `last_human_to`); empty when the customer has not talked to a person."""
    if contact is None:
        return {}
    fields = {"last_human_note": contact.note or "", "last_human_outcome": contact.outcome,
              "last_human_agent": contact.agent_id, "last_human_handoff_id": contact.handoff_id,
              "last_human_to": contact.handed_back_to or ""}
    return {k: v for k, v in fields.items() if v}
