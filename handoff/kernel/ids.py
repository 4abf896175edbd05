"""Identifiers: ULIDs (time-ordered, 128 bits) with a type prefix, and secret tokens."""

from __future__ import annotations

import os
import secrets
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid(now_ms: int | None = None) -> str:
    """A 26-character ULID: 48 bits of milliseconds then 80 random bits."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    out = []
    for _ in range(26):
        out.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(out))


def customer_id() -> str:
    return f"cus_{ulid()}"


def handoff_id() -> str:
    return f"ho_{ulid()}"


def key_id() -> str:
    return f"key_{ulid()}"


def numeric_code(digits: int) -> str:
    """A uniformly random code of exactly `digits` digits (leading zeros kept)."""
    return str(secrets.randbelow(10**digits)).zfill(digits)


def api_secret() -> str:
    return "hk_" + secrets.token_urlsafe(32)
