"""Risk and frustration terms spotted in what customers say."""

from __future__ import annotations

import re
from dataclasses import dataclass

from handoff.settings import Settings

HUMAN_COUNTER = "#human"
HUMAN_TERM = "repeated request for a human"


@dataclass(frozen=True, slots=True)
class Hit:
    kind: str
    term: str


class Lexicon:
    """Whole-word, case-insensitive matching of the configured terms."""

    def __init__(self, settings: Settings) -> None:
        self._terms = [(kind, term, _word(term)) for kind, terms in settings.lexicon.items()
                       for term in terms]
        self._human = re.compile("|".join(_word(t).pattern for t in settings.human_request_terms),
                                 re.IGNORECASE) if settings.human_request_terms else None

    def hits(self, text: str) -> list[Hit]:
        return [Hit(kind, term) for kind, term, rx in self._terms if rx.search(text)]

    def asks_for_human(self, text: str) -> bool:
        return bool(self._human and self._human.search(text))


def _word(term: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(term).replace(r"\ ", r"\s+") + r"(?!\w)",
                      re.IGNORECASE)
