"""How long and how big: the full run, and the quick one CI uses to smoke-test the bench."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    quick: bool
    warmup: float            # seconds of unmeasured wrk before each measured run
    seconds: float           # measured wrk run at 64 connections
    seconds_c8: float        # the 8-connection latency run that follows it
    growth_warmup: float
    growth_seconds: float
    growth_points: tuple[int, ...]   # turns of history; the first is the reference
    brief_history: int       # turns behind the brief figure: more than the 50 it shows
    handoff_customers: int   # hand-offs cycle over this many customers
    fanout_subscribers: int
    fanout_seconds: float
    fanout_interval: float
    many_customers: int      # 0 skips the many-customers figure
    many_turns: int
    seed_concurrency: int
    quiet_wait: float        # before each figure, wait up to this long for a quiet machine
    round_trip_requests: int  # requests of each kind whose Redis round trips are counted
    budget_seconds: int      # a watchdog stops everything past this, whatever hangs

    @property
    def mode(self) -> str:
        return "quick" if self.quick else "full"


FULL = Plan(quick=False, warmup=2, seconds=10, seconds_c8=10, growth_warmup=1,
            growth_seconds=5, growth_points=(10, 1_000, 100_000), brief_history=60,
            handoff_customers=256, fanout_subscribers=100, fanout_seconds=4,
            fanout_interval=0.05, many_customers=100_000, many_turns=20, seed_concurrency=64,
            quiet_wait=60, round_trip_requests=21, budget_seconds=3600)

QUICK = Plan(quick=True, warmup=1, seconds=1, seconds_c8=1, growth_warmup=1, growth_seconds=1,
             growth_points=(10, 5_000), brief_history=60, handoff_customers=64,
             fanout_subscribers=100, fanout_seconds=1.5, fanout_interval=0.05,
             many_customers=0, many_turns=20, seed_concurrency=64, quiet_wait=0,
             round_trip_requests=5, budget_seconds=120)
