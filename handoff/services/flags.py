"""Risk and frustration terms spotted in what customers say, and which of them alert a
supervisor."""

from __future__ import annotations

import re
from dataclasses import dataclass

from handoff.kernel.settings import Settings

HUMAN_TERM = "repeated request for a human"
# Tenants whose merged alert rules are kept worked out (they are only read on a flagged turn).
MAX_TENANT_RULES = 10_000


@dataclass(frozen=True, slots=True)
class Hit:
    kind: str
    term: str


class Lexicon:
    """Whole-word, case-insensitive matching of the configured terms."""

    def __init__(self, settings: Settings) -> None:
        self._terms = [(kind, term, _word(term)) for kind, terms in settings.lexicon.items()
                       for term in terms]
        # Most turns hold none of the terms: one pass over the text says so, and only a turn
        # that holds one is searched term by term (terms may overlap: each is found on its own).
        self._any = _any_of([t for _, t, _ in self._terms])
        self._human = _any_of(settings.human_request_terms)
        self._rules = settings.alert_rules
        self._tenant_rules: dict[str, dict[str, str]] = {}

    def hits(self, text: str) -> list[Hit]:
        if self._any is None or not self._any.search(text):
            return []
        return [Hit(kind, term) for kind, term, rx in self._terms if rx.search(text)]

    def asks_for_human(self, text: str) -> bool:
        return bool(self._human and self._human.search(text))

    def alert_rules(self, tenant: str) -> dict[str, str]:
        """The flag kinds that alert `tenant`'s supervisors, each with its severity
        (HANDOFF_ALERT_RULES: the tenant's own entries over those for every tenant)."""
        rules = self._tenant_rules.get(tenant)
        if rules is None:
            merged = {**self._rules.get("*", {}), **self._rules.get(tenant, {})}
            rules = {kind: severity for kind, severity in merged.items() if severity != "off"}
            if len(self._tenant_rules) < MAX_TENANT_RULES:
                self._tenant_rules[tenant] = rules
        return rules


def _spelling(term: str) -> str:
    """The term as a pattern: any run of white space where it has a space."""
    return re.escape(term).replace(r"\ ", r"\s+")


def _any_of(terms: list[str]) -> re.Pattern[str] | None:
    """One pattern for any of `terms` as a whole word (the word test once, not per term)."""
    if not terms:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(_spelling(t) for t in terms) + r")(?!\w)",
                      re.IGNORECASE)


def _word(term: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + _spelling(term) + r"(?!\w)", re.IGNORECASE)
