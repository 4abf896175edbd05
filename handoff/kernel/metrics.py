"""Prometheus metrics: every metric object of the service and the small functions that feed them.

The per-request figures (requests, their latency, store operations) are tallied in plain dicts
on the hot path and moved into the Prometheus objects once per event-loop iteration (`flush`):
under load one move carries many requests, and a worker that dies loses at most the requests
of the iteration it died in.

Labels stay bounded: routes are templates (`/v1/customers/{ref}/context`), never raw paths;
queue and fact names come from callers, so each keeps only its first `LABEL_BUDGET` distinct
values per process and counts the rest under `_other`; customer ids are never a label.

With `handoff serve --workers N` the supervisor gives every worker one fresh
`PROMETHEUS_MULTIPROC_DIR`; prometheus-client then keeps each process's samples in files there
and `/metrics`, answered by any worker, sums them (gauges: over live processes only).
"""

from __future__ import annotations

import asyncio
import bisect
import os
from collections import defaultdict
from typing import Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
OTHER = "_other"
LABEL_BUDGET = 500
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
HandoffEvent = Literal["requested", "accepted", "expired", "cancelled", "resolved", "handed_back"]

# Seconds; a Redis-backed request is a few milliseconds, a slow one is the 2 s command timeout.
LATENCY_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1.0, 2.5, 5.0)
REDIS_BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1.0, 2.5)
# Seconds a customer waits for a human: the figure a contact centre lives by.
WAIT_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)
BRIEF_BYTES_BUCKETS = (1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0)
BRIEF_TURNS_BUCKETS = (0.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0)

REQUESTS = Counter("handoff_http_requests", "HTTP requests answered, by route template and status",
                   ["method", "route", "status"])
REQUEST_SECONDS = Histogram("handoff_http_request_duration_seconds",
                            "Time to answer a request (event streams excluded)",
                            ["method", "route"], buckets=LATENCY_BUCKETS)
REDIS_SECONDS = Histogram("handoff_redis_operation_duration_seconds",
                          "Time of one store operation (one Redis round trip, a pipeline or a "
                          "script; a few operations take two or three)",
                          ["operation"], buckets=REDIS_BUCKETS)
HANDOFFS = Counter("handoff_handoffs", "Hand-off lifecycle events, by tenant and queue",
                   ["tenant", "queue", "event"])
TIME_TO_ACCEPT = Histogram("handoff_handoff_time_to_accept_seconds",
                           "From a hand-off's request to an agent accepting it",
                           ["tenant", "queue"], buckets=WAIT_BUCKETS)
BRIEF_BYTES = Histogram("handoff_brief_bytes", "Size of a context brief as sent",
                        buckets=BRIEF_BYTES_BUCKETS)
BRIEF_TURNS = Histogram("handoff_brief_turns", "Turns in a context brief as sent",
                        buckets=BRIEF_TURNS_BUCKETS)
EVENT_STREAMS = Gauge("handoff_event_streams", "Server-sent event streams open now",
                      multiprocess_mode="livesum")
PROCESSES = Gauge("handoff_processes", "Server processes running now",
                  multiprocess_mode="livesum")
REASKS = Counter("handoff_reasks", "Agents asking for something the brief already had",
                 ["tenant", "fact"])
WEBHOOKS = Counter("handoff_webhook_deliveries",
                   "Outbound webhook deliveries queued, and attempts by outcome",
                   ["outcome"])
# Effort KPIs (docs/kpis.md): the figures /v1/kpis keeps per hour and day, as counters.
ACCEPTS_VERIFIED = Counter("handoff_accepts_verified",
                           "Accepted hand-offs whose customer had a verification still valid",
                           ["tenant", "queue"])
CHANNEL_SWITCHES = Counter("handoff_channel_switches",
                           "Channel switches in the journeys of accepted hand-offs",
                           ["tenant", "queue"])
JOURNEY_STEPS = Counter("handoff_journey_steps",
                        "Conversations in the journeys of accepted hand-offs",
                        ["tenant", "queue"])
REPEAT_CONTACTS = Counter("handoff_repeat_contacts",
                          "Accepted hand-offs whose customer had another hand-off requested in "
                          "the 7 days before", ["tenant", "queue"])
QUEUE_REASKS = Counter("handoff_queue_reasks",
                       "Re-asks, in the queue of the customer's last accepted hand-off "
                       "(_none: never accepted)", ["tenant", "queue"])
REASK_WARNINGS = Counter("handoff_reask_warnings",
                         "Re-ask warnings an agent's re-ask check opened", ["tenant", "queue"])
REASK_WARNINGS_SENT = Counter("handoff_reask_warnings_sent_anyway",
                              "Re-ask warnings followed in time by a turn asking for the fact",
                              ["tenant", "queue"])
# Alerts are about a customer, not a hand-off: by tenant only.
ALERTS = Counter("handoff_alerts", "Risk alerts raised", ["tenant"])
ALERT_ACK_SECONDS = Histogram("handoff_alert_time_to_acknowledge_seconds",
                              "From a risk alert being raised to a supervisor acknowledging it",
                              ["tenant"], buckets=WAIT_BUCKETS)
# Read from Redis when /metrics is scraped (whichever worker answers sets them).
ALERTS_OPEN = Gauge("handoff_alerts_open", "Risk alerts no supervisor has acknowledged yet",
                    ["tenant"], multiprocess_mode="livemostrecent")
REDIS_UP = Gauge("handoff_redis_up", "1 if Redis answered when /metrics was scraped, else 0",
                 multiprocess_mode="livemostrecent")


class Tally:
    """Counts and histogram observations kept in this process until `flush` moves them on."""

    def __init__(self, histogram: Histogram, counter: Counter | None = None) -> None:
        self._histogram = histogram
        self._counter = counter
        self._bounds = list(histogram._upper_bounds)
        self._counts: defaultdict[tuple[str, ...], float] = defaultdict(float)
        # Per label set: one slot per bucket (the last is +Inf), then the sum.
        self._observed: dict[tuple[str, ...], list[float]] = {}

    def count(self, labels: tuple[str, ...]) -> None:
        self._counts[labels] += 1
        _flush_soon()

    def observe(self, labels: tuple[str, ...], seconds: float) -> None:
        _flush_soon()
        slots = self._observed.get(labels)
        if slots is None:
            slots = self._observed[labels] = [0.0] * (len(self._bounds) + 1)
        slots[bisect.bisect_left(self._bounds, seconds)] += 1
        slots[-1] += seconds

    def flush(self) -> None:
        counts, self._counts = self._counts, defaultdict(float)
        observed, self._observed = self._observed, {}
        if self._counter is not None:
            for labels, n in counts.items():
                self._counter.labels(*labels).inc(n)
        for labels, slots in observed.items():
            child = self._histogram.labels(*labels)
            # prometheus-client keeps one value per bucket (not cumulative) and the sum; adding
            # to them is what `observe` does, once per tallied sample.
            for bucket, n in zip(child._buckets, slots[:-1], strict=True):
                if n:
                    bucket.inc(n)
            child._sum.inc(slots[-1])


class LabelBudget:
    """The first `size` distinct values of a caller-chosen label; later ones become `_other`."""

    def __init__(self, size: int = LABEL_BUDGET) -> None:
        self.size = size
        self.seen: set[tuple[str, ...]] = set()

    def __call__(self, *values: str) -> tuple[str, ...]:
        if values in self.seen:
            return values
        if len(self.seen) >= self.size:
            return (*values[:-1], OTHER)
        self.seen.add(values)
        return values


_requests = Tally(REQUEST_SECONDS, REQUESTS)
_store_operations = Tally(REDIS_SECONDS)
_queues = LabelBudget()
_facts = LabelBudget()


def method_label(method: str) -> str:
    """A request's method as a label or a log field: any token a client cares to send is a
    method to HTTP, so only the known ones are kept as sent."""
    return method if method in METHODS else "OTHER"


def request(method: str, route: str | None, status: int, seconds: float | None) -> None:
    """One answered request, its method already a `method_label`; `seconds` is None for an
    event stream (its length is no latency)."""
    route = route or "unmatched"
    _requests.count((method, route, str(status)))
    if seconds is not None:
        _requests.observe((method, route), seconds)


_flush_scheduled = False


def _flush_soon() -> None:
    global _flush_scheduled
    if not _flush_scheduled:
        try:
            asyncio.get_running_loop().call_soon(flush)
        except RuntimeError:  # no event loop (a script): nothing batches, so flush now
            flush()
            return
        _flush_scheduled = True


def flush() -> None:
    """Move this process's tallies into the Prometheus objects (and, with several workers, into
    the files every worker's `/metrics` reads)."""
    global _flush_scheduled
    _flush_scheduled = False
    _requests.flush()
    _store_operations.flush()


def handoff(tenant: str, queue: str, event: HandoffEvent) -> None:
    """A hand-off was requested, accepted, expired, cancelled, resolved or handed back."""
    tenant, queue = _queues(tenant, queue)
    HANDOFFS.labels(tenant, queue, event).inc()


def accepted(tenant: str, queue: str, created_ms: int, accepted_ms: int) -> None:
    """A hand-off was accepted: count it and how long the customer waited for it."""
    handoff(tenant, queue, "accepted")
    tenant, queue = _queues(tenant, queue)
    TIME_TO_ACCEPT.labels(tenant, queue).observe(max(0, accepted_ms - created_ms) / 1000)


def brief(size_bytes: int, turns: int) -> None:
    """A context brief went out to an agent."""
    BRIEF_BYTES.observe(size_bytes)
    BRIEF_TURNS.observe(turns)


def reask(tenant: str, fact: str) -> None:
    """An agent asked for `fact` although the brief already had it."""
    REASKS.labels(*_facts(tenant, fact)).inc()


def accept_figures(tenant: str, queue: str, *, verified: bool, switches: int, steps: int,
                   repeat: bool) -> None:
    """What the brief of an accepted hand-off showed (counted once per hand-off)."""
    labels = _queues(tenant, queue)
    if verified:
        ACCEPTS_VERIFIED.labels(*labels).inc()
    CHANNEL_SWITCHES.labels(*labels).inc(switches)
    JOURNEY_STEPS.labels(*labels).inc(steps)
    if repeat:
        REPEAT_CONTACTS.labels(*labels).inc()


def reask_warnings(tenant: str, queue: str, *, opened: int = 0, sent_anyway: int = 0,
                   reasks: int = 0) -> None:
    """Re-ask warnings opened, closed by a re-ask (sent anyway), and re-asks, in `queue`."""
    labels = _queues(tenant, queue)
    for metric, n in ((REASK_WARNINGS, opened), (REASK_WARNINGS_SENT, sent_anyway),
                      (QUEUE_REASKS, reasks)):
        if n:
            metric.labels(*labels).inc(n)


def alert(tenant: str, *, acknowledged_after_ms: int | None = None) -> None:
    """A risk alert was raised (`acknowledged_after_ms` None), or acknowledged that long after."""
    if acknowledged_after_ms is None:
        ALERTS.labels(tenant).inc()
    else:
        ALERT_ACK_SECONDS.labels(tenant).observe(max(0, acknowledged_after_ms) / 1000)


def store_sampled(open_alerts: dict[str, int] | None) -> None:
    """What a scrape read from Redis: each tenant's open alerts, or None if Redis was away."""
    REDIS_UP.set(0 if open_alerts is None else 1)
    for tenant, n in (open_alerts or {}).items():
        ALERTS_OPEN.labels(tenant).set(n)


def webhook_delivery(outcome: str, count: int = 1) -> None:
    """Outbound webhook deliveries queued, or attempts that ended `outcome` (see `outbox`)."""
    WEBHOOKS.labels(outcome).inc(count)


def store_operation(labels: tuple[str], seconds: float) -> None:
    """One store operation (labels: its name) took `seconds`; the store calls this for every
    timed operation once the app has installed it (see handoff/store/operations.py)."""
    _store_operations.observe(labels, seconds)


def exposition() -> bytes:
    """The text format of every metric, summed over all workers when there are several."""
    flush()
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def process_exited(pid: int, directory: str) -> None:
    """Drop a dead worker's gauges (its counters stay: what it counted still happened)."""
    multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
