"""Webhook subscriptions as operators manage them: create, list, delete, re-key, dead letters."""

from __future__ import annotations

import ipaddress
import re
import secrets
from typing import Any
from urllib.parse import urlsplit

from handoff.kernel import ids
from handoff.kernel.errors import Conflict, NotFound, Unprocessable
from handoff.kernel.timefmt import moment, when
from handoff.services.deps import Deps, Principal
from handoff.services.privacy import refuse_card_numbers
from handoff.store.webhooks import Delivery
from schemas.common import Page
from schemas.webhooks import DeadLetter, NewWebhook, Redelivery, Webhook, WebhookIn

WEBHOOK_ID = re.compile(r"^wh_[0-9A-Z]{26}$")
DELIVERY_ID = re.compile(r"^dlv_[0-9A-Z]{26}$")
LOCAL_NAMES = ("localhost", "localhost.localdomain")
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # SIIT (RFC 2765), not "mapped"
# Ranges Python's `is_global` calls global on some of the versions handoff runs on: local-use
# NAT64 (RFC 8215) reaches whatever the operator's own translator reaches, and the IPv6
# documentation range (RFC 9637) names no receiver.
NOT_GLOBAL = (ipaddress.IPv6Network("64:ff9b:1::/48"), ipaddress.IPv6Network("3fff::/20"))
# One label of the numeric host forms inet_aton reads: decimal, octal (leading 0) or hex (0x).
NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$", re.I)


def numeric_host(host: str) -> bool:
    """Whether `host` is made only of numbers and dots (`127.1`, `2130706433`, `0x7f.0.0.1`,
    `0177.0.0.1`, `127.0.0.1.`): forms the C library reads as an IPv4 address, though
    `ipaddress` reads only the canonical dotted quad."""
    labels = host.rstrip(".").split(".")
    return all(NUMERIC_LABEL.match(label) for label in labels)


def public_address(host: str) -> bool | None:
    """Whether an IP literal is a public address (None: `host` is a name, not an address).

    A host that is no name but not a canonical address either (an IPv4 address spelled any way
    but as a dotted quad, an IPv6 literal `ipaddress` cannot read) is False: what it reaches
    depends on who parses it, so it is refused rather than guessed at.
    """
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False if ":" in host or numeric_host(host) else None
    if isinstance(address, ipaddress.IPv6Address):
        if any(address in network for network in NOT_GLOBAL):
            return False
        # IPv6 forms that carry an IPv4 address reach it through a gateway or the kernel:
        # mapped (::ffff:a.b.c.d), 6to4 (2002::/16), NAT64, translated (::ffff:0:a.b.c.d) and
        # the old IPv4-compatible form.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and any(address in network for network in (
                NAT64, IPV4_COMPATIBLE, IPV4_TRANSLATED)):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and not public_address(str(embedded)):
            return False
    return address.is_global and not address.is_multicast


def check_destination(url: str, *, allow_private: bool) -> None:
    """Refuse URLs that name this network rather than a receiver on the internet.

    Names are checked again, address by address, each time a delivery resolves them (see
    `handoff.runtime.outbound`): a name that resolves to a private address today is refused then.
    """
    if allow_private:
        return
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host in LOCAL_NAMES or host.endswith(".localhost") or public_address(host) is False:
        raise Unprocessable(
            "webhooks may not point at loopback, private or link-local addresses",
            [{"loc": ["url"], "msg": "not a public address"}])


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def view(tenant: str, record: dict[str, Any]) -> Webhook:
    return Webhook(id=record["id"], tenant=tenant, url=record["url"], events=record["events"],
                   description=record.get("description") or None,
                   created_at=moment(record["created_ms"]),
                   secret_rotated_at=when(record.get("rotated_ms")))


async def create(deps: Deps, principal: Principal, body: WebhookIn) -> NewWebhook:
    """A subscription with a fresh signing secret (shown in this answer only)."""
    refuse_card_numbers((("url",), body.url), (("description",), body.description))
    check_destination(body.url, allow_private=deps.settings.webhook_allow_private_networks)
    tenant = principal.tenant
    now = deps.now_ms()
    record = {"id": f"wh_{ids.ulid(now)}", "url": body.url,
              "events": sorted(set(body.events)), "description": body.description or "",
              "secret": new_secret(), "created_ms": now}
    limit = deps.settings.webhook_max_subscriptions
    if not await deps.store.webhooks.add_subscription(tenant, record, limit):
        raise Conflict(f"a tenant may have at most {limit} webhook subscriptions")
    await deps.outbox.changed(tenant)
    return NewWebhook(**view(tenant, record).model_dump(), secret=record["secret"])


async def listing(deps: Deps, principal: Principal) -> Page[Webhook]:
    found = await deps.store.webhooks.subscriptions(principal.tenant)
    return Page[Webhook](items=[view(principal.tenant, found[k]) for k in sorted(found)],
                         next=None)


async def _load(deps: Deps, tenant: str, webhook_id: str) -> dict[str, Any]:
    found = (await deps.store.webhooks.subscriptions(tenant)
             if WEBHOOK_ID.match(webhook_id) else {})
    if webhook_id not in found:
        raise NotFound("no such webhook")
    return found[webhook_id]


async def delete(deps: Deps, principal: Principal, webhook_id: str) -> Webhook:
    """Stop deliveries to a subscription; its queued deliveries and dead letters go too."""
    record = await _load(deps, principal.tenant, webhook_id)
    if not await deps.store.webhooks.remove_subscription(principal.tenant, webhook_id):
        raise NotFound("no such webhook")
    await deps.outbox.changed(principal.tenant)
    return view(principal.tenant, record)


async def rotate(deps: Deps, principal: Principal, webhook_id: str) -> NewWebhook:
    """A new signing secret; every delivery sent from now on is signed with it."""
    record = await _load(deps, principal.tenant, webhook_id)
    record |= {"secret": new_secret(), "rotated_ms": deps.now_ms()}
    await deps.store.webhooks.put_subscription(principal.tenant, record)
    return NewWebhook(**view(principal.tenant, record).model_dump(), secret=record["secret"])


def letter(delivery: Delivery) -> DeadLetter:
    return DeadLetter(id=delivery.id, webhook_id=delivery.webhook, event_id=delivery.event_id,
                      type=delivery.type, customer_id=delivery.customer or None,
                      created_at=moment(delivery.created_ms),
                      failed_at=moment(delivery.dead_ms or delivery.last_attempt_ms),
                      attempts=delivery.attempts, last_status=delivery.last_status or None,
                      last_error=delivery.last_error or None)


async def dead_letters(deps: Deps, principal: Principal, webhook_id: str, before: str | None,
                       limit: int) -> Page[DeadLetter]:
    """A subscription's dead letters, newest event first."""
    await _load(deps, principal.tenant, webhook_id)
    if before is not None and not DELIVERY_ID.match(before):
        raise Unprocessable("not a cursor this list gave out",
                            [{"loc": ["query", "before"], "msg": "invalid cursor"}])
    found = await deps.store.webhooks.dead_letters(principal.tenant, webhook_id, before, limit)
    return Page[DeadLetter](items=[letter(d) for d in found],
                            next=found[-1].id if len(found) == limit else None)


async def redeliver(deps: Deps, principal: Principal, webhook_id: str,
                    delivery_id: str) -> Redelivery:
    """Queue a dead letter again, with a fresh count of attempts."""
    await _load(deps, principal.tenant, webhook_id)
    if not DELIVERY_ID.match(delivery_id) or not await deps.store.webhooks.redeliver(
            principal.tenant, webhook_id, delivery_id, deps.now_ms()):
        raise NotFound("no such dead letter")
    deps.outbox.queued.set()
    return Redelivery(id=delivery_id, webhook_id=webhook_id)


async def erase_customer(deps: Deps, tenant: str, customer_id: str) -> int:
    """Remove the queued deliveries and dead letters that carry one customer's data."""
    return await deps.store.webhooks.erase_customer(tenant,
                                                    deps.outbox.customer_digest(customer_id))
