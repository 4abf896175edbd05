"""The only code that talks to Redis."""

from handoff.store.store import Store

__all__ = ["Store"]
