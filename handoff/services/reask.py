"""Re-asks: an agent asking the customer for something the context already holds.

This is the failure handoff exists to prevent, so it is detected in every agent turn (from any
desk), recorded on the customer (a `reask` flag and event) and counted per tenant. The panel
asks the same detector before a reply is sent, so there is one definition of a re-ask.

A turn re-asks a topic when one of the topic's phrases sits in a sentence that *asks* for it (a
request cue before the phrase, or a short question ending on it) and the sentence does not show
that the agent already has it ("your account ending 5678", "I can see your email", the value
itself). Phrases are matched whole-word and case-insensitively.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from handoff.kernel import metrics
from handoff.services import identity, kpis, resolving, writes
from handoff.services.deps import Deps, Principal
from handoff.services.reask_detector import TURN_CHARS, Hit, Known
from handoff.store import records
from handoff.store.records import CustomerWrite

# What one post may make the service check, however many turns it carries (a history imported
# in bulk is checked only as far as this budget goes).
POST_CHARS = 20_000


def known_of(facts: Mapping[str, records.FactRecord],
             identities: Mapping[str, records.IdentityRecord]) -> dict[str, list[Known]]:
    """What a customer's stored facts and identities hold, by fact key and identity kind.

    Every identity the customer gave counts, claimed or proved, as in the brief's do-not-ask
    list: asking for it again is asking them to repeat themselves either way.
    """
    out: dict[str, list[Known]] = {}
    for key, fact in facts.items():
        out.setdefault(key, []).append(Known(key, str(fact["value"])))
    for record in identities.values():
        kind = record["kind"]
        if kind in identity.NOT_ASKED:
            continue  # internal ids a customer would not know
        out.setdefault(kind, []).append(Known(kind, str(record["value"])))
    return out


async def known(deps: Deps, tenant: str, cus_id: str) -> dict[str, list[Known]]:
    """The customer's (and merged customers') facts and identities: small hashes, never the
    transcript, so this costs the same however long the history is."""
    rows = await deps.store.customers.read_known(tenant, [cus_id])
    merged = records.merged_ids(rows[0][0])
    rows += await deps.store.customers.read_known(tenant, merged) if merged else []
    out: dict[str, list[Known]] = {}
    for _, ids, facts in rows:
        for key, items in known_of(facts, ids).items():
            out.setdefault(key, []).extend(items)
    return out


async def check(deps: Deps, principal: Principal, ref: str, text: str) -> list[Hit]:
    """What `text` would re-ask of the customer `ref` (the panel asks before sending)."""
    cus_id = await resolving.resolve_ref(deps, principal, ref)
    detector = deps.reasks
    lowered = detector.candidate(text)
    if lowered is None:
        return []
    hits = detector.detect_read(lowered, await known(deps, principal.tenant, cus_id))
    await kpis.warned(deps, principal, cus_id, [h.topic for h in hits])
    return hits


@dataclass(frozen=True, slots=True)
class AgentTurn:
    turn_id: str
    conversation_id: str
    text: str


async def record(deps: Deps, tenant: str, cus_id: str, turns: list[AgentTurn]) -> int:
    """Detect re-asks in agent turns just appended; flag, announce and count each. Answers how
    many were found. Only called for turns that were new, so a retried post counts nothing."""
    detector = deps.reasks
    budget, checked = POST_CHARS, []
    for turn in turns:
        if budget <= 0:
            break
        checked.append(turn)
        budget -= min(len(turn.text), TURN_CHARS)
    asking = [(t, lowered) for t in checked if (lowered := detector.candidate(t.text))]
    if not asking:
        return 0
    have = await known(deps, tenant, cus_id)
    change = CustomerWrite()
    topics: list[str] = []
    now = deps.now_ms()
    for turn, lowered in asking:
        for hit in detector.detect_read(lowered, have):
            change.flag_reask(hit.topic, hit.phrase, turn_id=turn.turn_id,
                              conversation_id=turn.conversation_id, at=now, announce="reask")
            topics.append(hit.topic)
    if topics:
        await writes.write(deps, tenant, cus_id, change)
        await kpis.reasked(deps, tenant, cus_id, topics)
        for topic in topics:
            metrics.reask(tenant, topic)
    return len(topics)


async def counts(deps: Deps, tenant: str) -> dict[str, int]:
    """Re-asks detected in `tenant` since it began, by topic: what a metrics exporter reads."""
    return await deps.store.access.reask_counts(tenant)
