"""Who is this customer? Identities in their canonical form, and refs that name a customer.

The rules are about security, not convenience: only an identity the channel itself owns (the chat
session on chat, the caller's number on a call) or one an `ivr`/`agent` key verified can lead a
write to an existing customer (see `resolving`); every identity is first normalised here, so that
the same one given twice is indexed once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from pydantic import ValidationError

from handoff.kernel.errors import Forbidden, NotFound, Unprocessable, with_article
from handoff.kernel.masking import mask_text
from handoff.services.privacy import Privacy, display_mask
from schemas.common import CustomerRef, Identity

# The identity kind each channel owns: what that channel itself proves about the customer.
CHANNEL_KIND = {"chat": "chat", "voice": "phone", "sms": "phone", "email": "email"}
CUSTOMER_ID = re.compile(r"^cus_[0-9A-HJKMNP-TV-Z]{26}$")
# Which identity kinds each role may use to address a customer in a path; agents see everything.
REF_KINDS = {"bot": {"chat"}, "ivr": {"chat", "phone"}}
REF_KIND_NAMES = "phone, email, account, chat, crm or x-<name>"
# Internal ids a customer would not know, so never worth asking for (the brief's do-not-ask
# list and the re-ask check both leave them out).
NOT_ASKED = frozenset({"chat", "crm"})


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


def parse_ref(ref: str, *, privacy: Privacy | None = None, tenant: str = "",
              role: str | None = None, loc: tuple[str, ...] = ("path", "ref")
              ) -> tuple[str | None, Ident | None]:
    """A path `{ref}`: a customer id, or an identity written `kind:value`.

    A ref that is neither, or names no identity kind, is 422; an identity kind `role` may not
    look customers up by is 403, decided from the ref alone so that it says nothing about
    whether such a customer exists.
    """
    if ref.startswith("cus_"):
        if not CUSTOMER_ID.match(ref):
            raise NotFound("no such customer")
        return ref, None
    kind, sep, value = ref.partition(":")
    try:
        identity = Identity(kind=kind, value=value) if sep else None
    except ValidationError as exc:
        if any(error["loc"][:1] == ("kind",) for error in exc.errors()):
            identity = None
        else:
            raise NotFound("no such customer") from exc
    if identity is None:
        # The ref is not echoed: it may be anything, a card number included.
        raise Unprocessable(
            f"a customer ref is a customer id (cus_...) or kind:value (e.g. account:88812345) "
            f"with kind one of {REF_KIND_NAMES}",
            [{"loc": list(loc), "msg": f"unknown identity kind; expected {REF_KIND_NAMES}"}])
    allowed = REF_KINDS.get(role or "")
    if allowed is not None and kind not in allowed:
        refs = " or ".join(f"{k}:..." for k in sorted(allowed))
        raise Forbidden(f"{with_article(role or '')} key may look a customer up only by its "
                        f"id (cus_...) or by {refs}, what its own channel proves; {kind}: refs "
                        "need an agent key")
    try:
        return None, normalise(identity, privacy=privacy, tenant=tenant)
    except Unprocessable as exc:
        raise NotFound("no such customer") from exc


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
