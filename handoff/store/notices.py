"""Telling every process to forget: a stream of notices (revoked keys, erased index entries,
changed subscriptions...) that each process follows and applies to what it remembers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from handoff.kernel.memo import Memo
from handoff.store import keys
from handoff.store.connection import Client, map_exceptions
from handoff.store.operations import operations


@operations(untimed=frozenset({"follow_invalidations"}))
class Notices:
    """The invalidation bus: memos dropped by kind of notice, and listeners told of them."""

    def __init__(self, client: Client, blocking: Client) -> None:
        self.client: Any = client
        self.blocking: Any = blocking
        self._memos: dict[str, Memo[str, Any]] = {}
        self._listeners: dict[str, list[Callable[[list[str]], None]]] = {}

    def drop_from(self, kind: str, memo: Memo[str, Any]) -> None:
        """Drop the names a notice of `kind` gives from `memo`."""
        self._memos[kind] = memo

    def listen(self, kind: str, callback: Callable[[list[str]], None]) -> None:
        """Also hand notices of `kind` (from any process, this one included) to `callback`."""
        self._listeners.setdefault(kind, []).append(callback)

    async def invalidate(self, kind: str, names: list[str]) -> None:
        """Drop remembered entries here and, through the invalidation stream, everywhere."""
        self._forget(kind, names)
        with map_exceptions():
            await self.client.xadd(keys.invalidations(), {"k": kind, "n": "\n".join(names)},
                                   maxlen=10_000, approximate=True)

    def _forget(self, kind: str, names: list[str]) -> None:
        memo = self._memos.get(kind)
        if memo is not None:
            for name in names:
                memo.drop(name)
        # After the memo is dropped: a listener re-reading the key must see it as it is now.
        for callback in self._listeners.get(kind, ()):
            callback(names)

    async def follow_invalidations(self) -> None:
        """Apply other processes' invalidations as they come (run as a background task)."""
        stream = keys.invalidations()
        with map_exceptions():
            last = await self.client.xrevrange(stream, "+", "-", count=1)
        cursor = last[0][0].decode() if last else "0-0"
        while True:
            with map_exceptions():
                raw = await self.blocking.xread({stream: cursor}, count=500, block=10_000)
            for _, entries in (raw.items() if isinstance(raw, dict) else raw or []):
                for entry_id, fields in (entries[0] if isinstance(raw, dict) else entries):
                    cursor = entry_id.decode()
                    self._forget(fields[b"k"].decode(), fields[b"n"].decode().split("\n"))
