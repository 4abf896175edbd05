"""Slowing down whoever keeps sending wrong keys, per source address, without locking anyone out.

Failures are counted in Redis (shared by every process) per address and minute. Past the limit
the address is remembered here (and every process hears of it), and from then until the minute
ends its wrong keys get 429 instead of 401, without being counted again. A valid key is never
refused: behind a proxy, or in a contact centre behind one NAT, one misconfigured bot shares its
address with everyone else. So a blocked address's key is still looked up (a valid key's record
is usually in the store's memo: no round trip), and only a key already found wrong is refused
before that, from memory.
"""

from __future__ import annotations

import hashlib
import time

from handoff.kernel.errors import TooManyRequests
from handoff.kernel.memo import Memo
from handoff.store import Store

WINDOW_MS = 60_000


def _fingerprint(credentials: str) -> str:
    # Wrong keys are remembered, and a wrong key may be a real one with a typo: never as sent.
    return hashlib.sha256(credentials.encode(errors="surrogatepass")).hexdigest()


class AuthFailures:
    """Failed authentications per address; `check` before authenticating, `failed` after."""

    def __init__(self, store: Store, limit_per_minute: int) -> None:
        self._store = store
        self._limit = limit_per_minute
        self._blocked: Memo[str, float] = Memo(size=100_000, ttl=WINDOW_MS / 1000)
        # Credentials this process found wrong lately; a wrong key stays wrong (a new key is a
        # new random secret), so a blocked address repeating one costs no lookup.
        self._wrong: Memo[str, bool] = Memo(size=10_000, ttl=WINDOW_MS / 1000)
        # Every process hears of a block through the store's notices, so a wrong key from a
        # blocked address is refused whichever process it reaches.
        store.notices.listen("block", self._heard)

    def _heard(self, notices: list[str]) -> None:
        for notice in notices:
            address, _, until_ms = notice.rpartition(" ")
            wait = (int(until_ms) - time.time() * 1000) / 1000
            if address and wait > 0:
                self._blocked.set(address, time.monotonic() + wait)

    def _refuse_if_blocked(self, address: str | None) -> None:
        until = self._blocked.get(address or "")
        if until is not None and until > time.monotonic():
            raise TooManyRequests("too many failed authentications from this address",
                                  retry_after=max(1, int(until - time.monotonic()) + 1))

    def check(self, address: str | None, credentials: str) -> None:
        """Before authenticating: 429 for credentials already found wrong, from an address that
        is over its limit this minute. Anything else goes on to be checked."""
        if self._blocked.get(address or "") is None:  # nearly always: nothing more to do
            return
        if self._wrong.get(_fingerprint(credentials)) is not None:
            self._refuse_if_blocked(address)

    async def failed(self, address: str | None, credentials: str, now_ms: int) -> None:
        """After wrong credentials: 429 from an address over its limit (not counted again),
        else count the failure, and past the limit block the address until the next minute."""
        self._wrong.set(_fingerprint(credentials), True)
        if not address:
            return
        self._refuse_if_blocked(address)
        window = now_ms // WINDOW_MS
        access = self._store.access
        (count,) = await access.reserve([(access.auth_failures_key(address, window),
                                          WINDOW_MS * 2)])
        if count > self._limit:
            until_ms = (window + 1) * WINDOW_MS
            self._blocked.set(address, time.monotonic() + (until_ms - now_ms) / 1000)
            if count == self._limit + 1:  # once: the others only confirm it
                await self._store.notices.invalidate("block", [f"{address} {until_ms}"])
            self._refuse_if_blocked(address)
