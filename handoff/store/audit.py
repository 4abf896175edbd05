"""The audit trail (tenant slot): who read which customer's data, when and from where."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from handoff.store import codec, keys, kpis
from handoff.store.codec import StreamEntry
from handoff.store.connection import Client, map_exceptions
from handoff.store.keys import Digester
from handoff.store.operations import operations

# What `AuditTrail.queue` adds to a pipeline.
AUDIT_COMMANDS = 4


@dataclass
class AuditNote:
    """An access-log entry, appended on its own or in the same round trip as the read it records.

    The store adds the customer's digest to `entry` as `customer`.
    """

    tenant: str
    customer_id: str
    entry: dict[str, str]
    now_ms: int
    retention_ms: int
    # Where a read that carried the note appended it (the ids of its entries in the tenant's
    # log and in the customer's slice), so that the reader can take it back (`unaudit`).
    landed: tuple[Any, Any] | None = None


@operations()
class AuditTrail:
    """The tenant's access log and each customer's slice of it, both bounded by retention."""

    def __init__(self, client: Client, digester: Digester) -> None:
        self.client: Any = client
        self.digester = digester

    def audit_digest(self, cus_id: str) -> str:
        """How the audit trail names a customer: a keyed hash, so erasure leaves no identifier."""
        return self.digester.digest(f"audit\x00{cus_id}")

    async def audit(self, note: AuditNote, also: kpis.AcceptRider | None = None) -> None:
        """Append to the tenant's access log and the customer's slice; older entries fall off.
        `also` rides in the same round trip (an accept's effort figures)."""
        with map_exceptions():
            async with self.client.pipeline(transaction=False) as pipe:
                self.queue(pipe, note)
                if also is not None:
                    also.queue(pipe)
                replies = await pipe.execute(raise_on_error=False)
            failed = next((r for r in replies[:AUDIT_COMMANDS] if isinstance(r, Exception)),
                          None)
            if failed is not None:
                raise failed
            if also is not None:
                await also.replied(replies[AUDIT_COMMANDS:])

    def queue(self, pipe: Any, note: AuditNote) -> None:
        """Queue exactly AUDIT_COMMANDS commands on `pipe`; `landed` takes their replies."""
        customer = self.audit_digest(note.customer_id)
        fields = {**note.entry, "customer": customer}
        oldest = max(0, note.now_ms - note.retention_ms)
        for name in (keys.audit(note.tenant), keys.audit(note.tenant, customer)):
            pipe.xadd(name, fields, minid=oldest, approximate=True)
            pipe.pexpire(name, note.retention_ms)

    @staticmethod
    def note_landing(note: AuditNote, replies: list[Any]) -> None:
        """Remember where the commands `queue` added put the note (their replies)."""
        note.landed = (replies[0], replies[2])

    async def unaudit(self, note: AuditNote) -> None:
        """Take back the entries a read appended for `note` (nothing if it appended none)."""
        if note.landed is None:
            return
        names = (keys.audit(note.tenant), keys.audit(note.tenant,
                                                     self.audit_digest(note.customer_id)))
        with map_exceptions():
            for name, entry_id in zip(names, note.landed, strict=True):
                await self.client.xdel(name, entry_id)
                if not await self.client.xlen(name):
                    await self.client.delete(name)
        note.landed = None

    async def read_audit(self, tenant: str, cus_id: str | None, before: str | None,
                         limit: int) -> list[StreamEntry]:
        name = keys.audit(tenant, self.audit_digest(cus_id) if cus_id else None)
        with map_exceptions():
            raw = await self.client.xrevrange(name, f"({before}" if before else "+", "-",
                                              count=limit)
        return codec.entries(raw)
