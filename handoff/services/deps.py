"""What every service function is given: the store, the settings, the clock, the caller."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from handoff.kernel.memo import Memo
from handoff.kernel.settings import Settings
from handoff.services.known import KnownConversations
from handoff.services.outbox import Outbox
from handoff.services.privacy import Privacy
from handoff.services.reask_detector import Detector
from handoff.store import Store
from schemas.brief import Brief

# How often a key's "last used" time is written: once a minute at most per key and process.
KEY_USE_EVERY_S = 60.0


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: one API key of one tenant with one role, or an agent panel
    token (`agent_id` set), which acts for the agent key that minted it."""

    tenant: str
    role: str
    key_id: str
    agent_id: str | None = None
    expires_ms: int | None = None

    @property
    def desk(self) -> bool:
        return self.agent_id is not None


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Deps:
    store: Store
    settings: Settings
    clock: Callable[[], int] = field(default=_now_ms)
    privacy: Privacy = field(init=False)
    # Recently built briefs by (tenant, customer, turns), each with the ETag it was built for.
    briefs: Memo[tuple[str, str, int], tuple[str, Brief]] = field(init=False)
    # Outbound webhooks: where every customer write queues its deliveries.
    outbox: Outbox = field(init=False)
    # Conversations a turn can be appended to without resolving their customer again.
    known: KnownConversations = field(init=False)
    # The re-ask detector of these settings' topics, compiled once.
    reasks: Detector = field(init=False)
    # API keys this process recorded a use of lately: "last used" is kept to the minute.
    key_uses: Memo[str, bool] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "privacy", Privacy(self.settings, self.store.digester.digest))
        object.__setattr__(self, "briefs", Memo(size=self.settings.brief_cache_size, ttl=300.0))
        object.__setattr__(self, "outbox", Outbox(
            self.store, lease_ms=int(self.settings.webhook_outbox_lease_seconds * 1000),
            crash_before_enqueue=self.settings.fault_crash_before_enqueue))
        object.__setattr__(self, "known", KnownConversations(self.store))
        object.__setattr__(self, "reasks", Detector(self.settings.reask_topics))
        object.__setattr__(self, "key_uses", Memo(size=10_000, ttl=KEY_USE_EVERY_S))

    def now_ms(self) -> int:
        return self.clock()

    def retention_ms(self, tenant: str) -> int:
        """How long a quiet customer of `tenant` is kept: every key's TTL."""
        return self.privacy.retention_ms(tenant)
