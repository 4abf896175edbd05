"""Server-sent events: a parser for text/event-stream, and a stream that reopens itself.

The parser follows the WHATWG rules (fields, multi-line data, comments, `retry`, and an `id`
that persists until replaced). The stream resumes with `Last-Event-ID` after a dropped
connection, so an agent's panel neither misses an event nor sees one twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp

from handoff.client.errors import RateLimitedError, StreamError, TransportError, UnavailableError
from handoff.client.retry import RetryPolicy

log = logging.getLogger("handoff.client")
_EOL = re.compile(rb"\r\n|\r|\n")
# The service ends a stream with one of these; they are about the connection, not the data.
CONTROL = frozenset({"server.closing", "server.unavailable"})


@dataclass(frozen=True, slots=True)
class Frame:
    """One dispatched block; `data` is None for a block that only moved the last event id."""

    id: str | None
    event: str
    data: str | None


@dataclass(frozen=True, slots=True)
class Event:
    """A change the service announced: `type` such as `turn.appended`, `data` its JSON body."""

    id: str | None
    type: str
    data: dict[str, Any]

    @property
    def customer_id(self) -> str | None:
        value = self.data.get("customer_id")
        return value if isinstance(value, str) else None

    @property
    def record(self) -> dict[str, Any]:
        """The changed record (a turn, a fact, a verification, a hand-off)."""
        value = self.data.get("record")
        return value if isinstance(value, dict) else {}


class Parser:
    """Incremental text/event-stream parser: feed it bytes as they arrive."""

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event = ""
        self._id_seen = False
        self.last_id: str | None = None
        self.retry_ms: int | None = None

    def feed(self, chunk: bytes) -> list[Frame]:
        self._buffer += chunk
        frames: list[Frame] = []
        while (match := _EOL.search(self._buffer)) is not None:
            if match.group() == b"\r" and match.end() == len(self._buffer):
                break  # a CR at the end of a chunk may be the first half of CRLF
            line, self._buffer = self._buffer[:match.start()], self._buffer[match.end():]
            frame = self._line(line.decode("utf-8", "replace"))
            if frame is not None:
                frames.append(frame)
        return frames

    def _line(self, line: str) -> Frame | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_id, self._id_seen = value or None, True
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> Frame | None:
        data, event, id_seen = self._data, self._event, self._id_seen
        self._data, self._event, self._id_seen = [], "", False
        if data:
            return Frame(self.last_id, event or "message", "\n".join(data))
        return Frame(self.last_id, event or "message", None) if id_seen else None


def _position(event_id: str) -> tuple[int, ...]:
    """Stream ids (`<ms>-<seq>`) in order; anything else sorts first."""
    try:
        return tuple(int(part) for part in event_id.split("-"))
    except ValueError:
        return ()


Opener = Callable[[str | None], Awaitable[aiohttp.ClientResponse]]


class EventStream:
    """Events of one stream, in order, each once, across reconnects.

    Use as `async with stream: async for event in stream: ...`: entering opens the connection,
    so nothing that happens after it is missed. A bare `async for` opens it on the first step
    (and `await stream.aclose()` ends it). `last_event_id` is where it would resume.
    """

    def __init__(self, opener: Opener, *, last_event_id: str | None, policy: RetryPolicy,
                 include_control: bool = False) -> None:
        self._open = opener
        self.last_event_id = last_event_id
        self._policy = policy
        self._include_control = include_control
        self._events: AsyncGenerator[Event, None] | None = None
        self._opened: aiohttp.ClientResponse | None = None
        self.reconnects = 0

    async def open(self) -> EventStream:
        """Connect now (events from this moment on are delivered), not at the first step."""
        if self._events is None and self._opened is None:
            self._opened = await self._connect()
        return self

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        if self._events is None:
            self._events = self._run()
        return await anext(self._events)

    async def aclose(self) -> None:
        if self._events is not None:
            await self._events.aclose()
        if self._opened is not None:
            self._opened.close()
            self._opened = None

    async def __aenter__(self) -> EventStream:
        return await self.open()

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    def _is_new(self, event_id: str | None) -> bool:
        if event_id is None or self.last_event_id is None:
            return True
        return _position(event_id) > _position(self.last_event_id)

    async def _connect(self) -> aiohttp.ClientResponse:
        """Open the stream, waiting out 429/503 and refused connections within the policy."""
        loop = asyncio.get_running_loop()
        started, attempt = loop.time(), 0
        while True:
            attempt += 1
            try:
                return await self._open(self.last_event_id)
            except (RateLimitedError, UnavailableError, TransportError) as exc:
                retry_after = getattr(exc, "retry_after", None)
                wait = self._policy.next_wait(attempt, retry_after,
                                              self._policy.total - (loop.time() - started))
                if wait is None:
                    raise StreamError(f"the event stream could not be reopened: {exc}") from exc
                log.info("event stream: %s; reopening in %.1fs", exc, wait)
                await asyncio.sleep(wait)

    def _take(self, frame: Frame) -> tuple[Event | None, bool]:
        """What a frame means here: an event to deliver (if any), and whether the server is
        ending this connection."""
        if frame.data is None:
            if self._is_new(frame.id):
                self.last_event_id = frame.id  # the stream's opening position
            return None, False
        event = Event(frame.id, frame.event, _decode(frame.data))
        if event.type in CONTROL:
            resume = event.data.get("last_event_id")
            if isinstance(resume, str) and self._is_new(resume):
                self.last_event_id = resume
            return (event if self._include_control else None), True
        if not self._is_new(event.id):
            return None, False  # already delivered before a reconnect
        if event.id is not None:
            self.last_event_id = event.id
        return event, False

    async def _run(self) -> AsyncGenerator[Event, None]:
        retry_ms = 2000
        while True:
            response, self._opened = self._opened or await self._connect(), None
            parser = Parser()
            ended = False
            try:
                async for chunk in response.content.iter_any():
                    for frame in parser.feed(chunk):
                        event, ended = self._take(frame)
                        if event is not None:
                            yield event
                        if ended:
                            break
                    if ended:
                        break
            except (TimeoutError, aiohttp.ClientPayloadError,
                    aiohttp.ClientConnectionError) as exc:
                log.info("event stream dropped (%s); resuming after %s", type(exc).__name__,
                         self.last_event_id)
            finally:
                response.close()
            retry_ms = parser.retry_ms or retry_ms
            self.reconnects += 1
            # Spread reconnects over the server's `retry` so a restart is not a stampede.
            await asyncio.sleep(self._policy.rng.uniform(0.0, min(retry_ms / 1000,
                                                                  self._policy.cap)))


def _decode(data: str) -> dict[str, Any]:
    with contextlib.suppress(ValueError):
        value = json.loads(data)
        if isinstance(value, dict):
            return value
    return {"data": data}
