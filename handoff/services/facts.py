"""Facts: what the customer already told or proved, each with where it came from."""

from __future__ import annotations

from handoff.services import resolving, writes
from handoff.services.deps import Deps, Principal
from handoff.services.privacy import Privacy, refuse_card_numbers
from handoff.store.records import CustomerWrite, FactRecord
from schemas.conversations import FactInput, FactsBody, FactsResult, PutFacts

# Only keys that can prove something may mark a fact verified.
VERIFYING_ROLES = {"ivr", "agent"}


def add_facts(change: CustomerWrite, facts: FactsBody, *, principal: Principal, privacy: Privacy,
              channel: str | None, conversation_id: str | None, turn_id: str | None,
              source: str | None, now_ms: int) -> list[str]:
    """Queue facts (current value plus history entry plus event) on a customer write."""
    keys = []
    for key, given in facts.items():
        value, verified = ((given.value, given.verified) if isinstance(given, FactInput)
                           else (given, False))
        record: FactRecord = {
            "key": key, "value": privacy.mask_value(principal.tenant, value),
            "verified": verified and principal.role in VERIFYING_ROLES,
            "channel": channel, "conversation_id": conversation_id, "turn_id": turn_id,
            "source": source, "at": now_ms, "by": principal.key_id}
        change.set_fact(record, announce="fact.set")
        keys.append(key)
    return keys


async def put_facts(deps: Deps, principal: Principal, ref: str, body: PutFacts) -> FactsResult:
    """Set facts on a customer, merging by key; the previous values stay in the history."""
    refuse_card_numbers(*[(("facts", k), k) for k in body.facts])
    body = deps.privacy.safe_ids(body, "conversation_id", "source")
    cus_id = await resolving.resolve_ref(deps, principal, ref)
    change = CustomerWrite()
    keys = add_facts(change, body.facts, principal=principal, privacy=deps.privacy,
                     channel=body.channel,
                     conversation_id=body.conversation_id, turn_id=None, source=body.source,
                     now_ms=deps.now_ms())
    cus_id, _ = await writes.write(deps, principal.tenant, cus_id, change)
    return FactsResult(customer_id=cus_id, updated=keys)
