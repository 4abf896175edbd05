"""The context brief: who the customer is, what was proved, what they said, what not to ask.

Its cost is bounded by the brief's size, never by history: each customer (and each customer
merged into it) is read in one pipelined round trip of fixed commands, the turns by a bounded
XREVRANGE.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from handoff.kernel.timefmt import iso, moment, when
from handoff.services import audit, handoffs, identity, kpis, resolving, survivors
from handoff.services.conversations import turn_view
from handoff.services.deps import Deps, Principal
from handoff.services.flags import HUMAN_TERM
from handoff.services.handoffs import view as handoff_view
from handoff.store import records
from handoff.store.audit import AuditNote
from handoff.store.customers import CustomerData, Moved
from handoff.store.records import VerificationRecord
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
from schemas.handoffs import Handoff
from schemas.verification import Verification

OPEN = ("pending", "accepted")
# A customer's meta and verifications: what its part of the ETag is made of.
Verifications = tuple[dict[str, str], dict[str, VerificationRecord]]
# The do-not-ask item of a customer who has talked to a person.
HUMAN_CONTACT_ITEM = "last_human_contact"


def etag(customers: list[tuple[str, dict[str, str], dict[str, Any]]], turns: int,
         now_ms: int) -> str:
    """Changes whenever any write lands or a verification lapses; nothing else moves a brief."""
    parts = [str(turns)]
    for cus_id, meta, verifications in customers:
        lapsed = sum(1 for v in verifications.values() if v["expires_at"] <= now_ms)
        parts.append(f"{cus_id}:{records.version(meta)}:{lapsed}")
    return '"' + hashlib.sha1("|".join(parts).encode()).hexdigest()[:20] + '"'


async def read(deps: Deps, principal: Principal, ref: str, turns: int, wanted: set[str],
               viewer: audit.Viewer) -> tuple[Brief | None, str]:
    """An agent reads the brief: (None, tag) when its `If-None-Match` still holds. Either way the
    read is in the audit trail before anything is answered."""
    tenant = principal.tenant
    cus_id = await resolving.resolve_ref(deps, principal, ref, follow=False)
    # A merged customer's reads are logged under the customer that holds the context now, too.
    note = audit.note(deps, principal, cus_id, "context", viewer)
    if not wanted and deps.briefs.get((tenant, cus_id, turns)) is None:
        # Nothing to compare an ETag with: build at once, the log entry riding the build's
        # first read, instead of reading the ETag first (a round trip the brief repeats).
        result, tag = await build(deps, tenant, cus_id, turns, note)
        if result.customer.id != cus_id:
            await audit.record(deps, principal, result.customer.id, "context", viewer)
        deps.briefs.set((tenant, result.customer.id, turns), (tag, result))
        return result, tag
    # The ETag read is cheap and carries the log entry in the same round trip.
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
    async def read(target: str) -> Verifications | Moved:
        nonlocal note
        ((meta, verif),) = await deps.store.customers.read_verifications(tenant, [target], note)
        await audit.logged_if_found(deps, note, bool(meta))
        note = None
        return survivors.moved(meta) or (meta, verif)

    cus_id, (meta, verif) = await survivors.follow(cus_id, read)
    customers = [(cus_id, meta, verif)]
    merged = records.merged_ids(meta)
    if merged:
        rows = await deps.store.customers.read_verifications(tenant, merged)
        customers += [(c, m, v) for c, (m, v) in zip(merged, rows, strict=True)]
    return etag(customers, turns, deps.now_ms()), cus_id


async def build(deps: Deps, tenant: str, cus_id: str, turns: int,
                note: AuditNote | None = None) -> tuple[Brief, str]:
    """The brief of a customer (following merges) and its ETag."""
    cus_id, everyone = await _read_customers(deps, tenant, cus_id, turns, note)
    ho_ids = _latest_handoffs(deps, everyone)
    records = await deps.store.handoffs.get_handoffs(tenant, ho_ids)
    return _assemble(deps, cus_id, everyone, records, turns, deps.now_ms())


async def accepted(deps: Deps, principal: Principal, ho_id: str, agent_id: str,
                   viewer: audit.Viewer) -> tuple[Handoff, Brief, str]:
    """Accept a hand-off and build the brief it is answered with, audited with its effort
    figures, in three round trips: the claim; the customer's slot told of it with the brief's
    reads after it on the same connection; the brief's hand-offs with the audit entry."""
    tenant, turns = principal.tenant, deps.settings.brief_turns
    record, mirror = await handoffs.claim(deps, principal, ho_id, agent_id)
    reading = _read_customers(deps, tenant, record.customer_id, turns)
    if mirror is None:
        cus_id, everyone = await reading
    else:
        _, (cus_id, everyone) = await asyncio.gather(mirror, reading)
    now = deps.now_ms()
    conversations = _conversations(everyone)
    verifications = _verifications(everyone, now)
    figures = kpis.accept_figures(
        record, _journey(everyone, conversations), verifications,
        {h: at for d in everyone for h, at in d.handoff_times.items()})
    records, _ = await asyncio.gather(
        deps.store.handoffs.get_handoffs(tenant, _latest_handoffs(deps, everyone)),
        audit.record(deps, principal, cus_id, "accept", viewer,
                     also=kpis.at_accept(deps, tenant, cus_id, figures)))
    context, tag = _assemble(deps, cus_id, everyone, records, turns, now)
    return record, context, tag


async def _read_customers(deps: Deps, tenant: str, cus_id: str, turns: int,
                          note: AuditNote | None = None) -> tuple[str, list[CustomerData]]:
    """The customer (after following merges) and everyone merged into it, read."""
    settings = deps.settings

    async def read(target: str) -> CustomerData | Moved:
        nonlocal note
        (data,) = await deps.store.customers.read_customers(tenant, [target], turns,
                                                            settings.brief_handoffs, note)
        await audit.logged_if_found(deps, note, data.exists)
        note = None
        return survivors.moved(data.meta) or data

    cus_id, main = await survivors.follow(cus_id, read)
    merged = records.merged_ids(main.meta)
    everyone = [main]
    if merged:
        everyone += await deps.store.customers.read_customers(tenant, merged, turns,
                                                              settings.brief_handoffs)
    return cus_id, everyone


def _latest_handoffs(deps: Deps, everyone: list[CustomerData]) -> list[str]:
    return sorted({h for d in everyone for h in d.handoff_ids},
                  reverse=True)[:deps.settings.brief_handoffs]


def _conversations(everyone: list[CustomerData]) -> dict[str, Any]:
    conversations: dict[str, Any] = {}
    for d in everyone:
        conversations.update(d.conversations)
    return conversations


def _assemble(deps: Deps, cus_id: str, everyone: list[CustomerData],
              handoff_records: list[dict[str, str]], turns: int, now: int
              ) -> tuple[Brief, str]:
    """The brief and its ETag from what was read."""
    settings = deps.settings
    main = everyone[0]
    merged = records.merged_ids(main.meta)
    listed = [handoff_view(r) for r in handoff_records]
    verifications = _verifications(everyone, now)
    facts = _facts(everyone)
    active = {(v.identity.kind, v.identity.value) for v in verifications if not v.expired}
    known = _identities(everyone, active)
    conversations = _conversations(everyone)
    entries = [e for d in everyone for e in d.turns]
    turn_list = sorted((turn_view(*records.turn_of(e), conversations) for e in entries),
                       key=lambda t: (t.ts, t.cursor or ""))[-turns:] if turns else []
    open_first = sorted(listed, key=lambda h: (h.status not in OPEN, -h.created_at.timestamp()))
    contact = _human_contact([d.meta for d in everyone])
    brief = Brief(
        customer=CustomerView(id=cus_id, identities=known,
                              created_at=when(records.created_ms(main.meta)), merged=merged),
        verifications=verifications,
        facts=facts,
        do_not_ask=_do_not_ask(known, facts, contact),
        handoffs=open_first,
        journey=_journey(everyone, conversations),
        turns=turn_list,
        flags=_flags(everyone, settings.human_request_threshold),
        merges=[Merge(customer_id=c, via=via, at=moment(at))
                for c, via, at in records.merge_records(main.meta)],
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
        for c, started in records.conversation_starts(d.meta).items():
            if c in starts:
                starts[c] = min(starts[c], started)
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
    latest: dict[str, records.FactRecord] = {}
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
    (meta,) = await deps.store.customers.read_meta(tenant, [cus_id])
    return _human_contact([meta])


def _human_contact(metas: list[dict[str, str]]) -> HumanContact | None:
    """The latest hand-off a person closed with the customer (from each customer's meta, read
    with the brief anyway)."""
    found = [c for meta in metas if (c := records.human_contact(meta)) is not None]
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


# The lexicon's finer kinds are all risks to the brief's reader, who has always filtered on
# `kind: risk` (a lawsuit is `{"kind": "risk", "category": "legal"}`); alerts use the category.
RISK_CATEGORIES = frozenset({"risk", "legal", "churn", "complaint", "vulnerability"})


def flag_kind(category: str) -> str:
    """The brief's flag kind for a lexicon kind."""
    return "risk" if category in RISK_CATEGORIES else category


def _flags(everyone: list[CustomerData], threshold: int) -> list[Flag]:
    flags: list[Flag] = []
    asks: list[records.HumanRequest] = []
    for d in everyone:
        asks += records.human_requests(d.flags)
        flags += [Flag(kind=flag_kind(rec["kind"]), category=rec["kind"], term=rec["term"],
                       turn_id=rec["turn_id"], conversation_id=rec["conversation_id"],
                       phrase=rec.get("phrase"))
                  for rec in records.raised_flags(d.flags)]
    if len(asks) >= threshold:
        last = max(asks, key=lambda r: r["at"])
        flags.append(Flag(kind="frustration", category="frustration", term=HUMAN_TERM,
                          turn_id=last["turn_id"], conversation_id=last["conversation_id"],
                          count=len(asks)))
    return flags
