"""Live events: a customer's changes or a tenant's queue, replayed from an id then followed;
and how long a stream may live: no longer than the key or panel token it was opened with."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from handoff.kernel import logs
from handoff.kernel.errors import BadRequest, HandoffError
from handoff.kernel.timefmt import iso
from handoff.services.conversations import turn_view
from handoff.services.deps import Deps, Principal
from handoff.store import records
from handoff.store.codec import StreamEntry

EVENT_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
TIME_FIELDS = ("at", "ts", "verified_at", "expires_at", "started_at")
REPLAY_BATCH = 200
# Why a stream's credentials ended it (the `reason` of its last event).
KEY_REVOKED, KEY_EXPIRED, TOKEN_EXPIRED = "key_revoked", "key_expired", "token_expired"
# Revocations arrive as notices; a key with open streams is also re-read this often, in case a
# notice was missed (the notice follower reconnecting, say).
KEY_RECHECK_S = 60.0
# A re-read that failed (Redis briefly away) is tried again this soon.
KEY_RETRY_S = 2.0
T = TypeVar("T")
log = logs.logger("handoff.events")


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
    event_id, kind, data, cursor = records.event_of(entry)
    if kind == "turn":
        turn = turn_view(cursor or event_id, records.unpack_turn(data), conversations or {})
        return Event(event_id, records.TURN_APPENDED,
                     {"type": records.TURN_APPENDED, "customer_id": customer_id,
                      "record": turn.model_dump(mode="json", exclude_none=True)})
    record = records.unpack_record(data)
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
        for entry in entries:
            event = records.event_of(entry)
            if event.kind == "turn":
                conversation = records.unpack_turn(event.data)["conversation_id"]
                if conversation not in self.known:
                    self.known = await self.deps.store.customers.read_conversations(
                        self.tenant, self.customer_id)
                    break
        return self.known


async def position(deps: Deps, tenant: str, customer_id: str | None, after: str | None, *,
                   stream: str | None = None) -> str:
    """Where a stream starts: after `after`, or after its newest event so far."""
    return after or await deps.store.events.last_event_id(
        stream or deps.store.events.events_key(tenant, customer_id))


async def follow(deps: Deps, tenant: str, customer_id: str | None, after: str, *,
                 replay: bool, block_ms: int = 15_000, stream: str | None = None
                 ) -> AsyncGenerator[list[Event], None]:
    """Batches of events of a customer (or, with no customer, of the tenant's queue, or of
    another tenant `stream`: its alerts) after `after` (see `position`); an empty batch is a
    heartbeat tick. `replay`: the client asked to resume, so what is already stored after
    `after` is read first; a new stream starts at the newest event, where there is nothing to
    replay."""
    stream = stream or deps.store.events.events_key(tenant, customer_id)
    conversations = Conversations(deps, tenant, customer_id)

    async def decoded(entries: list[StreamEntry]) -> list[Event]:
        known = await conversations.covering(entries)
        return [decode(e, customer_id, known) for e in entries]

    cursor = after
    replayed = False
    if replay:
        while True:
            entries = await deps.store.events.read_events(stream, cursor, REPLAY_BATCH)
            if not entries:
                break
            cursor = entries[-1][0]
            replayed = True
            yield await decoded(entries)
    if not replayed:
        # Live from `cursor` on: let the stream open now, not after the first wait runs out.
        yield []
    reader = deps.store.events.event_reader()
    try:
        while True:
            entries = await reader.wait(stream, cursor, block_ms, REPLAY_BATCH)
            if entries:
                cursor = entries[-1][0]
            yield await decoded(entries)
    finally:
        # However the stream ends (closed, cancelled mid-wait, failed), its connection goes.
        await reader.aclose()


class Lifetime:
    """One open stream's hold on the key (or panel token) it was opened with.

    `step` runs one wait for the next batch of events; `end` stops the stream even in the middle
    of that wait (so a revoked key is not heard from again, however quiet its stream), and
    `reason` says why. The stream checks `reason` between batches: nothing is paid per event.
    """

    __slots__ = ("_cancelled", "_timer", "_waiting", "digest", "principal", "reason")

    def __init__(self, principal: Principal) -> None:
        self.principal = principal
        self.digest: str | None = None
        self.reason: str | None = None
        self._waiting: asyncio.Task[Any] | None = None
        self._cancelled = False
        self._timer: asyncio.TimerHandle | None = None

    async def step(self, waiting: Awaitable[T]) -> T | None:
        """What `waiting` gives, or None when the stream's credentials ended first."""
        task = asyncio.current_task()
        self._waiting = task
        try:
            return await waiting
        except asyncio.CancelledError:
            # `end` interrupts the wait by cancelling the stream's own task (no task per wait);
            # any other cancellation (the client left, a shutdown) still goes through.
            if task is None or not self._cancelled:
                raise
            self._cancelled = False
            if task.uncancel() > 0:
                raise
            return None
        finally:
            self._waiting = None

    def end(self, reason: str) -> None:
        """End the stream now, for `reason` (the first reason given wins)."""
        if self.reason is not None:
            return
        self.reason = reason
        self.expire_at(None)
        if self._waiting is not None and not self._cancelled:
            self._cancelled = True
            self._waiting.cancel()

    def expire_at(self, deadline: tuple[float, str] | None) -> None:
        """End the stream `deadline[0]` seconds from now for `deadline[1]` (None: never)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadline is not None and self.reason is None:
            self._timer = asyncio.get_running_loop().call_later(deadline[0], self.end,
                                                                deadline[1])


class Lifetimes:
    """This process's open streams, by the digest of the key each was opened with.

    A key revoked or rotated anywhere is announced to every process (the store's `key`
    notices); its streams here are ended at once, or, for a rotation with a grace period, at
    the end of it. A panel token's stream ends when the token expires, by a timer. Nothing is
    checked per event delivered.
    """

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.recheck_s = KEY_RECHECK_S
        self._open: dict[str, set[Lifetime]] = {}
        self._rechecks: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        deps.store.notices.listen("key", self._heard)

    async def open(self, principal: Principal) -> Lifetime:
        """Follow the credentials of a stream about to open; `close` it when the stream ends."""
        lifetime = Lifetime(principal)
        digest = await self.deps.store.access.api_key_digest(principal.key_id)
        if digest is None:
            lifetime.end(KEY_REVOKED)
            return lifetime
        # Registered before the key is read: a notice from now on is heard, one from before
        # has already dropped the remembered key, so the read below sees the change.
        lifetime.digest = digest
        streams = self._open.setdefault(digest, set())
        streams.add(lifetime)
        if len(streams) == 1:
            self._schedule(digest, self.recheck_s)
        try:
            self._judge(lifetime, await self.deps.store.access.get_api_key(digest))
        except BaseException:
            self.close(lifetime)
            raise
        return lifetime

    def close(self, lifetime: Lifetime) -> None:
        lifetime.expire_at(None)
        streams = self._open.get(lifetime.digest or "")
        if streams is None:
            return
        streams.discard(lifetime)
        if not streams:
            del self._open[lifetime.digest or ""]
            timer = self._rechecks.pop(lifetime.digest or "", None)
            if timer is not None:
                timer.cancel()

    def _heard(self, digests: list[str]) -> None:
        for digest in digests:
            if digest in self._open:
                self._recheck(digest)

    def _schedule(self, digest: str, delay_s: float) -> None:
        timer = self._rechecks.pop(digest, None)
        if timer is not None:
            timer.cancel()
        self._rechecks[digest] = asyncio.get_running_loop().call_later(
            delay_s, self._recheck, digest)

    def _recheck(self, digest: str) -> None:
        task = asyncio.create_task(self._reread(digest), name="handoff-stream-key-check")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reread(self, digest: str) -> None:
        try:
            record = await self.deps.store.access.get_api_key(digest)
        except HandoffError as exc:
            if digest in self._open:
                log.warning("could not re-read a key with open streams (%s); retrying",
                            exc.detail)
                self._schedule(digest, KEY_RETRY_S)
            return
        for lifetime in list(self._open.get(digest, ())):
            self._judge(lifetime, record)
        if digest in self._open:
            self._schedule(digest, self.recheck_s)

    def _judge(self, lifetime: Lifetime, record: dict[str, str]) -> None:
        """End `lifetime` if its key is gone or revoked, or set its timer for whichever comes
        first: the key's expiry (a rotation's grace) or its panel token's."""
        if not record or record.get("revoked_ms"):
            lifetime.end(KEY_REVOKED)
            return
        deadlines = []
        if record.get("expires_ms"):
            deadlines.append((int(record["expires_ms"]), KEY_EXPIRED))
        if lifetime.principal.expires_ms is not None:
            deadlines.append((lifetime.principal.expires_ms, TOKEN_EXPIRED))
        if not deadlines:
            lifetime.expire_at(None)
            return
        at_ms, reason = min(deadlines)
        wait_ms = at_ms - self.deps.now_ms()
        if wait_ms <= 0:
            lifetime.end(reason)
        else:
            lifetime.expire_at((wait_ms / 1000, reason))
