"""The delivery worker: claim due deliveries, sign and send each, record what came of it.

Every process runs one. A claim is a lease (see `store/lua/webhook_claim.lua`): in the normal
case exactly one process sends a delivery; a process that dies mid-send leaves its claim to run
out, and then another sends it again. That, and a receiver that answered 2xx to a request whose
answer was lost, are why delivery is at least once: receivers de-duplicate by delivery id.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import random
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from handoff.kernel import logs
from handoff.kernel.errors import HandoffError
from handoff.kernel.timefmt import iso
from handoff.services import events
from handoff.services.deps import Deps
from handoff.store.webhooks import Delivery

log = logs.logger("handoff.webhooks")
USER_AGENT = "handoff-webhooks/1"


class Unreachable(Exception):
    """The receiver could not be reached or did not answer in time."""


# (url, body, headers) -> the HTTP status the receiver answered; raises Unreachable.
Send = Callable[[str, bytes, dict[str, str]], Awaitable[int]]


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `Handoff-Signature` header: HMAC-SHA256 of `timestamp.body` under the secret."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def backoff_seconds(failures: int, *, base: float, cap: float,
                    rand: Callable[[], float] = random.random) -> float:
    """How long to wait after the `failures`-th failure: doubling from `base` up to `cap`, and
    "equal jitter" (half fixed, half random) so receivers that came back are not stampeded."""
    ceiling: float = min(cap, base * 2.0 ** min(failures - 1, 62))
    return ceiling / 2 + rand() * ceiling / 2


class Deliverer:
    """One process's delivery loop."""

    def __init__(self, deps: Deps, send: Send) -> None:
        self.deps, self.send = deps, send
        settings = deps.settings
        # A lease shorter than a send could let a second process send while the first still
        # waits for its answer.
        self.lease_ms = int(max(settings.webhook_lease_seconds,
                                settings.webhook_timeout_seconds + 1) * 1000)

    async def run(self) -> None:
        """Deliver until cancelled; Redis being away only pauses it."""
        outbox = self.deps.outbox
        swept = 0
        while True:
            outbox.queued.clear()
            try:
                now = self.deps.now_ms()
                if now - swept >= outbox.lease_ms // 2:
                    # Deliveries whose writer died before queuing them (see outbox.py).
                    swept = now
                    await outbox.sweep(now, self.deps.retention_ms)
                busy = await self.round()
            except HandoffError as exc:
                log.warning("webhook deliveries paused: %s", exc.detail)
                busy = False
            if busy:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(outbox.queued.wait(),
                                       self.deps.settings.webhook_poll_seconds)

    async def round(self) -> bool:
        """One pass over every tenant with deliveries due; True if there may be more now."""
        store = self.deps.store
        now = self.deps.now_ms()
        limit = self.deps.settings.webhook_concurrency
        busy = False
        for tenant in await store.webhooks.tenants_due(await store.tenants(), now):
            claimed = await store.webhooks.claim(
                tenant, now_ms=now, lease_until_ms=now + self.lease_ms,
                token=secrets.token_hex(8), limit=limit)
            if not claimed:
                continue
            subscriptions = await store.webhooks.subscriptions(tenant)
            # One event goes to every subscription with the same body: render it once (and not
            # at all for deliveries whose subscription is gone: they are dropped unsent).
            bodies: dict[str, bytes] = {}
            for d in claimed:
                if not d.body and d.webhook in subscriptions and d.event_id not in bodies:
                    bodies[d.event_id] = await self.render(tenant, d)
            await asyncio.gather(*(self.attempt(tenant, d, subscriptions.get(d.webhook),
                                                d.body or bodies.get(d.event_id, b""))
                                   for d in claimed))
            busy = busy or len(claimed) == limit
        return busy

    async def attempt(self, tenant: str, delivery: Delivery,
                      subscription: dict[str, Any] | None, body: bytes) -> str:
        """Send one claimed delivery (`body`, as rendered) once and settle it; the outcome, as
        counted."""
        hooks, deps = self.deps.store.webhooks, self.deps
        if subscription is None:  # deleted since the event was queued
            return self._count(await hooks.settle(tenant, delivery, "drop"), delivery)
        status, error = 0, ""
        try:
            status = await self.send(subscription["url"], body,
                                     self.headers(subscription, delivery, body))
        except Unreachable as exc:
            error = str(exc)[:300]
        now = deps.now_ms()
        if 200 <= status < 300:
            return self._count(await hooks.settle(tenant, delivery, "ok"), delivery)
        failures = delivery.attempts + 1
        error = error or f"the receiver answered {status}"
        dead = failures >= deps.settings.webhook_max_attempts
        wait = backoff_seconds(failures, base=deps.settings.webhook_backoff_seconds,
                               cap=deps.settings.webhook_backoff_max_seconds)
        fields: dict[str, bytes | str | int] = {
            "attempts": failures, "last_status": status, "last_error": error,
            "last_attempt_ms": now, "body": body}
        if dead:
            fields["dead_ms"] = now
        outcome = await hooks.settle(
            tenant, delivery, "dead" if dead else "retry", next_due_ms=now + int(wait * 1000),
            retention_ms=deps.retention_ms(tenant), fields=fields)
        log.info("webhook %s delivery %s attempt %d failed: %s", delivery.webhook,
                 delivery.id, failures, error)
        return self._count("failed" if outcome == "retry" else outcome, delivery)

    def _count(self, outcome: str, delivery: Delivery) -> str:
        name = {"ok": "delivered", "drop": "dropped"}.get(outcome, outcome)
        self.deps.outbox.count(name)
        if name == "lost":
            log.warning("delivery %s was claimed by another process meanwhile", delivery.id)
        return name

    def headers(self, subscription: dict[str, Any], delivery: Delivery,
                body: bytes) -> dict[str, str]:
        timestamp = self.deps.now_ms() // 1000
        return {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                "Handoff-Signature": signature(subscription["secret"], timestamp, body),
                "Handoff-Webhook-Id": delivery.webhook, "Handoff-Delivery-Id": delivery.id,
                "Handoff-Event-Id": delivery.event_id, "Handoff-Event-Type": delivery.type,
                "Handoff-Attempt": str(delivery.attempts + 1)}

    async def render(self, tenant: str, delivery: Delivery) -> bytes:
        """The body: the event as the live stream carries it, in an envelope."""
        entry = (delivery.cursor or delivery.event_id,
                 {"t": delivery.kind.encode(), "d": delivery.record,
                  "c": delivery.cursor.encode()})
        known = await events.Conversations(self.deps, tenant, delivery.customer).covering([entry])
        event = events.decode(entry, delivery.customer, known)
        return json.dumps({"id": delivery.event_id, "type": delivery.type, "tenant": tenant,
                           "created_at": iso(delivery.created_ms), "data": event.data},
                          separators=(",", ":")).encode()
