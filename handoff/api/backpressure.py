"""Back-pressure: a process refuses work it cannot take (429/503) instead of falling over.

Three limits, all per process (run more processes for more): requests in flight, open event
streams, and a token bucket per API key. They are counted in memory because they protect this
process; a key's fair share across processes is the rate limit times the process count.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from handoff.errors import StoreUnavailable, TooManyRequests
from handoff.memo import Memo
from handoff.settings import Settings

# Operations probes must answer even (especially) when the process is saturated.
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz"})


class Busy(StoreUnavailable):
    """503 with Retry-After: this process is at capacity, another may not be."""

    title, slug = "Service Unavailable", "busy"


class Backpressure:
    def __init__(self, settings: Settings) -> None:
        self.max_requests = settings.max_concurrent_requests
        self.max_streams = settings.max_event_streams
        self.rate = settings.requests_per_second_per_key
        self.burst = max(1.0, self.rate * 2)
        self.in_flight = 0
        self.streams = 0
        self._buckets: Memo[str, tuple[float, float]] = Memo(size=100_000, ttl=600.0)

    def take(self, key_id: str) -> None:
        """Spend one request of `key_id`'s bucket, or 429 saying when one is back."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        tokens, then = self._buckets.get(key_id) or (self.burst, now)
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens < 1.0:
            self._buckets.set(key_id, (tokens, now))
            raise TooManyRequests("this key is sending more requests than it may; slow down",
                                  retry_after=max(1, int((1.0 - tokens) / self.rate) + 1))
        self._buckets.set(key_id, (tokens - 1.0, now))

    def open_stream(self) -> None:
        if self.streams >= self.max_streams:
            raise Busy("this process holds as many event streams as it may", retry_after=5)
        self.streams += 1

    def close_stream(self) -> None:
        self.streams -= 1


def middleware(pressure: Backpressure) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Cap requests in flight; the problem middleware outside it renders the 503."""
    @web.middleware
    async def limit_in_flight(request: web.Request, handler: Any) -> web.StreamResponse:
        # Event streams last for hours; they are capped on their own (open_stream).
        if request.path in UNLIMITED_PATHS or request.path.endswith("/events"):
            return await handler(request)  # type: ignore[no-any-return]
        if pressure.in_flight >= pressure.max_requests:
            raise Busy("this process is at capacity", retry_after=1)
        pressure.in_flight += 1
        try:
            return await handler(request)  # type: ignore[no-any-return]
        finally:
            pressure.in_flight -= 1
    return limit_in_flight
