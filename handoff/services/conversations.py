"""Transcript turns: appended once each, read back newest first."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from handoff.kernel import logs
from handoff.kernel.errors import Forbidden, NotFound, Unprocessable
from handoff.kernel.timefmt import moment, to_ms
from handoff.services import alerts, audit, reask, resolving, writes
from handoff.services.deps import Deps, Principal
from handoff.services.facts import add_facts
from handoff.services.flags import Hit, Lexicon
from handoff.services.known import Known
from handoff.services.privacy import Privacy, refuse_card_numbers
from handoff.store import records
from handoff.store.customers import Gone, Moved, Written
from handoff.store.records import CustomerWrite, TurnRecord
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
    name = deps.known.name(principal.tenant, conversation_id)
    known = deps.known.find(name, body)
    if known is not None:
        lean = await _append_known(deps, principal, lexicon, conversation_id, body, known)
        if lean is not None:
            return lean
        # Merged since: nothing was written, and the full path decides anew.
        deps.known.forget(name)
    try:
        # Without a channel only a known conversation can be written to; a new one is refused
        # before anything (not even an index entry) is created for it.
        resolved = await resolving.resolve_writer(
            deps, principal, conversation_id=conversation_id, channel=body.channel,
            customer=body.customer, create=body.channel is not None)
    except NotFound as exc:
        raise Unprocessable("the first post of a conversation names its channel",
                            [{"loc": ["channel"], "msg": "required on the first post"}]) from exc
    now = deps.now_ms()
    stamps = [to_ms(t.ts) for t in body.turns]
    change = CustomerWrite()
    resolving.identity_records(resolved, channel=body.channel, conversation_id=conversation_id,
                              now_ms=now, change=change)
    change.note_conversation(conversation_id, channel=body.channel, source=body.source,
                             started_ms=min(stamps), by=principal.key_id)
    agent_turns, raising = _add_turns(deps, principal, lexicon, conversation_id, body, change,
                                      now_ms=now, stamps=stamps)
    cus_id, written = await writes.write(deps, principal.tenant, resolved.customer_id, change,
                                         raising)
    if body.channel is not None and not resolved.claims:
        # Every identity of the body is linked, the conversation recorded: the next post
        # naming nothing new needs only its turns.
        deps.known.remember(name, Known(
            cus_id, body.channel,
            frozenset((i.kind, i.value) for i in body.customer.identities)
            if body.customer else frozenset(), min(stamps)))
    return await _appended(deps, principal.tenant, cus_id, conversation_id, written,
                           agent_turns)


async def _append_known(deps: Deps, principal: Principal, lexicon: Lexicon,
                        conversation_id: str, body: AppendTurns, known: Known
                        ) -> AppendResult | None:
    """`append_turns` to a conversation whose records are stored: the turns alone, written
    where they were last time; None if that customer was merged since (nothing was written:
    the full path follows it and records what the survivor lacks). 404 if it was erased."""
    tenant, cus_id = principal.tenant, known.customer_id
    logs.note_customer(cus_id)
    now = deps.now_ms()
    stamps = [to_ms(t.ts) for t in body.turns]
    change = CustomerWrite()
    if min(stamps) < known.started_ms:
        # Only the start can still move (to an earlier turn); the record itself is stored.
        change.note_conversation(conversation_id, channel=None, source=None,
                                 started_ms=min(stamps), by=principal.key_id)
    agent_turns, raising = _add_turns(deps, principal, lexicon, conversation_id, body, change,
                                      now_ms=now, stamps=stamps)
    try:
        out = await deps.outbox.write(tenant, cus_id, change, now_ms=now,
                                      ttl_ms=deps.retention_ms(tenant),
                                      retention_ms=deps.retention_ms(tenant),
                                      candidates=raising)
    except Gone as exc:
        # Erased after we knew it, as a full write that resolved it just before would be.
        deps.known.forget(deps.known.name(tenant, conversation_id))
        raise NotFound("the customer no longer exists") from exc
    if isinstance(out, Moved):
        return None
    return await _appended(deps, tenant, cus_id, conversation_id, out, agent_turns)


def _add_turns(deps: Deps, principal: Principal, lexicon: Lexicon, conversation_id: str,
               body: AppendTurns, change: CustomerWrite, *, now_ms: int, stamps: list[int]
               ) -> tuple[dict[int, reask.AgentTurn], list[alerts.Candidate]]:
    """Add the body's turns (masked), the flags they raise and its facts to `change`; the
    agent turns to check for re-asks, by position, and the alerts the flags may raise."""
    tenant = principal.tenant
    agent_turns: dict[int, reask.AgentTurn] = {}
    raising: list[alerts.Candidate] = []
    for turn, ts_ms in zip(body.turns, stamps, strict=True):
        text = deps.privacy.mask(tenant, turn.text)
        intent = deps.privacy.mask(tenant, turn.intent) if turn.intent else turn.intent
        n = change.add_turn(conversation_id, turn.id, role=turn.role, text=text, ts_ms=ts_ms,
                            channel=body.channel, intent=intent, confidence=turn.confidence,
                            entities=deps.privacy.mask_value(tenant, turn.entities)
                            if turn.entities else None)
        if turn.role == "customer":
            hits = flag_turn(change, lexicon, text, conversation_id, turn.id, now_ms)
            if hits:
                raising += alerts.candidates(lexicon.alert_rules(tenant), hits,
                                             ref=f"t{n + 1}", now_ms=now_ms)
        elif turn.role == "agent":
            agent_turns[n] = reask.AgentTurn(turn.id, conversation_id, text)
    if body.facts:
        # A fact told in a turn was learned when that turn was said, not when it was posted.
        add_facts(change, body.facts, principal=principal, privacy=deps.privacy,
                  channel=body.channel,
                  conversation_id=conversation_id, turn_id=body.turns[-1].id,
                  source=body.source, now_ms=min(now_ms, stamps[-1]))
    return agent_turns, raising


async def _appended(deps: Deps, tenant: str, cus_id: str, conversation_id: str,
                    written: Written, agent_turns: dict[int, reask.AgentTurn]) -> AppendResult:
    """What an append answers, once the re-asks among the agent turns it stored are noted."""
    if agent_turns:
        # Only turns stored just now: a retried post neither flags nor counts twice.
        await reask.record(deps, tenant, cus_id,
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


def flag_turn(change: CustomerWrite, lexicon: Lexicon, text: str, conversation_id: str,
              turn_id: str, now_ms: int) -> list[Hit]:
    """Remember the first turn that raised each flag, and every request for a human; answers
    the turn's flags."""
    hits = lexicon.hits(text)
    for hit in hits:
        change.flag(hit.kind, hit.term, turn_id=turn_id, conversation_id=conversation_id,
                    at=now_ms)
    if lexicon.asks_for_human(text):
        change.count_human_request(turn_id=turn_id, conversation_id=conversation_id, at=now_ms)
    return hits


def turn_view(cursor: str, r: TurnRecord, conversations: Mapping[str, Any]) -> Turn:
    """A stored turn (see `records.turn_of`) as agents read it."""
    conversation = conversations.get(r["conversation_id"]) or {}
    # Validated, though we wrote the record: pydantic-core validates a dict of ready values
    # in less time than `model_construct` takes to skip it, and a brief holds up to 500 turns.
    return Turn.model_validate({
        "id": r["id"], "conversation_id": r["conversation_id"],
        "channel": r.get("channel") or conversation.get("channel") or "other", "role": r["role"],
        "text": r["text"], "ts": moment(r["ts"]), "intent": r.get("intent"),
        "confidence": r.get("confidence"), "entities": r.get("entities"),
        "source": conversation.get("source"), "cursor": cursor})


async def transcript(deps: Deps, principal: Principal, ref: str, before: str | None,
                     limit: int, viewer: audit.Viewer) -> Page[Turn]:
    """The whole transcript across merged customers, newest first, `limit` at a time."""
    if before is not None and not CURSOR.match(before):
        raise Unprocessable("not a cursor this list gave out",
                            [{"loc": ["query", "before"], "msg": "invalid cursor"}])
    cus_id = await resolving.resolve_ref(deps, principal, ref)
    (meta,) = await deps.store.customers.read_meta(principal.tenant, [cus_id])
    everyone = [cus_id, *records.merged_ids(meta)]
    pages = await deps.store.customers.read_turns(principal.tenant, everyone, before, limit)
    entries = sorted((e for page in pages for e in page), key=lambda e: _cursor_key(e[0]),
                     reverse=True)[:limit]
    conversations: dict[str, Any] = {}
    for cus in everyone:
        conversations.update(await deps.store.customers.read_conversations(principal.tenant, cus))
    items = [turn_view(*records.turn_of(e), conversations) for e in entries]
    await audit.record(deps, principal, cus_id, "turns", viewer)
    return Page[Turn](items=items, next=entries[-1][0] if len(entries) == limit else None)


def _cursor_key(cursor: str) -> tuple[int, int]:
    ms, _, seq = cursor.partition("-")
    return int(ms), int(seq)
