"""Who is this customer? Normalised identities, trust rules, resolution and merges.

The rules are about security, not convenience: only an identity the channel itself owns (the chat
session on chat, the caller's number on a call) or one an `ivr`/`agent` key verified can lead a
write to an existing customer. Anything else in a body is recorded as a claim on the customer the
trusted part resolved to, and never opens or merges another customer's context.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import phonenumbers

from handoff import ids, logs
from handoff.errors import NotFound, Unprocessable
from handoff.services.deps import Deps, Principal
from handoff.services.masking import mask_text
from handoff.services.privacy import Privacy, display_mask
from handoff.store import codec
from handoff.store.store import CustomerWrite, Gone, Moved, Written
from schemas.common import CustomerRef, Identity

# The identity kind each channel owns: what that channel itself proves about the customer.
CHANNEL_KIND = {"chat": "chat", "voice": "phone", "sms": "phone", "email": "email"}
CUSTOMER_ID = re.compile(r"^cus_[0-9A-HJKMNP-TV-Z]{26}$")
# Which identity kinds each role may use to address a customer in a path; agents see everything.
REF_KINDS = {"bot": {"chat"}, "ivr": {"chat", "phone"}}
# Internal ids a customer would not know, so never worth asking for (the brief's do-not-ask
# list and the re-ask check both leave them out).
NOT_ASKED = frozenset({"chat", "crm"})
MAX_MERGED = 20
MAX_MOVES = 4
# How long a request in flight may still be led to a customer that is no longer there: the life
# of an erasure's tombstone and of the stub a customer abandoned in a race leaves behind.
IN_FLIGHT_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Ident:
    """A normalised identity; `key` is how it is indexed and stored.

    A sensitive identity keeps only a keyed hash (`kind:#<digest>`) and a masked `value` for
    display, so the real value is never written anywhere, yet looking it up still works.
    """

    kind: str
    value: str
    digest: str | None = None

    @property
    def key(self) -> str:
        return f"{self.kind}:#{self.digest}" if self.digest else f"{self.kind}:{self.value}"

    def public(self) -> dict[str, str]:
        return {"kind": self.kind, "value": self.value}


def normalise(identity: Identity, *, loc: tuple[str | int, ...] = ("identity",),
              privacy: Privacy | None = None, tenant: str = "") -> Ident:
    """Canonical form: E.164 phones, lower-cased emails, trimmed everything else; sensitive
    kinds (per tenant) reduced to a keyed hash and a masked display value."""
    kind, value = identity.kind, identity.value.strip()
    if kind == "phone":
        try:
            number = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException:
            number = None
        if number is None or not phonenumbers.is_possible_number(number):
            raise Unprocessable("not a phone number in international form",
                                [{"loc": [*loc, "value"],
                                  "msg": "expected an international number such as +15550104477"}])
        value = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    elif kind == "email":
        value = value.lower()
        if value.count("@") != 1 or value.startswith("@") or value.endswith("@"):
            raise Unprocessable("not an email address",
                                [{"loc": [*loc, "value"], "msg": "expected name@domain"}])
    if not value or any(ord(c) < 32 for c in value):
        raise Unprocessable("identity value is empty or has control characters",
                            [{"loc": [*loc, "value"], "msg": "printable text required"}])
    if privacy is not None and privacy.sensitive(tenant, kind):
        return Ident(kind, display_mask(value), privacy.digest(tenant, kind, value))
    masked = privacy.mask(tenant, value) if privacy is not None else mask_text(value)
    if privacy is not None and masked != value:
        # A masked value is no longer unique ("**** **** **** 1111" is many cards, or many long
        # phone numbers): index the full value by its keyed hash, as sensitive kinds are.
        return Ident(kind, masked, privacy.digest(tenant, kind, value))
    return Ident(kind, masked)


def parse_ref(ref: str, *, privacy: Privacy | None = None, tenant: str = ""
              ) -> tuple[str | None, Ident | None]:
    """A path `{ref}`: a customer id, or an identity written `kind:value`."""
    if ref.startswith("cus_"):
        if not CUSTOMER_ID.match(ref):
            raise NotFound("no such customer")
        return ref, None
    kind, sep, value = ref.partition(":")
    if not sep:
        raise NotFound("no such customer")
    try:
        identity = Identity(kind=kind, value=value)
    except ValueError as exc:
        raise NotFound("no such customer") from exc
    try:
        return None, normalise(identity, privacy=privacy, tenant=tenant)
    except Unprocessable as exc:
        raise NotFound("no such customer") from exc


@dataclass
class Resolved:
    """The customer a write goes to, and what the body told us about identities."""

    customer_id: str
    created: bool  # made for this request, or by a first post racing it: nobody's context yet
    new_conversation: bool = False
    linked: list[Ident] = field(default_factory=list)
    claims: list[Ident] = field(default_factory=list)


async def resolve_writer(deps: Deps, principal: Principal, *, conversation_id: str | None,
                         channel: str | None, customer: CustomerRef | None,
                         create: bool = True) -> Resolved:
    """The customer a bot, IVR or agent is writing about, created on first sight."""
    tenant = principal.tenant
    ttl = deps.retention_ms(tenant)
    idents = identities(customer, deps.privacy, tenant)
    own_kind = CHANNEL_KIND.get(channel or "")
    trusted = [i for i in idents if i.kind == own_kind]
    conv_owner, owners = await deps.store.lookup(tenant, conversation_id, [i.key for i in idents],
                                                 ttl)
    cus_id = conv_owner or next((owners[i.key] for i in trusted if i.key in owners), None)
    created = False
    if cus_id is None:
        if not create:
            raise NotFound("no such customer")
        if not trusted and not conversation_id:
            raise Unprocessable(
                "cannot tell who the customer is",
                [{"loc": ["customer"], "msg": f"give a conversation_id or a {own_kind or 'channel'}"
                                              " identity the channel owns"}])
        cus_id = ids.customer_id()
        created = True
    # Claim the free index entries: the conversation first (it is the strongest tie), then the
    # channel's identities. A concurrent first post may win either race; its customer is then
    # ours too, and a conversation we had just pointed at our new customer follows it.
    free = [i for i in trusted if i.key not in owners]
    conversations = [conversation_id] if conversation_id and conv_owner is None else []
    if conversations:
        won = await deps.store.link(tenant, cus_id, conversations=conversations, identities=[],
                                    ttl_ms=ttl)
        winner = won[f"c:{conversation_id}"]
        if winner != cus_id:
            # A customer made a moment ago by another first post: new to us all the same, and
            # our write may be the one that creates it.
            cus_id = winner
    if free:
        won = await deps.store.link(tenant, cus_id, conversations=[],
                                    identities=[i.key for i in free], ttl_ms=ttl)
        owners.update({k[2:]: v for k, v in won.items()})
        other = next((owners[i.key] for i in free if owners[i.key] != cus_id), None)
        if created and other is not None:
            phantom, cus_id = cus_id, other
            if conversations:
                await deps.store.link(tenant, cus_id, conversations=conversations,
                                      identities=[], ttl_ms=ttl, overwrite=True)
            others = [i.key for i in free if owners[i.key] == phantom]
            if others:  # entries we took for the customer we no longer create
                await deps.store.link(tenant, cus_id, conversations=[], identities=others,
                                      ttl_ms=ttl, overwrite=True)
                owners.update({k: cus_id for k in others})
            await retire(deps, tenant, phantom, into=cus_id)
    linked = [i for i in idents if owners.get(i.key) == cus_id]
    claims = [i for i in idents if owners.get(i.key) != cus_id]
    logs.note_customer(cus_id)
    return Resolved(cus_id, created, bool(conversations), linked, claims)


async def resolve_ref(deps: Deps, principal: Principal, ref: str, *, follow: bool = True) -> str:
    """The customer id a path `{ref}` names, following merges; 404 if this key cannot see it.

    With `follow=False` the id is not checked against the store: the caller reads the customer
    anyway and follows `merged_into` itself, saving a round trip.
    """
    tenant = principal.tenant
    cus_id, ident = parse_ref(ref, privacy=deps.privacy, tenant=tenant)
    if ident is not None:
        allowed = REF_KINDS.get(principal.role)
        if allowed is not None and ident.kind not in allowed:
            raise NotFound("no such customer")
        _, owners = await deps.store.lookup(tenant, None, [ident.key], deps.retention_ms(tenant))
        cus_id = owners.get(ident.key)
    if cus_id is None:
        raise NotFound("no such customer")
    found = await survivor(deps, tenant, cus_id) if follow else cus_id
    logs.note_customer(found)
    return found


async def survivor(deps: Deps, tenant: str, cus_id: str, *, pending: bool = False) -> str:
    """Follow `merged_into` to the customer that holds the context now; 404 if none.

    With `pending`, the id came from an index entry or a hand-off and may name a customer whose
    first write is still on its way (or died with its process): it stands for itself, and the
    next write to it creates it.
    """
    for hop in range(MAX_MOVES):
        (meta,) = await deps.store.read_meta(tenant, [cus_id])
        if not meta and pending and hop == 0:
            return cus_id
        if not meta:
            raise NotFound("no such customer")
        nxt = meta.get("merged_into")
        if not nxt:
            return cus_id
        cus_id = nxt
    raise NotFound("no such customer")


def identity_records(resolved: Resolved, *, channel: str | None, conversation_id: str | None,
                     now_ms: int, change: CustomerWrite) -> None:
    """Add the body's identities to a customer write: linked ones, then claims."""
    for ident in resolved.linked:
        record_identity(change, ident, state="linked", channel=channel,
                        conversation_id=conversation_id, now_ms=now_ms)
    for ident in resolved.claims:
        record_identity(change, ident, state="claim", channel=channel,
                        conversation_id=conversation_id, now_ms=now_ms)


def record_identity(change: CustomerWrite, ident: Ident, *, state: str, channel: str | None,
                    conversation_id: str | None, now_ms: int) -> None:
    """Record an identity on a customer write, keeping what an earlier write recorded.

    An identity is first seen once: the channel, conversation and time of the first write that
    named it stay, whatever a later write says or leaves out (a hand-off without a channel, a
    retry, another channel). A later write only adds: a channel or conversation where there was
    none, and `linked` over `claim` (a claim never demotes a linked identity). The store merges
    in the write script itself, so racing writers cannot undo each other.
    """
    change.hmerge.append(("ids", ident.key, codec.pack(
        {**ident.public(), "state": state, "channel": channel,
         "conversation_id": conversation_id, "at": now_ms}),
        ("state",) if state == "linked" else ()))


async def retire(deps: Deps, tenant: str, phantom: str, *, into: str) -> None:
    """Send whatever resolves to a customer made for this request, and abandoned, to `into`.

    Between our linking an entry to it and taking the entry back, another request may have
    resolved that entry and written there: that write is kept, as a merge into the winner.
    """
    if await deps.store.redirect(tenant, phantom, into, stub_ms=IN_FLIGHT_MS):
        await write(deps, tenant, into, merge_note(phantom, via="first-contact",
                                                   now_ms=deps.now_ms()))


async def write(deps: Deps, tenant: str, cus_id: str, change: CustomerWrite
                ) -> tuple[str, Written]:
    """Apply a write, following the customer if it was merged meanwhile.

    The first write creates the customer. One erased after we resolved it is 404, and the next
    request starts afresh.
    """
    for _ in range(MAX_MOVES):
        try:
            # With the webhook deliveries it owes, recorded in the same script and then queued.
            out = await deps.outbox.write(tenant, cus_id, change, now_ms=deps.now_ms(),
                                          ttl_ms=deps.retention_ms(tenant),
                                          retention_ms=deps.retention_ms(tenant))
        except Gone as exc:
            raise NotFound("the customer no longer exists") from exc
        if not isinstance(out, Moved):
            return cus_id, out
        cus_id = out.survivor
    raise NotFound("no such customer")


async def merge(deps: Deps, tenant: str, into: str, other: str, *, via: str) -> list[str]:
    """Join `other`'s context to `into`'s; answers the customers merged (empty if already one).

    Nothing is copied: the survivor records the merge, the other customer points at it, and every
    index entry of the other moves over. The brief then reads both, so history stays where it was
    written and each step is a single-slot operation that is safe to repeat.
    """
    into = await survivor(deps, tenant, into, pending=True)
    other = await survivor(deps, tenant, other, pending=True)
    if into == other:
        return []
    (other_meta,) = await deps.store.read_meta(tenant, [other])
    carried = {k: v for k, v in other_meta.items() if k.startswith("m:")}
    keep = merge_note(other, via=via, now_ms=deps.now_ms())
    keep.hset += [("meta", k, v) for k, v in carried.items()]
    into, _ = await write(deps, tenant, into, keep)
    await write(deps, tenant, other, CustomerWrite(hset=[("meta", "merged_into", into)]))
    identities = await deps.store.read_hash(tenant, other, "ids")
    conversations = await deps.store.read_hash(tenant, other, "convs")
    await deps.store.link(tenant, into, conversations=list(conversations),
                          identities=[k for k, v in identities.items()
                                      if isinstance(v, dict) and v.get("state") != "claim"],
                          ttl_ms=deps.retention_ms(tenant), overwrite=True)
    return [other, *[k[2:] for k in carried]]


def merge_note(other: str, *, via: str, now_ms: int) -> CustomerWrite:
    """What the survivor of a merge records of `other`: read back by `merge_records`."""
    return CustomerWrite(hset=[("meta", f"m:{other}", f"{now_ms} {via}")],
                         events=[("customer.merged", codec.pack(
                             {"customer_id": other, "via": via, "at": now_ms}))])


def merged_ids(meta: dict[str, str]) -> list[str]:
    """The customers merged into one, most recent first, at most MAX_MERGED."""
    merged = sorted(((int(v.split(" ", 1)[0]), k[2:]) for k, v in meta.items()
                     if k.startswith("m:")), reverse=True)
    return [cus for _, cus in merged][:MAX_MERGED]


def merge_records(meta: dict[str, str]) -> list[tuple[str, str, int]]:
    """(customer id, via, at ms) of every merge recorded in a survivor's meta."""
    out = []
    for k, v in meta.items():
        if k.startswith("m:"):
            at, _, via = v.partition(" ")
            out.append((k[2:], via, int(at)))
    return sorted(out, key=lambda m: m[2])


def identities(customer: CustomerRef | None, privacy: Privacy, tenant: str) -> list[Ident]:
    """The body's identities, normalised, each once."""
    return _dedupe([normalise(i, loc=("customer", "identities", n), privacy=privacy,
                              tenant=tenant)
                    for n, i in enumerate(customer.identities if customer else [])])


def trusted(customer: CustomerRef | None, channel: str | None, privacy: Privacy,
            tenant: str) -> list[Ident]:
    """The identities the channel itself vouches for (the caller's number on a call)."""
    own_kind = CHANNEL_KIND.get(channel or "")
    return [i for i in identities(customer, privacy, tenant) if i.kind == own_kind]


def _dedupe(idents: list[Ident]) -> list[Ident]:
    seen: dict[str, Ident] = {}
    for i in idents:
        seen.setdefault(i.key, i)
    return list(seen.values())
