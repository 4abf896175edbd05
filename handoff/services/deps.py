"""What every service function is given: the store, the settings, the clock, the caller."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from handoff.settings import Settings
from handoff.store import Store


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: one API key of one tenant with one role."""

    tenant: str
    role: str
    key_id: str


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Deps:
    store: Store
    settings: Settings
    clock: Callable[[], int] = field(default=_now_ms)

    def now_ms(self) -> int:
        return self.clock()

    @property
    def ttl_ms(self) -> int:
        return self.settings.retention_ms
