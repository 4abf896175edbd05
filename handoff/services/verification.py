"""Verified identities: an IVR or agent states the customer proved one, for a while."""

from __future__ import annotations

from handoff.kernel.timefmt import moment
from handoff.services import identity, merging, resolving, survivors, writes
from handoff.services.deps import Deps, Principal
from handoff.store.records import CustomerWrite, VerificationRecord
from schemas.verification import VerifyIn, VerifyResult


async def verify(deps: Deps, principal: Principal, body: VerifyIn) -> VerifyResult:
    """Record the verification; the customer who already holds that identity absorbs this one."""
    tenant = principal.tenant
    body = deps.privacy.safe_ids(body, "conversation_id", "source")
    verified = identity.normalise(body.identity, privacy=deps.privacy, tenant=tenant)
    resolved = await resolving.resolve_writer(
        deps, principal, conversation_id=body.conversation_id, channel=body.channel,
        customer=body.customer)
    cus_id = resolved.customer_id
    _, owners = await deps.store.customers.lookup(tenant, None, [verified.key],
                                                  deps.retention_ms(tenant))
    holder = owners.get(verified.key)
    merged: list[str] = []
    if holder is None:
        won = await deps.store.customers.link(tenant, cus_id, conversations=[],
                                              identities=[verified.key],
                                              ttl_ms=deps.retention_ms(tenant))
        holder = won[f"i:{verified.key}"]
    if holder != cus_id and resolved.created:
        # A caller seen for the first time has no context of its own to merge: its call and
        # its number lead to the holder's customer from now on.
        cus_id = await survivors.survivor(deps, tenant, holder, pending=True)
        await deps.store.customers.link(
            tenant, cus_id, conversations=[body.conversation_id] if resolved.new_conversation
            and body.conversation_id else [], identities=[i.key for i in resolved.linked],
            ttl_ms=deps.retention_ms(tenant), overwrite=True)
        await merging.retire(deps, tenant, resolved.customer_id, into=cus_id)
    elif holder != cus_id:
        # The account holder's context is the one that continues; this caller joins it.
        merged = await merging.merge(deps, tenant, holder, cus_id,
                                      via=f"verification:{verified.kind}")
        cus_id = await survivors.survivor(deps, tenant, holder, pending=True)
    now = deps.now_ms()
    expires = now + body.expires_in * 1000
    record: VerificationRecord = {
        "identity": verified.public(), "method": body.method, "level": body.level,
        "verified_at": now, "expires_at": expires, "channel": body.channel,
        "conversation_id": body.conversation_id, "source": body.source,
        "verified_by": principal.key_id}
    change = CustomerWrite()
    change.verify_identity(verified.key, record, announce="identity.verified")
    change.link_identity(verified.key, verified.kind, verified.value, channel=body.channel,
                         conversation_id=body.conversation_id, at=now)
    resolving.identity_records(resolved, channel=body.channel,
                              conversation_id=body.conversation_id, now_ms=now, change=change)
    if body.conversation_id:
        change.note_conversation(body.conversation_id, channel=body.channel,
                                 source=body.source, started_ms=now, by=principal.key_id)
    cus_id, _ = await writes.write(deps, tenant, cus_id, change)
    return VerifyResult(customer_id=cus_id, verified=True, merged=merged,
                        expires_at=moment(expires))
