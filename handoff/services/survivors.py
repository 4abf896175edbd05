"""Following a customer that was merged into another to the one holding its context now.

A write or read may land on a customer merged meanwhile (the store answers `Moved`, or its meta
says `merged_into`): `follow` is the one loop that goes after it, a bounded number of hops.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from handoff.kernel.errors import NotFound
from handoff.services.deps import Deps
from handoff.store import records
from handoff.store.customers import Moved

T = TypeVar("T")
MAX_MOVES = 4
# How long a request in flight may still be led to a customer that is no longer there: the life
# of an erasure's tombstone and of the stub a customer abandoned in a race leaves behind.
IN_FLIGHT_MS = 24 * 3600 * 1000


async def follow(cus_id: str, step: Callable[[str], Awaitable[T | Moved]]) -> tuple[str, T]:
    """Run `step` on the customer, and again on whichever it moved to, until one does not
    move: that customer and what `step` answered there. 404 after MAX_MOVES moves."""
    for _ in range(MAX_MOVES):
        out = await step(cus_id)
        if not isinstance(out, Moved):
            return cus_id, out
        cus_id = out.survivor
    raise NotFound("no such customer")


def moved(meta: dict[str, str]) -> Moved | None:
    """The move a customer's meta records, if it was merged into another."""
    into = records.merged_into(meta)
    return Moved(into) if into else None


async def survivor(deps: Deps, tenant: str, cus_id: str, *, pending: bool = False) -> str:
    """Follow `merged_into` to the customer that holds the context now; 404 if none.

    With `pending`, the id came from an index entry or a hand-off and may name a customer whose
    first write is still on its way (or died with its process): it stands for itself, and the
    next write to it creates it.
    """
    first = cus_id

    async def step(cus: str) -> None | Moved:
        (meta,) = await deps.store.customers.read_meta(tenant, [cus])
        if not meta and pending and cus == first:
            return None
        if not meta:
            raise NotFound("no such customer")
        return moved(meta)

    found, _ = await follow(cus_id, step)
    return found
