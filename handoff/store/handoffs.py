"""Hand-offs (tenant slot): records, their queues by status, and the tenant's queue events."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from handoff.store import codec, keys, kpis, scripts
from handoff.store.connection import Client, map_exceptions
from handoff.store.operations import operations

HANDOFF_STATUSES = ("pending", "accepted", "resolved", "cancelled", "expired", "handed_back")


@dataclass
class TransitionOutcome:
    result: str  # "ok", "conflict" or "missing"
    previous: str | None
    record: dict[str, str]
    expired_now: bool = False


def _flat(record: dict[str, str]) -> list[str]:
    flat: list[str] = []
    for k, v in record.items():
        flat += [k, v]
    return flat


@operations()
class Handoffs:
    """Hand-off records and queues; every change in one script, in the tenant's slot."""

    def __init__(self, client: Client, digester: keys.Digester, *, events_maxlen: int) -> None:
        self.client: Any = client
        self.digester = digester
        self.events_maxlen = events_maxlen
        self._create: scripts.Runner = client.register_script(scripts.HANDOFF_CREATE)
        self._transition: scripts.Runner = client.register_script(scripts.HANDOFF_TRANSITION)
        self._erase: scripts.Runner = client.register_script(scripts.HANDOFF_ERASE)

    def _status_queues(self, tenant: str, queue: str) -> list[str]:
        out: list[str] = []
        for status in HANDOFF_STATUSES:
            out += [keys.queue(tenant, status, queue), keys.queue(tenant, status, None)]
        return out

    async def create_handoff(self, tenant: str, record: dict[str, str], *, score: float,
                             deadline_ms: int, now_ms: int, idempotency: str | None,
                             idempotency_ttl_ms: int, fingerprint: str, retention_ms: int
                             ) -> tuple[str, str]:
        """("created" | "existing" | "mismatch", hand-off id)."""
        idem_key = idempotency or keys.idempotency(tenant, "-", "-")
        ho_keys = [keys.handoff(tenant, record["id"]), keys.queue_events(tenant),
                   keys.queue(tenant, "pending", record["queue"]),
                   keys.queue(tenant, "pending", None), keys.queue(tenant, "deadline", None),
                   idem_key, *kpis.create_keys(tenant, now_ms)]
        with map_exceptions():
            # The tenant index is idempotent and its own key: it travels with the script.
            _, out = await asyncio.gather(
                self.client.sadd(keys.tenants(), tenant),
                self._create(keys=ho_keys, args=[
                    now_ms, self.events_maxlen, score, deadline_ms,
                    idempotency_ttl_ms if idempotency else 0, fingerprint, retention_ms,
                    *_flat(record)]))
        return out[0].decode(), out[1].decode()

    def idempotency_key(self, tenant: str, principal: str, key: str) -> str:
        return keys.idempotency(tenant, principal, self.digester.digest(key))

    async def transition_handoff(self, tenant: str, ho_id: str, *, allowed: list[str],
                                 target: str, event: str, fields: dict[str, str], now_ms: int,
                                 retention_ms: int) -> TransitionOutcome:
        """One script, nothing read before it: the script reads the hand-off's queue itself and
        answers the hand-off as it left it."""
        kpi_keys, kpi_prefixes = kpis.transition_keys(tenant, now_ms)
        ho_keys = [keys.handoff(tenant, ho_id), keys.queue_events(tenant),
                   keys.queue(tenant, "deadline", None),
                   *(keys.queue(tenant, status, None) for status in HANDOFF_STATUSES),
                   *kpi_keys]
        # A one-queue set's name is its prefix and the queue (see keys.queue).
        prefixes = [keys.queue(tenant, status, "-")[:-1] for status in HANDOFF_STATUSES]
        with map_exceptions():
            out = await self._transition(keys=ho_keys, args=[
                now_ms, self.events_maxlen, " ".join(allowed), target, event, retention_ms,
                *prefixes, *kpi_prefixes, *_flat(fields)])
        flat_record = out[3]
        record = {flat_record[i].decode(): flat_record[i + 1].decode()
                  for i in range(0, len(flat_record), 2)}
        return TransitionOutcome(out[0].decode(), out[1].decode() or None, record,
                                 out[2] == b"1")

    async def get_handoffs(self, tenant: str, ho_ids: list[str]) -> list[dict[str, str]]:
        if not ho_ids:
            return []
        with map_exceptions():
            async with self.client.pipeline(transaction=False) as pipe:
                for ho_id in ho_ids:
                    pipe.hgetall(keys.handoff(tenant, ho_id))
                raw = await pipe.execute()
        return [codec.text_hash(r) for r in raw if r]

    async def list_handoffs(self, tenant: str, status: str, queue: str | None,
                            after: tuple[float, str] | None, limit: int) -> list[dict[str, str]]:
        """A page of one status's queue by score (priority, then age), after a cursor.

        Entries whose hand-off expired under retention are dropped from the set on the way.
        """
        name = keys.queue(tenant, status, queue)
        found: list[dict[str, str]] = []
        while len(found) < limit:
            want = limit - len(found)
            with map_exceptions():
                page = await self._page(name, after, want)
            if not page:
                break
            members = [m for m, _ in page]
            records = await self.get_handoffs(tenant, members)
            gone = set(members) - {r["id"] for r in records}
            if gone:
                with map_exceptions():
                    await self.client.zrem(name, *gone)
            found += records
            after = (page[-1][1], page[-1][0])
            if len(page) < want:
                break
        return found

    async def _page(self, name: str, after: tuple[float, str] | None, limit: int
                    ) -> list[tuple[str, float]]:
        """(member, score) pairs after a cursor: by rank while the cursor's member is still
        there, else strictly above its score."""
        if after is None:
            raw = await self.client.zrange(name, 0, limit - 1, withscores=True)
        else:
            score, member = after
            rank = await self.client.zrank(name, member)
            raw = (await self.client.zrange(name, rank + 1, rank + limit, withscores=True)
                   if rank is not None else
                   await self.client.zrangebyscore(name, f"({score!r}", "+inf", start=0,
                                                   num=limit, withscores=True))
        return [(m.decode(), float(sc)) for m, sc in raw]

    async def due_handoffs(self, tenant: str, now_ms: int, limit: int) -> list[dict[str, str]]:
        with map_exceptions():
            ids = await self.client.zrangebyscore(keys.queue(tenant, "deadline", None),
                                                  "-inf", now_ms, start=0, num=limit)
        return await self.get_handoffs(tenant, [i.decode() for i in ids])

    async def erase_handoffs(self, tenant: str, ho_ids: list[str]) -> tuple[int, list[str]]:
        """Remove hand-offs from every queue and for good: how many were found, and the
        continuation codes they had issued (their records are gone with them)."""
        found, codes = 0, []
        with map_exceptions():
            for record in await self.get_handoffs(tenant, ho_ids):
                ho_keys = [keys.handoff(tenant, record["id"]),
                           keys.queue(tenant, "deadline", None),
                           *self._status_queues(tenant, record["queue"])]
                had, code = await self._erase(keys=ho_keys, args=[])
                found += int(had)
                if code:
                    codes.append(code.decode())
        return found, codes

    async def erase_queue_events(self, tenant: str, needle: str) -> int:
        """Remove the tenant's queue events whose record holds `needle` (a customer id); the
        stream is bounded, so this reads it once."""
        stream, cursor, removed = keys.queue_events(tenant), "-", 0
        needle_bytes = needle.encode()
        with map_exceptions():
            while True:
                batch = await self.client.xrange(stream, cursor, "+", count=1000)
                doomed = [entry_id for entry_id, fields in batch
                          if needle_bytes in fields.get(b"d", b"")]
                if doomed:
                    removed += int(await self.client.xdel(stream, *doomed))
                if len(batch) < 1000:
                    return removed
                cursor = "(" + batch[-1][0].decode()
