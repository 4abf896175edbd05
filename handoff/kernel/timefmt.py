"""Millisecond timestamps (how records store time) to and from ISO 8601."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(ms: int | str | None) -> str | None:
    if ms is None or ms == "":
        return None
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def moment(ms: int | str) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC)


def when(ms: int | str | None) -> datetime | None:
    return None if ms is None or ms == "" else moment(ms)
