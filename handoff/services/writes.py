"""Writing to a customer: every change to one goes through `write`, which follows the customer
if it was merged meanwhile and hands the write to the outbox, which records the webhook
deliveries it owes in the same script and then queues them."""

from __future__ import annotations

from collections.abc import Sequence

from handoff.kernel.errors import NotFound
from handoff.services import survivors
from handoff.services.alerts import Candidate
from handoff.services.deps import Deps
from handoff.store.customers import Gone, Moved, Written
from handoff.store.records import CustomerWrite


async def write(deps: Deps, tenant: str, cus_id: str, change: CustomerWrite,
                candidates: Sequence[Candidate] = ()) -> tuple[str, Written]:
    """Apply a write, following the customer if it was merged meanwhile; `candidates` are the
    supervisor alerts its flagged turns may raise (services/alerts.py).

    The first write creates the customer. One erased after we resolved it is 404, and the next
    request starts afresh.
    """
    async def attempt(target: str) -> Written | Moved:
        try:
            # With the webhook deliveries it owes, recorded in the same script and then queued.
            return await deps.outbox.write(tenant, target, change, now_ms=deps.now_ms(),
                                           ttl_ms=deps.retention_ms(tenant),
                                           retention_ms=deps.retention_ms(tenant),
                                           candidates=candidates)
        except Gone as exc:
            raise NotFound("the customer no longer exists") from exc

    return await survivors.follow(cus_id, attempt)
