"""Card numbers (Luhn-valid PANs) masked to their last four digits before anything is stored."""

from __future__ import annotations

import re

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
    if 13 <= len(digits) <= 19 and luhn_valid(digits):
        return "**** **** **** " + digits[-4:]
    # A card number next to other digit groups ("4111 1111 1111 1111 737": the security code
    # typed after it) is still a card number: mask the longest run of whole groups that is one.
    parts = re.split(r"([ -])", raw)
    groups = parts[::2]
    for size in range(len(groups) - 1, 0, -1):
        for start in range(len(groups) - size + 1):
            run = "".join(groups[start:start + size])
            if 13 <= len(run) <= 19 and luhn_valid(run):
                head = "".join(parts[:2 * start])
                tail = "".join(parts[2 * (start + size) - 1:])
                return head + "**** **** **** " + run[-4:] + tail
    return raw


def mask_text(text: str) -> str:
    """Replace every Luhn-valid card number in `text` with `**** **** **** 1234`."""
    if not any(c.isdigit() for c in text):
        return text
    return _CANDIDATE.sub(_mask, text)
