"""Card numbers (Luhn-valid PANs) masked to their last four digits before anything is stored."""

from __future__ import annotations

import re
from typing import Any

# 13 to 19 digits, optionally split by single spaces or dashes, not inside a longer digit run.
_CANDIDATE = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d])")


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _mask(match: re.Match[str]) -> str:
    raw = match.group(0)
    digits = re.sub(r"\D", "", raw)
    if not 13 <= len(digits) <= 19 or not luhn_valid(digits):
        return raw
    return "**** **** **** " + digits[-4:]


def mask_text(text: str) -> str:
    """Replace every Luhn-valid card number in `text` with `**** **** **** 1234`."""
    if not any(c.isdigit() for c in text):
        return text
    return _CANDIDATE.sub(_mask, text)


def mask_value(value: Any) -> Any:
    """Mask strings anywhere inside scalars, lists and dicts."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: mask_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_value(v) for v in value]
    return value
