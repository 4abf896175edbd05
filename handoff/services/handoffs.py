"""Hand-offs: requested by a bot or IVR, queued by priority then age, taken by exactly one agent."""

from __future__ import annotations

import functools
from collections.abc import Coroutine
from typing import Any

from handoff.kernel import ids, logs, metrics
from handoff.kernel.errors import Conflict, NotFound, Unprocessable
from handoff.kernel.timefmt import moment, when
from handoff.services import continuations, resolving, writes
from handoff.services.deps import Deps, Principal
from handoff.store.records import CustomerWrite
from schemas.common import Page
from schemas.handoffs import HandBackIn, Handoff, HandoffIn

IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000
# What a customer keeps of the last hand-off a person closed with it.
HUMAN_CONTACT_FIELDS = ("id", "status", "agent_id", "note", "outcome", "to", "closed_ms")
PRIORITY_SPAN = 10**13  # larger than any epoch millisecond, so score = priority, then age


def view(record: dict[str, str], *, with_code: bool = False) -> Handoff:
    """The API shape of a stored hand-off (the continuation code only for its requester)."""
    return _view(frozenset(record.items()), with_code)


@functools.lru_cache(maxsize=2048)
def _view(items: frozenset[tuple[str, str]], with_code: bool) -> Handoff:
    # Remembered by the record's whole content, so a changed record is a new entry: a brief
    # lists the customer's last hand-offs, and every accept and re-read of it lists the same
    # ones again. Nobody changes a view once made.
    record = dict(items)

    def opt(name: str) -> str | None:
        return record.get(name) or None

    return Handoff.model_validate({
        "id": record["id"], "status": record["status"], "customer_id": record["customer_id"],
        "conversation_id": opt("conversation_id"), "channel": opt("channel"),
        "source": opt("source"), "reason": record["reason"], "priority": int(record["priority"]),
        "queue": record["queue"], "intent": opt("intent"), "summary": opt("summary"),
        "created_at": moment(record["created_ms"]), "updated_at": moment(record["updated_ms"]),
        "expires_at": when(record.get("expires_ms")) if record["status"] == "pending" else None,
        "agent_id": opt("agent_id"), "accepted_at": when(record.get("accepted_ms")),
        "closed_at": when(record.get("closed_ms")), "note": opt("note"),
        "outcome": opt("outcome"), "handed_back_to": opt("to"),
        "continuation_code": opt("code") if with_code else None,
        "continuation_expires_at": when(record.get("code_expires_ms")),
    })


def _fingerprint(deps: Deps, body: HandoffIn, customer_id: str) -> str:
    """What a retry must repeat; keyed, because the request names the customer."""
    return deps.store.digester.digest(f"{customer_id}\x00{body.model_dump_json()}")


async def create(deps: Deps, principal: Principal, body: HandoffIn,
                 idempotency_key: str | None) -> tuple[Handoff, bool]:
    """Request a hand-off; with an Idempotency-Key a retry answers the first one. (record, new)"""
    tenant = principal.tenant
    body = deps.privacy.safe_ids(body, "conversation_id", "source", "queue")
    resolved = await resolving.resolve_writer(
        deps, principal, conversation_id=body.conversation_id, channel=body.channel,
        customer=body.customer)
    now = deps.now_ms()
    ho_id = ids.handoff_id()
    record = {
        "id": ho_id, "status": "pending", "customer_id": resolved.customer_id,
        "conversation_id": body.conversation_id or "", "channel": body.channel or "",
        "source": body.source or "", "reason": body.reason, "priority": str(body.priority),
        "queue": body.queue, "intent": deps.privacy.mask(tenant, body.intent or ""),
        "summary": deps.privacy.mask(tenant, body.summary or ""),
        "created_ms": str(now), "updated_ms": str(now),
        "expires_ms": str(now + deps.settings.handoff_pending_seconds * 1000),
        "score": str(body.priority * PRIORITY_SPAN + now), "by": principal.key_id}
    code: str | None = None
    if body.continuation:
        code, code_expires = await continuations.issue(deps, tenant, resolved.customer_id, ho_id)
        record |= {"code": code, "code_expires_ms": str(code_expires)}
    idem = (deps.store.handoffs.idempotency_key(tenant, principal.key_id, idempotency_key)
            if idempotency_key else None)
    outcome, final_id = await deps.store.handoffs.create_handoff(
        tenant, record, score=float(record["score"]), deadline_ms=int(record["expires_ms"]),
        now_ms=now, idempotency=idem, idempotency_ttl_ms=IDEMPOTENCY_TTL_MS,
        fingerprint=_fingerprint(deps, body, resolved.customer_id),
        retention_ms=deps.retention_ms(tenant))
    if outcome == "mismatch":
        await continuations.discard(deps, tenant, code)
        raise Unprocessable("this Idempotency-Key was used with a different request",
                            [{"loc": ["header", "Idempotency-Key"], "msg": "reused key"}])
    if outcome == "existing":
        await continuations.discard(deps, tenant, code)
    else:
        metrics.handoff(tenant, body.queue, "requested")
    if outcome == "created":  # stored as given: nothing to read back
        stored = record
    else:
        found = await deps.store.handoffs.get_handoffs(tenant, [final_id])
        if not found:  # the hand-off this key made was erased since; it may not make another
            raise Conflict("the hand-off this Idempotency-Key created no longer exists")
        stored = found[0]
    # Second, idempotent step in the customer's slot: the brief lists its hand-offs.
    change = CustomerWrite()
    change.list_handoff(final_id, int(stored["created_ms"]))
    change.announce("handoff.requested", _public(stored))
    resolving.identity_records(resolved, channel=body.channel,
                              conversation_id=body.conversation_id, now_ms=now, change=change)
    if body.conversation_id:
        change.note_conversation(body.conversation_id, channel=body.channel,
                                 source=body.source, started_ms=now, by=principal.key_id)
    await writes.write(deps, tenant, stored["customer_id"], change)
    return view(stored, with_code=True), outcome == "created"


def _public(record: dict[str, str]) -> dict[str, Any]:
    return view(record).model_dump(mode="json")


async def get(deps: Deps, principal: Principal, ho_id: str) -> Handoff:
    return view(await _load(deps, principal.tenant, ho_id))


async def _load(deps: Deps, tenant: str, ho_id: str) -> dict[str, str]:
    if not ho_id.startswith("ho_") or len(ho_id) > 64:
        raise NotFound("no such hand-off")
    found = await deps.store.handoffs.get_handoffs(tenant, [ho_id])
    if not found:
        raise NotFound("no such hand-off")
    logs.note_customer(found[0]["customer_id"])
    return found[0]


async def _transition(deps: Deps, principal: Principal, ho_id: str, *, allowed: list[str],
                      target: str, event: str, fields: dict[str, str], mirror: bool = True
                      ) -> dict[str, str]:
    """One script moves the hand-off (it reads what it needs itself), then the customer's slot
    hears of it; `mirror` False leaves that last write to the caller (`mirrored`)."""
    tenant = principal.tenant
    if not ho_id.startswith("ho_") or len(ho_id) > 64:
        raise NotFound("no such hand-off")
    outcome = await deps.store.handoffs.transition_handoff(
        tenant, ho_id, allowed=allowed, target=target, event=event,
        fields=fields, now_ms=deps.now_ms(), retention_ms=deps.retention_ms(tenant))
    if outcome.result == "missing":
        raise NotFound("no such hand-off")
    logs.note_customer(outcome.record["customer_id"])
    if outcome.expired_now:
        metrics.handoff(tenant, outcome.record["queue"], "expired")
        await _mirror(deps, tenant, outcome.record, "handoff.expired")
    if outcome.result == "conflict":
        who = outcome.record.get("agent_id")
        status = outcome.previous or outcome.record.get("status")
        detail = f"the hand-off is {status}" + (f" by {who}" if who and status == "accepted"
                                                 else "")
        raise Conflict(detail, handoff_status=status)
    if mirror:
        await _mirror(deps, tenant, outcome.record, event)
    return outcome.record


async def _mirror(deps: Deps, tenant: str, record: dict[str, str], event: str) -> None:
    """Tell the customer's own event stream (and bump its brief version). A human contact that
    ended is kept on the customer too (read with the brief at no extra cost), so whoever talks
    to the customer next continues from the agent's note."""
    change = CustomerWrite()
    change.list_handoff(record["id"], int(record["created_ms"]))
    change.announce(event, _public(record))
    if record["status"] in ("handed_back", "resolved") and record.get("agent_id"):
        change.note_human_contact({k: record.get(k, "") for k in HUMAN_CONTACT_FIELDS})
    await writes.write(deps, tenant, record["customer_id"], change)


async def accept(deps: Deps, principal: Principal, ho_id: str, agent_id: str) -> Handoff:
    """Claim a pending hand-off; exactly one agent wins, a retry by the winner wins again."""
    record, mirror = await claim(deps, principal, ho_id, agent_id)
    if mirror is not None:
        await mirror
    return record


async def claim(deps: Deps, principal: Principal, ho_id: str, agent_id: str
                ) -> tuple[Handoff, Coroutine[Any, Any, None] | None]:
    """Accept's own part: the hand-off as accepted, and the write that tells the customer's
    slot (None for a retry by the winner), for the caller to send alongside its own reads."""
    agent_id = deps.privacy.safe_id(agent_id)
    try:
        record = await _transition(
            deps, principal, ho_id, allowed=["pending"], target="accepted",
            event="handoff.accepted", mirror=False,
            fields={"agent_id": agent_id, "accepted_ms": str(deps.now_ms())})
    except Conflict:
        current = await _load(deps, principal.tenant, ho_id)
        if current["status"] == "accepted" and current.get("agent_id") == agent_id:
            return view(current), None
        raise
    metrics.accepted(principal.tenant, record["queue"], int(record["created_ms"]),
                     int(record["accepted_ms"]))
    return view(record), _mirror(deps, principal.tenant, record, "handoff.accepted")


async def resolve(deps: Deps, principal: Principal, ho_id: str, agent_id: str | None,
                  note: str | None) -> Handoff:
    agent_id = deps.privacy.safe_id(agent_id) if agent_id else agent_id
    fields = {"closed_ms": str(deps.now_ms()),
              "note": deps.privacy.mask(principal.tenant, note or "")}
    if agent_id:
        current = await _load(deps, principal.tenant, ho_id)
        if current.get("agent_id") and current["agent_id"] != agent_id:
            raise Conflict(f"the hand-off is accepted by {current['agent_id']}")
        fields["agent_id"] = agent_id
    record = await _transition(deps, principal, ho_id, allowed=["pending", "accepted"],
                               target="resolved", event="handoff.resolved", fields=fields)
    metrics.handoff(principal.tenant, record["queue"], "resolved")
    return view(record)


async def hand_back(deps: Deps, principal: Principal, ho_id: str, body: HandBackIn) -> Handoff:
    """The agent gives the customer back to the bot (or to a queue) with a note: the hand-off
    ends `handed_back`, and the note, outcome and agent become the customer's last human
    contact, in the brief and on the `handoff.handed_back` event."""
    tenant = principal.tenant
    agent_id = deps.privacy.safe_id(principal.agent_id or body.agent_id or "") or None
    current = await _load(deps, tenant, ho_id)
    if agent_id and current.get("agent_id") and current["agent_id"] != agent_id:
        raise Conflict(f"the hand-off is accepted by {current['agent_id']}",
                       handoff_status=current["status"])
    fields = {"closed_ms": str(deps.now_ms()), "note": deps.privacy.mask(tenant, body.note),
              "outcome": body.outcome, "to": deps.privacy.safe_id(body.to)}
    record = await _transition(deps, principal, ho_id, allowed=["accepted"],
                               target="handed_back", event="handoff.handed_back", fields=fields)
    metrics.handoff(tenant, record["queue"], "handed_back")
    return view(record)


async def cancel(deps: Deps, principal: Principal, ho_id: str, note: str | None) -> Handoff:
    """A bot or IVR withdraws a request no agent has taken yet."""
    fields = {"closed_ms": str(deps.now_ms()),
              "note": deps.privacy.mask(principal.tenant, note or "")}
    record = await _transition(deps, principal, ho_id, allowed=["pending"],
                               target="cancelled", event="handoff.cancelled", fields=fields)
    metrics.handoff(principal.tenant, record["queue"], "cancelled")
    return view(record)


def encode_cursor(record: dict[str, str]) -> str:
    return f"{record['score']}~{record['id']}"


def decode_cursor(cursor: str) -> tuple[float, str]:
    score, sep, ho_id = cursor.partition("~")
    try:
        if not sep or not ho_id.startswith("ho_"):
            raise ValueError(cursor)
        return float(score), ho_id
    except ValueError as exc:
        raise Unprocessable("not a cursor this list gave out",
                            [{"loc": ["query", "before"], "msg": "invalid cursor"}]) from exc


async def listing(deps: Deps, principal: Principal, *, status: str, queue: str | None,
                  before: str | None, limit: int) -> Page[Handoff]:
    """One status's hand-offs, most urgent first, then oldest first."""
    after = decode_cursor(before) if before else None
    queue = deps.privacy.safe_id(queue) if queue else queue
    records = await deps.store.handoffs.list_handoffs(principal.tenant, status, queue, after, limit)
    nxt = encode_cursor(records[-1]) if len(records) == limit else None
    return Page[Handoff](items=[view(r) for r in records], next=nxt)


async def expire_due(deps: Deps, tenant: str, limit: int = 200) -> int:
    """Expire pending hand-offs past their deadline; safe to run in every process at once."""
    expired = 0
    for record in await deps.store.handoffs.due_handoffs(tenant, deps.now_ms(), limit):
        # Asking for any transition expires an overdue hand-off first; exactly one asker is told.
        outcome = await deps.store.handoffs.transition_handoff(
            tenant, record["id"], allowed=[], target="expired",
            event="handoff.expired", fields={}, now_ms=deps.now_ms(),
            retention_ms=deps.retention_ms(tenant))
        if outcome.expired_now:
            metrics.handoff(tenant, record["queue"], "expired")
            await _mirror(deps, tenant, outcome.record, "handoff.expired")
            expired += 1
    return expired
