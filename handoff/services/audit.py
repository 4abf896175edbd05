"""Who read which customer's context, transcript or events, when, and from where."""

from __future__ import annotations

import re
from dataclasses import dataclass

from handoff.kernel.errors import NotFound, Unprocessable
from handoff.kernel.timefmt import moment
from handoff.services import identity, resolving
from handoff.services.deps import Deps, Principal
from handoff.store.audit import AuditNote
from handoff.store.kpis import AcceptRider
from schemas.admin import AuditEntry
from schemas.common import Page

CURSOR = re.compile(r"^\d{1,20}-\d{1,20}$")


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is behind an agent key for this request, as far as we can tell."""

    agent_id: str | None
    address: str | None


def note(deps: Deps, principal: Principal, cus_id: str, what: str, viewer: Viewer) -> AuditNote:
    """The access-log entry for an agent key's read of a customer."""
    entry = {"key_id": principal.key_id, "role": principal.role, "what": what,
             "agent_id": viewer.agent_id or "", "address": viewer.address or ""}
    return AuditNote(principal.tenant, cus_id, entry, deps.now_ms(),
                     deps.retention_ms(principal.tenant))


async def record(deps: Deps, principal: Principal, cus_id: str, what: str,
                 viewer: Viewer, also: AcceptRider | None = None) -> None:
    """Log an agent key's read of a customer before the data leaves (no log, no data);
    `also` rides in the same round trip."""
    await deps.store.audit.audit(note(deps, principal, cus_id, what, viewer), also)


async def logged_if_found(deps: Deps, note: AuditNote | None, exists: bool) -> None:
    """After a read that carried `note` in its round trip: a customer that does not exist was
    not read, so nothing stays logged (the entry is taken back), and it is 404."""
    if not exists:
        if note is not None:
            await deps.store.audit.unaudit(note)
        raise NotFound("no such customer")


async def read(deps: Deps, principal: Principal, customer: str | None, before: str | None,
               limit: int) -> Page[AuditEntry]:
    """The tenant's access log, newest first, optionally for one customer."""
    if before is not None and not CURSOR.match(before):
        raise Unprocessable("not a cursor this list gave out",
                            [{"loc": ["query", "before"], "msg": "invalid cursor"}])
    cus_id = None
    if customer:
        # An erased customer cannot be resolved any more; its id still finds its entries.
        cus_id = customer if identity.CUSTOMER_ID.match(customer) else (
            await resolving.resolve_ref(deps, principal, customer, loc=("query", "customer")))
    entries = await deps.store.audit.read_audit(principal.tenant, cus_id, before, limit)
    items = [AuditEntry(
        id=entry_id, at=moment(entry_id.split("-")[0]), key_id=f["key_id"].decode(),
        role=f["role"].decode(), what=f["what"].decode(),
        agent_id=f["agent_id"].decode() or None, address=f["address"].decode() or None,
        customer=f["customer"].decode()) for entry_id, f in entries]
    return Page[AuditEntry](items=items, next=items[-1].id if len(items) == limit else None)
