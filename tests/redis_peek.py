"""Looking inside Redis the way an auditor would: every key, read by its type, as plain values.

Records are msgpack, so each stored value is also unpacked (when it is msgpack) and rendered as
JSON text: a card number stored as a msgpack integer is as much a leak as one stored as text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import redis

Contents = tuple[str, Any]
Snapshot = dict[bytes, Contents]
# Hash fields that record that something was *used*, not what it holds: an API key notes when
# it was last used (to the minute) as soon as it authenticates, before the request is read.
# A refused request has still used its key, so comparing "what the request changed" skips them.
BOOKKEEPING = frozenset({b"last_used_ms"})


def _read(client: Any, key: bytes, drop_fields: frozenset[bytes]) -> Contents:
    kind = client.type(key).decode()
    if kind == "string":
        return kind, client.get(key)
    if kind == "hash":
        return kind, {f: v for f, v in sorted(client.hgetall(key).items())
                      if f not in drop_fields}
    if kind == "stream":
        return kind, [(entry_id, dict(sorted(fields.items())))
                      for entry_id, fields in client.xrange(key, "-", "+")]
    if kind == "zset":
        return kind, client.zrange(key, 0, -1, withscores=True)
    if kind == "set":
        return kind, sorted(client.smembers(key))
    if kind == "list":
        return kind, client.lrange(key, 0, -1)
    return kind, None  # the key expired between SCAN and TYPE


def snapshot(client: redis.Redis, keep: Callable[[bytes], bool] = lambda _: True, *,
             drop_fields: frozenset[bytes] = BOOKKEEPING) -> Snapshot:
    """Every key (that `keep` accepts) with its type and whole contents; no DUMP, no TTLs."""
    return {key: _read(client, key, drop_fields)
            for key in sorted(client.scan_iter(count=1000)) if keep(key)}


def assert_unchanged(before: Snapshot, after: Snapshot) -> None:
    """Equal snapshots, or a message naming exactly which keys appeared, vanished or changed."""
    if before == after:
        return
    added = sorted(after.keys() - before.keys())
    removed = sorted(before.keys() - after.keys())
    changed = {k: _difference(before[k], after[k])
               for k in sorted(before.keys() & after.keys()) if before[k] != after[k]}
    raise AssertionError(f"the store changed: added {added}, removed {removed}, "
                         f"changed {changed}")


def _difference(before: Contents, after: Contents) -> Any:
    """For a hash, the fields that differ (before, after); otherwise both whole contents."""
    (kind, old), (_, new) = before, after
    if kind == "hash" and isinstance(new, dict):
        return {f: (old.get(f), new.get(f)) for f in sorted(old.keys() | new.keys())
                if old.get(f) != new.get(f)}
    return old, new


def blobs(value: Any) -> Iterator[bytes]:
    """Every bytes value inside a key's contents (hash fields and values, list and set members)."""
    if isinstance(value, bytes):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from blobs(k)
            yield from blobs(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from blobs(v)
    elif value is not None:
        yield str(value).encode()


def _unpacked(blob: bytes) -> str | None:
    try:
        value = msgpack.unpackb(blob, raw=False, strict_map_key=False)
    except Exception:  # not msgpack (plain text, ids, numbers): the raw bytes speak for it
        return None
    return json.dumps(value, default=repr, ensure_ascii=False)


def everything(client: redis.Redis) -> str:
    """All key names and contents as one text: raw bytes and unpacked msgpack alike."""
    parts: list[str] = []
    for key, (_, contents) in snapshot(client, drop_fields=frozenset()).items():
        parts.append(key.decode("latin-1"))
        for blob in blobs(contents):
            parts.append(blob.decode("latin-1"))
            rendered = _unpacked(blob)
            if rendered is not None:
                parts.append(rendered)
    return "\n".join(parts)


def not_an_attempt_counter(key: bytes) -> bool:
    """False for the counters that slow guessing down (failed keys, wrong continuation codes).

    Counting a refused attempt is their whole point, so a refused request may move them; they
    hold a number per source and time window, never customer data.
    """
    return not any(mark in key for mark in (b":rate:", b":codefail", b":authfail:"))
