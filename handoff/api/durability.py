"""`HANDOFF_WRITE_ACK=replica`: a write is acknowledged only once a replica holds it.

Redis replicates asynchronously: a primary that dies takes with it whatever it had answered but
not yet sent to a replica, and a failover promotes a replica without it. Here every request that
may write (anything but GET, HEAD and OPTIONS) and succeeded is held until WAIT confirms that a
replica has every write made since the request began; if none does within
`write_ack_timeout`, the request answers 503 with Retry-After instead, and the client's retry
is idempotent like any other. It is one check per request, after all of its writes, and
concurrent requests share one WAIT (see `Multiplexed.replicated`). The request pipeline
(handoff/api/middleware.py) runs it only in that mode: `local` costs nothing.
"""

from __future__ import annotations

from typing import NamedTuple

from aiohttp import web

from handoff.api.state import DEPS
from handoff.services.deps import Deps

READS = frozenset({"GET", "HEAD", "OPTIONS"})


class Mark(NamedTuple):
    """Where a request's writes begin (see `Store.write_mark`)."""

    deps: Deps
    epoch: int | None


def mark(request: web.Request) -> Mark | None:
    """Where the request's writes begin; None for a request that cannot write."""
    if request.method in READS:
        return None
    deps = request.app[DEPS]
    return Mark(deps, deps.store.write_mark())


async def confirm(mark: Mark, response: web.StreamResponse) -> None:
    """Hold a successful write's answer until a replica confirms it (StoreUnavailable, a 503,
    when none does in time); a failed or already streaming answer is not held."""
    if 200 <= response.status < 300 and not response.prepared:
        await mark.deps.store.confirm_replicated(
            mark.epoch, int(mark.deps.settings.write_ack_timeout * 1000))
