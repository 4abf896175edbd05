"""Verified identities: an IVR or agent states the customer proved one, for a while."""

from __future__ import annotations

from handoff.services import identity
from handoff.services.conversations import conversation_record
from handoff.services.deps import Deps, Principal
from handoff.services.timefmt import moment
from handoff.store import codec
from handoff.store.store import CustomerWrite
from schemas.verification import VerifyIn, VerifyResult


async def verify(deps: Deps, principal: Principal, body: VerifyIn) -> VerifyResult:
    """Record the verification; the customer who already holds that identity absorbs this one."""
    tenant = principal.tenant
    body = deps.privacy.safe_ids(body, "conversation_id", "source")
    verified = identity.normalise(body.identity, privacy=deps.privacy, tenant=tenant)
    resolved = await identity.resolve_writer(
        deps, principal, conversation_id=body.conversation_id, channel=body.channel,
        customer=body.customer)
    cus_id = resolved.customer_id
    _, owners = await deps.store.lookup(tenant, None, [verified.key], deps.retention_ms(tenant))
    holder = owners.get(verified.key)
    merged: list[str] = []
    if holder is None:
        won = await deps.store.link(tenant, cus_id, conversations=[],
                                    identities=[verified.key], ttl_ms=deps.retention_ms(tenant))
        holder = won[f"i:{verified.key}"]
    if holder != cus_id and resolved.created:
        # A caller seen for the first time has no context of its own to merge: its call and
        # its number lead to the holder's customer from now on.
        cus_id = await identity.survivor(deps, tenant, holder, pending=True)
        await deps.store.link(
            tenant, cus_id, conversations=[body.conversation_id] if resolved.new_conversation
            and body.conversation_id else [], identities=[i.key for i in resolved.linked],
            ttl_ms=deps.retention_ms(tenant), overwrite=True)
        await identity.retire(deps, tenant, resolved.customer_id, into=cus_id)
    elif holder != cus_id:
        # The account holder's context is the one that continues; this caller joins it.
        merged = await identity.merge(deps, tenant, holder, cus_id,
                                      via=f"verification:{verified.kind}")
        cus_id = await identity.survivor(deps, tenant, holder, pending=True)
    now = deps.now_ms()
    expires = now + body.expires_in * 1000
    record = {"identity": verified.public(), "method": body.method, "level": body.level,
              "verified_at": now, "expires_at": expires, "channel": body.channel,
              "conversation_id": body.conversation_id, "source": body.source,
              "verified_by": principal.key_id}
    change = CustomerWrite(hset=[("verif", verified.key, codec.pack(record))],
                           events=[("identity.verified", codec.pack(record))])
    identity.record_identity(change, verified, state="linked", channel=body.channel,
                             conversation_id=body.conversation_id, now_ms=now)
    identity.identity_records(resolved, channel=body.channel,
                              conversation_id=body.conversation_id, now_ms=now, change=change)
    if body.conversation_id:
        conversation_record(change, body.conversation_id, channel=body.channel,
                            source=body.source, started_ms=now, by=principal.key_id)
    cus_id, _ = await identity.write(deps, tenant, cus_id, change)
    return VerifyResult(customer_id=cus_id, verified=True, merged=merged,
                        expires_at=moment(expires))
