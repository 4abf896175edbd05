"""When to try a call again, and how long to wait first."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

RETRY_STATUSES = frozenset({429, 503})


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a `Retry-After` header: delta-seconds or an HTTP date; None if absent or
    unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: at most `attempts` tries of one call within `total` seconds.

    The wait honours `Retry-After` (never shorter) plus up to `jitter` of it again, so clients
    told the same thing do not all come back in the same instant; without the header it is
    "full jitter" exponential backoff from `base` up to `cap` seconds.
    """

    attempts: int = 5
    total: float = 30.0
    base: float = 0.2
    cap: float = 5.0
    jitter: float = 0.2
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed try number `attempt` (1-based)."""
        if retry_after is not None:
            return retry_after + self.rng.uniform(0.0, self.jitter * max(retry_after, 0.5))
        return self.rng.uniform(0.0, min(self.cap, self.base * 2 ** (attempt - 1)))

    def next_wait(self, attempt: int, retry_after: float | None, remaining: float
                  ) -> float | None:
        """The wait before try `attempt + 1`, or None when the attempts or the time are spent."""
        if attempt >= self.attempts:
            return None
        wait = self.delay(attempt, retry_after)
        return wait if wait <= remaining else None


NO_RETRY = RetryPolicy(attempts=1)
