"""Per-tenant data protection: what is masked, which identities are kept only as a keyed hash,
and how long a quiet customer is kept."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

from handoff.kernel.errors import Unprocessable
from handoff.kernel.masking import card_numbers, has_card_number, has_digit, mask_text
from handoff.kernel.settings import Settings

M = TypeVar("M", bound=BaseModel)

# A 3-4 digit code right after card-security wording: "CVV 123", "security code is 0421".
_SECURITY_CODE = re.compile(
    r"(?i)\b(cvv2?|cvc2?|cid|csc|security\s+code|card\s+code|card\s+verification"
    r"(?:\s+(?:code|value))?)(\W{0,3}(?:is\W{0,3})?)(\d{3,4})\b")
ALL_TENANTS = "*"
# Path segments a browser or proxy rewrites ("/a/./b", "/a/../b") rather than sends as a name.
DOT_NAMES = frozenset({".", ".."})
# Hex digits as letters: a digest of digits could itself hold a run that reads as a card number.
_LETTERS = str.maketrans("0123456789", "ghijklmnop")


def _keep_last_four(match: re.Match[str]) -> str:
    text = match.group(0)
    visible = 4
    out, seen = [], 0
    for ch in reversed(text):
        if ch.isalnum():
            seen += 1
            out.append(ch if seen <= visible else "*")
        else:
            out.append(ch)
    return "".join(reversed(out))


def display_mask(value: str) -> str:
    """How a sensitive identity is shown: all but its last four characters hidden."""
    return "*" * max(0, len(value) - 4) + value[-4:] if len(value) > 4 else "*" * len(value)


class Privacy:
    """The data-protection rules of every tenant, from Settings."""

    def __init__(self, settings: Settings, digest: Callable[[str], str]) -> None:
        self._digest = digest
        self._default_retention = settings.retention_ms
        self._retention = {t: int(days * 86400 * 1000)
                           for t, days in settings.tenant_retention_days.items()}
        self._sensitive = {t: frozenset(kinds) for t, kinds in settings.sensitive_kinds.items()}
        self._patterns = {t: [re.compile(p) for p in patterns]
                          for t, patterns in settings.mask_patterns.items()}

    def retention_ms(self, tenant: str) -> int:
        return self._retention.get(tenant, self._default_retention)

    def sensitive(self, tenant: str, kind: str) -> bool:
        return kind in self._sensitive.get(tenant, frozenset()) or kind in self._sensitive.get(
            ALL_TENANTS, frozenset())

    def digest(self, tenant: str, kind: str, value: str) -> str:
        """The keyed hash a sensitive identity is stored as (never the value itself)."""
        return self._digest(f"{tenant}\x00{kind}\x00{value}")

    def safe_id(self, value: str) -> str:
        """An identifier as it is stored and shown: unchanged, unless it holds a card number
        (a numeric or snowflake id passes the Luhn check one time in ten) or is `.` or `..`.
        Such an id becomes `id-<its card number's last four>-<keyed digest>`: the same for the
        same id on every process and after restarts (so retries stay duplicates and lookups
        find it), and a fixed point (posting it back names the same thing)."""
        if value in DOT_NAMES:
            return f"id-{self.id_digest(value)}"
        found = card_numbers(value)
        if not found:
            return value
        return f"id-{found[-1][2]}-{self.id_digest(value)}"

    def safe_ids(self, model: M, *fields: str) -> M:
        """`model` with the named identifier fields as `safe_id` stores them (itself when none
        changes, so the common case copies nothing)."""
        changed: dict[str, str] = {}
        for field in fields:
            value = getattr(model, field)
            if value is not None and value != (safe := self.safe_id(value)):
                changed[field] = safe
        return model.model_copy(update=changed) if changed else model

    def id_digest(self, value: str) -> str:
        """A stable name for `value` that reveals nothing of it: 80 bits of HMAC-SHA256 under
        the deployment's secret, as 20 letters (no digit run to read as a card number). Keyed,
        because an unkeyed hash of anything holding a card number is undone by trying every
        number that fits its last four and the Luhn check."""
        return self._digest(f"id\x00{value}")[:20].translate(_LETTERS)

    def mask(self, tenant: str, text: str) -> str:
        """Card numbers, security codes and the tenant's own patterns, masked."""
        if has_digit(text):
            text = mask_text(text)
            text = _SECURITY_CODE.sub(lambda m: m.group(1) + m.group(2) + "***", text)
        for pattern in (*self._patterns.get(ALL_TENANTS, ()), *self._patterns.get(tenant, ())):
            text = pattern.sub(_keep_last_four, text)
        return text

    def mask_value(self, tenant: str, value: Any) -> Any:
        """Mask strings anywhere inside scalars, lists and dicts (numbers too)."""
        if isinstance(value, str):
            return self.mask(tenant, value)
        if isinstance(value, int) and not isinstance(value, bool):
            hidden = self.mask(tenant, str(value))
            return value if hidden == str(value) else hidden
        if isinstance(value, float) and value.is_integer() and 1e12 <= abs(value) < 1e19:
            # A card number sent as 4111111111111111.0 or 4.111111111111111e15.
            hidden = self.mask(tenant, str(int(value)))
            return value if hidden == str(int(value)) else hidden
        if isinstance(value, dict):
            return {k: self.mask_value(tenant, v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.mask_value(tenant, v) for v in value]
        return value


def refuse_card_numbers(*fields: tuple[tuple[str | int, ...], str | None]) -> None:
    """422 for a card number in a field that names data or configuration (a fact key, an
    entity name, an API key's name, a webhook's address): such names are chosen by whoever
    integrates, not by a platform, and would read as nonsense digested, so they are refused.
    Identifiers a platform assigns go through `Privacy.safe_id` instead."""
    errors = [{"loc": [mask_text(p) if isinstance(p, str) else p for p in loc],
               "msg": "looks like a card number; not accepted here"}
              for loc, value in fields if value and has_card_number(value)]
    if errors:
        raise Unprocessable("a card number cannot be an identifier", errors)
