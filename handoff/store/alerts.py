"""Supervisor alerts in Redis, in the tenant's hash slot.

An alert is a hash (`al:<id>`: its record as msgpack, its status and times) plus its place in
the tenant's lists: `al:open` or `al:acknowledged` (members scored 0, so ordered by id, which is
ordered by the time it was raised), `al:raised` (scored by that time, for the effort figures)
and `al:c:<digest>` (the customer's, for erasure). Raising and acknowledging are one Lua script
each, webhook deliveries included, so the same code runs on a Redis Cluster.

What decides whether a customer's flagged turn raises an alert at all lives in the customer's
own slot, with the turn (customer_write.lua): see services/alerts.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from handoff.store import codec, keys, records, scripts
from handoff.store.connection import Client, map_exceptions
from handoff.store.multiplex import Multiplexed
from handoff.store.operations import operations
from handoff.store.webhooks import FIELDS, Delivery

STATUSES = ("open", "acknowledged")
# Stream entries read at once when erasing a customer's events from the alert stream.
ERASE_BATCH = 1000


@dataclass(frozen=True)
class StoredAlert:
    """An alert as stored: its record (as the API shows it) and its times."""

    id: str
    record: dict[str, Any]
    status: str
    raised_ms: int
    acknowledged_ms: int | None
    acknowledged_by: str | None


def _alert(alert_id: str, raw: dict[bytes, bytes]) -> StoredAlert | None:
    if not raw or b"d" not in raw:
        return None
    return StoredAlert(id=alert_id, record=codec.unpack(raw[b"d"]),
                       status=raw.get(b"status", b"open").decode(),
                       raised_ms=int(raw.get(b"raised_ms", b"0")),
                       acknowledged_ms=int(raw[b"ack_ms"]) if b"ack_ms" in raw else None,
                       acknowledged_by=raw[b"ack_by"].decode() if b"ack_by" in raw else None)


def _deliveries(argv: list[bytes | str | int], names: list[str], tenant: str,
                deliveries: list[Delivery]) -> None:
    """Append webhook deliveries as the alert scripts take them (as webhook_enqueue.lua)."""
    argv.append(len(FIELDS))
    for delivery in deliveries:
        names.append(keys.webhook_delivery(tenant, delivery.id))
        argv.append(delivery.id)
        for name, value in zip(FIELDS, delivery.fields(), strict=True):
            argv += [name, value]


@operations(timed=False)
class AlertStore:
    """One async method per alert operation; nothing is decided here."""

    def __init__(self, client: Client, *, events_maxlen: int) -> None:
        self.client: Any = client
        self.events_maxlen = events_maxlen
        self._raise: scripts.Runner = client.register_script(scripts.source("alert_raise"))
        self._ack: scripts.Runner = client.register_script(scripts.source("alert_ack"))
        self._unmark: scripts.Runner = client.register_script(scripts.source("alert_unmark"))

    @property
    def in_order(self) -> bool:
        """Whether commands sent together reach Redis together and in order (one connection,
        auto-pipelined), rather than each on a connection of its own (a cluster)."""
        return isinstance(self.client, Multiplexed)

    def events_name(self, tenant: str) -> str:
        """The tenant's alert stream, for the event stream readers."""
        return keys.alert_events(tenant)

    async def raise_alert(self, tenant: str, alert_id: str, record: bytes, *,
                          customer_digest: str, webhook_digest: str, raised_ms: int,
                          retention_ms: int, deliveries: list[Delivery]) -> bool:
        """Store and announce an alert; False if it exists already (it was published)."""
        names = [keys.alert(tenant, alert_id), keys.alerts(tenant, "open"),
                 keys.alerts(tenant, "raised"), keys.alert_events(tenant),
                 keys.alert_customer(tenant, customer_digest), keys.webhook_due(tenant),
                 keys.webhook_customer(tenant, webhook_digest)]
        argv: list[bytes | str | int] = [raised_ms, retention_ms, self.events_maxlen,
                                          alert_id, record]
        _deliveries(argv, names, tenant, deliveries)
        with map_exceptions():
            return bool(await self._raise(keys=names, args=argv))

    async def acknowledge(self, tenant: str, alert_id: str, record: bytes, *, by: str,
                          webhook_digest: str, now_ms: int, retention_ms: int,
                          deliveries: list[Delivery]) -> str:
        """'ok', 'done' (acknowledged before) or 'missing'."""
        names = [keys.alert(tenant, alert_id), keys.alerts(tenant, "open"),
                 keys.alerts(tenant, "acknowledged"), keys.alert_events(tenant),
                 keys.webhook_due(tenant), keys.webhook_customer(tenant, webhook_digest)]
        argv: list[bytes | str | int] = [now_ms, retention_ms, self.events_maxlen, alert_id,
                                          record, by]
        _deliveries(argv, names, tenant, deliveries)
        with map_exceptions():
            return str(codec.text(await self._ack(keys=names, args=argv)))

    async def unmark(self, tenant: str, customer_id: str, kind: str, alert_id: str) -> None:
        """Let the customer raise an alert of `kind` again (in the customer's slot)."""
        with map_exceptions():
            await self._unmark(keys=[keys.customer(tenant, customer_id).flags],
                               args=[records.OPEN_ALERT + kind, alert_id])

    async def get(self, tenant: str, alert_ids: list[str]) -> dict[str, StoredAlert]:
        """The alerts that still exist, by id (one round trip)."""
        if not alert_ids:
            return {}
        with map_exceptions():
            async with self.client.pipeline(transaction=False) as pipe:
                for alert_id in alert_ids:
                    pipe.hgetall(keys.alert(tenant, alert_id))
                raw = await pipe.execute()
        found = (_alert(i, r) for i, r in zip(alert_ids, raw, strict=True))
        return {a.id: a for a in found if a is not None}

    async def listing(self, tenant: str, status: str, before: str | None, limit: int
                      ) -> list[StoredAlert]:
        """Newest first, strictly before alert id `before`; alerts gone with their retention
        are dropped from the list on the way."""
        name = keys.alerts(tenant, status)
        with map_exceptions():
            ids = [i.decode() for i in await self.client.zrevrangebylex(
                name, f"({before}" if before else "+", "-", start=0, num=limit)]
        found = await self.get(tenant, ids)
        gone = [i for i in ids if i not in found]
        if gone:
            with map_exceptions():
                await self.client.zrem(name, *gone)
        return [found[i] for i in ids if i in found]

    async def raised_between(self, tenant: str, from_ms: int, to_ms: int, limit: int
                             ) -> list[StoredAlert]:
        """Alerts raised from `from_ms` up to (not including) `to_ms`, oldest first."""
        with map_exceptions():
            ids = [i.decode() for i in await self.client.zrangebyscore(
                keys.alerts(tenant, "raised"), from_ms, f"({to_ms}", start=0, num=limit)]
        found = await self.get(tenant, ids)
        return [found[i] for i in ids if i in found]

    async def erase_customer(self, tenant: str, customer_id: str, customer_digest: str) -> int:
        """Remove every alert raised about one customer, and its events in the alert stream."""
        about = keys.alert_customer(tenant, customer_digest)
        with map_exceptions():
            ids = [i.decode() for i in await self.client.smembers(about)]
            if ids:
                async with self.client.pipeline(transaction=False) as pipe:
                    for alert_id in ids:
                        pipe.delete(keys.alert(tenant, alert_id))
                    for status in (*STATUSES, "raised"):
                        pipe.zrem(keys.alerts(tenant, status), *ids)
                    pipe.delete(about)
                    await pipe.execute()
            await self._erase_events(tenant, customer_id)
        return len(ids)

    async def _erase_events(self, tenant: str, customer_id: str) -> None:
        """The alert stream's events about the customer (the stream is bounded)."""
        stream, cursor = keys.alert_events(tenant), "-"
        needle = customer_id.encode()
        while True:
            batch = await self.client.xrange(stream, cursor, "+", count=ERASE_BATCH)
            doomed = [entry_id for entry_id, fields in batch if needle in fields.get(b"d", b"")]
            if doomed:
                await self.client.xdel(stream, *doomed)
            if len(batch) < ERASE_BATCH:
                return
            cursor = "(" + batch[-1][0].decode()
