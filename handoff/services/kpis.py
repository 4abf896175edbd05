"""Effort KPIs: what a contact centre's customers had to repeat, wait for and come back about.

Every figure is defined in one line in docs/kpis.md. They are counted where the events happen,
riding in the round trips hand-offs and re-asked turns make anyway (see handoff/store/kpis.py;
only a re-ask check that finds something adds one), and read back per hour or UTC day for one
queue or the whole tenant.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime

from handoff.kernel import metrics
from handoff.kernel.errors import StoreUnavailable, Unprocessable
from handoff.kernel.timefmt import moment, to_ms
from handoff.services import alerts
from handoff.services.deps import Deps, Principal
from handoff.store.kpis import DAY_MS, HOUR_MS, AcceptFigures, AcceptRider, BucketData
from schemas.brief import JourneyStep
from schemas.handoffs import Handoff
from schemas.kpis import Bucket, FactFigures, KpiBucket, KpiFigures, Kpis
from schemas.verification import Verification

SIZES: dict[str, tuple[str, int]] = {"hour": ("h", HOUR_MS), "day": ("d", DAY_MS)}
# Buckets one read may cover, and the buckets a read covers when it names no start: the last
# 24 hours or 7 days, the current one included.
MAX_BUCKETS = {"hour": 7 * 24, "day": 92}
DEFAULT_BUCKETS = {"hour": 24, "day": 7}
REPEAT_WINDOW_MS = 7 * DAY_MS
# How long a scrape waits for Redis before it reports it down.
SCRAPE_SECONDS = 1.0
# Alerts one read counts at most (a read is a supervisor's, not an export).
ALERT_LIMIT = 10_000
LIFECYCLE = ("requested", "accepted", "expired", "cancelled", "handed_back", "resolved")
# Only agents' checks open warnings: bots' and IVRs' turns are never checked for re-asks, so
# whether they heeded a warning could not be told.
WARNED_ROLES = frozenset({"agent"})


# -- counting ---------------------------------------------------------------------------------


def accept_figures(record: Handoff, journey: list[JourneyStep],
                   verifications: list[Verification], requested_ms: dict[str, int]
                   ) -> AcceptFigures:
    """What the brief sent with an accepted hand-off shows: a verification still valid, the
    journey's channel switches and length, and whether the customer asked for a person in the
    7 days before (another of their hand-offs, by id -> when requested, in that window)."""
    switches = sum(1 for a, b in zip(journey, journey[1:], strict=False) if a.channel != b.channel)
    created_ms = record.created_at.timestamp() * 1000
    repeat = any(ho_id != record.id and created_ms - REPEAT_WINDOW_MS <= at < created_ms
                 for ho_id, at in requested_ms.items())
    return AcceptFigures(
        queue=record.queue, handoff_id=record.id,
        verified=any(not v.expired for v in verifications),
        channel_switches=switches, journey_steps=len(journey), repeat_contact=repeat)


def at_accept(deps: Deps, tenant: str, cus_id: str, figures: AcceptFigures) -> AcceptRider:
    """The command that counts an accept's figures, to send with the accept's audit entry."""

    def counted(first: bool) -> None:
        if first:  # a replayed accept by the same agent counts nothing twice
            metrics.accept_figures(tenant, figures.queue, verified=figures.verified,
                                   switches=figures.channel_switches,
                                   steps=figures.journey_steps, repeat=figures.repeat_contact)

    return deps.store.kpis.accept_rider(tenant, cus_id, figures,
                                        now_ms=deps.now_ms(),
                                        retention_ms=deps.retention_ms(tenant), counted=counted)


def _window_ms(deps: Deps) -> int:
    return deps.settings.reask_warning_minutes * 60_000


async def warned(deps: Deps, principal: Principal, cus_id: str, facts: list[str]) -> None:
    """The re-ask check warned an agent that a reply would ask for `facts`: open a warning per
    fact (unless one is open), which the agent heeds unless a turn asks for it in time."""
    if principal.role not in WARNED_ROLES or not facts:
        return
    tenant = principal.tenant
    queue, opened = await deps.store.kpis.warned(
        tenant, cus_id, list(dict.fromkeys(facts)), now_ms=deps.now_ms(),
        window_ms=_window_ms(deps), retention_ms=deps.retention_ms(tenant))
    metrics.reask_warnings(tenant, queue, opened=opened)


async def reasked(deps: Deps, tenant: str, cus_id: str, facts: list[str]) -> None:
    """Agent turns re-asked `facts` (one entry per re-ask): count them, per tenant for good and
    per bucket in the queue of the customer's last accepted hand-off, and close the warnings
    they ignored."""
    queue, sent = await deps.store.kpis.reasked(
        tenant, cus_id, facts, now_ms=deps.now_ms(), window_ms=_window_ms(deps),
        retention_ms=deps.retention_ms(tenant))
    metrics.reask_warnings(tenant, queue, sent_anyway=sent, reasks=len(facts))


async def sample_store(deps: Deps) -> None:
    """For a /metrics scrape: whether Redis answers, and every tenant's open alerts (two round
    trips, once per scrape; never on a request's path)."""
    try:
        async with asyncio.timeout(SCRAPE_SECONDS):
            found: dict[str, int] | None = await deps.store.kpis.open_alerts(
                await deps.store.tenants())
    except (StoreUnavailable, TimeoutError):
        found = None
    metrics.store_sampled(found)


# -- reading ----------------------------------------------------------------------------------


def _invalid(name: str, message: str) -> Unprocessable:
    return Unprocessable(message, [{"loc": ["query", name], "msg": message}])


def span(bucket: Bucket, start: datetime | None, end: datetime | None, now_ms: int
         ) -> tuple[int, int]:
    """The first bucket and the one after the last, counted from the epoch: every bucket that
    overlaps [start, end); by default the last 24 hours or 7 days, the current one included."""
    size = SIZES[bucket][1]
    stop = -(-to_ms(end) // size) if end is not None else now_ms // size + 1
    first = to_ms(start) // size if start is not None else stop - DEFAULT_BUCKETS[bucket]
    if (start is not None and end is not None and start >= end) or first >= stop:
        raise _invalid("from", "from must be before to")
    if stop - first > MAX_BUCKETS[bucket]:
        raise _invalid("from", f"a read covers at most {MAX_BUCKETS[bucket]} {bucket}s; "
                               "ask for days, or a shorter range")
    return first, stop


async def read(deps: Deps, principal: Principal, *, bucket: Bucket, start: datetime | None,
               end: datetime | None, queue: str | None) -> Kpis:
    """The caller's tenant's effort KPIs per bucket and over the range, for one queue or all."""
    first, stop = span(bucket, start, end, deps.now_ms())
    size, size_ms = SIZES[bucket]
    queue = deps.privacy.safe_id(queue) if queue else None
    stored = await deps.store.kpis.read(principal.tenant, size, list(range(first, stop)), queue)
    raised = await _alerts(deps, principal.tenant, first, stop, size_ms, queue)
    total: Counter[str] = Counter()
    waits: Counter[int] = Counter()
    acks: Counter[int] = Counter()
    buckets = []
    for number, data in zip(range(first, stop), stored, strict=True):
        counters = _counters(data, queue)
        bucket_acks: Counter[int] = Counter()
        for alert in raised.get(number, []):
            counters["alerts"] += 1
            if alert.acknowledged_ms is not None:
                counters["acked"] += 1
                bucket_acks[max(0, alert.acknowledged_ms - alert.raised_ms) // 1000] += 1
        total.update(counters)
        waits.update(data.waits)
        acks.update(bucket_acks)
        figures = _figures(counters, data.waits, bucket_acks)
        buckets.append(KpiBucket(**figures.model_dump(), start=moment(number * size_ms),
                                 end=moment((number + 1) * size_ms)))
    return Kpis(tenant=principal.tenant, queue=queue, bucket=bucket,
                start=moment(first * size_ms), end=moment(stop * size_ms),
                reask_warning_minutes=deps.settings.reask_warning_minutes,
                total=_figures(total, waits, acks), buckets=buckets)


async def _alerts(deps: Deps, tenant: str, first: int, stop: int, size_ms: int,
                  queue: str | None) -> dict[int, list[alerts.Timing]]:
    """The alerts raised in buckets [first, stop), by the bucket they were raised in; for one
    queue, those about customers whose last accepted hand-off is in it (an alert is about a
    customer, not a hand-off)."""
    found = await alerts.timings(deps, tenant, first * size_ms, stop * size_ms,
                                 limit=ALERT_LIMIT)
    if queue is not None:
        owners = await deps.store.kpis.queues_of(tenant, sorted({a.customer_id for a in found}))
        found = [a for a in found if owners.get(a.customer_id) == queue]
    out: dict[int, list[alerts.Timing]] = {}
    for alert in found:
        out.setdefault(alert.raised_ms // size_ms, []).append(alert)
    return out


def _counters(data: BucketData, queue: str | None) -> Counter[str]:
    if queue is not None:
        return Counter(data.counters.get(queue, {}))
    out: Counter[str] = Counter()
    for figures in data.counters.values():
        out.update(figures)
    return out


def percentile(histogram: dict[int, int], p: int) -> int | None:
    """The nearest-rank `p`th percentile of whole seconds: the smallest value at least p% of
    the samples are at or below."""
    n = sum(histogram.values())
    if not n:
        return None
    rank, running = -(-p * n // 100), 0
    for value in sorted(histogram):
        running += histogram[value]
        if running >= rank:
            return value
    return None  # unreachable: the running count ends at n >= rank


def _ratio(part: int, whole: int, scale: int = 1) -> float | None:
    return round(part * scale / whole, 4) if whole else None


def _figures(c: Counter[str], waits: dict[int, int], acks: dict[int, int]) -> KpiFigures:
    accepted = c["accepted"]
    facts = sorted({name.partition(":")[2] for name in c
                    if name.startswith(("r:", "warned:", "sent:"))})
    by_fact = {}
    for fact in facts:
        warned, sent = c[f"warned:{fact}"], c[f"sent:{fact}"]
        by_fact[fact] = FactFigures(
            reasks=c[f"r:{fact}"], reasks_per_100_accepted=_ratio(c[f"r:{fact}"], accepted, 100),
            warnings=warned, heeded=max(0, warned - sent), sent_anyway=sent)
    reasks = sum(f.reasks for f in by_fact.values())
    return KpiFigures(
        **{name: c[name] for name in LIFECYCLE},
        time_to_accept_p50_seconds=percentile(waits, 50),
        time_to_accept_p90_seconds=percentile(waits, 90),
        verified_at_accept=c["verified"], verification_carried=_ratio(c["verified"], accepted),
        reasks=reasks, reasks_per_100_accepted=_ratio(reasks, accepted, 100),
        reask_warnings=sum(f.warnings for f in by_fact.values()),
        reask_warnings_heeded=sum(f.heeded for f in by_fact.values()),
        reask_warnings_sent_anyway=sum(f.sent_anyway for f in by_fact.values()),
        by_fact=by_fact,
        channel_switches=c["switches"],
        channel_switches_per_handoff=_ratio(c["switches"], accepted),
        journey_steps_per_handoff=_ratio(c["steps"], accepted),
        repeat_contacts=c["repeat"], repeat_contact_share=_ratio(c["repeat"], accepted),
        alerts_raised=c["alerts"], alerts_acknowledged=c["acked"],
        time_to_acknowledge_p50_seconds=percentile(acks, 50),
        time_to_acknowledge_p90_seconds=percentile(acks, 90))
