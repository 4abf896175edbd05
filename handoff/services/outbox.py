"""The webhook outbox: every customer write queues a delivery per matching subscription.

Called from the one place every customer write goes through (`identity.write`), after the write
script succeeded and before the request is answered, so an acknowledged write has its
deliveries in Redis. A tenant without subscriptions costs one in-process lookup: its (empty)
subscription list is remembered briefly, and dropped on every process as soon as any process
changes it (the invalidation stream).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

from handoff import ids, metrics
from handoff.memo import Memo
from handoff.store import Store
from handoff.store.store import CustomerWrite, Written
from handoff.store.webhooks import Delivery

NOTICE = "webhooks"
CACHE_SECONDS = 5.0
OUTCOMES = ("queued", "delivered", "failed", "dead", "dropped", "lost")


@dataclass(frozen=True, slots=True)
class Subscription:
    """What the outbox needs of a subscription: which events it wants."""

    id: str
    events: frozenset[str]

    def wants(self, event_type: str) -> bool:
        return "*" in self.events or event_type in self.events


class Outbox:
    """Queues deliveries; counts what became of them (for metrics)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.remembered: Memo[str, tuple[Subscription, ...]] = Memo(size=10_000,
                                                                      ttl=CACHE_SECONDS)
        self.counts: Counter[str] = Counter({name: 0 for name in OUTCOMES})
        # Set when this process queued something, so its worker need not wait for a poll.
        self.queued = asyncio.Event()
        store.listen(NOTICE, self._heard)

    def _heard(self, names: list[str]) -> None:
        for name in names:
            self.remembered.drop(name)

    async def changed(self, tenant: str) -> None:
        """Tell every process (this one included) that `tenant`'s subscriptions changed."""
        await self.store.invalidate(NOTICE, [self.store.webhooks.subscriptions_name(tenant)])

    async def subscriptions(self, tenant: str) -> tuple[Subscription, ...]:
        name = self.store.webhooks.subscriptions_name(tenant)
        cached = self.remembered.get(name)
        if cached is not None:
            return cached
        found = tuple(Subscription(r["id"], frozenset(r["events"]))
                      for r in (await self.store.webhooks.subscriptions(tenant)).values())
        self.remembered.set(name, found)
        return found

    def customer_digest(self, customer_id: str) -> str:
        """How the delivery index names a customer (keyed, like every other index)."""
        return self.store.digester.digest(f"webhook\x00{customer_id}")

    async def emit(self, tenant: str, customer_id: str, change: CustomerWrite,
                   written: Written, *, now_ms: int, retention_ms: int) -> None:
        """Queue the write's events (turns actually appended, then the rest) for delivery."""
        subscriptions = await self.subscriptions(tenant)
        if not subscriptions:
            return
        events = [("turn.appended", "turn", record, cursor)
                  for (_, record), cursor in zip(change.turns, written.cursors, strict=True)
                  if cursor]
        events += [(kind, kind, record, "") for kind, record in change.events]
        digest = self.customer_digest(customer_id)
        deliveries = []
        for event_type, kind, record, cursor in events:
            event_id = f"evt_{ids.ulid(now_ms)}"
            deliveries += [
                Delivery(id=f"dlv_{ids.ulid(now_ms)}", webhook=s.id, event_id=event_id,
                         type=event_type, kind=kind, record=record, cursor=cursor,
                         customer=customer_id, created_ms=now_ms, attempts=0,
                         customer_digest=digest)
                for s in subscriptions if s.wants(event_type)]
        if not deliveries:
            return
        await self.store.webhooks.enqueue(tenant, digest, deliveries, due_ms=now_ms,
                                          retention_ms=retention_ms)
        self.count("queued", len(deliveries))
        self.queued.set()

    def count(self, outcome: str, n: int = 1) -> None:
        """Record `n` deliveries queued, or attempts that ended `outcome`."""
        self.counts[outcome] += n
        metrics.webhook_delivery(outcome, n)

    def outcomes(self) -> dict[str, int]:
        """Deliveries this process queued, and what became of the attempts it made, by outcome:
        the numbers a metrics exporter reports (each only ever grows)."""
        return dict(self.counts)
