"""Re-asks: an agent asking the customer for something the context already holds.

This is the failure handoff exists to prevent, so it is detected in every agent turn (from any
desk), recorded on the customer (a `reask` flag and event) and counted per tenant. The panel
asks the same detector before a reply is sent, so there is one definition of a re-ask.

A turn re-asks a topic when one of the topic's phrases sits in a sentence that *asks* for it (a
request cue before the phrase, or a short question ending on it) and the sentence does not show
that the agent already has it ("your account ending 5678", "I can see your email", the value
itself). Phrases are matched whole-word and case-insensitively.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from handoff import metrics
from handoff.services import identity
from handoff.services.deps import Deps, Principal
from handoff.settings import ReaskTopic, Settings
from handoff.store import codec
from handoff.store.store import CustomerWrite

SENTENCE = re.compile(r"[^.?!;\n]+[.?!;]*")
REQUEST_CUES = re.compile(
    r"\b(?:"
    r"(?:can|could|may|might)\s+(?:i|we)\s+(?:please\s+)?(?:just\s+)?"
    r"(?:have|get|take|grab|ask|confirm|verify|check|go over|note)"
    r"|(?:can|could|would|will)\s+you\s+(?:please\s+)?(?:just\s+)?"
    r"(?:give|tell|provide|confirm|verify|share|send|read|spell|type|enter|repeat|say|state|"
    r"let\s+me\s+know|pop|put)"
    r"|(?:please|kindly)\s+(?:give|tell|provide|confirm|verify|share|send|read|spell|type|"
    r"enter|repeat|state|let\s+me\s+know)"
    r"|what(?:'s|\s+is|\s+was|\s+are|\s+were)|which"
    r"|i(?:'ll|\s+will|'d|\s+would|'m\s+going\s+to|\s+am\s+going\s+to)?\s+(?:need|require)"
    r"|need\s+(?:to\s+(?:get|have|take|confirm|verify|check)\s+)?(?:your|the)"
    r"|(?:tell|give|send|read)\s+me|do\s+you\s+(?:have|know)|mind\s+(?:giving|telling|sharing|"
    r"confirming|reading)|let\s+me\s+(?:have|get|take|grab)"
    r")\b")
# After the phrase: nothing but politeness before the question mark ("and your email, please?").
TRAILING_ASK = re.compile(r"^[\s,]*(?:(?:please|again|for\s+me|quickly|as\s+well|too|"
                          r"one\s+more\s+time)[\s,]*)*(?:\?|please\b)")
ALREADY_HAVE = re.compile(
    r"\b(?:ending|ends|end)\s+(?:in|with|on)\b|\bending\s+\w*\d|\blast\s+(?:four|4|few|two|2)\b"
    r"|\bon\s+file\b|\bi\s+(?:can\s+)?see\b"
    # "I have your ...", but not "can I have your ...", which asks.
    r"|(?<!can\s)(?<!could\s)(?<!may\s)(?<!might\s)\b(?:i|we)(?:'ve|\s+have)\s+(?:got\s+)?"
    r"(?:your|the)\b"
    r"|\balready\b|\bthanks?\s+(?:you\s+)?for\b|\b(?:no|don't|do\s+not|won't|will\s+not)\s+need\b"
    r"|\bno\s+need\b")
ALNUM = re.compile(r"[^0-9a-z]+")
WHAT_RIGHT_BEFORE = re.compile(r"\b(?:what|which)\s+$")
# Settings are immutable once built; each is compiled once (tests build many).
_compiled: dict[int, tuple[Settings, Detector]] = {}


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


class Detector:
    """The configured topics, compiled once."""

    def __init__(self, topics: dict[str, ReaskTopic]) -> None:
        self.topics = topics
        self._phrases = {name: sorted(((p, _phrase(p)) for p in t.phrases),
                                      key=lambda item: -len(item[0]))
                         for name, t in topics.items()}

    @classmethod
    def from_settings(cls, settings: Settings) -> Detector:
        """The detector of these settings, compiled on first use."""
        cached = _compiled.get(id(settings))
        if cached is None or cached[0] is not settings:
            cached = (settings, cls(settings.reask_topics))
            _compiled[id(settings)] = cached
        return cached[1]

    def candidates(self, text: str) -> bool:
        """Whether `text` could re-ask anything at all: cheap, and needs no context."""
        lowered = text.lower()
        return any(rx.search(lowered) for phrases in self._phrases.values()
                   for _, rx in phrases)

    def detect(self, text: str, known: dict[str, list[Known]]) -> list[Hit]:
        """The topics `text` asks for that `known` (by fact key or identity kind) already has."""
        have = {name: tuple(k for key in topic.keys for k in known.get(key, []))
                for name, topic in self.topics.items()}
        found: dict[str, str] = {}
        for sentence in (s.group(0) for s in SENTENCE.finditer(text.lower())):
            if ALREADY_HAVE.search(sentence):
                continue
            for name, phrase, start, end in self._matches(sentence):
                if (name not in found and have[name] and _asks(sentence, start, end)
                        and not _mentions_value(sentence, have[name])):
                    found[name] = phrase
        return [Hit(name, phrase, have[name]) for name, phrase in found.items()]

    def _matches(self, sentence: str) -> list[tuple[str, str, int, int]]:
        """Every phrase found, except those inside a longer one ("address" in "e-mail
        address" is the email, not an address)."""
        spans = [(name, phrase, m.start(), m.end()) for name, phrases in self._phrases.items()
                 for phrase, rx in phrases for m in rx.finditer(sentence)]
        return [s for s in spans if not any(
            o[2] <= s[2] and s[3] <= o[3] and (o[3] - o[2]) > (s[3] - s[2]) for o in spans)]


def _asks(sentence: str, start: int, end: int) -> bool:
    """A request cue before the phrase ("can I have your ...", "what email ..."), or a short
    question that ends on it ("and your email, please?")."""
    before = sentence[:start]
    return bool(REQUEST_CUES.search(before) or WHAT_RIGHT_BEFORE.search(before)
                or (TRAILING_ASK.match(sentence[end:]) and "your" in before.split()[-3:]))


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


def known_of(facts: dict[str, Any], identities: dict[str, Any]) -> dict[str, list[Known]]:
    """What a customer's stored facts and identities hold, by fact key and identity kind.

    Every identity the customer gave counts, claimed or proved, as in the brief's do-not-ask
    list: asking for it again is asking them to repeat themselves either way.
    """
    out: dict[str, list[Known]] = {}
    for key, fact in facts.items():
        out.setdefault(key, []).append(Known(key, str(fact["value"])))
    for record in identities.values():
        kind = record["kind"]
        if kind in ("chat", "crm"):
            continue  # internal ids a customer would not know
        out.setdefault(kind, []).append(Known(kind, str(record["value"])))
    return out


async def known(deps: Deps, tenant: str, cus_id: str) -> dict[str, list[Known]]:
    """The customer's (and merged customers') facts and identities: small hashes, never the
    transcript, so this costs the same however long the history is."""
    ((meta, ids, facts),) = await deps.store.read_known(tenant, [cus_id])
    merged = identity.merged_ids(meta)
    rows = [(ids, facts)]
    if merged:
        rows += [(i, f) for _, i, f in await deps.store.read_known(tenant, merged)]
    out: dict[str, list[Known]] = {}
    for ids_, facts_ in rows:
        for key, items in known_of(facts_, ids_).items():
            out.setdefault(key, []).extend(items)
    return out


async def check(deps: Deps, principal: Principal, ref: str, text: str) -> list[Hit]:
    """What `text` would re-ask of the customer `ref` (the panel asks before sending)."""
    cus_id = await identity.resolve_ref(deps, principal, ref)
    detector = Detector.from_settings(deps.settings)
    if not detector.candidates(text):
        return []
    return detector.detect(text, await known(deps, principal.tenant, cus_id))


@dataclass(frozen=True, slots=True)
class AgentTurn:
    turn_id: str
    conversation_id: str
    text: str


async def record(deps: Deps, tenant: str, cus_id: str, turns: list[AgentTurn]) -> int:
    """Detect re-asks in agent turns just appended; flag, announce and count each. Answers how
    many were found. Only called for turns that were new, so a retried post counts nothing."""
    detector = Detector.from_settings(deps.settings)
    asking = [t for t in turns if detector.candidates(t.text)]
    if not asking:
        return 0
    have = await known(deps, tenant, cus_id)
    change = CustomerWrite()
    topics: list[str] = []
    now = deps.now_ms()
    for turn in asking:
        for hit in detector.detect(turn.text, have):
            packed = codec.pack({"kind": "reask", "term": hit.topic, "phrase": hit.phrase,
                                 "turn_id": turn.turn_id,
                                 "conversation_id": turn.conversation_id, "at": now})
            change.hsetnx.append(
                ("flags", f"reask:{hit.topic}:{turn.conversation_id}\x00{turn.turn_id}", packed))
            change.events.append(("reask", packed))
            topics.append(hit.topic)
    if topics:
        await identity.write(deps, tenant, cus_id, change)
        await deps.store.count_reasks(tenant, topics)
        for topic in topics:
            metrics.reask(tenant, topic)
    return len(topics)


async def counts(deps: Deps, tenant: str) -> dict[str, int]:
    """Re-asks detected in `tenant` since it began, by topic: what a metrics exporter reads."""
    return await deps.store.reask_counts(tenant)
