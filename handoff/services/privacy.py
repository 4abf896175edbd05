"""Per-tenant data protection: what is masked, which identities are kept only as a keyed hash,
and how long a quiet customer is kept."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from handoff.errors import Unprocessable
from handoff.services.masking import mask_text
from handoff.settings import Settings

# A 3-4 digit code right after card-security wording: "CVV 123", "security code is 0421".
_SECURITY_CODE = re.compile(
    r"(?i)\b(cvv2?|cvc2?|cid|csc|security\s+code|card\s+code|card\s+verification"
    r"(?:\s+(?:code|value))?)(\W{0,3}(?:is\W{0,3})?)(\d{3,4})\b")
ALL_TENANTS = "*"


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

    def mask(self, tenant: str, text: str) -> str:
        """Card numbers, security codes and the tenant's own patterns, masked."""
        text = mask_text(text)
        if any(c.isdigit() for c in text):
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
        if isinstance(value, dict):
            return {k: self.mask_value(tenant, v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.mask_value(tenant, v) for v in value]
        return value


def refuse_card_numbers(*fields: tuple[tuple[str | int, ...], str | None]) -> None:
    """422 for a card number in a field that names things (an id, a source, a queue): unlike
    free text it cannot be masked without changing what it names, so it is never stored."""
    errors = [{"loc": [mask_text(p) if isinstance(p, str) else p for p in loc],
               "msg": "looks like a card number; not accepted here"}
              for loc, value in fields if value and mask_text(value) != value]
    if errors:
        raise Unprocessable("a card number cannot be an identifier", errors)
