"""Customers: the index that leads to them, their writes and reads (one slot per customer), and
the mechanism of erasing one (what to erase, and in which order, is the caller's)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from handoff.kernel.memo import Memo
from handoff.store import codec, keys, records, scripts
from handoff.store.audit import AUDIT_COMMANDS, AuditNote, AuditTrail
from handoff.store.codec import StreamEntry
from handoff.store.connection import Client, map_exceptions
from handoff.store.keys import Digester
from handoff.store.notices import Notices
from handoff.store.operations import operations
from handoff.store.records import (
    ConversationRecord,
    CustomerWrite,
    FactRecord,
    IdentityRecord,
    VerificationRecord,
)
from handoff.store.webhooks import Owed

INDEX = "index"  # the kind of notice that drops remembered index entries


@dataclass(frozen=True)
class OutboxEntries:
    """Webhook deliveries a customer write records with itself (see customer_write.lua):
    per event, which change it is (its reference in `CustomerWrite.announcements`), its outbox
    field and what the deliveries need besides the record."""

    stale_before_ms: int
    entries: list[tuple[str, str, bytes]]


@dataclass
class Written:
    version: int
    appended: int
    duplicates: int
    cursors: list[str]  # per turn of the write: its cursor, or "" if it was a duplicate
    # Webhook deliveries the write owes: its own, and any a writer that died left behind (see
    # customer_write.lua).
    owed: list[Owed] = field(default_factory=list)


class Gone(Exception):
    """The customer written to was erased (a write never brings it back)."""


@dataclass
class Moved:
    """The customer was merged into `survivor`; nothing was done to it."""

    survivor: str


@dataclass
class CustomerData:
    """Everything the brief needs of one customer, read in one round trip."""

    customer_id: str
    meta: dict[str, str]
    identities: dict[str, IdentityRecord]
    verifications: dict[str, VerificationRecord]
    facts: dict[str, FactRecord]
    conversations: dict[str, ConversationRecord]
    flags: dict[str, Any]  # see `records.raised_flags` and `records.human_requests`
    turns: list[StreamEntry]  # see `records.turn_of`
    handoff_ids: list[str]
    # The same hand-offs' request times (ms), newest first, as the customer lists them.
    handoff_times: dict[str, int] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return bool(self.meta)


@dataclass
class Remains:
    """What still leads to a customer being erased."""

    identities: list[str]
    conversations: list[str]
    handoff_ids: list[str]


@operations()
class Customers:
    """Each method is one operation on customers; multi-key ones stay in one customer's slot."""

    def __init__(self, client: Client, digester: Digester, *, notices: Notices,
                 audit: AuditTrail, events_maxlen: int) -> None:
        self.client: Any = client
        self.digester = digester
        self.events_maxlen = events_maxlen
        self._notices = notices
        self._audit = audit
        # Index entries: re-read (and their Redis TTL refreshed) at least once a minute.
        self._owners: Memo[str, str] = Memo(size=200_000, ttl=60.0)
        notices.drop_from(INDEX, self._owners)
        self._write: scripts.Runner = client.register_script(scripts.CUSTOMER_WRITE)
        self._redirect: scripts.Runner = client.register_script(scripts.CUSTOMER_REDIRECT)
        self._delete_if: scripts.Runner = client.register_script(scripts.DELETE_IF)

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
        """Point index entries at `cus_id` (only where free unless `overwrite`); their owners,
        by `c:<conversation>` and `i:<identity>`."""
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
                pipe.zrevrange(ck.hos, 0, handoffs - 1, withscores=True)

        raw = await self._logged_read(queue, audit)
        out = []
        for n, cus_id in enumerate(cus_ids):
            meta, ids, verif, facts, convs, flags, turn_list, hos = raw[n * 8:(n + 1) * 8]
            out.append(CustomerData(
                customer_id=cus_id, meta=codec.text_hash(meta), identities=codec.packed_hash(ids),
                verifications=codec.packed_hash(verif), facts=codec.packed_hash(facts),
                conversations=codec.packed_hash(convs), flags=codec.packed_hash(flags),
                turns=codec.entries(turn_list), handoff_ids=[h.decode() for h, _ in hos],
                handoff_times={h.decode(): int(at) for h, at in hos}))
        return out

    async def _logged_read(self, queue: Callable[[Any], None], audit: AuditNote | None
                           ) -> list[Any]:
        """One pipelined read with the access log entry (if any) in the same round trip; the
        note learns where it landed (see `AuditTrail.unaudit`)."""
        with map_exceptions():
            async with self.client.pipeline(transaction=False) as pipe:
                if audit is not None:
                    self._audit.queue(pipe, audit)
                queue(pipe)
                raw: list[Any] = await pipe.execute()
        if audit is None:
            return raw
        self._audit.note_landing(audit, raw[:AUDIT_COMMANDS])
        return raw[AUDIT_COMMANDS:]

    async def read_meta(self, tenant: str, cus_ids: list[str]) -> list[dict[str, str]]:
        with map_exceptions():
            async with self.client.pipeline(transaction=False) as pipe:
                for cus_id in cus_ids:
                    pipe.hgetall(keys.customer(tenant, cus_id).meta)
                raw = await pipe.execute()
        return [codec.text_hash(m) for m in raw]

    async def read_verifications(self, tenant: str, cus_ids: list[str],
                                 audit: AuditNote | None = None
                                 ) -> list[tuple[dict[str, str], dict[str, VerificationRecord]]]:
        """Meta and verifications of each customer: what a conditional brief GET compares."""
        def queue(pipe: Any) -> None:
            for cus_id in cus_ids:
                ck = keys.customer(tenant, cus_id)
                pipe.hgetall(ck.meta)
                pipe.hgetall(ck.verif)

        raw = await self._logged_read(queue, audit)
        return [(codec.text_hash(raw[i]), codec.packed_hash(raw[i + 1]))
                for i in range(0, len(raw), 2)]

    async def read_known(self, tenant: str, cus_ids: list[str]
                         ) -> list[tuple[dict[str, str], dict[str, IdentityRecord],
                                         dict[str, FactRecord]]]:
        """Meta, identities and facts of each customer: what a re-ask is checked against."""
        with map_exceptions():
            async with self.client.pipeline(transaction=False) as pipe:
                for cus_id in cus_ids:
                    ck = keys.customer(tenant, cus_id)
                    pipe.hgetall(ck.meta)
                    pipe.hgetall(ck.ids)
                    pipe.hgetall(ck.facts)
                raw = await pipe.execute()
        return [(codec.text_hash(raw[i]), codec.packed_hash(raw[i + 1]),
                 codec.packed_hash(raw[i + 2])) for i in range(0, len(raw), 3)]

    async def read_conversations(self, tenant: str, cus_id: str
                                 ) -> dict[str, ConversationRecord]:
        """A customer's conversations, by id."""
        with map_exceptions():
            return codec.packed_hash(await self.client.hgetall(keys.customer(tenant, cus_id).convs))

    async def read_links(self, tenant: str, cus_id: str) -> tuple[list[str], list[str]]:
        """The conversations and the identities (linked ones: a claim never led here) whose
        index entries lead to a customer."""
        ck = keys.customer(tenant, cus_id)
        with map_exceptions():
            identities = codec.packed_hash(await self.client.hgetall(ck.ids))
            conversations = codec.packed_hash(await self.client.hgetall(ck.convs))
        return list(conversations), records.linked_identities(identities)

    async def read_turns(self, tenant: str, cus_ids: list[str], before: str | None,
                         limit: int) -> list[list[StreamEntry]]:
        """Up to `limit` turns of each customer strictly before cursor `before`, newest first."""
        top = f"({before}" if before else "+"
        with map_exceptions():
            async with self.client.pipeline(transaction=False) as pipe:
                for cus_id in cus_ids:
                    pipe.xrevrange(keys.customer(tenant, cus_id).turns, top, "-", count=limit)
                raw = await pipe.execute()
        return [codec.entries(r) for r in raw]

    async def redirect(self, tenant: str, cus_id: str, survivor: str, *, stub_ms: int) -> bool:
        """Point a customer at `survivor` for good; True if it already held data."""
        with map_exceptions():
            had = await self._redirect(keys=[keys.customer(tenant, cus_id).meta],
                                       args=[survivor, stub_ms])
        return bool(had)

    # -- erasing one ---------------------------------------------------------------------------

    async def close_customer(self, tenant: str, cus_id: str, *, tombstone_ms: int) -> Remains:
        """Leave a tombstone, so that no write lands on the customer from now on (not even one
        that resolved it just before), then answer what still leads to it."""
        ck = keys.customer(tenant, cus_id)
        with map_exceptions():
            await self.client.set(ck.erased, 1, px=tombstone_ms)
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hkeys(ck.ids)
                pipe.hkeys(ck.convs)
                pipe.zrange(ck.hos, 0, -1)
                identities, conversations, handoff_ids = await pipe.execute()
        return Remains([i.decode() for i in identities], [c.decode() for c in conversations],
                       [h.decode() for h in handoff_ids])

    async def unlink(self, tenant: str, cus_id: str, *, identities: list[str],
                     conversations: list[str]) -> int:
        """Delete the index entries of identities and conversations that still lead to `cus_id`
        (here and, through a notice, in every process's memory); how many there were."""
        index = [self.identity_key(tenant, i) for i in identities]
        index += [self.conversation_key(tenant, c) for c in conversations]
        deleted = 0
        with map_exceptions():
            for name in index:
                deleted += int(await self._delete_if(keys=[name], args=[cus_id]))
        await self._notices.invalidate(INDEX, index)
        return deleted

    async def delete_customer(self, tenant: str, cus_id: str) -> int:
        """Delete every key of the customer (its outbox too, and the sweeper's note of it);
        how many there were. The tombstone stays."""
        ck = keys.customer(tenant, cus_id)
        with map_exceptions():
            deleted = int(await self.client.delete(*ck.all()))
            await self.client.zrem(keys.webhook_outbox(tenant), cus_id)
        return deleted
