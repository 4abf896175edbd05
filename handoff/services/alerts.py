"""Supervisor alerts: a customer turn that raises a risk flag alerts the tenant's supervisors,
once per customer and flag kind, until one of them acknowledges it.

The customer lives in its own hash slot and the tenant's alert stream in another, so no one
script can do both. How an alert is raised, and why none is lost:

1. On the turn's path, only for a customer turn the lexicon flagged, each flag kind the
   tenant's rules alert on becomes a `Candidate`: an outbox entry of the customer write
   (`<ms>:alert:<kind>:<alert id>`), its ids decided beforehand.
2. The write script (customer_write.lua) keeps it with the turn, atomically, only if the turn
   was appended just now (a retried post raises nothing) and the customer has no open alert of
   that kind (a marker in its `flags` hash, cleared by an acknowledgement). A turn whose kind is
   already open costs nothing more.
3. `publish` stores it in the tenant's slot (alert_raise.lua): the record, the open list, the
   `alert.raised` event on the alert stream and its webhook deliveries, in one script. An alert
   published before is left alone, so however many times it is tried it is raised once.

Between 2 and 3 the alert is in the customer's outbox, and the tenant's outbox index named the
customer before the write did (services/outbox.py): if the process dies in between, the outbox
sweeper that every process runs, or the customer's next write that owes anything, publishes it
once HANDOFF_WEBHOOK_OUTBOX_LEASE_SECONDS have passed. The entry is struck off the outbox by
that sweeper too, not on the turn's path.

For the effort figures: `publish` answers the alerts it raised (with when), `acknowledge` the
alert with when it was raised and acknowledged, and `timings` lists both for a period.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from handoff.kernel import ids, metrics
from handoff.kernel.errors import NotFound, Unprocessable
from handoff.kernel.timefmt import iso
from handoff.services.flags import Hit
from handoff.store import Store, codec, records
from handoff.store.alerts import StoredAlert
from handoff.store.webhooks import Delivery, Owed
from schemas.alerts import Alert
from schemas.common import Page

if TYPE_CHECKING:  # deps needs the outbox, which needs this module
    from handoff.services.deps import Deps, Principal

ALERT_ID = re.compile(r"^al_[0-9A-HJKMNP-TV-Z]{26}$")
RAISED, ACKNOWLEDGED = "alert.raised", "alert.acknowledged"


@dataclass(frozen=True, slots=True)
class Candidate:
    """An alert a customer write may raise: `ref` is its turn (`t<n>`, see customer_write.lua)."""

    ref: str
    kind: str
    severity: str
    terms: tuple[str, ...]
    alert_id: str


@dataclass(frozen=True, slots=True)
class Raised:
    """An alert raised just now, and how many webhook deliveries it queued."""

    alert: Alert
    deliveries: int


@dataclass(frozen=True, slots=True)
class Acknowledged:
    """An acknowledgement's outcome: the alert as it is now, when it was raised and
    acknowledged, and whether this call was the one that acknowledged it."""

    alert: Alert
    raised_ms: int
    acknowledged_ms: int
    new: bool


@dataclass(frozen=True, slots=True)
class Timing:
    """One alert's times, for the effort figures."""

    id: str
    customer_id: str
    kind: str
    severity: str
    raised_ms: int
    acknowledged_ms: int | None


def candidates(rules: dict[str, str], hits: Sequence[Hit], *, ref: str, now_ms: int
               ) -> list[Candidate]:
    """The alerts one flagged customer turn may raise: one per kind the rules alert on."""
    terms: dict[str, list[str]] = defaultdict(list)
    for hit in hits:
        if hit.kind in rules:
            terms[hit.kind].append(hit.term)
    return [Candidate(ref, kind, rules[kind], tuple(found), f"al_{ids.ulid(now_ms)}")
            for kind, found in terms.items()]


def outbox_entry(candidate: Candidate, webhooks: list[str], now_ms: int
                 ) -> tuple[str, str, bytes]:
    """The customer write's outbox entry for `candidate`, with its webhook deliveries' ids
    (to each subscription in `webhooks`) decided now, so every try sends the same ones."""
    info = codec.pack({"event": f"evt_{ids.ulid(now_ms)}", "type": RAISED, "kind": RAISED,
                       "ms": now_ms, "to": [[f"dlv_{ids.ulid(now_ms)}", w] for w in webhooks],
                       "alert": {"kind": candidate.kind, "severity": candidate.severity,
                                 "terms": list(candidate.terms)}})
    return (candidate.ref, f"{now_ms}:alert:{candidate.kind}:{candidate.alert_id}", info)


def is_alert(owed: Owed) -> bool:
    return owed.field.partition(":")[2].startswith("alert:")


def customer_digest(store: Store, customer_id: str) -> str:
    """How the alert index names a customer (keyed, like every other index)."""
    return store.digester.digest(f"alert\x00{customer_id}")


def _record(customer_id: str, owed: Owed) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The alert an outbox entry stands for (as the API shows it), and the entry's info."""
    alert_id = owed.field.rsplit(":", 1)[1]
    info = codec.unpack(owed.info)
    turn = records.unpack_turn(owed.record)
    conversation = codec.unpack(owed.conversation) if owed.conversation else None
    # A turn posted without its channel was said on its conversation's.
    channel = turn.get("channel") or (
        conversation.get("channel") if isinstance(conversation, dict) else None)
    record = {
        "id": alert_id, "customer_id": customer_id, "kind": info["alert"]["kind"],
        "severity": info["alert"]["severity"], "terms": info["alert"]["terms"],
        "turn": {"id": turn["id"], "conversation_id": turn["conversation_id"],
                 "channel": channel or "other", "text": turn["text"], "ts": iso(turn["ts"])},
        "raised_at": iso(info["ms"]), "status": "open", "acknowledged_by": None,
        "acknowledged_at": None}
    return alert_id, record, info


async def publish(store: Store, tenant: str, customer_id: str, owed: list[Owed], *,
                  webhook_digest: str, retention_ms: int) -> list[Raised]:
    """Raise the alerts a customer write recorded (step 3 above): the one place an alert is
    raised. Answers those raised now (not those another try raised before)."""
    raised = []
    for entry in owed:
        alert_id, record, info = _record(customer_id, entry)
        packed = codec.pack(record)
        deliveries = [Delivery(id=delivery_id, webhook=webhook, event_id=info["event"],
                               type=RAISED, kind=RAISED, record=packed, cursor="",
                               customer=customer_id, created_ms=info["ms"], attempts=0,
                               customer_digest=webhook_digest)
                      for delivery_id, webhook in info["to"]]
        if await store.alerts.raise_alert(
                tenant, alert_id, packed, customer_digest=customer_digest(store, customer_id),
                webhook_digest=webhook_digest, raised_ms=info["ms"], retention_ms=retention_ms,
                deliveries=deliveries):
            raised.append(Raised(Alert.model_validate(record), len(deliveries)))
            metrics.alert(tenant)
    return raised


def view(stored: StoredAlert) -> Alert:
    return Alert.model_validate(stored.record)


def check_id(alert_id: str) -> str:
    if not ALERT_ID.match(alert_id):
        raise NotFound("no such alert")
    return alert_id


async def listing(deps: Deps, principal: Principal, *, status: str, before: str | None,
                  limit: int) -> Page[Alert]:
    """One status's alerts, newest first."""
    if before is not None and not ALERT_ID.match(before):
        raise Unprocessable("not a cursor this list gave out",
                            [{"loc": ["query", "before"], "msg": "invalid cursor"}])
    found = await deps.store.alerts.listing(principal.tenant, status, before, limit)
    return Page[Alert](items=[view(a) for a in found],
                       next=found[-1].id if len(found) == limit else None)


async def acknowledge(deps: Deps, principal: Principal, alert_id: str, by: str
                      ) -> Acknowledged:
    """Mark an open alert seen to, once: acknowledging it again changes nothing and answers it
    as it is. From then on the customer's next turn of the same kind raises a new alert."""
    tenant, store = principal.tenant, deps.store
    found = (await store.alerts.get(tenant, [check_id(alert_id)])).get(alert_id)
    if found is None:
        raise NotFound("no such alert")
    if found.status == "open":
        now = deps.now_ms()
        record = {**found.record, "status": "acknowledged", "acknowledged_by": by,
                  "acknowledged_at": iso(now)}
        packed = codec.pack(record)
        customer = record["customer_id"]
        webhook_digest = deps.outbox.customer_digest(customer)
        event_id = f"evt_{ids.ulid(now)}"
        deliveries = [Delivery(id=f"dlv_{ids.ulid(now)}", webhook=s.id, event_id=event_id,
                               type=ACKNOWLEDGED, kind=ACKNOWLEDGED, record=packed, cursor="",
                               customer=customer, created_ms=now, attempts=0,
                               customer_digest=webhook_digest)
                      for s in await deps.outbox.subscriptions(tenant) if s.wants(ACKNOWLEDGED)]
        # The customer's marker goes first: a process dying between the two steps leaves an
        # alert open that its customer can raise again (one too many, never one lost).
        await store.alerts.unmark(tenant, customer, record["kind"], alert_id)
        outcome = await store.alerts.acknowledge(
            tenant, alert_id, packed, by=by, webhook_digest=webhook_digest, now_ms=now,
            retention_ms=deps.retention_ms(tenant), deliveries=deliveries)
        if outcome == "ok":
            metrics.alert(tenant, acknowledged_after_ms=now - found.raised_ms)
            if deliveries:
                deps.outbox.count("queued", len(deliveries))
                deps.outbox.queued.set()
            return Acknowledged(Alert.model_validate(record), found.raised_ms, now, True)
        # Another supervisor acknowledged it meanwhile (or it went with its customer).
        found = (await store.alerts.get(tenant, [alert_id])).get(alert_id)
        if found is None:
            raise NotFound("no such alert")
    return Acknowledged(view(found), found.raised_ms, found.acknowledged_ms or found.raised_ms,
                        False)


async def timings(deps: Deps, tenant: str, from_ms: int, to_ms: int, limit: int = 10_000
                  ) -> list[Timing]:
    """Alerts raised in [from_ms, to_ms), oldest first, with when each was acknowledged (None
    while open): what the effort figures count."""
    return [Timing(a.id, a.record["customer_id"], a.record["kind"], a.record["severity"],
                   a.raised_ms, a.acknowledged_ms)
            for a in await deps.store.alerts.raised_between(tenant, from_ms, to_ms, limit)]


async def erase_customer(deps: Deps, tenant: str, customer_id: str) -> int:
    """Remove every alert raised about one customer (its webhook deliveries go with the
    customer's other deliveries)."""
    return await deps.store.alerts.erase_customer(tenant, customer_id,
                                                  customer_digest(deps.store, customer_id))

