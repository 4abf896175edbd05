"""Every Redis key handoff uses, built in one place.

Two families, by hash tag (the braced part decides the Redis Cluster slot):

- `hf:{<tenant>:<cus_id>}:*` hold one customer: all of them move, expire and are erased together,
  and every multi-key script runs on exactly this set.
- `hf:{<tenant>}:*` hold the tenant's hand-off queues and queue events.
- `hf:{<tenant>:i:<digest>}`, `hf:{<tenant>:c:<digest>}` and `hf:{<tenant>:code:<code>}` are
  single-key indexes (identity -> customer, conversation -> customer, code -> hand-off), spread
  over all slots so a busy tenant is not one hot slot.

Identity and conversation values never appear in keys: they are replaced by a keyed digest, so a
`}` in a visitor id cannot move a key to another slot and a key scan leaks no phone numbers.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

PREFIX = "hf"


@dataclass(frozen=True, slots=True)
class CustomerKeys:
    """The keys of one customer, in the fixed order the write script expects."""

    meta: str
    ids: str
    turns: str
    tids: str
    convs: str
    facts: str
    factlog: str
    verif: str
    flags: str
    hos: str
    events: str
    # Webhook deliveries a write owes until the tenant's delivery queue has them.
    outbox: str
    # Not in all(): set first by an erasure and left behind it for a day, so that a writer which
    # resolved the customer just before cannot bring it back (see customer_write.lua).
    erased: str

    def all(self) -> list[str]:
        return [self.meta, self.ids, self.turns, self.tids, self.convs, self.facts,
                self.factlog, self.verif, self.flags, self.hos, self.events, self.outbox]


# Position of each key in CustomerKeys.all(), for scripts that take KEYS by index.
KEY_INDEX = {name: i + 1 for i, name in enumerate(
    ["meta", "ids", "turns", "tids", "convs", "facts", "factlog", "verif", "flags", "hos",
     "events", "outbox"])}


def customer(tenant: str, cus_id: str) -> CustomerKeys:
    tag = f"{PREFIX}:{{{tenant}:{cus_id}}}"
    return CustomerKeys(
        meta=f"{tag}:meta", ids=f"{tag}:ids", turns=f"{tag}:turns", tids=f"{tag}:tids",
        convs=f"{tag}:convs", facts=f"{tag}:facts", factlog=f"{tag}:factlog",
        verif=f"{tag}:verif", flags=f"{tag}:flags", hos=f"{tag}:hos", events=f"{tag}:events",
        outbox=f"{tag}:outbox", erased=f"{tag}:erased")


class Digester:
    """Keyed digests of identity and conversation values (HMAC-SHA256, server secret)."""

    def __init__(self, secret: bytes, remembered: int = 100_000) -> None:
        self._secret = secret
        # The same identities and conversations come back request after request; an HMAC costs
        # many times a dictionary look-up. Oldest first out once full.
        self._known: dict[str, str] = {}
        self._remembered = remembered

    def digest(self, value: str) -> str:
        known = self._known.get(value)
        if known is not None:
            return known
        digest = hmac.new(self._secret, value.encode(), hashlib.sha256).hexdigest()[:32]
        if len(self._known) >= self._remembered:
            del self._known[next(iter(self._known))]
        self._known[value] = digest
        return digest


def identity(tenant: str, digest: str) -> str:
    return f"{PREFIX}:{{{tenant}:i:{digest}}}"


def conversation(tenant: str, digest: str) -> str:
    return f"{PREFIX}:{{{tenant}:c:{digest}}}"


def code(tenant: str, value: str) -> str:
    return f"{PREFIX}:{{{tenant}:code:{value}}}"


def code_failures(tenant: str, digest: str) -> str:
    """Wrong codes entered on one conversation (a call)."""
    return f"{PREFIX}:{{{tenant}:c:{digest}}}:codefail"


def caller_failures(tenant: str, digest: str) -> str:
    """Wrong codes entered by one caller (the number its calls come from)."""
    return f"{PREFIX}:{{{tenant}:i:{digest}}}:codefail"


def rate(tenant: str, bucket: str, window: int) -> str:
    return f"{PREFIX}:{{{tenant}}}:rate:{bucket}:{window}"


def handoff(tenant: str, ho_id: str) -> str:
    return f"{PREFIX}:{{{tenant}}}:ho:{ho_id}"


def queue(tenant: str, status: str, queue_name: str | None) -> str:
    """Hand-offs of one status, scored by priority then age; `None` is every queue."""
    return f"{PREFIX}:{{{tenant}}}:q:{status}:{queue_name or '*'}"


def idempotency(tenant: str, principal: str, key_digest: str) -> str:
    return f"{PREFIX}:{{{tenant}}}:idem:{principal}:{key_digest}"


def queue_events(tenant: str) -> str:
    return f"{PREFIX}:{{{tenant}}}:events"


def tenants() -> str:
    return f"{PREFIX}:tenants"


def api_key(secret_digest: str) -> str:
    return f"{PREFIX}:key:{secret_digest}"


def key_ids() -> str:
    """API key id -> secret digest, for revoking or rotating by id."""
    return f"{PREFIX}:keyids"


def invalidations() -> str:
    """A stream every process follows to drop what it remembers (revoked keys, erased ids)."""
    return f"{PREFIX}:invalidations"


def tenant_keys(tenant: str) -> str:
    return f"{PREFIX}:{{{tenant}}}:keys"


def index_secret() -> str:
    return f"{PREFIX}:secret:index"


def desk_secret() -> str:
    """Signs agent panel tokens: one for the deployment, so any process can check any token."""
    return f"{PREFIX}:secret:desk"


def reasks(tenant: str) -> str:
    """Re-asks detected in agent turns, counted by topic."""
    return f"{PREFIX}:{{{tenant}}}:reasks"


def auth_failures(address_digest: str, window: int) -> str:
    return f"{PREFIX}:authfail:{address_digest}:{window}"


def audit(tenant: str, customer_digest: str | None = None) -> str:
    """The tenant's access log, or one customer's slice of it (by keyed digest, never the id)."""
    base = f"{PREFIX}:{{{tenant}}}:audit"
    return f"{base}:{customer_digest}" if customer_digest else base


def webhooks(tenant: str) -> str:
    """The tenant's webhook subscriptions: id -> record (signing secret included)."""
    return f"{PREFIX}:{{{tenant}}}:wh:subs"


def webhook_due(tenant: str) -> str:
    """Pending deliveries by the time they are next due (a claim pushes that past its lease)."""
    return f"{PREFIX}:{{{tenant}}}:wh:due"


def webhook_delivery(tenant: str, delivery_id: str) -> str:
    return f"{PREFIX}:{{{tenant}}}:wh:d:{delivery_id}"


def webhook_dead(tenant: str, webhook_id: str) -> str:
    """One subscription's dead letters, ordered by delivery id (all scored 0)."""
    return f"{PREFIX}:{{{tenant}}}:wh:dead:{webhook_id}"


def webhook_customer(tenant: str, customer_digest: str) -> str:
    """Deliveries carrying one customer's data, so erasure can find them (by keyed digest)."""
    return f"{PREFIX}:{{{tenant}}}:wh:c:{customer_digest}"


def webhook_outbox(tenant: str) -> str:
    """Customers whose outbox may hold deliveries not yet queued, scored by their last write
    that owed any: what the outbox sweeper looks through."""
    return f"{PREFIX}:{{{tenant}}}:wh:outbox"


def kpi_counters(tenant: str, size: str, number: int) -> str:
    """One hour's (`size` "h") or UTC day's ("d") effort counters of every queue of the tenant,
    `number` counting hours or days since the epoch; fields are `<queue>|<figure>`."""
    return f"{PREFIX}:{{{tenant}}}:kpi:{size}{number}"


def kpi_samples(tenant: str, size: str, number: int, what: str, queue: str) -> str:
    """The same bucket's waits (`what` "w": request to accept) of one queue, or of every queue
    (`*`): whole seconds -> how many."""
    return f"{PREFIX}:{{{tenant}}}:kpi:{size}{number}:{what}:{queue}"


def kpi_customer(tenant: str, customer_digest: str) -> str:
    """What the effort figures remember of one customer (keyed digest, never the id): the queue
    of its last accepted hand-off and its open re-ask warnings."""
    return f"{PREFIX}:{{{tenant}}}:kpi:c:{customer_digest}"


def alert(tenant: str, alert_id: str) -> str:
    """One supervisor alert: its record (msgpack), status and times."""
    return f"{PREFIX}:{{{tenant}}}:al:{alert_id}"


def alerts(tenant: str, status: str) -> str:
    """The tenant's alerts of one status (`open`, `acknowledged`), by id (all scored 0, so by
    the time they were raised), or every alert (`raised`) scored by when it was raised."""
    return f"{PREFIX}:{{{tenant}}}:al:{status}"


def alert_events(tenant: str) -> str:
    """The tenant's alert stream: alert.raised, alert.acknowledged."""
    return f"{PREFIX}:{{{tenant}}}:al:events"


def alert_customer(tenant: str, customer_digest: str) -> str:
    """The alerts raised about one customer, so erasure can find them (by keyed digest)."""
    return f"{PREFIX}:{{{tenant}}}:al:c:{customer_digest}"
