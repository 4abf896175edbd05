"""Erasure: everything of one person goes, in every customer record merged into theirs."""

from __future__ import annotations

from handoff.services import identity, webhooks
from handoff.services.deps import Deps, Principal
from schemas.admin import Erasure


async def erase(deps: Deps, principal: Principal, ref: str) -> Erasure:
    """Remove every key, index entry, hand-off, code and queue event of the customer."""
    tenant = principal.tenant
    cus_id = await identity.resolve_ref(deps, principal, ref)
    (meta,) = await deps.store.read_meta(tenant, [cus_id])
    everyone = [cus_id, *[c for c, _, _ in identity.merge_records(meta)]]
    result = Erasure(customer_id=cus_id, customers=everyone, keys=0, index_entries=0,
                     handoffs=0, queue_events=0)
    for cus in everyone:
        erased = await deps.store.erase_customer(tenant, cus,
                                                  tombstone_ms=identity.IN_FLIGHT_MS)
        result.keys += erased.keys
        result.index_entries += erased.index_entries
        result.handoffs += erased.handoffs
        result.queue_events += erased.queue_events
        result.webhook_deliveries += await webhooks.erase_customer(deps, tenant, cus)
    return result
