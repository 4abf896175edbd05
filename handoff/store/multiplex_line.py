"""The line under `Multiplexed` (handoff/store/multiplex.py): one connection's protocol, which
writes every command queued in one event-loop iteration at once and hands each caller its
replies in order, and the conversion of a raw reply into what redis-py's command methods return.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, cast

import hiredis
from redis._parsers.base import BaseParser
from redis._parsers.response_callbacks import get_response_callbacks
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Command = tuple[Any, ...]
# redis-py's command methods name their commands in capitals, as these keys are.
_CALLBACKS: dict[str, Any] = {str(k).upper(): v for k, v in get_response_callbacks(2, True).items()}
# Options redis-py's command methods pass along for its own client-side cache, not for parsing.
_NOT_FOR_PARSING = ("keys", "_never_decode", "_empty_response")


def pack(command: Command) -> bytes:
    name = command[0]
    if isinstance(name, str) and " " in name:  # redis-py names some commands "CONFIG GET"
        command = (*name.split(), *command[1:])
    return bytes(hiredis.pack_command(command))


class Waiter:
    """`count` replies that one caller awaits as a whole (one command or one pipeline)."""

    __slots__ = ("count", "future", "replies", "sent_at")

    def __init__(self, count: int, future: asyncio.Future[list[Any]], sent_at: float) -> None:
        self.count = count
        self.future = future
        self.replies: list[Any] = []
        self.sent_at = sent_at


class Line(asyncio.Protocol):
    """The socket: writes batches, feeds hiredis, hands replies back in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self._loop = loop
        self._timeout = timeout
        self._reader = hiredis.Reader(protocolError=InvalidResponse, replyError=ResponseError)
        self._waiting: deque[Waiter] = deque()
        self._outgoing: list[bytes] = []
        self._flush_scheduled = False
        self._watchdog: asyncio.TimerHandle | None = None
        self._timed_out = False
        self.transport: asyncio.Transport | None = None
        self.lost: Exception | None = None
        self.stale = False
        self.flushes = 0
        self.number = 0  # which of its client's connections this is (see `Multiplexed.epoch`)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports have Transport's methods without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def send(self, packed: list[bytes]) -> asyncio.Future[list[Any]]:
        future: asyncio.Future[list[Any]] = self._loop.create_future()
        if self.lost is not None:
            future.set_exception(RedisConnectionError(f"connection to Redis lost: {self.lost}"))
            return future
        self._waiting.append(Waiter(len(packed), future, self._loop.time()))
        self._outgoing.extend(packed)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        if self._watchdog is None:
            self._watchdog = self._loop.call_later(self._timeout, self._check)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        self.flushes += 1
        if self.transport is not None and self._outgoing:
            self.transport.write(b"".join(self._outgoing))
        self._outgoing.clear()

    def _check(self) -> None:
        """Redis answered nothing for a whole timeout: give the line up rather than wait on."""
        self._watchdog = None
        if not self._waiting:
            return
        due = self._waiting[0].sent_at + self._timeout
        if self._loop.time() >= due:
            self._timed_out = True
            if self.transport is not None:
                self.transport.abort()
        else:
            self._watchdog = self._loop.call_at(due, self._check)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        waiting = self._waiting
        while True:
            reply = self._reader.gets()
            if reply is False:
                return
            if not waiting:  # nothing asked for this: the stream cannot be trusted any more
                self.lost = InvalidResponse("a reply nobody asked for")
                if self.transport is not None:
                    self.transport.abort()
                return
            if type(reply) is ResponseError and str(reply).startswith("READONLY"):
                # A demoted primary (a failover happened): the next command finds the new one.
                self.stale = True
            head = waiting[0]
            head.replies.append(reply)
            if len(head.replies) == head.count:
                waiting.popleft()
                if not head.future.done():  # a cancelled caller's replies are dropped
                    head.future.set_result(head.replies)
                if waiting and self._watchdog is not None:
                    # The oldest outstanding batch is younger now: the watchdog measures it.
                    self._watchdog.cancel()
                    self._watchdog = self._loop.call_at(
                        waiting[0].sent_at + self._timeout, self._check)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timed_out:
            error: Exception = RedisTimeoutError("Redis did not answer in time")
        else:
            reason = exc or "closed by the server"
            error = RedisConnectionError(f"connection to Redis lost: {reason}")
        self.lost = error
        self.transport = None
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.future.done():
                waiter.future.set_exception(error)


def error_of(reply: ResponseError) -> ResponseError:
    """The exception redis-py raises for that error reply (NoScriptError, ReadOnlyError, ...)."""
    error: ResponseError = BaseParser.parse_error(str(reply))  # type: ignore[no-untyped-call]
    return error


def reply_of(reply: Any, command: Command, options: dict[str, Any]) -> Any:
    if isinstance(reply, ResponseError):
        raise error_of(reply)
    name = command[0]
    callback = _CALLBACKS.get(name)
    if callback is None:
        return reply
    for option in _NOT_FOR_PARSING:
        options.pop(option, None)
    return callback(reply, **options)
