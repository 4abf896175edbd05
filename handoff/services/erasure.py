"""Erasure: everything of one person goes, in every customer record merged into theirs.

What goes is decided here: the customer's keys, the index entries that lead to it, the
wrong-code counts kept under its conversations and identities, its hand-offs with their
continuation codes and queue events, the webhook deliveries that carry its data, and the
supervisor alerts raised about it.
"""

from __future__ import annotations

from handoff.services import alerts, resolving, survivors, webhooks
from handoff.services.deps import Deps, Principal
from handoff.store import records
from schemas.admin import Erasure


async def erase(deps: Deps, principal: Principal, ref: str) -> Erasure:
    """Remove every key, index entry, hand-off, code and queue event of the customer."""
    tenant = principal.tenant
    cus_id = await resolving.resolve_ref(deps, principal, ref)
    (meta,) = await deps.store.customers.read_meta(tenant, [cus_id])
    everyone = [cus_id, *[m.customer_id for m in records.merge_records(meta)]]
    result = Erasure(customer_id=cus_id, customers=everyone, keys=0, index_entries=0,
                     handoffs=0, queue_events=0)
    for cus in everyone:
        await _erase_one(deps, tenant, cus, result)
    return result


async def _erase_one(deps: Deps, tenant: str, cus_id: str, result: Erasure) -> None:
    store = deps.store
    # The tombstone goes first: from then on no write can land, so none can outlive the
    # erasure by arriving while it runs.
    remains = await store.customers.close_customer(tenant, cus_id,
                                                   tombstone_ms=survivors.IN_FLIGHT_MS)
    result.index_entries += await store.customers.unlink(
        tenant, cus_id, identities=remains.identities, conversations=remains.conversations)
    await store.access.forget_failures(tenant, conversations=remains.conversations,
                                       callers=remains.identities)
    handoffs, codes = await store.handoffs.erase_handoffs(tenant, remains.handoff_ids)
    result.handoffs += handoffs
    await store.access.drop_codes(tenant, codes)
    result.keys += await store.customers.delete_customer(tenant, cus_id)
    # Queue events name the customer in their record (the stream is the tenant's, bounded).
    result.queue_events += await store.handoffs.erase_queue_events(tenant, cus_id)
    result.webhook_deliveries += await webhooks.erase_customer(deps, tenant, cus_id)
    result.alerts += await alerts.erase_customer(deps, tenant, cus_id)
    # What the effort figures remember of the customer (its counts name no one and stay).
    result.keys += await store.kpis.erase_customer(tenant, cus_id)
