"""Schemathesis hooks: the API speaks msgpack beside JSON, so the fuzzer sends msgpack too.

Loaded through `SCHEMATHESIS_HOOKS` by `tests.faults.fuzz`.
"""

from __future__ import annotations

from typing import Any

import msgpack
import schemathesis

INT_RANGE = (-(2**63), 2**64 - 1)


def _packable(value: Any) -> Any:
    """msgpack has no integers beyond 64 bits; send those as text, which must then be refused."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not INT_RANGE[0] <= value <= INT_RANGE[1]:
        return str(value)
    if isinstance(value, dict):
        return {k: _packable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_packable(v) for v in value]
    return value


@schemathesis.serializer("application/msgpack")
def msgpack_body(ctx: Any, value: Any) -> bytes:
    return bytes(msgpack.packb(_packable(value)))
