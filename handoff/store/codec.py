"""The one place records become bytes and back: msgpack of plain dicts."""

from __future__ import annotations

from typing import Any

import msgpack


def pack(record: Any) -> bytes:
    return msgpack.packb(record, use_bin_type=True)  # type: ignore[no-any-return]


def unpack(raw: bytes | None) -> Any:
    if raw is None:
        return None
    return msgpack.unpackb(raw, raw=False, strict_map_key=False)


def unpack_bytes(raw: bytes) -> Any:
    """msgpack packed by a Lua script, whose strings are bytes (cmsgpack knows no other kind)."""
    return msgpack.unpackb(raw, raw=True)


def text(raw: bytes | str | None) -> str | None:
    if raw is None:
        return None
    return raw.decode() if isinstance(raw, bytes) else raw
