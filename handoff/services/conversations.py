"""Transcript turns: appended once each, read back newest first."""

from __future__ import annotations

import re
from typing import Any

from handoff.errors import Forbidden, NotFound, Unprocessable
from handoff.services import audit, identity, reask
from handoff.services.deps import Deps, Principal
from handoff.services.facts import add_facts
from handoff.services.flags import Lexicon
from handoff.services.privacy import Privacy, refuse_card_numbers
from handoff.services.timefmt import moment, to_ms
from handoff.store import codec
from handoff.store.store import CustomerWrite, StreamEntry
from schemas.common import Page
from schemas.conversations import AppendResult, AppendTurns, Turn

CURSOR = re.compile(r"^\d{1,20}-\d{1,20}$")


async def append_turns(deps: Deps, principal: Principal, lexicon: Lexicon,
                       conversation_id: str, body: AppendTurns) -> AppendResult:
    """Append turns to a conversation; a turn id already stored counts as a duplicate."""
    if principal.desk and any(t.role != "agent" for t in body.turns):
        raise Forbidden("a panel token posts agent turns only")
    refuse_card_numbers(
        *[(("turns", n, "entities", k), k) for n, t in enumerate(body.turns)
          for k in t.entities or {}],
        *[(("facts", k), k) for k in body.facts or {}])
    conversation_id, body = safe_ids(deps.privacy, conversation_id, body)
    try:
        # Without a channel only a known conversation can be written to; a new one is refused
        # before anything (not even an index entry) is created for it.
        resolved = await identity.resolve_writer(
            deps, principal, conversation_id=conversation_id, channel=body.channel,
            customer=body.customer, create=body.channel is not None)
    except NotFound as exc:
        raise Unprocessable("the first post of a conversation names its channel",
                            [{"loc": ["channel"], "msg": "required on the first post"}]) from exc
    now = deps.now_ms()
    change = CustomerWrite()
    agent_turns: dict[int, reask.AgentTurn] = {}
    identity.identity_records(resolved, channel=body.channel, conversation_id=conversation_id,
                              now_ms=now, change=change)
    started = min(to_ms(t.ts) for t in body.turns)
    conversation_record(change, conversation_id, channel=body.channel, source=body.source,
                        started_ms=started, by=principal.key_id)
    for turn in body.turns:
        text = deps.privacy.mask(principal.tenant, turn.text)
        intent = deps.privacy.mask(principal.tenant, turn.intent) if turn.intent else turn.intent
        record = pack_turn(turn.id, conversation_id, turn.role, text, to_ms(turn.ts),
                           body.channel, intent, turn.confidence,
                           deps.privacy.mask_value(principal.tenant, turn.entities))
        change.turns.append((f"{conversation_id}\x00{turn.id}", record))
        if turn.role == "customer":
            flag_turn(change, lexicon, text, conversation_id, turn.id, now)
        elif turn.role == "agent":
            agent_turns[len(change.turns) - 1] = reask.AgentTurn(turn.id, conversation_id, text)
    if body.facts:
        # A fact told in a turn was learned when that turn was said, not when it was posted.
        add_facts(change, body.facts, principal=principal, privacy=deps.privacy,
                  channel=body.channel,
                  conversation_id=conversation_id, turn_id=body.turns[-1].id,
                  source=body.source, now_ms=min(now, to_ms(body.turns[-1].ts)))
    cus_id, written = await identity.write(deps, principal.tenant, resolved.customer_id, change)
    if agent_turns:
        # Only turns stored just now: a retried post neither flags nor counts twice.
        await reask.record(deps, principal.tenant, cus_id,
                           [t for n, t in agent_turns.items() if written.cursors[n]])
    return AppendResult(customer_id=cus_id, conversation_id=conversation_id,
                        appended=written.appended, duplicates=written.duplicates)


def safe_ids(privacy: Privacy, conversation_id: str, body: AppendTurns
             ) -> tuple[str, AppendTurns]:
    """The conversation, source and turn ids as they are stored (`Privacy.safe_id`)."""
    turns = [privacy.safe_ids(t, "id") for t in body.turns]
    if any(new is not old for new, old in zip(turns, body.turns, strict=True)):
        body = body.model_copy(update={"turns": turns})
    return privacy.safe_id(conversation_id), privacy.safe_ids(body, "source")


def conversation_record(change: CustomerWrite, conversation_id: str, *, channel: str | None,
                        source: str | None, started_ms: int, by: str) -> None:
    """Record a conversation the first time it is seen; its start is the earliest seen since."""
    change.hmin.append(("meta", f"s:{conversation_id}", started_ms))
    if channel is None:
        return
    change.hsetnx.append(("convs", conversation_id, codec.pack(
        {"conversation_id": conversation_id, "channel": channel, "source": source,
         "started_at": started_ms, "by": by})))


def flag_turn(change: CustomerWrite, lexicon: Lexicon, text: str, conversation_id: str,
              turn_id: str, now_ms: int) -> None:
    """Remember the first turn that raised each flag, and every request for a human."""
    for hit in lexicon.hits(text):
        change.hsetnx.append(("flags", f"{hit.kind}:{hit.term}", codec.pack(
            {"kind": hit.kind, "term": hit.term, "turn_id": turn_id,
             "conversation_id": conversation_id, "at": now_ms})))
    if lexicon.asks_for_human(text):
        # One field per turn, so a retried post does not count twice.
        change.hsetnx.append(("flags", f"#human:{conversation_id}\x00{turn_id}", codec.pack(
            {"turn_id": turn_id, "conversation_id": conversation_id, "at": now_ms})))


# A stored turn is a msgpack array in this order, trailing empty fields dropped: a transcript
# is most of what handoff stores, and field names would cost more than a short turn's text.
# The conversation record holds the source and first writer, the stream id the arrival time.
TURN_FIELDS = ("id", "conversation_id", "role", "text", "ts", "channel", "intent",
               "confidence", "entities")


def pack_turn(turn_id: str, conversation_id: str, role: str, text: str, ts_ms: int,
              channel: str | None, intent: str | None, confidence: float | None,
              entities: dict[str, Any] | None) -> bytes:
    fields: list[Any] = [turn_id, conversation_id, role, text, ts_ms, channel, intent,
                         confidence, entities or None]
    while fields[-1] is None:
        fields.pop()
    return codec.pack(fields)


def unpack_turn(raw: bytes) -> dict[str, Any]:
    values = codec.unpack(raw)
    return dict(zip(TURN_FIELDS, values, strict=False))


def turn_view(entry: StreamEntry, conversations: dict[str, Any]) -> Turn:
    """A stored turn as agents read it.

    Built without validation: the record was validated on its way in and written by us, and a
    brief holds up to 500 of them.
    """
    cursor, fields = entry
    r = unpack_turn(fields["d"])
    conversation = conversations.get(r["conversation_id"]) or {}
    return Turn.model_construct(
        id=r["id"], conversation_id=r["conversation_id"],
        channel=r.get("channel") or conversation.get("channel") or "other", role=r["role"],
        text=r["text"], ts=moment(r["ts"]), intent=r.get("intent"),
        confidence=r.get("confidence"), entities=r.get("entities"),
        source=conversation.get("source"), cursor=cursor)


async def transcript(deps: Deps, principal: Principal, ref: str, before: str | None,
                     limit: int, viewer: audit.Viewer) -> Page[Turn]:
    """The whole transcript across merged customers, newest first, `limit` at a time."""
    if before is not None and not CURSOR.match(before):
        raise Unprocessable("not a cursor this list gave out",
                            [{"loc": ["query", "before"], "msg": "invalid cursor"}])
    cus_id = await identity.resolve_ref(deps, principal, ref)
    (meta,) = await deps.store.read_meta(principal.tenant, [cus_id])
    everyone = [cus_id, *identity.merged_ids(meta)]
    pages = await deps.store.read_turns(principal.tenant, everyone, before, limit)
    entries = sorted((e for page in pages for e in page), key=lambda e: _cursor_key(e[0]),
                     reverse=True)[:limit]
    conversations: dict[str, Any] = {}
    for cus in everyone:
        conversations.update(await deps.store.read_hash(principal.tenant, cus, "convs"))
    items = [turn_view(e, conversations) for e in entries]
    await audit.record(deps, principal, cus_id, "turns", viewer)
    return Page[Turn](items=items, next=entries[-1][0] if len(entries) == limit else None)


def _cursor_key(cursor: str) -> tuple[int, int]:
    ms, _, seq = cursor.partition("-")
    return int(ms), int(seq)
