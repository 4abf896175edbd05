"""Webhook subscriptions and their delivery queue, all in the tenant's hash slot.

A delivery is a hash (`wh:d:<id>`) plus its place in one of two sorted sets: the tenant's due
queue (scored by when it is next due; a claim moves that to the end of its lease) or a
subscription's dead letters (ordered by id). Every multi-key step is one Lua script,
so the same code runs on a Redis Cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from handoff.store import codec, keys, scripts
from handoff.store.connection import Client, map_exceptions
from handoff.store.operations import operations

# The fields every queued delivery is written with, in this order (see `Delivery`).
FIELDS = ("id", "webhook", "event_id", "type", "t", "d", "c", "customer", "created_ms",
          "attempts", "cdig")


@dataclass(frozen=True)
class Owed:
    """An outbox entry: one event a customer write owes its subscriptions. `info` is what the
    service recorded before the write (ids, type; msgpack), `record` and `cursor` what the
    write stored (the cursor of an appended turn, else empty)."""

    field: str
    info: bytes
    record: bytes
    cursor: str
    # An alert's: the record of the conversation its turn was said in (see services/alerts.py).
    conversation: bytes = b""

    @classmethod
    def parse(cls, flat: list[bytes]) -> list[Owed]:
        """From `[field, msgpack [info, record, cursor(, conversation)], ...]`, as the scripts
        answer."""
        out = []
        for i in range(0, len(flat), 2):
            info, record, cursor, *conversation = codec.unpack_bytes(flat[i + 1])
            out.append(cls(flat[i].decode(), info, record, cursor.decode(),
                           conversation[0] if conversation else b""))
        return out


@dataclass(frozen=True)
class Delivery:
    """One event on its way to one subscription; `record` is the event as stored (msgpack)."""

    id: str
    webhook: str
    event_id: str
    type: str
    kind: str
    record: bytes
    cursor: str
    customer: str
    created_ms: int
    attempts: int
    customer_digest: str
    body: bytes | None = None
    claim: str = ""
    last_error: str = ""
    last_status: int = 0
    last_attempt_ms: int = 0
    dead_ms: int = 0

    def fields(self) -> list[bytes | str | int]:
        return [self.id, self.webhook, self.event_id, self.type, self.kind, self.record,
                self.cursor, self.customer, self.created_ms, self.attempts, self.customer_digest]

    @classmethod
    def from_flat(cls, flat: list[bytes]) -> Delivery:
        raw = {flat[i].decode(): flat[i + 1] for i in range(0, len(flat), 2)}
        return cls.from_hash(raw)

    @classmethod
    def from_hash(cls, raw: dict[str, bytes]) -> Delivery:
        def text(name: str) -> str:
            return raw[name].decode() if name in raw else ""

        def number(name: str) -> int:
            return int(raw[name]) if raw.get(name) else 0

        return cls(id=text("id"), webhook=text("webhook"), event_id=text("event_id"),
                   type=text("type"), kind=text("t"), record=raw.get("d", b""),
                   cursor=text("c"), customer=text("customer"),
                   created_ms=number("created_ms"), attempts=number("attempts"),
                   customer_digest=text("cdig"), body=raw.get("body"), claim=text("claim"),
                   last_error=text("last_error"), last_status=number("last_status"),
                   last_attempt_ms=number("last_attempt_ms"), dead_ms=number("dead_ms"))


@operations(timed=False)
class WebhookStore:
    """One async method per webhook operation; nothing is decided here."""

    def __init__(self, client: Client) -> None:
        self.client: Any = client
        self._enqueue: scripts.Runner = client.register_script(scripts.WEBHOOK_ENQUEUE)
        self._claim: scripts.Runner = client.register_script(scripts.WEBHOOK_CLAIM)
        self._settle: scripts.Runner = client.register_script(scripts.WEBHOOK_SETTLE)
        self._redeliver: scripts.Runner = client.register_script(scripts.WEBHOOK_REDELIVER)
        self._outbox_claim: scripts.Runner = client.register_script(scripts.OUTBOX_CLAIM)
        self._outbox_unindex: scripts.Runner = client.register_script(scripts.OUTBOX_UNINDEX)

    # -- subscriptions -----------------------------------------------------------------------

    def subscriptions_name(self, tenant: str) -> str:
        """The key whose change an invalidation notice names (processes cache its contents)."""
        return keys.webhooks(tenant)

    async def subscriptions(self, tenant: str) -> dict[str, dict[str, Any]]:
        """Every subscription of the tenant by id, signing secrets included."""
        with map_exceptions():
            raw = await self.client.hgetall(keys.webhooks(tenant))
        return {k.decode(): codec.unpack(v) for k, v in raw.items()}

    async def put_subscription(self, tenant: str, record: dict[str, Any]) -> None:
        with map_exceptions():
            await self.client.hset(keys.webhooks(tenant), record["id"], codec.pack(record))

    async def add_subscription(self, tenant: str, record: dict[str, Any], limit: int) -> bool:
        """Add one unless the tenant has `limit` already (a race may pass it by one or two)."""
        name = keys.webhooks(tenant)
        with map_exceptions():
            if await self.client.hlen(name) >= limit:
                return False
            await self.client.hset(name, record["id"], codec.pack(record))
        return True

    async def remove_subscription(self, tenant: str, webhook_id: str) -> bool:
        """Remove a subscription and its dead letters; its pending deliveries are dropped by
        whichever process next claims them."""
        dead = keys.webhook_dead(tenant, webhook_id)
        with map_exceptions():
            removed = bool(await self.client.hdel(keys.webhooks(tenant), webhook_id))
            letters = [m.decode() for m in await self.client.zrange(dead, 0, -1)]
            await self._delete_deliveries(tenant, letters)
            await self.client.delete(dead)
        return removed

    # -- the queue ---------------------------------------------------------------------------

    async def enqueue(self, tenant: str, customer_digest: str, deliveries: list[Delivery],
                      *, due_ms: int, retention_ms: int) -> None:
        argv: list[bytes | str | int] = [due_ms, retention_ms, len(FIELDS)]
        names = [keys.webhook_due(tenant), keys.webhook_customer(tenant, customer_digest)]
        for delivery in deliveries:
            names.append(keys.webhook_delivery(tenant, delivery.id))
            argv.append(delivery.id)
            for name, value in zip(FIELDS, delivery.fields(), strict=True):
                argv += [name, value]
        with map_exceptions():
            await self._enqueue(keys=names, args=argv)

    # -- the outbox: deliveries recorded with the customer write that owes them ----------------

    async def note_outbox(self, tenant: str, customer_id: str, now_ms: int) -> None:
        """Before a write that may owe deliveries: the sweeper will look at this customer."""
        with map_exceptions():
            await self.client.zadd(keys.webhook_outbox(tenant), {customer_id: now_ms}, gt=True)

    async def outbox_done(self, tenant: str, customer_id: str, fields: list[str]) -> None:
        """The deliveries of these outbox entries are in the tenant's queue now."""
        if fields:
            with map_exceptions():
                await self.client.hdel(keys.customer(tenant, customer_id).outbox, *fields)

    async def quiet_outboxes(self, tenants: list[str], stale_before_ms: int, limit: int
                             ) -> list[tuple[str, str]]:
        """(tenant, customer) pairs noted before `stale_before_ms`, one round trip."""
        if not tenants:
            return []
        with map_exceptions():
            async with self.client.pipeline(transaction=False) as pipe:
                for tenant in tenants:
                    pipe.zrangebyscore(keys.webhook_outbox(tenant), "-inf",
                                       f"({stale_before_ms}", start=0, num=limit)
                found = await pipe.execute()
        return [(t, c.decode()) for t, ids in zip(tenants, found, strict=True) for c in ids]

    async def claim_outbox(self, tenant: str, customer_id: str, *, now_ms: int,
                           stale_before_ms: int, limit: int) -> tuple[list[Owed], int]:
        """Outbox entries older than `stale_before_ms`, taken over; and how many are left."""
        with map_exceptions():
            taken, left = await self._outbox_claim(
                keys=[keys.customer(tenant, customer_id).outbox],
                args=[now_ms, stale_before_ms, limit])
        return Owed.parse(taken), int(left)

    async def unindex_outbox(self, tenant: str, customer_id: str, stale_before_ms: int) -> None:
        with map_exceptions():
            await self._outbox_unindex(keys=[keys.webhook_outbox(tenant)],
                                       args=[customer_id, stale_before_ms])

    async def tenants_due(self, tenants: list[str], now_ms: int) -> list[str]:
        """The tenants with at least one delivery due now (one round trip)."""
        if not tenants:
            return []
        with map_exceptions():
            async with self.client.pipeline(transaction=False) as pipe:
                for tenant in tenants:
                    pipe.zrangebyscore(keys.webhook_due(tenant), "-inf", now_ms, start=0, num=1)
                found = await pipe.execute()
        return [t for t, ids in zip(tenants, found, strict=True) if ids]

    async def claim(self, tenant: str, *, now_ms: int, lease_until_ms: int, token: str,
                    limit: int) -> list[Delivery]:
        """Take up to `limit` due deliveries under a lease until `lease_until_ms`."""
        due = keys.webhook_due(tenant)
        with map_exceptions():
            ids = [i.decode() for i in await self.client.zrangebyscore(
                due, "-inf", now_ms, start=0, num=limit)]
            if not ids:
                return []
            raw = await self._claim(
                keys=[due, *[keys.webhook_delivery(tenant, i) for i in ids]],
                args=[now_ms, lease_until_ms, token, *ids])
        return [Delivery.from_flat(flat) for flat in raw]

    async def settle(self, tenant: str, delivery: Delivery, outcome: str, *,
                     next_due_ms: int = 0, retention_ms: int = 0,
                     fields: dict[str, bytes | str | int] | None = None) -> str:
        """'ok', 'drop', 'retry' or 'dead' as asked, or 'lost' if the claim is no longer ours."""
        flat: list[bytes | str | int] = []
        for name, value in (fields or {}).items():
            flat += [name, value]
        with map_exceptions():
            out = await self._settle(
                keys=[keys.webhook_due(tenant), keys.webhook_delivery(tenant, delivery.id),
                      keys.webhook_dead(tenant, delivery.webhook),
                      keys.webhook_customer(tenant, delivery.customer_digest)],
                args=[outcome, delivery.claim, delivery.id, next_due_ms, retention_ms,
                      *flat])
        return str(codec.text(out))

    # -- dead letters --------------------------------------------------------------------------

    async def dead_letters(self, tenant: str, webhook_id: str, before: str | None,
                           limit: int) -> list[Delivery]:
        """Newest event first, strictly before delivery id `before`; letters past retention
        are pruned on the way."""
        dead = keys.webhook_dead(tenant, webhook_id)
        with map_exceptions():
            ids = [i.decode() for i in await self.client.zrevrangebylex(
                dead, f"({before}" if before else "+", "-", start=0, num=limit)]
            found = await self._read(tenant, ids)
            gone = [i for i in ids if i not in found]
            if gone:
                await self.client.zrem(dead, *gone)
        return [found[i] for i in ids if i in found]

    async def redeliver(self, tenant: str, webhook_id: str, delivery_id: str,
                        now_ms: int) -> bool:
        with map_exceptions():
            out = await self._redeliver(
                keys=[keys.webhook_due(tenant), keys.webhook_delivery(tenant, delivery_id),
                      keys.webhook_dead(tenant, webhook_id)],
                args=[delivery_id, now_ms])
        return bool(out)

    # -- erasure -----------------------------------------------------------------------------

    async def erase_customer(self, tenant: str, customer_digest: str) -> int:
        """Remove every pending delivery and dead letter carrying one customer's data."""
        index = keys.webhook_customer(tenant, customer_digest)
        with map_exceptions():
            ids = [i.decode() for i in await self.client.smembers(index)]
            removed = await self._delete_deliveries(tenant, ids)
            await self.client.delete(index)
        return removed

    async def _read(self, tenant: str, ids: list[str]) -> dict[str, Delivery]:
        if not ids:
            return {}
        async with self.client.pipeline(transaction=False) as pipe:
            for delivery_id in ids:
                pipe.hgetall(keys.webhook_delivery(tenant, delivery_id))
            raw = await pipe.execute()
        return {i: Delivery.from_hash({k.decode(): v for k, v in r.items()})
                for i, r in zip(ids, raw, strict=True) if r}

    async def _delete_deliveries(self, tenant: str, ids: list[str]) -> int:
        """Delete deliveries wherever they sit (idempotent steps, safe to repeat)."""
        found = await self._read(tenant, ids)
        if not found:
            return 0
        async with self.client.pipeline(transaction=False) as pipe:
            for delivery in found.values():
                pipe.zrem(keys.webhook_due(tenant), delivery.id)
                pipe.zrem(keys.webhook_dead(tenant, delivery.webhook), delivery.id)
                pipe.srem(keys.webhook_customer(tenant, delivery.customer_digest), delivery.id)
                pipe.delete(keys.webhook_delivery(tenant, delivery.id))
            await pipe.execute()
        return len(found)
