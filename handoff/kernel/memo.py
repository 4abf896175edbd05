"""A small in-process cache with a time limit, for lookups that rarely change.

Index entries (identity or conversation -> customer) and API key records are read on nearly every
request and almost never change; remembering them for a short while removes a round trip from
the hot path. Staleness is safe by construction: a write to a customer that was merged away is
refused by the write script and retried on the survivor, and every entry is re-read (refreshing
its Redis TTL) once its time is up.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Memo(Generic[K, V]):
    """At most `size` entries, each good for `ttl` seconds; the least recently set go first."""

    def __init__(self, size: int, ttl: float) -> None:
        self.size, self.ttl = size, ttl
        self._data: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        hit = self._data.get(key)
        if hit is None:
            return None
        if hit[0] < time.monotonic():
            del self._data[key]
            return None
        return hit[1]

    def set(self, key: K, value: V) -> None:
        self._data[key] = (time.monotonic() + self.ttl, value)
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)

    def drop(self, key: K) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()
