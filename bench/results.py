"""What a run measured, independent of how it is shown (bench/report.py renders it)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Figure:
    key: str                 # stable name the report and the targets look figures up by
    label: str
    rate: float              # per second, of `unit`
    p50_ms: float
    p99_ms: float
    unit: str = "req/s"
    p99_c8_ms: float | None = None   # the same request at 8 connections
    note: str = ""
    other_load: float = 0.0  # cores other processes kept busy meanwhile (bench/cpu.py)
    cpu_us: float | None = None  # the server's CPU per request during the measured run


@dataclass(frozen=True)
class GrowthPoint:
    turns: int               # history length before the runs at this point
    brief_rps: float
    append_rps: float
    brief_p99_ms: float
    append_p99_ms: float
    other_load: float = 0.0


@dataclass(frozen=True)
class MemoryPoint:
    turns: int
    text_bytes: float        # average raw text of one turn
    turns_and_tids: float    # MEMORY USAGE of the turns stream + tids hash, per turn
    all_keys: float          # every key of the customer (events stream included), per turn


@dataclass(frozen=True)
class ManyCustomers:
    customers: int
    turns_each: int
    used_memory_per_customer: float
    seed_seconds: float
    brief: Figure
    breakdown: dict[str, int]    # one customer's keys: name -> MEMORY USAGE bytes


@dataclass(frozen=True)
class RoundTrips:
    kind: str                # append, brief, 304, create, accept
    round_trips: float       # Redis reads of what the service wrote, per request (median)
    commands: float          # commands Redis ran, scripts' own included, per request (median)
    requests: int


@dataclass
class Results:
    facts: dict[str, str]
    figures: list[Figure] = field(default_factory=list)
    growth: list[GrowthPoint] = field(default_factory=list)
    memory: list[MemoryPoint] = field(default_factory=list)
    many: ManyCustomers | None = None
    round_trips: list[RoundTrips] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def figure(self, key: str) -> Figure | None:
        return next((f for f in self.figures if f.key == key), None)
