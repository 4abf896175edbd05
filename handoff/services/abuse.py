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
        # Every process hears of a block through the store's notices, so a valid key from a
        # blocked address is refused whichever process it reaches.
        store.listen("block", self._heard)

    def _heard(self, notices: list[str]) -> None:
        for notice in notices:
            address, _, until_ms = notice.rpartition(" ")
            wait = (int(until_ms) - time.time() * 1000) / 1000
            if address and wait > 0:
                self._blocked.set(address, time.monotonic() + wait)

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
            until_ms = (window + 1) * WINDOW_MS
            self._blocked.set(address, time.monotonic() + (until_ms - now_ms) / 1000)
            if count == self._limit + 1:  # once: the others only confirm it
                await self._store.invalidate("block", [f"{address} {until_ms}"])
            self.check(address)
