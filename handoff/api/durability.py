"""`HANDOFF_WRITE_ACK=replica`: a write is acknowledged only once a replica holds it.

Redis replicates asynchronously: a primary that dies takes with it whatever it had answered but
not yet sent to a replica, and a failover promotes a replica without it. Here every request that
may write (anything but GET, HEAD and OPTIONS) and succeeded is held until WAIT confirms that a
replica has every write made since the request began; if none does within
`write_ack_timeout`, the request answers 503 with Retry-After instead, and the client's retry
is idempotent like any other. It is one check per request, after all of its writes, and
concurrent requests share one WAIT (see `Multiplexed.replicated`). Installed only in that mode:
`local` costs nothing.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from handoff.api.state import DEPS

READS = frozenset({"GET", "HEAD", "OPTIONS"})


@web.middleware
async def replica_ack(request: web.Request, handler: Any) -> web.StreamResponse:
    """Hold a successful write's answer until a replica confirms it (or answer 503)."""
    if request.method in READS:
        return await handler(request)  # type: ignore[no-any-return]
    deps = request.app[DEPS]
    mark = deps.store.write_mark()
    response: web.StreamResponse = await handler(request)
    if 200 <= response.status < 300 and not response.prepared:
        await deps.store.confirm_replicated(
            mark, int(deps.settings.write_ack_timeout * 1000))
    return response
