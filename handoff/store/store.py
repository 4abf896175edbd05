"""A thin typed store: one async method per domain operation, nothing decided here."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from handoff.errors import StoreUnavailable
from handoff.memo import Memo
from handoff.store import codec, keys, scripts
from handoff.store.connection import Client, aclose, map_exceptions
from handoff.store.keys import KEY_INDEX, Digester
from handoff.store.reader import EventReader
from handoff.store.webhooks import Owed, WebhookStore

HANDOFF_STATUSES = ("pending", "accepted", "resolved", "cancelled", "expired", "handed_back")
AUDIT_COMMANDS = 4
# The share of its timeout a WAIT gives a replica while none has been confirming writes (see
# confirm_replicated): long enough for one round trip to a replica, short enough not to stall.
PROBE_SHARE = 10
StreamEntry = tuple[str, dict[str, Any]]


@dataclass
class CustomerWrite:
    """A batch of changes to one customer, applied atomically by `Store.write`.

    Keys are named by CustomerKeys attribute (`"facts"`, `"ids"`, ...); values are msgpack bytes
    or plain strings.
    """

    hset: list[tuple[str, str, bytes | str]] = field(default_factory=list)
    hsetnx: list[tuple[str, str, bytes | str]] = field(default_factory=list)
    turns: list[tuple[str, bytes]] = field(default_factory=list)
    xadd: list[tuple[str, bytes]] = field(default_factory=list)
    zadd: list[tuple[str, float, str]] = field(default_factory=list)
    events: list[tuple[str, bytes]] = field(default_factory=list)
    hmin: list[tuple[str, str, int]] = field(default_factory=list)
    # Records (msgpack maps) that later writes add to but never rewrite: (key, field, record,
    # the record's fields that do replace what is stored). See customer_write.lua.
    hmerge: list[tuple[str, str, bytes, tuple[str, ...]]] = field(default_factory=list)

    def argv(self, outbox: OutboxEntries | None = None) -> list[bytes | str | int | float]:
        out: list[bytes | str | int | float] = [
            len(self.hset), len(self.hsetnx), len(self.turns), len(self.xadd), len(self.zadd),
            len(self.events), len(self.hmin), len(self.hmerge),
            len(outbox.entries) if outbox else 0]
        for name, fld, value in [*self.hset, *self.hsetnx]:
            out += [KEY_INDEX[name], fld, value]
        for dedupe, record in self.turns:
            out += [dedupe, record]
        for name, record in self.xadd:
            out += [KEY_INDEX[name], record]
        for name, score, member in self.zadd:
            out += [KEY_INDEX[name], score, member]
        for event_type, record in self.events:
            out += [event_type, record]
        for name, fld, number in self.hmin:
            out += [KEY_INDEX[name], fld, number]
        for name, fld, record, overriding in self.hmerge:
            out += [KEY_INDEX[name], fld, record, " ".join(overriding)]
        if outbox and outbox.entries:
            out.append(outbox.stale_before_ms)
            for ref, fld, info in outbox.entries:
                out += [ref, fld, info]
        return out


@dataclass(frozen=True)
class OutboxEntries:
    """Webhook deliveries a customer write records with itself (see customer_write.lua):
    per event, which change it is (`t<n>`: the n-th turn, counted from 1, if it is appended;
    `e<n>`: the n-th event), its outbox field and what the deliveries need besides the record."""

    stale_before_ms: int
    entries: list[tuple[str, str, bytes]]


@dataclass
class Written:
    version: int
    appended: int
    duplicates: int
    cursors: list[str]
    # Webhook deliveries the write owes: its own, and any a writer that died left behind (see
    # customer_write.lua).
    owed: list[Owed] = field(default_factory=list)


class Gone(Exception):
    """The customer written to was erased (a write never brings it back)."""


@dataclass
class Moved:
    """The customer was merged into `survivor`; the write was not applied."""

    survivor: str


@dataclass
class CustomerData:
    """Everything the brief needs of one customer, read in one round trip."""

    customer_id: str
    meta: dict[str, str]
    identities: dict[str, Any]
    verifications: dict[str, Any]
    facts: dict[str, Any]
    conversations: dict[str, Any]
    flags: dict[str, Any]
    turns: list[StreamEntry]
    handoff_ids: list[str]

    @property
    def exists(self) -> bool:
        return bool(self.meta)


@dataclass(frozen=True)
class AuditNote:
    """An access-log entry to append in the same round trip as the read it records."""

    tenant: str
    customer_id: str
    entry: dict[str, str]
    now_ms: int
    retention_ms: int


@dataclass
class Erased:
    """What an erasure removed."""

    keys: int = 0
    index_entries: int = 0
    handoffs: int = 0
    queue_events: int = 0


@dataclass
class TransitionOutcome:
    result: str  # "ok", "conflict" or "missing"
    previous: str | None
    record: dict[str, str]
    expired_now: bool = False


def _decode_hash(raw: dict[bytes, bytes]) -> dict[str, Any]:
    return {k.decode(): codec.unpack(v) for k, v in raw.items()}


def _decode_text_hash(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}


def _entries(raw: list[tuple[bytes, dict[bytes, bytes]]]) -> list[StreamEntry]:
    out: list[StreamEntry] = []
    for entry_id, fields in raw:
        out.append((entry_id.decode(), {k.decode(): v for k, v in fields.items()}))
    return out


class Store:
    """Holds a Redis or Redis Cluster client; every method is one domain operation."""

    def __init__(self, client: Client, blocking: Client, digester: Digester,
                 *, events_maxlen: int, desk_secret: bytes = b"") -> None:
        # redis-py types every reply as `bytes | str | list | ...` whatever decode_responses
        # says; replies are decoded here, by hand, so the clients are used untyped.
        self.client: Any = client
        self.blocking: Any = blocking
        # Index entries: re-read (and their Redis TTL refreshed) at least once a minute.
        self._owners: Memo[str, str] = Memo(size=200_000, ttl=60.0)
        self._api_keys: Memo[str, dict[str, str]] = Memo(size=10_000, ttl=5.0)
        # A key id names one secret digest for good (rotating makes a new id): kept long.
        self._key_digests: Memo[str, str] = Memo(size=10_000, ttl=3600.0)
        self._listeners: dict[str, Callable[[list[str]], None]] = {}
        self.digester = digester
        self.desk_secret = desk_secret
        self.events_maxlen = events_maxlen
        self._replica_missing = False  # see confirm_replicated
        self._write: scripts.Runner = client.register_script(scripts.CUSTOMER_WRITE)
        self._redirect: scripts.Runner = client.register_script(scripts.CUSTOMER_REDIRECT)
        self._create: scripts.Runner = client.register_script(scripts.HANDOFF_CREATE)
        self._transition: scripts.Runner = client.register_script(scripts.HANDOFF_TRANSITION)
        self._delete_if: scripts.Runner = client.register_script(scripts.DELETE_IF)
        self._erase_handoff: scripts.Runner = client.register_script(scripts.HANDOFF_ERASE)
        self.webhooks = WebhookStore(client)

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

    # -- indexes: identity -> customer, conversation -> customer ------------------------------

    def identity_key(self, tenant: str, identity: str) -> str:
        return keys.identity(tenant, self.digester.digest(identity))

    def conversation_key(self, tenant: str, conversation_id: str) -> str:
        return keys.conversation(tenant, self.digester.digest(conversation_id))

    async def lookup(self, tenant: str, conversation_id: str | None, identities: list[str],
                     ttl_ms: int) -> tuple[str | None, dict[str, str]]:
        """Owners of a conversation and of identities, refreshing the TTL of those found."""
        names = ([self.conversation_key(tenant, conversation_id)] if conversation_id else [])
        names += [self.identity_key(tenant, i) for i in identities]
        if not names:
            return None, {}
        cached = [self._owners.get(n) for n in names]
        if all(cached):
            owners: list[str | None] = list(cached)
        else:
            with map_exceptions():
                async with self.client.pipeline(transaction=False) as pipe:
                    for name in names:
                        pipe.getex(name, px=ttl_ms)
                    found = await pipe.execute()
            owners = [codec.text(v) for v in found]
            for name, owner in zip(names, owners, strict=True):
                if owner:
                    self._owners.set(name, owner)
        conversation_owner = owners.pop(0) if conversation_id else None
        return conversation_owner, {i: o for i, o in zip(identities, owners, strict=True) if o}

    async def link(self, tenant: str, cus_id: str, *, conversations: list[str],
                   identities: list[str], ttl_ms: int, overwrite: bool = False
                   ) -> dict[str, str]:
        """Point index entries at `cus_id` (only where free unless `overwrite`); their owners."""
        names = [self.conversation_key(tenant, c) for c in conversations]
        names += [self.identity_key(tenant, i) for i in identities]
        if not names:
            return {}
        with map_exceptions():
            async with self.client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.set(name, cus_id, px=ttl_ms, nx=not overwrite, get=True)
                previous = await pipe.execute()
        labels = [f"c:{c}" for c in conversations] + [f"i:{i}" for i in identities]
        owners: dict[str, str] = {}
        for name, label, prev in zip(names, labels, previous, strict=True):
            owners[label] = cus_id if overwrite or prev is None else (codec.text(prev) or cus_id)
            self._owners.set(name, owners[label])
        return owners

    # -- one customer --------------------------------------------------------------------------

    async def write(self, tenant: str, cus_id: str, change: CustomerWrite,
                    *, now_ms: int, ttl_ms: int, outbox: OutboxEntries | None = None
                    ) -> Written | Moved:
        """Apply `change` atomically, creating the customer if need be; Gone if it was erased.
        With `outbox`, the webhook deliveries it owes are recorded in the same script."""
        ck = keys.customer(tenant, cus_id)
        with map_exceptions():
            out = await self._write(
                keys=[*ck.all(), ck.erased],
                args=[now_ms, ttl_ms, self.events_maxlen, *change.argv(outbox)])
        if out[0] == b"moved":
            return Moved(out[1].decode())
        if out[0] == b"gone":
            raise Gone(cus_id)
        return Written(version=int(out[1]), appended=int(out[2]), duplicates=int(out[3]),
                       cursors=[c.decode() for c in out[4]], owed=Owed.parse(out[5]))

    async def read_customers(self, tenant: str, cus_ids: list[str], turns: int,
                             handoffs: int, audit: AuditNote | None = None
                             ) -> list[CustomerData]:
        """Read several customers' brief material (and log the read) in one round trip."""
        def queue(pipe: Any) -> None:
            for cus_id in cus_ids:
                ck = keys.customer(tenant, cus_id)
                pipe.hgetall(ck.meta)
                pipe.hgetall(ck.ids)
                pipe.hgetall(ck.verif)
                pipe.hgetall(ck.facts)
                pipe.hgetall(ck.convs)
                pipe.hgetall(ck.flags)
                pipe.xrevrange(ck.turns, "+", "-", count=max(turns, 1))
                pipe.zrevrange(ck.hos, 0, handoffs - 1)

        raw = await self._logged_read(queue, audit)
        out = []
        for n, cus_id in enumerate(cus_ids):
            meta, ids, verif, facts, convs, flags, turn_list, hos = raw[n * 8:(n + 1) * 8]
            out.append(CustomerData(
                customer_id=cus_id, meta=_decode_text_hash(meta), identities=_decode_hash(ids),
                verifications=_decode_hash(verif), facts=_decode_hash(facts),
                conversations=_decode_hash(convs), flags=_decode_hash(flags),
                turns=_entries(turn_list), handoff_ids=[h.decode() for h in hos]))
        return out

    async def _logged_read(self, queue: Callable[[Any], None], audit: AuditNote | None
                           ) -> list[Any]:
        """One pipelined read whose first command is the first customer's meta, with the access
        log entry (if any) in the same round trip; kept only if that customer exists."""
        with map_exceptions():
            async with self.client.pipeline(transaction=False) as pipe:
                if audit is not None:
                    self._queue_audit(pipe, audit)
                queue(pipe)
                raw: list[Any] = await pipe.execute()
        if audit is None:
            return raw
        logged, raw = raw[:AUDIT_COMMANDS], raw[AUDIT_COMMANDS:]
        if not raw[0]:  # no such customer: nothing was read, so nothing is logged
            await self._unaudit(audit, logged)
        return raw

    async def read_meta(self, tenant: str, cus_ids: list[str]) -> list[dict[str, str]]:
        with map_exceptions():
            async with self.client.pipeline(transaction=False) as pipe:
                for cus_id in cus_ids:
                    pipe.hgetall(keys.customer(tenant, cus_id).meta)
                raw = await pipe.execute()
        return [_decode_text_hash(m) for m in raw]

    async def read_verifications(self, tenant: str, cus_ids: list[str],
                                 audit: AuditNote | None = None
                                 ) -> list[tuple[dict[str, str], dict[str, Any]]]:
        """Meta and verifications of each customer: what a conditional brief GET compares."""
        def queue(pipe: Any) -> None:
            for cus_id in cus_ids:
                ck = keys.customer(tenant, cus_id)
                pipe.hgetall(ck.meta)
                pipe.hgetall(ck.verif)

        raw = await self._logged_read(queue, audit)
        return [(_decode_text_hash(raw[i]), _decode_hash(raw[i + 1]))
                for i in range(0, len(raw), 2)]

    async def read_known(self, tenant: str, cus_ids: list[str]
                         ) -> list[tuple[dict[str, str], dict[str, Any], dict[str, Any]]]:
        """Meta, identities and facts of each customer: what a re-ask is checked against."""
        with map_exceptions():
            async with self.client.pipeline(transaction=False) as pipe:
                for cus_id in cus_ids:
                    ck = keys.customer(tenant, cus_id)
                    pipe.hgetall(ck.meta)
                    pipe.hgetall(ck.ids)
                    pipe.hgetall(ck.facts)
                raw = await pipe.execute()
        return [(_decode_text_hash(raw[i]), _decode_hash(raw[i + 1]), _decode_hash(raw[i + 2]))
                for i in range(0, len(raw), 3)]

    async def count_reasks(self, tenant: str, topics: list[str]) -> None:
        with map_exceptions():
            async with self.client.pipeline(transaction=False) as pipe:
                for topic in topics:
                    pipe.hincrby(keys.reasks(tenant), topic, 1)
                await pipe.execute()

    async def reask_counts(self, tenant: str) -> dict[str, int]:
        with map_exceptions():
            raw = await self.client.hgetall(keys.reasks(tenant))
        return {k.decode(): int(v) for k, v in raw.items()}

    async def read_hash(self, tenant: str, cus_id: str, name: str) -> dict[str, Any]:
        ck = keys.customer(tenant, cus_id)
        with map_exceptions():
            return _decode_hash(await self.client.hgetall(getattr(ck, name)))

    async def read_turns(self, tenant: str, cus_ids: list[str], before: str | None,
                         limit: int) -> list[list[StreamEntry]]:
        """Up to `limit` turns of each customer strictly before cursor `before`, newest first."""
        top = f"({before}" if before else "+"
        with map_exceptions():
            async with self.client.pipeline(transaction=False) as pipe:
                for cus_id in cus_ids:
                    pipe.xrevrange(keys.customer(tenant, cus_id).turns, top, "-", count=limit)
                raw = await pipe.execute()
        return [_entries(r) for r in raw]

    async def redirect(self, tenant: str, cus_id: str, survivor: str, *, stub_ms: int) -> bool:
        """Point a customer at `survivor` for good; True if it already held data."""
        with map_exceptions():
            had = await self._redirect(keys=[keys.customer(tenant, cus_id).meta],
                                       args=[survivor, stub_ms])
        return bool(had)

    async def erase_customer(self, tenant: str, cus_id: str, *, tombstone_ms: int) -> Erased:
        """Remove every key, index entry, hand-off, code and queue event of one customer.

        The tombstone goes first: from then on no write can land, so none can outlive the
        erasure by arriving while it runs.
        """
        ck = keys.customer(tenant, cus_id)
        with map_exceptions():
            await self.client.set(ck.erased, 1, px=tombstone_ms)
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hkeys(ck.ids)
                pipe.hkeys(ck.convs)
                pipe.zrange(ck.hos, 0, -1)
                identities, conversations, handoff_ids = await pipe.execute()
        erased = Erased()
        index = [self.identity_key(tenant, i.decode()) for i in identities]
        index += [self.conversation_key(tenant, c.decode()) for c in conversations]
        with map_exceptions():
            for name in index:
                erased.index_entries += int(await self._delete_if(keys=[name], args=[cus_id]))
            for conv in conversations:
                await self.client.delete(self.code_failures_key(tenant, conv.decode()))
            for ident in identities:
                await self.client.delete(self.caller_failures_key(tenant, ident.decode()))
            for record in await self.get_handoffs(tenant, [h.decode() for h in handoff_ids]):
                ho_keys = [keys.handoff(tenant, record["id"]),
                           keys.queue(tenant, "deadline", None)]
                for status in HANDOFF_STATUSES:
                    ho_keys += [keys.queue(tenant, status, record["queue"]),
                                keys.queue(tenant, status, None)]
                found, code = await self._erase_handoff(keys=ho_keys, args=[])
                erased.handoffs += int(found)
                if code:
                    await self.client.delete(keys.code(tenant, code.decode()))
            erased.keys = int(await self.client.delete(*ck.all()))
            await self.client.zrem(keys.webhook_outbox(tenant), cus_id)
            erased.queue_events = await self._erase_queue_events(tenant, cus_id)
        self._forget("index", index)
        await self.invalidate("index", index)
        return erased

    async def _erase_queue_events(self, tenant: str, cus_id: str) -> int:
        """Queue events that carried this customer's hand-offs (the stream is bounded)."""
        stream, cursor, removed = keys.queue_events(tenant), "-", 0
        needle = cus_id.encode()
        while True:
            batch = await self.client.xrange(stream, cursor, "+", count=1000)
            doomed = [entry_id for entry_id, fields in batch if needle in fields.get(b"d", b"")]
            if doomed:
                removed += int(await self.client.xdel(stream, *doomed))
            if len(batch) < 1000:
                return removed
            cursor = "(" + batch[-1][0].decode()

    # -- hand-offs (tenant slot) ----------------------------------------------------------------

    async def create_handoff(self, tenant: str, record: dict[str, str], *, score: float,
                             deadline_ms: int, now_ms: int, idempotency: str | None,
                             idempotency_ttl_ms: int, fingerprint: str, retention_ms: int
                             ) -> tuple[str, str]:
        """("created" | "existing" | "mismatch", hand-off id)."""
        idem_key = idempotency or keys.idempotency(tenant, "-", "-")
        ho_keys = [keys.handoff(tenant, record["id"]), keys.queue_events(tenant),
                   keys.queue(tenant, "pending", record["queue"]),
                   keys.queue(tenant, "pending", None), keys.queue(tenant, "deadline", None),
                   idem_key]
        flat: list[str] = []
        for k, v in record.items():
            flat += [k, v]
        with map_exceptions():
            await self.client.sadd(keys.tenants(), tenant)
            out = await self._create(keys=ho_keys, args=[
                now_ms, self.events_maxlen, score, deadline_ms,
                idempotency_ttl_ms if idempotency else 0, fingerprint, retention_ms, *flat])
        return out[0].decode(), out[1].decode()

    def idempotency_key(self, tenant: str, principal: str, key: str) -> str:
        return keys.idempotency(tenant, principal, self.digester.digest(key))

    async def transition_handoff(self, tenant: str, ho_id: str, queue: str, *, allowed: list[str],
                                 target: str, event: str, fields: dict[str, str], now_ms: int,
                                 retention_ms: int) -> TransitionOutcome:
        ho_keys = [keys.handoff(tenant, ho_id), keys.queue_events(tenant),
                   keys.queue(tenant, "deadline", None)]
        for status in HANDOFF_STATUSES:
            ho_keys += [keys.queue(tenant, status, queue), keys.queue(tenant, status, None)]
        flat: list[str] = []
        for k, v in fields.items():
            flat += [k, v]
        with map_exceptions():
            out = await self._transition(keys=ho_keys, args=[
                now_ms, self.events_maxlen, " ".join(allowed), target, event, retention_ms,
                *flat])
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
        return [_decode_text_hash(r) for r in raw if r]

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

    async def tenants(self) -> list[str]:
        with map_exceptions():
            return sorted(t.decode() for t in await self.client.smembers(keys.tenants()))

    # -- continuation codes and counters ---------------------------------------------------------

    async def put_code(self, tenant: str, code: str, record: dict[str, Any], ttl_ms: int) -> bool:
        with map_exceptions():
            return bool(await self.client.set(keys.code(tenant, code), codec.pack(record),
                                              px=ttl_ms, nx=True))

    async def take_code(self, tenant: str, code: str) -> dict[str, Any] | None:
        """Single use: the code is gone once read."""
        with map_exceptions():
            record: dict[str, Any] | None = codec.unpack(
                await self.client.getdel(keys.code(tenant, code)))
        return record

    async def reserve(self, counters: list[tuple[str, int]]) -> list[int]:
        """Increment windowed counters (name, ttl_ms) in one round trip; their new values."""
        with map_exceptions():
            async with self.client.pipeline(transaction=False) as pipe:
                for name, ttl in counters:
                    pipe.incr(name)
                    pipe.pexpire(name, ttl, nx=True)
                out = await pipe.execute()
        return [int(v) for v in out[::2]]

    async def release(self, names: list[str]) -> None:
        """Give back what `reserve` took (the attempt did not count)."""
        with map_exceptions():
            async with self.client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.decr(name)
                await pipe.execute()

    def wrong_codes_key(self, tenant: str, source: str, window: int) -> str:
        """Wrong continuation codes from one key or address in one minute."""
        return keys.rate(tenant, f"codefail:{self.digester.digest(source)}", window)

    def auth_failures_key(self, address: str, window: int) -> str:
        return keys.auth_failures(self.digester.digest(address), window)

    async def ttl_ms(self, name: str) -> int:
        with map_exceptions():
            return int(await self.client.pttl(name))

    def code_failures_key(self, tenant: str, conversation_id: str) -> str:
        return keys.code_failures(tenant, self.digester.digest(conversation_id))

    def caller_failures_key(self, tenant: str, identity: str) -> str:
        """Wrong continuation codes from one caller (an identity key), over all its calls."""
        return keys.caller_failures(tenant, self.digester.digest(identity))

    # -- API keys --------------------------------------------------------------------------------

    async def put_api_key(self, secret_digest: str, record: dict[str, str]) -> None:
        with map_exceptions():
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hset(keys.api_key(secret_digest), mapping=record)
                pipe.hset(keys.key_ids(), record["id"], secret_digest)
                pipe.sadd(keys.tenant_keys(record["tenant"]), record["id"])
                pipe.sadd(keys.tenants(), record["tenant"])
                await pipe.execute()

    async def get_api_key(self, secret_digest: str) -> dict[str, str]:
        """A key's record; known keys are remembered for a few seconds (and forgotten at once
        when revoked: see `follow_invalidations`)."""
        cached = self._api_keys.get(secret_digest)
        if cached is not None:
            return cached
        with map_exceptions():
            record = _decode_text_hash(await self.client.hgetall(keys.api_key(secret_digest)))
        if record:
            self._api_keys.set(secret_digest, record)
        return record

    async def api_key_digest(self, key_id: str) -> str | None:
        cached = self._key_digests.get(key_id)
        if cached is not None:
            return cached
        with map_exceptions():
            digest = codec.text(await self.client.hget(keys.key_ids(), key_id))
        if digest:
            self._key_digests.set(key_id, digest)
        return digest

    async def update_api_key(self, secret_digest: str, fields: dict[str, str]) -> None:
        with map_exceptions():
            await self.client.hset(keys.api_key(secret_digest), mapping=fields)

    async def list_api_keys(self, tenant: str) -> list[dict[str, str]]:
        with map_exceptions():
            ids = sorted(i.decode() for i in await self.client.smembers(keys.tenant_keys(tenant)))
            if not ids:
                return []
            digests = await self.client.hmget(keys.key_ids(), ids)
            async with self.client.pipeline(transaction=False) as pipe:
                for digest in digests:
                    pipe.hgetall(keys.api_key(digest.decode()) if digest else keys.key_ids())
                raw = await pipe.execute()
        return [_decode_text_hash(r) for r, d in zip(raw, digests, strict=True) if d and r]

    # -- the audit trail (tenant slot) ----------------------------------------------------------

    def audit_digest(self, cus_id: str) -> str:
        """How the audit trail names a customer: a keyed hash, so erasure leaves no identifier."""
        return self.digester.digest(f"audit\x00{cus_id}")

    async def audit(self, note: AuditNote) -> None:
        """Append to the tenant's access log and the customer's slice; older entries fall off."""
        with map_exceptions():
            async with self.client.pipeline(transaction=False) as pipe:
                self._queue_audit(pipe, note)
                await pipe.execute()

    async def _unaudit(self, note: AuditNote, replies: list[Any]) -> None:
        """Take back the entries `_queue_audit` added (their ids are replies 0 and 2)."""
        names = (keys.audit(note.tenant), keys.audit(note.tenant,
                                                     self.audit_digest(note.customer_id)))
        with map_exceptions():
            for name, entry_id in zip(names, (replies[0], replies[2]), strict=True):
                await self.client.xdel(name, entry_id)
                if not await self.client.xlen(name):
                    await self.client.delete(name)

    def _queue_audit(self, pipe: Any, note: AuditNote) -> None:
        """Queue exactly AUDIT_COMMANDS commands on `pipe`."""
        customer = self.audit_digest(note.customer_id)
        fields = {**note.entry, "customer": customer}
        oldest = max(0, note.now_ms - note.retention_ms)
        for name in (keys.audit(note.tenant), keys.audit(note.tenant, customer)):
            pipe.xadd(name, fields, minid=oldest, approximate=True)
            pipe.pexpire(name, note.retention_ms)

    async def read_audit(self, tenant: str, cus_id: str | None, before: str | None,
                         limit: int) -> list[StreamEntry]:
        name = keys.audit(tenant, self.audit_digest(cus_id) if cus_id else None)
        with map_exceptions():
            raw = await self.client.xrevrange(name, f"({before}" if before else "+", "-",
                                              count=limit)
        return _entries(raw)

    # -- telling every process to forget ---------------------------------------------------------

    async def invalidate(self, kind: str, names: list[str]) -> None:
        """Drop remembered entries here and, through the invalidation stream, everywhere."""
        self._forget(kind, names)
        with map_exceptions():
            await self.client.xadd(keys.invalidations(), {"k": kind, "n": "\n".join(names)},
                                   maxlen=10_000, approximate=True)

    def _forget(self, kind: str, names: list[str]) -> None:
        memos: dict[str, Memo[str, Any]] = {"key": self._api_keys, "index": self._owners}
        if kind in memos:
            for name in names:
                memos[kind].drop(name)
        # After the memo is dropped: a listener re-reading the key must see it as it is now.
        if kind in self._listeners:
            self._listeners[kind](names)

    def listen(self, kind: str, callback: Callable[[list[str]], None]) -> None:
        """Also hand notices of `kind` (from any process, this one included) to `callback`."""
        self._listeners[kind] = callback

    async def follow_invalidations(self) -> None:
        """Apply other processes' invalidations as they come (run as a background task)."""
        stream = keys.invalidations()
        with map_exceptions():
            last = await self.client.xrevrange(stream, "+", "-", count=1)
        cursor = last[0][0].decode() if last else "0-0"
        while True:
            with map_exceptions():
                raw = await self.blocking.xread({stream: cursor}, count=500, block=10_000)
            for _, entries in (raw.items() if isinstance(raw, dict) else raw or []):
                for entry_id, fields in (entries[0] if isinstance(raw, dict) else entries):
                    cursor = entry_id.decode()
                    self._forget(fields[b"k"].decode(), fields[b"n"].decode().split("\n"))

    # -- events ----------------------------------------------------------------------------------

    def events_key(self, tenant: str, cus_id: str | None) -> str:
        return keys.customer(tenant, cus_id).events if cus_id else keys.queue_events(tenant)

    async def read_events(self, stream: str, after: str, count: int) -> list[StreamEntry]:
        """Events strictly after `after` ("0" for the start)."""
        with map_exceptions():
            raw = await self.client.xrange(stream, f"({after}" if after != "0" else "-", "+",
                                           count=count)
        return _entries(raw)

    async def last_event_id(self, stream: str) -> str:
        with map_exceptions():
            raw = await self.client.xrevrange(stream, "+", "-", count=1)
        return raw[0][0].decode() if raw else "0-0"

    def event_reader(self) -> EventReader:
        """A reader for one open event stream: its own connection, closed with `aclose`."""
        return EventReader(self.blocking)
