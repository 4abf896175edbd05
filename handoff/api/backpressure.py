"""Back-pressure: a process refuses work it cannot take (429/503) instead of falling over.

Limits, all per process (run more processes for more): requests in flight, open event streams
(in all, per tenant and per API key), and a token bucket per API key. They are counted in memory
because they protect this process; a key's fair share across processes is its limit times the
process count.

A process with no room left says 503 (another process may have room); a tenant or key at its own
share of event streams gets 429: it is holding what it may, and other tenants still get in.
"""

from __future__ import annotations

import time

from handoff.kernel.errors import StoreUnavailable, TooManyRequests
from handoff.kernel.memo import Memo
from handoff.kernel.settings import Settings

# Operations probes must answer even (especially) when the process is saturated.
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz"})
# Streams are not known to end at any given time: come back in a while.
STREAM_RETRY_S = 5


class Busy(StoreUnavailable):
    """503 with Retry-After: this process is at capacity, another may not be."""

    title, slug = "Service Unavailable", "busy"


class Backpressure:
    def __init__(self, settings: Settings) -> None:
        self.max_requests = settings.max_concurrent_requests
        self.max_streams = settings.max_event_streams
        self.max_streams_per_tenant = settings.max_event_streams_per_tenant
        self.max_streams_per_key = settings.max_event_streams_per_key
        self.rate = settings.requests_per_second_per_key
        self.burst = max(1.0, self.rate * 2)
        self.in_flight = 0
        self.streams = 0
        self.tenant_streams: dict[str, int] = {}
        self.key_streams: dict[str, int] = {}
        self._buckets: Memo[str, tuple[float, float]] = Memo(size=100_000, ttl=600.0)

    def admit(self, method: str, path: str) -> bool:
        """Count a request in flight (True), let it pass uncounted (False), or refuse it with a
        503 when the process is at capacity; a counted request ends with `done`."""
        # Event streams last for hours; they are capped on their own (open_stream). Only GETs:
        # a vendor's POST to an adapter's `/events` webhook is an ordinary request.
        if path in UNLIMITED_PATHS or (method == "GET" and path.endswith("/events")):
            return False
        if self.in_flight >= self.max_requests:
            raise Busy("this process is at capacity", retry_after=1)
        self.in_flight += 1
        return True

    def done(self) -> None:
        """A request `admit` counted has been answered."""
        self.in_flight -= 1

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

    def open_stream(self, tenant: str, key_id: str) -> None:
        """Count one more event stream of `tenant`, opened with `key_id` (for panel tokens, the
        minting key and the agent), or refuse it: 429 past the tenant's or the key's share, 503
        when the process is full."""
        if self.key_streams.get(key_id, 0) >= self.max_streams_per_key:
            raise TooManyRequests("this key holds as many event streams as it may on this "
                                  "process; close one first", retry_after=STREAM_RETRY_S)
        if self.tenant_streams.get(tenant, 0) >= self.max_streams_per_tenant:
            raise TooManyRequests("this tenant holds as many event streams as it may on this "
                                  "process; close one first", retry_after=STREAM_RETRY_S)
        if self.streams >= self.max_streams:
            raise Busy("this process holds as many event streams as it may",
                       retry_after=STREAM_RETRY_S)
        self.streams += 1
        self.tenant_streams[tenant] = self.tenant_streams.get(tenant, 0) + 1
        self.key_streams[key_id] = self.key_streams.get(key_id, 0) + 1

    def close_stream(self, tenant: str, key_id: str) -> None:
        self.streams -= 1
        for counts, name in ((self.tenant_streams, tenant), (self.key_streams, key_id)):
            left = counts.get(name, 0) - 1
            if left > 0:
                counts[name] = left
            else:
                counts.pop(name, None)  # only tenants and keys holding streams take room
