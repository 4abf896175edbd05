"""Effort KPIs: how much the customer had to repeat, wait and come back, per queue and bucket.

Every figure is defined in one line in docs/kpis.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from schemas.common import Record

Bucket = Literal["hour", "day"]


class FactFigures(Record):
    """One re-ask topic's figures."""

    reasks: int = Field(description="agent turns that asked for this fact although the "
                                    "context held it")
    reasks_per_100_accepted: float | None = Field(
        description="reasks per 100 accepted hand-offs; null without accepted hand-offs")
    warnings: int = Field(description="re-ask warnings for this fact (see docs/kpis.md)")
    heeded: int = Field(description="warnings not followed by a re-ask of the fact in time")
    sent_anyway: int = Field(description="warnings followed by a re-ask of the fact in time")


class KpiFigures(Record):
    """The effort figures of one bucket, or of the whole range. Shares are 0 to 1, rounded to
    4 decimals (as are averages and rates); null where the denominator is 0."""

    requested: int
    accepted: int
    expired: int
    cancelled: int
    handed_back: int
    resolved: int
    time_to_accept_p50_seconds: int | None
    time_to_accept_p90_seconds: int | None
    verified_at_accept: int
    verification_carried: float | None
    reasks: int
    reasks_per_100_accepted: float | None
    reask_warnings: int
    reask_warnings_heeded: int
    reask_warnings_sent_anyway: int
    by_fact: dict[str, FactFigures]
    channel_switches: int
    channel_switches_per_handoff: float | None
    journey_steps_per_handoff: float | None
    repeat_contacts: int
    repeat_contact_share: float | None
    alerts_raised: int
    alerts_acknowledged: int
    time_to_acknowledge_p50_seconds: int | None
    time_to_acknowledge_p90_seconds: int | None


class KpiBucket(KpiFigures):
    """One hour, or one UTC day: [start, end)."""

    start: datetime
    end: datetime


_FIGURES: dict[str, Any] = {
    "requested": 12, "accepted": 9, "expired": 2, "cancelled": 1, "handed_back": 4,
    "resolved": 5, "time_to_accept_p50_seconds": 45, "time_to_accept_p90_seconds": 240,
    "verified_at_accept": 6, "verification_carried": 0.6667, "reasks": 2,
    "reasks_per_100_accepted": 22.2222, "reask_warnings": 3, "reask_warnings_heeded": 2,
    "reask_warnings_sent_anyway": 1,
    "by_fact": {"account": {"reasks": 2, "reasks_per_100_accepted": 22.2222, "warnings": 3,
                            "heeded": 2, "sent_anyway": 1}},
    "channel_switches": 7, "channel_switches_per_handoff": 0.7778,
    "journey_steps_per_handoff": 1.8889, "repeat_contacts": 1, "repeat_contact_share": 0.1111,
    "alerts_raised": 1, "alerts_acknowledged": 1, "time_to_acknowledge_p50_seconds": 30,
    "time_to_acknowledge_p90_seconds": 30}


class Kpis(Record):
    """The effort KPIs of the caller's tenant (one queue, or every queue) over whole buckets."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "tenant": "acme", "queue": "billing", "bucket": "day",
        "start": "2026-11-23T00:00:00Z", "end": "2026-11-24T00:00:00Z",
        "reask_warning_minutes": 5, "total": _FIGURES,
        "buckets": [{**_FIGURES, "start": "2026-11-23T00:00:00Z",
                     "end": "2026-11-24T00:00:00Z"}]}]})

    tenant: str
    queue: str | None = Field(description="null: every queue of the tenant")
    bucket: Bucket
    start: datetime = Field(description="start of the first bucket")
    end: datetime = Field(description="end of the last bucket")
    reask_warning_minutes: int = Field(
        description="how long a re-ask warning waits for the agent's turn before it counts as "
                    "heeded")
    total: KpiFigures
    buckets: list[KpiBucket]
