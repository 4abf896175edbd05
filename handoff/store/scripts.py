"""Lua scripts, loaded from files once and registered once per client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

# A registered script: called with `keys=` and `args=`, whichever client registered it.
Runner = Callable[..., Awaitable[Any]]


def source(name: str) -> str:
    return resources.files("handoff.store").joinpath(f"lua/{name}.lua").read_text()


CUSTOMER_WRITE = source("customer_write")
CUSTOMER_REDIRECT = source("customer_redirect")
HANDOFF_CREATE = source("handoff_create")
HANDOFF_TRANSITION = source("handoff_transition")
DELETE_IF = source("delete_if")
HANDOFF_ERASE = source("handoff_erase")
WEBHOOK_ENQUEUE = source("webhook_enqueue")
WEBHOOK_CLAIM = source("webhook_claim")
WEBHOOK_SETTLE = source("webhook_settle")
WEBHOOK_REDELIVER = source("webhook_redeliver")
OUTBOX_CLAIM = source("outbox_claim")
OUTBOX_UNINDEX = source("outbox_unindex")
