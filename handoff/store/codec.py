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


# An entry of a Redis stream: its id and its fields (values as stored).
StreamEntry = tuple[str, dict[str, Any]]


def packed_hash(raw: dict[bytes, bytes]) -> dict[str, Any]:
    """A hash whose values are msgpack records."""
    return {k.decode(): unpack(v) for k, v in raw.items()}


def text_hash(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}


def entries(raw: list[tuple[bytes, dict[bytes, bytes]]]) -> list[StreamEntry]:
    """XRANGE's reply: each entry's id and field names decoded, its values left as bytes."""
    out: list[StreamEntry] = []
    for entry_id, fields in raw:
        out.append((entry_id.decode(), {k.decode(): v for k, v in fields.items()}))
    return out
