"""Effort KPIs in Redis: counters per tenant, queue and hour or UTC day, all in the tenant's slot.

Each bucket (an hour, or a UTC day) is one hash of counters for every queue of the tenant
(`<queue>|<figure>` -> n), plus histograms of whole seconds for the time-to-accept percentiles,
per queue and over every queue (`*`). A histogram of whole seconds gives exact percentiles at
one-second resolution and holds at most one field per distinct second, so it never grows beyond
the number of hand-offs it counts. Every key expires after the tenant's retention, pushed
forward by each write. (Alerts keep their own times: services/alerts.py `timings`.)

Nothing here costs a round trip of its own on a hand-off: the lifecycle counts ride in the
hand-off scripts (`create_keys`, `transition_keys` give them their keys), what an accept's brief
showed rides in the accept's audit pipeline (`AcceptRider`), and the re-ask counts take the
place of the all-time counter the re-ask detector already kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import NoScriptError

from handoff.store import keys, scripts
from handoff.store.connection import Client, map_exceptions
from handoff.store.keys import Digester
from handoff.store.operations import operations

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
SIZES = {"h": HOUR_MS, "d": DAY_MS}
# Where figures go that belong to no queue (re-asks of a customer never handed to an agent);
# queue names start with a letter or a digit, so no queue is called this.
NO_QUEUE = "_none"
ALL_QUEUES = "*"
ACCEPT = scripts.source("kpi_accept")


def bucket(ms: int, size: str) -> int:
    """The hour or UTC day (counted from the epoch) holding the moment `ms`."""
    return ms // SIZES[size]


def create_keys(tenant: str, now_ms: int) -> list[str]:
    """The keys handoff_create.lua counts a request in: this hour's and this day's counters."""
    return [keys.kpi_counters(tenant, "h", bucket(now_ms, "h")),
            keys.kpi_counters(tenant, "d", bucket(now_ms, "d"))]


def transition_keys(tenant: str, now_ms: int) -> tuple[list[str], list[str]]:
    """The keys handoff_transition.lua counts a transition in: this hour's and this day's
    counters, then their time-to-accept histograms of every queue; and the names of the
    hand-off's own queue's histograms less the queue (the script reads the queue itself)."""
    hour, day = bucket(now_ms, "h"), bucket(now_ms, "d")
    return ([*create_keys(tenant, now_ms),
             keys.kpi_samples(tenant, "h", hour, "w", ALL_QUEUES),
             keys.kpi_samples(tenant, "d", day, "w", ALL_QUEUES)],
            [keys.kpi_samples(tenant, "h", hour, "w", ""),
             keys.kpi_samples(tenant, "d", day, "w", "")])


@dataclass(frozen=True)
class AcceptFigures:
    """What the brief an agent received with an accepted hand-off showed."""

    queue: str
    handoff_id: str
    verified: bool
    channel_switches: int
    journey_steps: int
    repeat_contact: bool


@operations(timed=False)
@dataclass
class AcceptRider:
    """Counts an accept's figures with one command added to a pipeline the accept already
    sends (its audit entry); `counted` hears whether this was the hand-off's first count."""

    key_names: list[str]
    args: list[str | int]
    counted: Callable[[bool], None]
    script: Any  # kpi_accept.lua as the client registered it (its `sha`, and a runner)

    def queue(self, pipe: Any) -> None:
        # As a plain command: a cluster pipeline refuses `evalsha()` by name, though it routes
        # EVALSHA by its keys like any other command.
        pipe.execute_command("EVALSHA", self.script.sha, len(self.key_names), *self.key_names,
                             *self.args)

    async def replied(self, replies: list[Any]) -> None:
        """Hear the reply of what `queue` added (the pipeline ran with raise_on_error=False)."""
        (reply,) = replies
        if isinstance(reply, NoScriptError):
            # A new or restarted server: the script did not run, so running it now (which
            # loads it) counts the accept once, one round trip later.
            reply = await self.script(keys=self.key_names, args=self.args)
        elif isinstance(reply, Exception):
            raise reply
        self.counted(reply == 1)


@dataclass
class BucketData:
    """One bucket as stored: counters by queue, then the time-to-accept histogram (of one
    queue, or of every queue)."""

    counters: dict[str, dict[str, int]] = field(default_factory=dict)
    waits: dict[int, int] = field(default_factory=dict)


def _histogram(raw: dict[bytes, bytes]) -> dict[int, int]:
    return {int(k): int(v) for k, v in raw.items()}


@operations()
class KpiStore:
    """The effort KPIs of every tenant."""

    def __init__(self, client: Client, digester: Digester) -> None:
        self.client: Any = client
        self.digester = digester
        self._warn: scripts.Runner = client.register_script(scripts.source("kpi_warn"))
        self._reask: scripts.Runner = client.register_script(scripts.source("kpi_reask"))
        self._accept = client.register_script(ACCEPT)

    def customer_key(self, tenant: str, cus_id: str) -> str:
        return keys.kpi_customer(tenant, self.digester.digest(f"kpi\x00{cus_id}"))

    def accept_rider(self, tenant: str, cus_id: str, figures: AcceptFigures, *,
                     now_ms: int, retention_ms: int, counted: Callable[[bool], None]
                     ) -> AcceptRider:
        """The command that counts an accept's figures, for a pipeline in the tenant's slot."""
        return AcceptRider(
            [*create_keys(tenant, now_ms), self.customer_key(tenant, cus_id)],
            [retention_ms, figures.queue, figures.handoff_id, int(figures.verified),
             figures.channel_switches, figures.journey_steps, int(figures.repeat_contact)],
            counted, self._accept)

    async def warned(self, tenant: str, cus_id: str, facts: list[str], *, now_ms: int,
                     window_ms: int, retention_ms: int) -> tuple[str, int]:
        """Open a re-ask warning for each fact without an open one: (queue, how many)."""
        with map_exceptions():
            queue, opened = await self._warn(
                keys=[*create_keys(tenant, now_ms), self.customer_key(tenant, cus_id)],
                args=[retention_ms, now_ms, window_ms, *facts])
        return queue.decode(), int(opened)

    async def reasked(self, tenant: str, cus_id: str, facts: list[str], *, now_ms: int,
                      window_ms: int, retention_ms: int) -> tuple[str, int]:
        """Count re-asks of `facts` (one entry per re-ask) and close their open warnings as
        sent anyway: (the queue they were counted in, warnings sent anyway)."""
        hour, day = bucket(now_ms, "h"), bucket(now_ms, "d")
        names = [keys.reasks(tenant), keys.kpi_counters(tenant, "h", hour),
                 keys.kpi_counters(tenant, "d", day), keys.kpi_counters(tenant, "h", hour - 1),
                 keys.kpi_counters(tenant, "d", day - 1), self.customer_key(tenant, cus_id)]
        with map_exceptions():
            queue, sent = await self._reask(keys=names, args=[
                retention_ms, now_ms, window_ms, hour * HOUR_MS, day * DAY_MS, *facts])
        return queue.decode(), int(sent)

    async def erase_customer(self, tenant: str, cus_id: str) -> int:
        """Forget the customer's queue and open warnings; 1 if there were any."""
        with map_exceptions():
            return int(await self.client.delete(self.customer_key(tenant, cus_id)))

    async def open_alerts(self, tenants: list[str]) -> dict[str, int]:
        """How many alerts of each tenant are open (one round trip)."""
        with map_exceptions():
            async with self.client.pipeline(transaction=False) as pipe:
                for tenant in tenants:
                    pipe.zcard(keys.alerts(tenant, "open"))
                raw = await pipe.execute()
        return {t: int(n) for t, n in zip(tenants, raw, strict=True)}

    async def queues_of(self, tenant: str, cus_ids: list[str]) -> dict[str, str]:
        """The queue of each customer's last accepted hand-off, for those that had one."""
        if not cus_ids:
            return {}
        with map_exceptions():
            async with self.client.pipeline(transaction=False) as pipe:
                for cus_id in cus_ids:
                    pipe.hget(self.customer_key(tenant, cus_id), "q")
                raw = await pipe.execute()
        return {c: q.decode() for c, q in zip(cus_ids, raw, strict=True) if q}

    async def read(self, tenant: str, size: str, numbers: list[int], queue: str | None
                   ) -> list[BucketData]:
        """Buckets `numbers` of size `size` in one round trip; the histograms of `queue`, or
        of every queue when it is None. A bucket nothing was counted in reads empty."""
        sample_queue = queue or ALL_QUEUES
        with map_exceptions():
            async with self.client.pipeline(transaction=False) as pipe:
                for number in numbers:
                    pipe.hgetall(keys.kpi_counters(tenant, size, number))
                    pipe.hgetall(keys.kpi_samples(tenant, size, number, "w", sample_queue))
                raw = await pipe.execute()
        out = []
        for i in range(0, len(raw), 2):
            data = BucketData(waits=_histogram(raw[i + 1]))
            for name, value in raw[i].items():
                q, _, figure = name.decode().partition("|")
                data.counters.setdefault(q, {})[figure] = int(value)
            out.append(data)
        return out
