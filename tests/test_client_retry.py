"""How long the client waits before trying again, and when it stops trying."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from handoff.client.retry import RetryPolicy, parse_retry_after


def policy(**options: float) -> RetryPolicy:
    return RetryPolicy(rng=random.Random(7), **options)  # type: ignore[arg-type]


def test_retry_after_is_never_cut_short_and_its_jitter_is_bounded() -> None:
    p = policy(jitter=0.2)
    waits = [p.delay(1, 3.0) for _ in range(500)]
    assert min(waits) >= 3.0 and max(waits) <= 3.6
    assert max(waits) - min(waits) > 0.3, "waits told the same Retry-After must spread out"


def test_without_retry_after_the_backoff_grows_and_is_capped() -> None:
    p = policy(base=0.2, cap=1.0)
    assert all(0 <= p.delay(1, None) <= 0.2 for _ in range(200))
    assert all(0 <= p.delay(3, None) <= 0.8 for _ in range(200))
    assert all(0 <= p.delay(30, None) <= 1.0 for _ in range(200))


def test_no_wait_once_the_attempts_or_the_time_budget_are_spent() -> None:
    p = policy(attempts=3, total=10.0)
    assert p.next_wait(1, 2.0, remaining=10.0) is not None
    assert p.next_wait(3, 2.0, remaining=10.0) is None, "three tries were allowed, not four"
    assert p.next_wait(1, 20.0, remaining=10.0) is None, "a wait past the budget is no retry"


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True),
                             now=now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True),
                             now=now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
