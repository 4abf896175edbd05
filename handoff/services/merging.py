"""Merges: one customer's context joined to another's, when a caller proves to be a known
customer (a continuation code, a verified identity) or a first-contact race made two."""

from __future__ import annotations

from handoff.services import survivors, writes
from handoff.services.deps import Deps
from handoff.store.records import CustomerWrite


async def merge(deps: Deps, tenant: str, into: str, other: str, *, via: str) -> list[str]:
    """Join `other`'s context to `into`'s; answers the customers merged (empty if already one).

    Nothing is copied: the survivor records the merge, the other customer points at it, and every
    index entry of the other moves over. The brief then reads both, so history stays where it was
    written and each step is a single-slot operation that is safe to repeat.
    """
    into = await survivors.survivor(deps, tenant, into, pending=True)
    other = await survivors.survivor(deps, tenant, other, pending=True)
    if into == other:
        return []
    (other_meta,) = await deps.store.customers.read_meta(tenant, [other])
    keep = merge_note(other, via=via, now_ms=deps.now_ms())
    carried = keep.carry_merges(other_meta)
    into, _ = await writes.write(deps, tenant, into, keep)
    pointer = CustomerWrite()
    pointer.mark_merged_into(into)
    await writes.write(deps, tenant, other, pointer)
    conversations, identities = await deps.store.customers.read_links(tenant, other)
    await deps.store.customers.link(tenant, into, conversations=conversations,
                                    identities=identities, ttl_ms=deps.retention_ms(tenant),
                                    overwrite=True)
    return [other, *carried]


def merge_note(other: str, *, via: str, now_ms: int) -> CustomerWrite:
    """What the survivor of a merge records of `other`."""
    change = CustomerWrite()
    change.note_merge(other, via=via, at=now_ms)
    change.announce("customer.merged", {"customer_id": other, "via": via, "at": now_ms})
    return change


async def retire(deps: Deps, tenant: str, phantom: str, *, into: str) -> None:
    """Send whatever resolves to a customer made for this request, and abandoned, to `into`.

    Between our linking an entry to it and taking the entry back, another request may have
    resolved that entry and written there: that write is kept, as a merge into the winner.
    """
    if await deps.store.customers.redirect(tenant, phantom, into, stub_ms=survivors.IN_FLIGHT_MS):
        await writes.write(deps, tenant, into, merge_note(phantom, via="first-contact",
                                                          now_ms=deps.now_ms()))
