"""The context brief: who the customer is, what was proved, what they said, what not to ask.

Its cost is bounded by the brief's size, never by history: each customer (and each customer
merged into it) is read in one pipelined round trip of fixed commands, the turns by a bounded
XREVRANGE.
"""

from __future__ import annotations

import hashlib
from typing import Any

from handoff.errors import NotFound
from handoff.services import audit, identity
from handoff.services import handoffs as handoff_service
from handoff.services.conversations import turn_view
from handoff.services.deps import Deps, Principal
from handoff.services.flags import HUMAN_COUNTER, HUMAN_TERM
from handoff.services.handoffs import view as handoff_view
from handoff.services.timefmt import iso, moment, when
from handoff.store.store import AuditNote, CustomerData
from schemas.brief import (
    Brief,
    CustomerView,
    Flag,
    HumanContact,
    JourneyStep,
    KnownIdentity,
    Merge,
)
from schemas.conversations import Fact
from schemas.verification import Verification

OPEN = ("pending", "accepted")
# The do-not-ask item of a customer who has talked to a person.
HUMAN_CONTACT_ITEM = "last_human_contact"


def etag(customers: list[tuple[str, dict[str, str], dict[str, Any]]], turns: int,
         now_ms: int) -> str:
    """Changes whenever any write lands or a verification lapses; nothing else moves a brief."""
    parts = [str(turns)]
    for cus_id, meta, verifications in customers:
        lapsed = sum(1 for v in verifications.values() if v["expires_at"] <= now_ms)
        parts.append(f"{cus_id}:{meta.get('ver', '0')}:{lapsed}")
    return '"' + hashlib.sha1("|".join(parts).encode()).hexdigest()[:20] + '"'


async def read(deps: Deps, principal: Principal, ref: str, turns: int, wanted: set[str],
               viewer: audit.Viewer) -> tuple[Brief | None, str]:
    """An agent reads the brief: (None, tag) when its `If-None-Match` still holds. Either way the
    read is in the audit trail before anything is answered."""
    tenant = principal.tenant
    cus_id = await identity.resolve_ref(deps, principal, ref, follow=False)
    # The ETag read is cheap and carries the log entry in the same round trip; a merged
    # customer's reads are logged under the customer that holds the context now, too.
    note = audit.note(deps, principal, cus_id, "context", viewer)
    tag, survivor = await current_etag(deps, tenant, cus_id, turns, note)
    if survivor != cus_id:
        await audit.record(deps, principal, survivor, "context", viewer)
    if tag in wanted or "*" in wanted:
        return None, tag
    # Nothing that shapes a brief changes without changing its ETag, so a brief built for the
    # same ETag is the same brief (agents re-read the one they are working on all the time).
    cached = deps.briefs.get((tenant, survivor, turns))
    if cached is not None and cached[0] == tag:
        return cached[1], tag
    result, tag = await build(deps, tenant, survivor, turns)
    deps.briefs.set((tenant, result.customer.id, turns), (tag, result))
    return result, tag


async def current_etag(deps: Deps, tenant: str, cus_id: str, turns: int,
                       note: AuditNote | None = None) -> tuple[str, str]:
    """The brief's ETag without building the brief (the cheap If-None-Match path), and the
    customer it belongs to after following merges."""
    for _ in range(identity.MAX_MOVES):
        ((meta, verif),) = await deps.store.read_verifications(tenant, [cus_id], note)
        note = None
        if not meta:
            raise NotFound("no such customer")
        if not meta.get("merged_into"):
            break
        cus_id = meta["merged_into"]
    customers = [(cus_id, meta, verif)]
    merged = identity.merged_ids(meta)
    if merged:
        rows = await deps.store.read_verifications(tenant, merged)
        customers += [(c, m, v) for c, (m, v) in zip(merged, rows, strict=True)]
    return etag(customers, turns, deps.now_ms()), cus_id


async def build(deps: Deps, tenant: str, cus_id: str, turns: int,
                note: AuditNote | None = None) -> tuple[Brief, str]:
    """The brief of a customer (following merges) and its ETag."""
    settings = deps.settings
    for _ in range(identity.MAX_MOVES):
        (main,) = await deps.store.read_customers(tenant, [cus_id], turns,
                                                  settings.brief_handoffs, note)
        note = None
        if not main.exists:
            raise NotFound("no such customer")
        if not main.meta.get("merged_into"):
            break
        cus_id = main.meta["merged_into"]
    merged = identity.merged_ids(main.meta)
    everyone = [main]
    if merged:
        everyone += await deps.store.read_customers(tenant, merged, turns,
                                                    settings.brief_handoffs)
    now = deps.now_ms()
    ho_ids = sorted({h for d in everyone for h in d.handoff_ids},
                    reverse=True)[:settings.brief_handoffs]
    handoffs = [handoff_view(r) for r in await deps.store.get_handoffs(tenant, ho_ids)]
    verifications = _verifications(everyone, now)
    facts = _facts(everyone)
    active = {(v.identity.kind, v.identity.value) for v in verifications if not v.expired}
    known = _identities(everyone, active)
    conversations: dict[str, Any] = {}
    for d in everyone:
        conversations.update(d.conversations)
    entries = [e for d in everyone for e in d.turns]
    turn_list = sorted((turn_view(e, conversations) for e in entries),
                       key=lambda t: (t.ts, t.cursor or ""))[-turns:] if turns else []
    open_first = sorted(handoffs, key=lambda h: (h.status not in OPEN, -h.created_at.timestamp()))
    contact = _human_contact([d.meta for d in everyone])
    brief = Brief(
        customer=CustomerView(id=cus_id, identities=known,
                              created_at=when(main.meta.get("created")), merged=merged),
        verifications=verifications,
        facts=facts,
        do_not_ask=_do_not_ask(known, facts, contact),
        handoffs=open_first,
        journey=_journey(everyone, conversations),
        turns=turn_list,
        flags=_flags(everyone, settings.human_request_threshold),
        merges=[Merge(customer_id=c, via=via, at=moment(at))
                for c, via, at in identity.merge_records(main.meta)],
        last_human_contact=contact,
        summary=next((h.summary for h in open_first if h.summary), None),
        generated_at=moment(now),
    )
    tag = etag([(d.customer_id, d.meta, d.verifications) for d in everyone], turns, now)
    return brief, tag


def _journey(everyone: list[CustomerData], conversations: dict[str, Any]) -> list[JourneyStep]:
    """Each conversation from its earliest known moment, in time order."""
    starts = {c: int(r["started_at"]) for c, r in conversations.items()}
    for d in everyone:
        for k, v in d.meta.items():
            if k.startswith("s:") and k[2:] in starts:
                starts[k[2:]] = min(starts[k[2:]], int(v))
    steps = [JourneyStep(channel=r["channel"], conversation_id=c, source=r.get("source"),
                         started_at=moment(starts[c])) for c, r in conversations.items()]
    return sorted(steps, key=lambda j: j.started_at)


def _verifications(everyone: list[CustomerData], now: int) -> list[Verification]:
    out = []
    for d in everyone:
        for v in d.verifications.values():
            out.append(Verification.model_validate({
                **v, "verified_at": iso(v["verified_at"]), "expires_at": iso(v["expires_at"]),
                "expired": v["expires_at"] <= now}))
    return sorted(out, key=lambda v: v.verified_at, reverse=True)


def _facts(everyone: list[CustomerData]) -> dict[str, Fact]:
    latest: dict[str, dict[str, Any]] = {}
    for d in everyone:
        for key, f in d.facts.items():
            if key not in latest or f["at"] > latest[key]["at"]:
                latest[key] = f
    return {k: Fact.model_validate({**f, "at": iso(f["at"])}) for k, f in sorted(latest.items())}


def _identities(everyone: list[CustomerData], active: set[tuple[str, str]]
                ) -> list[KnownIdentity]:
    seen: dict[str, KnownIdentity] = {}
    for d in everyone:
        for rec in d.identities.values():
            kind, value = rec["kind"], rec["value"]
            item = KnownIdentity(kind=kind, value=value, verified=(kind, value) in active,
                                 linked=rec.get("state") == "linked", channel=rec.get("channel"),
                                 first_seen=when(rec.get("at")))
            prev = seen.get(f"{kind}:{value}")
            if prev is not None:
                # Held by several merged customers: linked if any of them links it, first seen
                # where and when the earliest of them saw it (as one customer's record keeps).
                first, later = ((prev, item) if item.first_seen is None or (
                    prev.first_seen is not None and prev.first_seen <= item.first_seen)
                    else (item, prev))
                item = first.model_copy(update={"linked": first.linked or later.linked,
                                                "channel": first.channel or later.channel})
            seen[f"{kind}:{value}"] = item
    return sorted(seen.values(), key=lambda i: (not i.verified, not i.linked, i.kind, i.value))


async def last_human_contact(deps: Deps, tenant: str, cus_id: str) -> HumanContact | None:
    """How the customer's last conversation with a person ended, from its meta alone (one
    read): what a bot platform's adapter hands the bot on its next turn."""
    (meta,) = await deps.store.read_meta(tenant, [cus_id])
    return _human_contact([meta])


def _human_contact(metas: list[dict[str, str]]) -> HumanContact | None:
    """The latest hand-off a person closed with the customer (from each customer's meta, read
    with the brief anyway)."""
    found = [c for meta in metas if (c := handoff_service.human_contact(meta)) is not None]
    if not found:
        return None
    last = max(found, key=lambda c: int(c.get("closed_ms") or 0))
    return HumanContact(
        handoff_id=last["id"], agent_id=last["agent_id"], status=last["status"],
        outcome=last.get("outcome") or "resolved", note=last.get("note") or None,
        handed_back_to=last.get("to") or None, at=when(last.get("closed_ms")))


def _do_not_ask(known: list[KnownIdentity], facts: dict[str, Fact],
                contact: HumanContact | None) -> list[str]:
    order = [i.kind for i in known if i.verified]
    order += list(facts)
    if contact is not None:
        # What they told the agent is in the note: nobody asks them to tell it again.
        order.append(HUMAN_CONTACT_ITEM)
    order += [i.kind for i in known if i.kind not in identity.NOT_ASKED]
    return list(dict.fromkeys(order))


def _flags(everyone: list[CustomerData], threshold: int) -> list[Flag]:
    flags: list[Flag] = []
    asks: list[dict[str, Any]] = []
    for d in everyone:
        for key, rec in d.flags.items():
            if key.startswith(HUMAN_COUNTER):
                asks.append(rec)
            else:
                flags.append(Flag(kind=rec["kind"], term=rec["term"], turn_id=rec["turn_id"],
                                  conversation_id=rec["conversation_id"],
                                  phrase=rec.get("phrase")))
    if len(asks) >= threshold:
        last = max(asks, key=lambda r: r["at"])
        flags.append(Flag(kind="frustration", term=HUMAN_TERM, turn_id=last["turn_id"],
                          conversation_id=last["conversation_id"], count=len(asks)))
    return flags
