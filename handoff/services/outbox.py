"""The webhook outbox: every customer write queues a delivery per matching subscription.

Every customer write goes through `Outbox.write` (from `writes.write`). The deliveries a write
owes are decided before it (their ids included) and recorded by the write script itself, in the
customer's own hash slot: an acknowledged write has its deliveries in Redis, whatever happens
next. They are then queued in the tenant's delivery queue (another slot, so another step) and
their outbox entries deleted. A process that dies between the two leaves the entries behind;
whichever process next writes to that customer, or the sweeper every process runs, queues them
once they are older than a lease (`HANDOFF_WEBHOOK_OUTBOX_LEASE_SECONDS`), with the same
delivery ids, so receivers de-duplicate them as any other at-least-once delivery.

A tenant without subscriptions costs one in-process lookup: its (empty) subscription list is
remembered briefly, and dropped on every process as soon as any process changes it (the
invalidation stream).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from handoff.kernel import ids, logs, metrics
from handoff.kernel.memo import Memo
from handoff.services import alerts
from handoff.store import Store, codec
from handoff.store.customers import Moved, OutboxEntries, Written
from handoff.store.records import CustomerWrite
from handoff.store.webhooks import Delivery, Owed

NOTICE = "webhooks"
CACHE_SECONDS = 5.0
OUTCOMES = ("queued", "delivered", "failed", "dead", "dropped", "lost")
# Outbox entries taken over at once, per customer and per sweep.
SWEEP_LIMIT = 100
log = logs.logger("handoff.webhooks")


@dataclass(frozen=True, slots=True)
class Subscription:
    """What the outbox needs of a subscription: which events it wants."""

    id: str
    events: frozenset[str]

    def wants(self, event_type: str) -> bool:
        return "*" in self.events or event_type in self.events


class Outbox:
    """Queues deliveries; counts what became of them (for metrics)."""

    def __init__(self, store: Store, *, lease_ms: int = 30_000,
                 crash_before_enqueue: bool = False) -> None:
        self.store = store
        self.lease_ms = lease_ms
        self.crash_before_enqueue = crash_before_enqueue
        self.remembered: Memo[str, tuple[Subscription, ...]] = Memo(size=10_000,
                                                                      ttl=CACHE_SECONDS)
        self.counts: Counter[str] = Counter({name: 0 for name in OUTCOMES})
        # Set when this process queued something, so its worker need not wait for a poll.
        self.queued = asyncio.Event()
        store.notices.listen(NOTICE, self._heard)

    def _heard(self, names: list[str]) -> None:
        for name in names:
            self.remembered.drop(name)

    async def changed(self, tenant: str) -> None:
        """Tell every process (this one included) that `tenant`'s subscriptions changed."""
        await self.store.notices.invalidate(NOTICE,
                                                    [self.store.webhooks.subscriptions_name(tenant)])

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

    async def write(self, tenant: str, customer_id: str, change: CustomerWrite, *,
                    now_ms: int, ttl_ms: int, retention_ms: int,
                    candidates: Sequence[alerts.Candidate] = ()) -> Written | Moved:
        """Apply a customer write with the webhook deliveries it owes (turns actually
        appended, then the other events) and the supervisor alerts its flagged turns may raise
        (`candidates`, see services/alerts.py), then queue and raise those."""
        entries = self._entries(await self.subscriptions(tenant), change, now_ms, candidates)
        if entries is None:
            out = await self.store.customers.write(tenant, customer_id, change, now_ms=now_ms,
                                                   ttl_ms=ttl_ms)
        else:
            out = await self._noted_write(tenant, customer_id, change, entries, now_ms=now_ms,
                                          ttl_ms=ttl_ms)
        if isinstance(out, Written) and out.owed:
            if self.crash_before_enqueue:
                # A test's fault: die exactly where a crash would lose deliveries without the
                # outbox (after the write, before the delivery queue has them).
                os.kill(os.getpid(), signal.SIGKILL)
            await self._queue(tenant, customer_id, out.owed, now_ms=now_ms,
                              retention_ms=retention_ms, settle_alerts=False)
        return out

    async def _noted_write(self, tenant: str, customer_id: str, change: CustomerWrite,
                           entries: OutboxEntries, *, now_ms: int, ttl_ms: int
                           ) -> Written | Moved:
        """The write, with the tenant's outbox index naming the customer before it lands, so
        the sweeper knows where to look if we die after it."""
        def write() -> Awaitable[Written | Moved]:
            return self.store.customers.write(tenant, customer_id, change, now_ms=now_ms,
                                              ttl_ms=ttl_ms, outbox=entries)

        note = self.store.webhooks.note_outbox(tenant, customer_id, now_ms)
        if not self.store.alerts.in_order:
            await note
            return await write()
        # One connection carries both, the note first, in the same round trip.
        noted, out = await asyncio.gather(note, write(), return_exceptions=True)
        if isinstance(out, BaseException):
            raise out
        if isinstance(noted, BaseException):
            # The write stands and what it owes is queued just below; only a crash before
            # that would now leave it to the customer's next write.
            log.warning("the outbox index was not updated before a write: %s", noted)
        return out

    def _entries(self, subscriptions: tuple[Subscription, ...], change: CustomerWrite,
                 now_ms: int, candidates: Sequence[alerts.Candidate] = ()
                 ) -> OutboxEntries | None:
        """The outbox entries a write would owe, ids and all; None if it owes nothing."""
        entries = []
        if candidates:
            wanted = [s.id for s in subscriptions if s.wants(alerts.RAISED)]
            entries += [alerts.outbox_entry(c, wanted, now_ms) for c in candidates]
        if not subscriptions:
            return OutboxEntries(now_ms - self.lease_ms, entries) if entries else None
        for ref, event_type, kind in change.announcements():
            wanted = [s.id for s in subscriptions if s.wants(event_type)]
            if not wanted:
                continue
            event_id = f"evt_{ids.ulid(now_ms)}"
            info = codec.pack({"event": event_id, "type": event_type, "kind": kind,
                               "ms": now_ms,
                               "to": [[f"dlv_{ids.ulid(now_ms)}", w] for w in wanted]})
            entries.append((ref, f"{now_ms}:{event_id}", info))
        return OutboxEntries(now_ms - self.lease_ms, entries) if entries else None

    async def _queue(self, tenant: str, customer_id: str, owed: list[Owed], *, now_ms: int,
                     retention_ms: int, settle_alerts: bool = True) -> None:
        """Put owed deliveries in the tenant's queue and raise owed alerts, then strike them
        from the outbox. Unless `settle_alerts`, alerts alone are left for the sweeper to
        strike off (it raises nothing twice): the writer's turn pays no round trip for it."""
        digest = self.customer_digest(customer_id)
        raised = [e for e in owed if alerts.is_alert(e)]
        sent = [e for e in owed if not alerts.is_alert(e)]
        deliveries = []
        for entry in sent:
            info = codec.unpack(entry.info)
            deliveries += [
                Delivery(id=delivery_id, webhook=webhook, event_id=info["event"],
                         type=info["type"], kind=info["kind"], record=entry.record,
                         cursor=entry.cursor, customer=customer_id, created_ms=info["ms"],
                         attempts=0, customer_digest=digest)
                for delivery_id, webhook in info["to"]]
        published: list[alerts.Raised] = []

        async def publish() -> None:
            published.extend(await alerts.publish(self.store, tenant, customer_id, raised,
                                                  webhook_digest=digest,
                                                  retention_ms=retention_ms))

        steps: list[Awaitable[object]] = [publish()] if raised else []
        if deliveries:
            steps.append(self.store.webhooks.enqueue(tenant, digest, deliveries, due_ms=now_ms,
                                                     retention_ms=retention_ms))
        # Both in the tenant's slot: on one connection they share a round trip.
        await asyncio.gather(*steps)
        if sent or settle_alerts:
            await self.store.webhooks.outbox_done(tenant, customer_id, [e.field for e in owed])
        queued = len(deliveries) + sum(r.deliveries for r in published)
        self.count("queued", queued)
        if queued:
            self.queued.set()

    async def sweep(self, now_ms: int, retention_ms: Callable[[str], int]) -> int:
        """Queue the deliveries of customers that went quiet with outbox entries left over (a
        process died between a write and its queuing); how many events were recovered."""
        stale_before = now_ms - self.lease_ms
        recovered = 0
        for tenant, customer_id in await self.store.webhooks.quiet_outboxes(
                await self.store.tenants(), stale_before, SWEEP_LIMIT):
            owed, left = await self.store.webhooks.claim_outbox(
                tenant, customer_id, now_ms=now_ms, stale_before_ms=stale_before,
                limit=SWEEP_LIMIT)
            if owed:
                await self._queue(tenant, customer_id, owed, now_ms=now_ms,
                                  retention_ms=retention_ms(tenant))
                recovered += len(owed)
            if not left:
                await self.store.webhooks.unindex_outbox(tenant, customer_id, stale_before)
        return recovered

    def count(self, outcome: str, n: int = 1) -> None:
        """Record `n` deliveries queued, or attempts that ended `outcome`."""
        self.counts[outcome] += n
        metrics.webhook_delivery(outcome, n)

    def outcomes(self) -> dict[str, int]:
        """Deliveries this process queued, and what became of the attempts it made, by outcome:
        the numbers a metrics exporter reports (each only ever grows)."""
        return dict(self.counts)
