"""The re-ask detector: which configured topic an agent's sentence asks for, and whether the
context already holds it (see handoff/services/reask.py for what is done with a hit).

Compiled once per app from the settings' topics (`Deps.reasks`); it keeps no state but a
bounded memo of words it has spelt out.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

from handoff.kernel.settings import ReaskTopic

# A sentence ends at . ? ! ; followed by a space or the end, so "sam.lee@example.co.uk" stays
# whole and "was...?" is one question.
SENTENCE = re.compile(r"(?:[^.?!;\n]|[.?!;]+(?=[^\s.?!;]))+[.?!;]*")
# A read-back or a "no need" in a clause says nothing about the next one ("I can see your
# account number, but what's your email?").
# How far around a phrase the cues that decide whether it is asked for are looked for. Every
# turn is checked as it is stored, so the work per phrase must not grow with the turn's length.
CONTEXT_CHARS = 120
# A question for something already known is a short message: what is checked of each turn is
# bounded (and what one post may make the service check, see reask.POST_CHARS).
TURN_CHARS = 2_000
TOKEN = re.compile(r"\w+")
CLAUSE = re.compile(r",\s*(?:and|but|so|plus)\b|\b(?:but|and|plus|although|though)\b")
_VERBS = (r"(?:give|tell|provide|confirm|verify|share|send|read|spell|type|enter|repeat|say|"
          r"state|let\s+me\s+(?:know|have)|pop|put|check|double\s+check|drop|write|quote)")
REQUEST_CUES = re.compile(
    r"\b(?:"
    r"(?:can|could|may|might)\s+(?:i|we)\s+(?:please\s+)?(?:just\s+)?"
    r"(?:have|get|take|grab|ask|confirm|verify|check|double\s+check|go\s+over|note)"
    r"|(?:can|could|would|will)\s+you\s+(?:please\s+)?(?:just\s+)?(?:kindly\s+)?" + _VERBS
    + r"|(?:please|kindly)\s+(?:can\s+you\s+|could\s+you\s+)?" + _VERBS
    + r"|(?:would|could)\s+you\s+be\s+able\s+to|are\s+you\s+able\s+to|if\s+you\s+could"
    r"|what(?:'s|\s+is|\s+was|\s+are|\s+were)|which|is\s+there\s+an?"
    r"|i(?:'ll|\s+will|'d|\s+would|'m\s+going\s+to|\s+am\s+going\s+to)?\s+(?:just\s+)?"
    r"(?:need|require)"
    r"|i(?:'m|\s+am)\s+(?:just\s+)?going\s+to\s+(?:take|get|grab|ask\s+for|need)"
    r"|need\s+(?:to\s+(?:get|have|take|confirm|verify|check)\s+)?(?:your|the)"
    r"|(?:tell|give|send|read)\s+me|do\s+you\s+(?:happen\s+to\s+)?(?:have|know)|have\s+you\s+got"
    r"|mind\s+(?:giving|telling|sharing|confirming|reading|sending)"
    r"|let\s+me\s+(?:have|get|take|grab|know)|send\s+over"
    r")\b")
# Asks the customer themselves to say or confirm it: this still asks when the sentence also
# says "on file" or "we have" ("can you confirm the email we have on file?").
CONFIRM_ASK = re.compile(
    r"\b(?:(?:can|could|would|will)\s+you\s+(?:please\s+)?(?:just\s+)?" + _VERBS
    + r"|please\s+" + _VERBS + r"|(?:can|could|may)\s+i\s+(?:just\s+)?(?:ask|have|get|take))\b")
# After the phrase: nothing but politeness before the question mark ("and your email, please?").
TRAILING_ASK = re.compile(r"^[\s,.]*(?:(?:please|again|for\s+me|quickly|as\s+well|too|was|is|"
                          r"then|one\s+more\s+time|if\s+you\s+(?:have|'ve\s+got)\s+(?:it|that)|"
                          r"for\s+you)[\s,.]*)*(?:\?|please\b)")
# Before the phrase, in an elliptical question ("and the account number was...?", "Email?").
FILLER = frozenset({"and", "so", "ok", "okay", "right", "great", "lovely", "brilliant", "perfect",
                    "sorry", "oh", "now", "then", "also", "just", "your", "the", "a", "an",
                    "best", "first", "thanks", "thank", "you"})
# A read-back, or a value the agent has in hand: never a re-ask.
ALREADY_HAVE = re.compile(
    r"\b(?:ending|ends|end)\s+(?:in|with|on)\b|\bending\s+\w*\d|\blast\s+(?:four|4|few|two|2)\b"
    r"|\bi\s+(?:can\s+)?see\b"
    # "I have your ...", but not "can I have your ...", which asks.
    r"|(?<!can\s)(?<!could\s)(?<!may\s)(?<!might\s)\b(?:i)(?:'ve|\s+have)\s+(?:got\s+)?"
    r"(?:your|the)\b"
    r"|\balready\b|\bthanks?\s+(?:you\s+)?for\b|\b(?:no|don't|do\s+not|won't|will\s+not)\s+need\b"
    r"|\bno\s+need\b|\bmatch(?:es|ed)?\b")
# What the context holds, named without its value: a re-ask only when the customer is asked to
# say or confirm it.
ON_FILE = re.compile(r"\bon\s+file\b|\bwe(?:'ve|\s+have)\s+(?:got\s+)?(?:your|the)\b"
                     r"|\bwe\s+(?:have|hold|'ve\s+got)\b(?!\s+(?:it|that)\b)|\byou\s+gave\s+us\b")
# The topic of someone else, or a value that is to replace the known one.
NOT_THEIRS_BEFORE = re.compile(
    r"(?:\b(?:new|updated|different|alternative|alternate|another|other|second|spare|backup|"
    r"work|business)\b|\b(?!(?:what|that|it|there|who|where|how|let|here|he|she)'s)[a-z]+'s\b)"
    r"(?:\s+\S+){0,2}\s*$")
NOT_THEIRS_AFTER = re.compile(
    r"^\s*(?:,\s*)?(?:you(?:'d|\s+would)\s+like|would\s+you\s+like|you\s+want|you'd\s+prefer|you\s+prefer|"
    r"to\s+change|if\s+(?:it's|it\s+is)\s+different|instead"
    # whether something arrived, not what it is
    r"|(?:we|i)\s+(?:sent|emailed)|(?:has\s+|have\s+)?(?:arrive[sd]?|came|come|comes|landed|"
    r"lands?|gone|went)\b|yet\b)")
# A bare "phone"/"mobile" that is the handset: "which phone model", "restart the phone".
DEVICE_AFTER = re.compile(
    r"^\s+(?:model|screen|app|settings|case|charger|battery|itself|is|was|has|keeps|won't|"
    r"isn't|doesn't|line|are\s+you|do\s+you|did\s+you|you're|you\s+(?:have|use|are)|you've|or)\b")
DEVICE_BEFORE = re.compile(
    r"\b(?:on|from|with|in|restart|restarting|reset|resetting|turn|switch|update|unlock|charge|"
    r"check)\s+(?:your\s+|the\s+|a\s+|my\s+)?$")
DEVICE_WORDS = frozenset({"phone", "mobile", "cell", "cellphone", "handset"})
# "email you", "email us": the verb, unless a determiner makes it the noun ("the email you gave").
VERB_AFTER = re.compile(r"^\s+(?:you|us|me|it|them|him|her)\b")
DETERMINER_BEFORE = re.compile(r"\b(?:the|your|an?|my|our|that|this)\s+$")
# Between two phrases of one list ("account number, email and phone"): both ask, or neither.
LIST_GAP = re.compile(r"^[\s,]*(?:(?:and|&|plus|or|as\s+well\s+as)\s+)?(?:(?:your|the|a|an)\s+)?$")
ALNUM = re.compile(r"[^0-9a-z]+")
WHAT_RIGHT_BEFORE = re.compile(r"\b(?:what|which)\s+$")
INTERROGATIVE = re.compile(r"^(?:what|which)\b")
IN_WHICH = re.compile(r"\bin\s+$")
# Chat shorthand, spelt out before phrases are matched.
SHORTHAND = {
    "ur": "your", "yr": "your", "u": "you", "ya": "you", "r": "are", "pls": "please",
    "plz": "please", "pse": "please", "plse": "please", "cn": "can", "cud": "could",
    "cld": "could", "culd": "could", "wud": "would", "wld": "would", "giv": "give",
    "gimme": "give me", "wat": "what", "wot": "what", "wht": "what", "whats": "what's",
    "wats": "what's", "wots": "what's", "whts": "what's", "numbr": "number", "nmbr": "number",
    "nbr": "number", "num": "number", "numb": "number", "acc": "account", "acct": "account",
    "accnt": "account", "acnt": "account", "a/c": "account", "ordr": "order", "addy": "address",
    "mob": "mobile", "ph": "phone", "tel": "telephone", "cel": "cell", "conf": "confirmation",
}
# "no" and "#" after these mean "number" ("acc no", "order #", "ph no").
NUMBERED = (r"account|order|phone|mobile|contact|telephone|reference|customer|membership|"
            r"cell|callback|confirmation|member")
NUMBER_SIGN = re.compile(
    rf"\b({NUMBERED})\s*(?:#(?!\w)|\bno\b(?!\s+(?:longer|more|one|way|need)\b))")
# A word, unless it is part of a value (an email, a reference with digits).
WORD = re.compile(r"(?<![\w@.#/-])(?:a/c|[a-z][a-z']*)(?![\w@/-]|\.\w)")
# Words a one-letter slip would turn into a topic or a request word.
NOT_TYPOS = frozenset({"older", "odder", "world", "wound", "cold", "prone", "phony", "conform",
                       "pleas", "mail", "emails", "numbed", "orderly"})
TYPO_TARGETS = ("account", "number", "order", "email", "address", "phone", "mobile",
                "telephone", "reference", "confirmation", "membership", "customer", "callback",
                "contact", "confirm", "provide", "verify", "repeat", "please", "could", "would")


@dataclass(frozen=True, slots=True)
class Known:
    """What the context holds for one key: where it came from and a value to show."""

    key: str
    value: str


@dataclass(frozen=True, slots=True)
class Hit:
    topic: str
    phrase: str
    known: tuple[Known, ...]


def _phrase(text: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(text.lower()).replace(r"\ ", r"\s+") + r"(?!\w)")


def _one_slip(word: str, target: str) -> bool:
    """Whether `word` is `target` with one letter added, dropped, changed or two swapped."""
    if word == target or abs(len(word) - len(target)) > 1 or word[0] != target[0]:
        return False
    i = 0
    while i < min(len(word), len(target)) and word[i] == target[i]:
        i += 1
    if len(word) == len(target):
        return (word[i + 1:] == target[i + 1:]
                or (word[i + 2:] == target[i + 2:] and word[i:i + 2] == target[i:i + 2][::-1]))
    return word[i + 1:] == target[i:] if len(word) > len(target) else word[i:] == target[i + 1:]


class Detector:
    """The configured topics, compiled once."""

    def __init__(self, topics: dict[str, ReaskTopic]) -> None:
        self.topics = topics
        self._phrases = {name: sorted(((p, _phrase(p)) for p in t.phrases),
                                      key=lambda item: -len(item[0]))
                         for name, t in topics.items()}
        # A phrase can only match where its first word stands as a whole word, so only the
        # phrases whose first word a text contains are tried: most agent turns name no topic.
        self._by_first_word: dict[str, list[tuple[str, str, re.Pattern[str]]]] = {}
        for name, phrases in self._phrases.items():
            for phrase, rx in phrases:
                first = (TOKEN.findall(phrase.lower()) or [""])[0]
                self._by_first_word.setdefault(first, []).append((name, phrase, rx))
        # Typos are corrected towards the request words and the configured phrases' long words.
        words = {w for t in topics.values() for p in t.phrases for w in re.findall(r"[a-z]+",
                                                                                  p.lower())}
        self._typo_targets = tuple(sorted({*TYPO_TARGETS, *(w for w in words if len(w) >= 7)}))
        self._words: dict[str, str] = {}

    def normalise(self, text: str) -> str:
        """`text` lower-cased with chat shorthand and one-letter typos of topic and request
        words spelt out ("whats ur acc no" -> "what's your account number")."""
        spelt = WORD.sub(lambda m: self._word(m.group(0)), text.lower())
        return NUMBER_SIGN.sub(r"\1 number", spelt)

    def _word(self, word: str) -> str:
        fixed = self._words.get(word)
        if fixed is None:
            fixed = SHORTHAND.get(word, word)
            if (fixed == word and len(word) >= 4 and word not in NOT_TYPOS
                    and not any(word.startswith(t) for t in self._typo_targets)):
                fixed = next((t for t in self._typo_targets if _one_slip(word, t)), word)
            if len(self._words) < 20000:  # bounded: chat brings new misspellings forever
                self._words[word] = fixed
        return fixed

    def candidate(self, text: str) -> str | None:
        """`text` as the detector reads it, when it could re-ask anything at all; else None.
        Cheap, and needs no context: most agent turns stop here."""
        lowered = self.normalise(text[:TURN_CHARS])
        return lowered if any(rx.search(lowered) for _, _, rx in self._phrases_for(lowered)) \
            else None

    def _phrases_for(self, text: str) -> list[tuple[str, str, re.Pattern[str]]]:
        """The phrases that could match `text`: those whose first word it contains."""
        words = {"", *TOKEN.findall(text)}
        return [entry for word in words & self._by_first_word.keys()
                for entry in self._by_first_word[word]]

    def detect(self, text: str, known: dict[str, list[Known]]) -> list[Hit]:
        """The topics `text` asks for that `known` (by fact key or identity kind) already has."""
        return self.detect_read(self.normalise(text[:TURN_CHARS]), known)

    def detect_read(self, lowered: str, known: dict[str, list[Known]]) -> list[Hit]:
        """`detect` for text already read by `candidate` (normalising is most of the cost)."""
        have = {name: tuple(k for key in topic.keys for k in known.get(key, []))
                for name, topic in self.topics.items()}
        found: dict[str, str] = {}
        for sentence in (s.group(0) for s in SENTENCE.finditer(lowered)):
            matches = self._matches(sentence)
            if not matches:
                continue
            clauses = [0, *(m.end() for m in CLAUSE.finditer(sentence)), len(sentence) + 1]
            asks = [self._asks(sentence, clauses, start, end) for _, _, start, end in matches]
            for i in range(len(matches) - 1):  # a list asks for every item in it
                for a, b in ((i, i + 1), (len(matches) - 2 - i, len(matches) - 1 - i)):
                    if (asks[a] is not asks[b] and asks[a] is not None and asks[b] is not None
                            and LIST_GAP.match(sentence[matches[a][3]:matches[b][2]])):
                        asks[a] = asks[b] = True
            for (name, phrase, _, _), asked in zip(matches, asks, strict=True):
                if (asked and name not in found and have[name]
                        and not _mentions_value(sentence, have[name])):
                    found[name] = phrase
        return [Hit(name, phrase, have[name]) for name, phrase in found.items()]

    def _asks(self, sentence: str, clauses: list[int], start: int, end: int) -> bool | None:
        """Whether the phrase at start:end asks for its topic; None when it cannot (a read-back,
        the handset, someone else's)."""
        at = bisect_right(clauses, start)
        clause_start = clauses[at - 1]
        clause = sentence[max(clause_start, start - CONTEXT_CHARS):
                          min(clauses[at], end + CONTEXT_CHARS)]
        before = sentence[max(0, start - CONTEXT_CHARS):start]
        after = sentence[end:end + CONTEXT_CHARS]
        word = sentence[start:end]
        if (ALREADY_HAVE.search(clause) or NOT_THEIRS_BEFORE.search(before[-40:])
                or NOT_THEIRS_AFTER.match(after)
                or (word in DEVICE_WORDS and (DEVICE_AFTER.match(after)
                                              or DEVICE_BEFORE.search(before[-30:])))
                or (word.startswith("e") and VERB_AFTER.match(after)
                    and not DETERMINER_BEFORE.search(before))):
            return None
        if ON_FILE.search(clause) and not CONFIRM_ASK.search(before):
            return None
        if INTERROGATIVE.match(word):
            return not IN_WHICH.search(before)
        if REQUEST_CUES.search(before) or WHAT_RIGHT_BEFORE.search(before):
            return True
        lead = sentence[max(clause_start, start - CONTEXT_CHARS):start].replace(",", " ").split()
        return bool(TRAILING_ASK.match(after) and (
            all(w in FILLER for w in lead) or "your" in before.split()[-3:]))

    def _matches(self, sentence: str) -> list[tuple[str, str, int, int]]:
        """Every phrase found in order, except those inside a longer one ("address" in "e-mail
        address" is the email, not an address)."""
        spans = sorted(((name, phrase, m.start(), m.end())
                        for name, phrase, rx in self._phrases_for(sentence)
                        for m in rx.finditer(sentence)),
                       key=lambda s: (s[2], s[2] - s[3]))
        # In order of start, longest first: a span is inside a longer one exactly when an
        # earlier span reaches as far as it does without being the same stretch of text.
        kept: list[tuple[str, str, int, int]] = []
        reach = (-1, -1)
        for span in spans:
            if reach[1] >= span[3] and reach != (span[2], span[3]):
                continue
            kept.append(span)
            if span[3] > reach[1]:
                reach = (span[2], span[3])
        return kept


def _mentions_value(sentence: str, have: tuple[Known, ...]) -> bool:
    """The agent reads back what it has ("is it still ana@example.com?"): not a re-ask."""
    flat = ALNUM.sub("", sentence)
    numbers = set(re.findall(r"\d{4,}", sentence))
    for k in have:
        value = ALNUM.sub("", k.value.lower())
        if len(value) >= 4 and value in flat:
            return True
        digits = re.sub(r"\D", "", k.value)
        if len(digits) >= 4 and any(digits.endswith(n) for n in numbers):
            return True
    return False
