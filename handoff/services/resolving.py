"""Which customer a request is about: the one a write goes to (created on first sight), or the
one a path `{ref}` names.

Only an identity the channel itself owns (the chat session on chat, the caller's number on a
call) or one an `ivr`/`agent` key verified can lead a write to an existing customer. Anything else
in a body is recorded as a claim on the customer the trusted part resolved to, and never opens or
merges another customer's context.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from handoff.kernel import ids, logs
from handoff.kernel.errors import NotFound, Unprocessable
from handoff.services import identity, merging, survivors
from handoff.services.deps import Deps, Principal
from handoff.store.records import CustomerWrite
from schemas.common import CustomerRef


@dataclass
class Resolved:
    """The customer a write goes to, and what the body told us about identities."""

    customer_id: str
    created: bool  # made for this request, or by a first post racing it: nobody's context yet
    new_conversation: bool = False
    linked: list[identity.Ident] = field(default_factory=list)
    claims: list[identity.Ident] = field(default_factory=list)


async def resolve_writer(deps: Deps, principal: Principal, *, conversation_id: str | None,
                         channel: str | None, customer: CustomerRef | None,
                         create: bool = True) -> Resolved:
    """The customer a bot, IVR or agent is writing about, created on first sight."""
    tenant, customers = principal.tenant, deps.store.customers
    ttl = deps.retention_ms(tenant)
    idents = identity.identities(customer, deps.privacy, tenant)
    own_kind = identity.CHANNEL_KIND.get(channel or "")
    trusted = [i for i in idents if i.kind == own_kind]
    conv_owner, owners = await customers.lookup(tenant, conversation_id, [i.key for i in idents],
                                                ttl)
    cus_id = conv_owner or next((owners[i.key] for i in trusted if i.key in owners), None)
    created = False
    if cus_id is None:
        if not create:
            raise NotFound("no such customer")
        if not trusted and not conversation_id:
            hint = _who_hint(channel, own_kind)
            raise Unprocessable(f"cannot tell who the customer is: {hint}",
                                [{"loc": ["customer"], "msg": hint}])
        cus_id = ids.customer_id()
        created = True
    # Claim the free index entries: the conversation first (it is the strongest tie), then the
    # channel's identities. A concurrent first post may win either race; its customer is then
    # ours too, and a conversation we had just pointed at our new customer follows it.
    free = [i for i in trusted if i.key not in owners]
    conversations = [conversation_id] if conversation_id and conv_owner is None else []
    if conversations:
        won = await customers.link(tenant, cus_id, conversations=conversations, identities=[],
                                   ttl_ms=ttl)
        winner = won[f"c:{conversation_id}"]
        if winner != cus_id:
            # A customer made a moment ago by another first post: new to us all the same, and
            # our write may be the one that creates it.
            cus_id = winner
    if free:
        won = await customers.link(tenant, cus_id, conversations=[],
                                   identities=[i.key for i in free], ttl_ms=ttl)
        owners.update({k[2:]: v for k, v in won.items()})
        other = next((owners[i.key] for i in free if owners[i.key] != cus_id), None)
        if created and other is not None:
            phantom, cus_id = cus_id, other
            if conversations:
                await customers.link(tenant, cus_id, conversations=conversations,
                                     identities=[], ttl_ms=ttl, overwrite=True)
            others = [i.key for i in free if owners[i.key] == phantom]
            if others:  # entries we took for the customer we no longer create
                await customers.link(tenant, cus_id, conversations=[], identities=others,
                                     ttl_ms=ttl, overwrite=True)
                owners.update({k: cus_id for k in others})
            await merging.retire(deps, tenant, phantom, into=cus_id)
    linked = [i for i in idents if owners.get(i.key) == cus_id]
    claims = [i for i in idents if owners.get(i.key) != cus_id]
    logs.note_customer(cus_id)
    return Resolved(cus_id, created, bool(conversations), linked, claims)


def _who_hint(channel: str | None, own_kind: str | None) -> str:
    """What a first write that names nobody it can trust should add."""
    if channel is None:
        owned = ", ".join(f"{kind} on {name}" for name, kind in identity.CHANNEL_KIND.items())
        return ('give a conversation_id, or say which channel this is ("channel": '
                f'"chat", "voice", "sms" or "email") and give the identity it owns ({owned})')
    if own_kind is None:
        return f"give a conversation_id: on {channel} no identity is trusted"
    return f"give a conversation_id or a {own_kind} identity, the one {channel} owns"


async def resolve_ref(deps: Deps, principal: Principal, ref: str, *, follow: bool = True,
                      loc: tuple[str, ...] = ("path", "ref")) -> str:
    """The customer id a path `{ref}` names, following merges; 404 if this key cannot see it
    (403 for an identity kind its role may not look customers up by, 422 for no kind at all).

    With `follow=False` the id is not checked against the store: the caller reads the customer
    anyway and follows `merged_into` itself, saving a round trip.
    """
    tenant = principal.tenant
    cus_id, ident = identity.parse_ref(ref, privacy=deps.privacy, tenant=tenant,
                                       role=principal.role, loc=loc)
    if ident is not None:
        _, owners = await deps.store.customers.lookup(tenant, None, [ident.key],
                                                      deps.retention_ms(tenant))
        cus_id = owners.get(ident.key)
    if cus_id is None:
        raise NotFound("no such customer")
    found = await survivors.survivor(deps, tenant, cus_id) if follow else cus_id
    logs.note_customer(found)
    return found


def identity_records(resolved: Resolved, *, channel: str | None, conversation_id: str | None,
                     now_ms: int, change: CustomerWrite) -> None:
    """Add the body's identities to a customer write: linked ones, then claims."""
    for ident in resolved.linked:
        change.link_identity(ident.key, ident.kind, ident.value, channel=channel,
                             conversation_id=conversation_id, at=now_ms)
    for ident in resolved.claims:
        change.claim_identity(ident.key, ident.kind, ident.value, channel=channel,
                              conversation_id=conversation_id, at=now_ms)
