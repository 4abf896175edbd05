"""Slowing down whoever keeps failing to authenticate, per source address.

Failures are counted in Redis (shared by every process) per address and minute; an address past
the limit is also remembered here, so its next requests are refused without a round trip.
"""

from __future__ import annotations

import time

from handoff.errors import TooManyRequests
from handoff.memo import Memo
from handoff.store import Store

WINDOW_MS = 60_000


class AuthFailures:
    def __init__(self, store: Store, limit_per_minute: int) -> None:
        self._store = store
        self._limit = limit_per_minute
        self._blocked: Memo[str, float] = Memo(size=100_000, ttl=WINDOW_MS / 1000)

    def check(self, address: str | None) -> None:
        """429 for an address that is over its limit this minute."""
        until = self._blocked.get(address or "")
        if until is not None and until > time.monotonic():
            raise TooManyRequests("too many failed authentications from this address",
                                  retry_after=max(1, int(until - time.monotonic()) + 1))

    async def failed(self, address: str | None, now_ms: int) -> None:
        """Count a failure; past the limit the address waits for the next minute."""
        if not address:
            return
        window = now_ms // WINDOW_MS
        (count,) = await self._store.reserve([(self._store.auth_failures_key(address, window),
                                               WINDOW_MS * 2)])
        if count > self._limit:
            wait = (WINDOW_MS - now_ms % WINDOW_MS) / 1000
            self._blocked.set(address, time.monotonic() + wait)
            self.check(address)
