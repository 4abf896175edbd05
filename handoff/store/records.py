"""A customer's data model: what a service may record on a customer, and how it reads it back.

A customer is a handful of keys in one hash slot (`keys.CustomerKeys`). Which key and which field
hold what, and how a record is packed, is known here and in customer_write.lua only: a service
asks a `CustomerWrite` for a verb (`link_identity`, `add_turn`, `note_merge`, ...) with plain
values, and reads what `Customers` returned through the readers below.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, NotRequired, TypedDict, cast

from handoff.store import codec
from handoff.store.codec import StreamEntry
from handoff.store.keys import KEY_INDEX

if TYPE_CHECKING:
    from handoff.store.customers import OutboxEntries

# Fields of a customer's `meta` hash (the write script keeps `ver` and `created` itself).
MERGED_INTO = "merged_into"
MERGED = "m:"  # + a customer merged into this one: "<at ms> <via>"
STARTED = "s:"  # + a conversation: the earliest moment it was seen (ms)
HUMAN_CONTACT = "human"  # the last hand-off a person closed with the customer (JSON)
VERSION, CREATED = "ver", "created"
# Fields of the `flags` hash that are not one flag each.
HUMAN_REQUEST = "#human:"  # + conversation NUL turn: one request for a human
REASK = "reask:"  # + topic ":" conversation NUL turn: one re-ask
# + a flag kind: the customer's open supervisor alert of that kind, [alert id, raised ms] (set
# by customer_write.lua, cleared by alert_unmark.lua; see services/alerts.py).
OPEN_ALERT = "!alert:"
# What a turn appended is announced as (the events stream stores it as kind "turn").
TURN_APPENDED = "turn.appended"
# A brief reads at most this many merged customers (the most recent ones).
MAX_MERGED = 20
# A stored turn is a msgpack array in this order, trailing empty fields dropped: a transcript
# is most of what handoff stores, and field names would cost more than a short turn's text.
# The conversation record holds the source and first writer, the stream id the arrival time.
TURN_FIELDS = ("id", "conversation_id", "role", "text", "ts", "channel", "intent",
               "confidence", "entities")


class IdentityRecord(TypedDict):
    kind: str
    value: str
    state: str  # "linked" (it leads to the customer) or "claim" (only said to be theirs)
    channel: str | None
    conversation_id: str | None
    at: int


class ConversationRecord(TypedDict):
    conversation_id: str
    channel: str
    source: str | None
    started_at: int
    by: str


class FactRecord(TypedDict):
    key: str
    value: Any
    verified: bool
    channel: str | None
    conversation_id: str | None
    turn_id: str | None
    source: str | None
    at: int
    by: str


class VerificationRecord(TypedDict):
    identity: dict[str, str]
    method: str
    level: str
    verified_at: int
    expires_at: int
    channel: str | None
    conversation_id: str | None
    source: str | None
    verified_by: str


class FlagRecord(TypedDict):
    kind: str
    term: str
    turn_id: str
    conversation_id: str
    at: int
    phrase: NotRequired[str]


class HumanRequest(TypedDict):
    turn_id: str
    conversation_id: str
    at: int


class TurnRecord(TypedDict):
    id: str
    conversation_id: str
    role: str
    text: str
    ts: int
    channel: NotRequired[str | None]
    intent: NotRequired[str | None]
    confidence: NotRequired[float | None]
    entities: NotRequired[dict[str, Any] | None]


class Merge(NamedTuple):
    """A customer merged into another: which, why (`via`) and when (ms)."""

    customer_id: str
    via: str
    at: int


class StoredEvent(NamedTuple):
    """An entry of a customer's (or a tenant's queue) event stream."""

    id: str
    kind: str  # the event type, or "turn" for a turn appended
    data: bytes  # the record: `unpack_turn` for a turn, else `unpack_record`
    cursor: str | None  # a turn's own id in the transcript


class CustomerWrite:
    """A batch of changes to one customer, applied atomically by `Customers.write`, in the order
    its verbs were called (per kind of change)."""

    def __init__(self) -> None:
        # Keys are named by CustomerKeys attribute; values are msgpack bytes or plain strings.
        self._hset: list[tuple[str, str, bytes | str]] = []
        self._hsetnx: list[tuple[str, str, bytes | str]] = []
        self._turns: list[tuple[str, bytes]] = []
        self._xadd: list[tuple[str, bytes]] = []
        self._zadd: list[tuple[str, float, str]] = []
        self._events: list[tuple[str, bytes]] = []
        self._hmin: list[tuple[str, str, int]] = []
        # Records that later writes add to but never rewrite: (key, field, record, the record's
        # fields that do replace what is stored). See customer_write.lua.
        self._hmerge: list[tuple[str, str, bytes, tuple[str, ...]]] = []

    # -- identities and conversations ----------------------------------------------------------

    def link_identity(self, key: str, kind: str, value: str, *, channel: str | None,
                      conversation_id: str | None, at: int) -> None:
        """An identity that leads to this customer (`key`: how it is indexed)."""
        self._identity(key, kind, value, "linked", channel, conversation_id, at)

    def claim_identity(self, key: str, kind: str, value: str, *, channel: str | None,
                       conversation_id: str | None, at: int) -> None:
        """An identity only said to be the customer's: shown, never followed."""
        self._identity(key, kind, value, "claim", channel, conversation_id, at)

    def _identity(self, key: str, kind: str, value: str, state: str, channel: str | None,
                  conversation_id: str | None, at: int) -> None:
        # An identity is first seen once: the channel, conversation and time of the first write
        # that named it stay, whatever a later write says or leaves out. A later write only
        # adds: a channel or conversation where there was none, and `linked` over `claim` (a
        # claim never demotes a linked identity). The script merges, so racing writers cannot
        # undo each other.
        record: IdentityRecord = {"kind": kind, "value": value, "state": state,
                                  "channel": channel, "conversation_id": conversation_id,
                                  "at": at}
        self._hmerge.append(("ids", key, codec.pack(record),
                             ("state",) if state == "linked" else ()))

    def verify_identity(self, key: str, record: VerificationRecord, *, announce: str) -> None:
        """A verification of the identity indexed as `key`, told to subscribers as `announce`."""
        packed = codec.pack(record)
        self._hset.append(("verif", key, packed))
        self._events.append((announce, packed))

    def note_conversation(self, conversation_id: str, *, channel: str | None,
                          source: str | None, started_ms: int, by: str) -> None:
        """A conversation, recorded the first time it is seen with its channel; its start is
        the earliest seen since."""
        self._hmin.append(("meta", STARTED + conversation_id, started_ms))
        if channel is None:
            return
        record: ConversationRecord = {"conversation_id": conversation_id, "channel": channel,
                                      "source": source, "started_at": started_ms, "by": by}
        self._hsetnx.append(("convs", conversation_id, codec.pack(record)))

    # -- what was said ---------------------------------------------------------------------------

    def add_turn(self, conversation_id: str, turn_id: str, *, role: str, text: str, ts_ms: int,
                 channel: str | None, intent: str | None, confidence: float | None,
                 entities: dict[str, Any] | None) -> int:
        """A transcript turn, appended unless the conversation already holds `turn_id`; its
        position in `Written.cursors`."""
        fields: list[Any] = [turn_id, conversation_id, role, text, ts_ms, channel, intent,
                             confidence, entities or None]
        while fields[-1] is None:
            fields.pop()
        self._turns.append((f"{conversation_id}\x00{turn_id}", codec.pack(fields)))
        return len(self._turns) - 1

    def set_fact(self, record: FactRecord, *, announce: str) -> None:
        """A fact's current value; the values it replaces stay in the fact history."""
        packed = codec.pack(record)
        self._hset.append(("facts", record["key"], packed))
        self._xadd.append(("factlog", packed))
        self._events.append((announce, packed))

    def flag(self, kind: str, term: str, *, turn_id: str, conversation_id: str,
             at: int) -> None:
        """A risk or frustration term; only the first turn that raised it is kept."""
        record: FlagRecord = {"kind": kind, "term": term, "turn_id": turn_id,
                              "conversation_id": conversation_id, "at": at}
        self._hsetnx.append(("flags", f"{kind}:{term}", codec.pack(record)))

    def count_human_request(self, *, turn_id: str, conversation_id: str, at: int) -> None:
        """One turn asking for a person (once per turn, so a retried post counts once)."""
        record: HumanRequest = {"turn_id": turn_id, "conversation_id": conversation_id,
                                "at": at}
        self._hsetnx.append(("flags", f"{HUMAN_REQUEST}{conversation_id}\x00{turn_id}",
                             codec.pack(record)))

    def flag_reask(self, topic: str, phrase: str, *, turn_id: str, conversation_id: str,
                   at: int, announce: str) -> None:
        """An agent turn asking again for `topic`, kept once per turn and told to
        subscribers as `announce`."""
        record: FlagRecord = {"kind": "reask", "term": topic, "phrase": phrase,
                              "turn_id": turn_id, "conversation_id": conversation_id, "at": at}
        packed = codec.pack(record)
        self._hsetnx.append(("flags", f"{REASK}{topic}:{conversation_id}\x00{turn_id}", packed))
        self._events.append((announce, packed))

    # -- hand-offs and merges --------------------------------------------------------------------

    def list_handoff(self, handoff_id: str, created_ms: int) -> None:
        """A hand-off of the customer's (idempotent: the brief lists the latest ones)."""
        self._zadd.append(("hos", float(created_ms), handoff_id))

    def note_human_contact(self, contact: Mapping[str, str]) -> None:
        """The last hand-off a person closed with the customer (read by `human_contact`)."""
        self._hset.append(("meta", HUMAN_CONTACT, json.dumps(dict(contact),
                                                             separators=(",", ":"))))

    def note_merge(self, other: str, *, via: str, at: int) -> None:
        """`other` was merged into this customer (read by `merged_ids`, `merge_records`)."""
        self._hset.append(("meta", MERGED + other, f"{at} {via}"))

    def carry_merges(self, meta: Mapping[str, str]) -> list[str]:
        """Every merge another customer's `meta` records, recorded here too; their ids."""
        carried = [(k, v) for k, v in meta.items() if k.startswith(MERGED)]
        self._hset += [("meta", k, v) for k, v in carried]
        return [k[len(MERGED):] for k, _ in carried]

    def mark_merged_into(self, survivor: str) -> None:
        """This customer's context continues in `survivor`: writes and reads follow it."""
        self._hset.append(("meta", MERGED_INTO, survivor))

    # -- events ----------------------------------------------------------------------------------

    def announce(self, event_type: str, record: Mapping[str, Any]) -> None:
        """An event on the customer's stream (and to webhook subscribers)."""
        self._events.append((event_type, codec.pack(record)))

    def announcements(self) -> list[tuple[str, str, str]]:
        """What the write announces, in order: (its reference in `OutboxEntries`, the event
        type, the kind a delivery records): the turns if appended, then the other events."""
        out = [(f"t{n}", TURN_APPENDED, "turn") for n in range(1, len(self._turns) + 1)]
        out += [(f"e{n}", kind, kind) for n, (kind, _) in enumerate(self._events, 1)]
        return out

    def argv(self, outbox: OutboxEntries | None = None) -> list[bytes | str | int | float]:
        """The write script's arguments after its first three (see customer_write.lua)."""
        out: list[bytes | str | int | float] = [
            len(self._hset), len(self._hsetnx), len(self._turns), len(self._xadd),
            len(self._zadd), len(self._events), len(self._hmin), len(self._hmerge),
            len(outbox.entries) if outbox else 0]
        for name, fld, value in [*self._hset, *self._hsetnx]:
            out += [KEY_INDEX[name], fld, value]
        for dedupe, record in self._turns:
            out += [dedupe, record]
        for name, record in self._xadd:
            out += [KEY_INDEX[name], record]
        for name, score, member in self._zadd:
            out += [KEY_INDEX[name], score, member]
        for event_type, record in self._events:
            out += [event_type, record]
        for name, fld, number in self._hmin:
            out += [KEY_INDEX[name], fld, number]
        for name, fld, record, overriding in self._hmerge:
            out += [KEY_INDEX[name], fld, record, " ".join(overriding)]
        if outbox and outbox.entries:
            out.append(outbox.stale_before_ms)
            for ref, fld, info in outbox.entries:
                out += [ref, fld, info]
        return out


# -- readers of `meta` ---------------------------------------------------------------------------

def merged_into(meta: Mapping[str, str]) -> str | None:
    """The customer this one was merged into, if any."""
    return meta.get(MERGED_INTO) or None


def version(meta: Mapping[str, str]) -> str:
    """Moves with every write to the customer."""
    return meta.get(VERSION, "0")


def created_ms(meta: Mapping[str, str]) -> str | None:
    return meta.get(CREATED)


def merged_ids(meta: Mapping[str, str]) -> list[str]:
    """The customers merged into one, most recent first, at most MAX_MERGED."""
    merged = sorted(((int(v.split(" ", 1)[0]), k[len(MERGED):]) for k, v in meta.items()
                     if k.startswith(MERGED)), reverse=True)
    return [cus for _, cus in merged][:MAX_MERGED]


def merge_records(meta: Mapping[str, str]) -> list[Merge]:
    """Every merge recorded in a survivor's meta, oldest first."""
    out = []
    for k, v in meta.items():
        if k.startswith(MERGED):
            at, _, via = v.partition(" ")
            out.append(Merge(k[len(MERGED):], via, int(at)))
    return sorted(out, key=lambda m: m.at)


def conversation_starts(meta: Mapping[str, str]) -> dict[str, int]:
    """The earliest moment each conversation of the customer was seen (ms)."""
    return {k[len(STARTED):]: int(v) for k, v in meta.items() if k.startswith(STARTED)}


def human_contact(meta: Mapping[str, str]) -> dict[str, str] | None:
    """The last human contact a customer's meta holds (see `note_human_contact`), if any."""
    raw = meta.get(HUMAN_CONTACT)
    if not raw:
        return None
    found = json.loads(raw)
    return found if isinstance(found, dict) else None


# -- readers of other records --------------------------------------------------------------------

def raised_flags(flags: Mapping[str, Any]) -> list[FlagRecord]:
    """The flags raised (risk, frustration and re-ask terms), requests for a human aside."""
    return [rec for key, rec in flags.items() if not key.startswith((HUMAN_REQUEST, OPEN_ALERT))]


def human_requests(flags: Mapping[str, Any]) -> list[HumanRequest]:
    """Every turn that asked for a person."""
    return [rec for key, rec in flags.items() if key.startswith(HUMAN_REQUEST)]


def linked_identities(identities: Mapping[str, IdentityRecord]) -> list[str]:
    """The keys of the identities that lead to the customer (not mere claims)."""
    return [k for k, v in identities.items() if v.get("state") != "claim"]


def unpack_turn(raw: bytes) -> TurnRecord:
    return cast(TurnRecord, dict(zip(TURN_FIELDS, codec.unpack(raw), strict=False)))


def turn_of(entry: StreamEntry) -> tuple[str, TurnRecord]:
    """An entry of the turns stream: the turn's cursor and record."""
    cursor, fields = entry
    return cursor, unpack_turn(fields["d"])


def event_of(entry: StreamEntry) -> StoredEvent:
    """An entry of an events stream."""
    event_id, fields = entry
    cursor = fields.get("c")
    return StoredEvent(event_id, fields["t"].decode(), fields["d"],
                       cursor.decode() if cursor else None)


def unpack_record(raw: bytes) -> Any:
    """An event's record (a map for every event but a turn)."""
    return codec.unpack(raw)
