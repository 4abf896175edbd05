"""The store: the only code that talks to Redis, one part per concern.

`Store` opens the deployment's secrets and holds the parts; each part's methods are one
operation each, deciding nothing (what to keep, what to erase, whom to follow is the services').
"""

from __future__ import annotations

import os
from typing import Any

from handoff.kernel.errors import StoreUnavailable
from handoff.store import keys, kpis
from handoff.store.access import Access
from handoff.store.alerts import AlertStore
from handoff.store.audit import AuditTrail
from handoff.store.connection import Client, aclose, map_exceptions
from handoff.store.customers import Customers
from handoff.store.events import Events
from handoff.store.handoffs import Handoffs
from handoff.store.keys import Digester
from handoff.store.notices import Notices
from handoff.store.operations import operations
from handoff.store.webhooks import WebhookStore

# The share of its timeout a WAIT gives a replica while none has been confirming writes (see
# confirm_replicated): long enough for one round trip to a replica, short enough not to stall.
PROBE_SHARE = 10


@operations(untimed=frozenset({"close"}))
class Store:
    """Holds a Redis or Redis Cluster client and the store's parts."""

    def __init__(self, client: Client, blocking: Client, digester: Digester,
                 *, events_maxlen: int, desk_secret: bytes = b"") -> None:
        # redis-py types every reply as `bytes | str | list | ...` whatever decode_responses
        # says; replies are decoded by hand, so the clients are used untyped.
        self.client: Any = client
        self.blocking: Any = blocking
        self.digester = digester
        self.desk_secret = desk_secret
        self._replica_missing = False  # see confirm_replicated
        self.notices = Notices(client, blocking)
        self.audit = AuditTrail(client, digester)
        self.customers = Customers(client, digester, notices=self.notices, audit=self.audit,
                                   events_maxlen=events_maxlen)
        self.handoffs = Handoffs(client, digester, events_maxlen=events_maxlen)
        self.access = Access(client, digester, self.notices)
        self.events = Events(client, blocking)
        self.webhooks = WebhookStore(client)
        self.kpis = kpis.KpiStore(client, digester)
        self.alerts = AlertStore(client, events_maxlen=events_maxlen)

    @classmethod
    async def open(cls, client: Client, blocking: Client, *, events_maxlen: int) -> Store:
        """Load (or create, once, for the whole deployment) the index digest and panel token
        secrets."""
        secrets = []
        with map_exceptions():
            for name in (keys.index_secret(), keys.desk_secret()):
                await client.set(name, os.urandom(32), nx=True)
                secrets.append(await client.get(name))
        secret, desk = secrets
        if not isinstance(secret, bytes) or not isinstance(desk, bytes):
            raise StoreUnavailable("the deployment's secrets could not be read")
        return cls(client, blocking, Digester(secret), events_maxlen=events_maxlen,
                   desk_secret=desk)

    async def close(self) -> None:
        await aclose(self.client)
        await aclose(self.blocking)

    async def ping(self) -> bool:
        with map_exceptions():
            return bool(await self.client.ping())

    async def tenants(self) -> list[str]:
        """Every tenant that ever had a key or a hand-off."""
        with map_exceptions():
            return sorted(t.decode() for t in await self.client.smembers(keys.tenants()))

    def write_mark(self) -> int | None:
        """Where this process's writes go from now on, for `confirm_replicated`; None where
        that cannot be told (a cluster client spreads writes over many connections)."""
        epoch = getattr(self.client, "epoch", None)
        return int(epoch()) if epoch is not None else None

    async def confirm_replicated(self, mark: int | None, timeout_ms: int) -> None:
        """Return once a replica holds every write made since `mark`; StoreUnavailable if
        none confirms them within `timeout_ms`, or if the connection they went out on has been
        lost meanwhile (their fate is then unknown, and a retry is safe).

        Once a WAIT has found no replica, later ones only probe (a tenth of the timeout) until
        one confirms again: every command of the process shares the connection and queues
        behind a WAIT, so waiting out the whole timeout again and again would stall reads too,
        and WAITs queued back to back would outlast the client's command timeout.
        """
        wait_ms = timeout_ms
        if self._replica_missing:
            wait_ms = max(1, timeout_ms // PROBE_SHARE)
        with map_exceptions():
            confirmed = await self.client.replicated(1, wait_ms, since=mark)
        self._replica_missing = confirmed < 1
        if confirmed < 1:
            raise StoreUnavailable("no replica confirmed the write in time", retry_after=1)
