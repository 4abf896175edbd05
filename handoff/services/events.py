"""Live events: a customer's changes or a tenant's queue, replayed from an id then followed."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from handoff.errors import BadRequest
from handoff.services.conversations import turn_view, unpack_turn
from handoff.services.deps import Deps
from handoff.services.timefmt import iso
from handoff.store import codec
from handoff.store.store import StreamEntry

EVENT_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
TIME_FIELDS = ("at", "ts", "verified_at", "expires_at", "started_at")
REPLAY_BATCH = 200


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: str
    data: dict[str, Any]


def check_last_event_id(value: str | None) -> str | None:
    """A `Last-Event-ID` we gave out, or 400: it must never be echoed into headers raw."""
    if value is None or value == "":
        return None
    if not EVENT_ID.match(value):
        raise BadRequest("Last-Event-ID is not an event id this service sent")
    return value


def decode(entry: StreamEntry, customer_id: str | None,
           conversations: dict[str, Any] | None = None) -> Event:
    """An event as agents see it: its type, the customer, the changed record."""
    event_id, fields = entry
    kind = fields["t"].decode()
    if kind == "turn":
        turn = turn_view((fields.get("c", b"").decode() or event_id, {"d": fields["d"]}),
                         conversations or {})
        return Event(event_id, "turn.appended",
                     {"type": "turn.appended", "customer_id": customer_id,
                      "record": turn.model_dump(mode="json", exclude_none=True)})
    record = codec.unpack(fields["d"])
    if isinstance(record, dict):
        record = {k: (iso(v) if k in TIME_FIELDS and isinstance(v, int) else v)
                  for k, v in record.items() if k != "by"}
        customer_id = customer_id or record.get("customer_id")
    return Event(event_id, kind, {"type": kind, "customer_id": customer_id, "record": record})


class Conversations:
    """A customer's conversations (their channel and source), re-read when a new one shows up:
    a turn posted without `channel` still reaches agents with its conversation's channel."""

    def __init__(self, deps: Deps, tenant: str, customer_id: str | None) -> None:
        self.deps, self.tenant, self.customer_id = deps, tenant, customer_id
        self.known: dict[str, Any] = {}

    async def covering(self, entries: list[StreamEntry]) -> dict[str, Any]:
        if self.customer_id is None:
            return self.known
        for _, fields in entries:
            if fields["t"] == b"turn":
                conversation = unpack_turn(fields["d"])["conversation_id"]
                if conversation not in self.known:
                    self.known = await self.deps.store.read_hash(self.tenant, self.customer_id,
                                                                 "convs")
                    break
        return self.known


async def position(deps: Deps, tenant: str, customer_id: str | None, after: str | None) -> str:
    """Where a stream starts: after `after`, or after its newest event so far."""
    return after or await deps.store.last_event_id(deps.store.events_key(tenant, customer_id))


async def follow(deps: Deps, tenant: str, customer_id: str | None, after: str, *,
                 replay: bool, block_ms: int = 15_000) -> AsyncGenerator[list[Event], None]:
    """Batches of events of a customer (or, with no customer, of the tenant's queue) after
    `after` (see `position`); an empty batch is a heartbeat tick. `replay`: the client asked to
    resume, so what is already stored after `after` is read first; a new stream starts at the
    newest event, where there is nothing to replay."""
    stream = deps.store.events_key(tenant, customer_id)
    conversations = Conversations(deps, tenant, customer_id)

    async def decoded(entries: list[StreamEntry]) -> list[Event]:
        known = await conversations.covering(entries)
        return [decode(e, customer_id, known) for e in entries]

    cursor = after
    replayed = False
    if replay:
        while True:
            entries = await deps.store.read_events(stream, cursor, REPLAY_BATCH)
            if not entries:
                break
            cursor = entries[-1][0]
            replayed = True
            yield await decoded(entries)
    if not replayed:
        # Live from `cursor` on: let the stream open now, not after the first wait runs out.
        yield []
    while True:
        entries = await deps.store.wait_events(stream, cursor, block_ms, REPLAY_BATCH)
        if entries:
            cursor = entries[-1][0]
        yield await decoded(entries)
