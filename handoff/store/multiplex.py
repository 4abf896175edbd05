"""One connection to one Redis server, shared by every request in the process.

redis-py's asyncio client pays, for every command, a pool checkout, a connection lock, a retry
wrapper, a health check and a timeout object; under load that was a third of the service's CPU.
Here a command is packed once, queued, and every command issued in one event-loop iteration
goes out in one write (auto-pipelining). Redis answers in order, so replies are matched to
their callers first in, first out; hiredis parses them. The command methods (`hgetall`, `set`,
...) and the reply conversions are redis-py's own, so the store reads the same either way.

What a lost connection means is the same as with redis-py: every waiting command fails with
`ConnectionError` (or `TimeoutError` when Redis stopped answering), which the store turns into
a 503, and the next command connects again. A caller that is cancelled leaves the line intact:
its reply is read and dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import Iterable, Sequence
from typing import Any, Literal
from urllib.parse import unquote, urlparse

from redis.commands import AsyncCoreCommands
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from handoff.store.multiplex_line import Command, Line, error_of, pack, reply_of


class Multiplexed(AsyncCoreCommands):
    """A redis-py-compatible client for one server over one shared, auto-pipelined connection.

    Only what the store uses is promised: the command methods, `pipeline(transaction=False)`,
    `register_script`, `ping` and `aclose`.
    """

    # What redis-py's typed command methods ask of an asynchronous client.
    _is_async_client: Literal[True] = True
    _event_dispatcher: Any = None

    def __init__(self, *, host: str = "127.0.0.1", port: int = 6379, db: int = 0,
                 username: str | None = None, password: str | None = None,
                 unix_path: str | None = None, tls: ssl.SSLContext | None = None,
                 timeout: float = 5.0, connect_timeout: float | None = None,
                 sentinels: Sequence[tuple[str, int]] = (), service: str = "") -> None:
        self._address = (host, port)
        # With sentinels, the address is the primary's, asked for at every (re)connection.
        self._sentinels = list(sentinels)
        self._service = service
        self._unix_path = unix_path
        self._tls = tls
        self._db = db
        self._auth = (username, password)
        self._timeout = timeout
        self._connect_timeout = connect_timeout or timeout
        self._line: Line | None = None
        self._connecting: asyncio.Future[Line] | None = None
        # The WAIT queued in this loop iteration, if any: later askers share it.
        self._wait: tuple[Line, int, int, asyncio.Future[list[Any]]] | None = None
        self._lines = 0
        self._closed = False

    @classmethod
    def from_sentinels(cls, sentinels: Sequence[tuple[str, int]], service: str, *,
                       db: int = 0, password: str | None = None, username: str | None = None,
                       timeout: float = 5.0) -> Multiplexed:
        """A client of whichever server the sentinels name as `service`'s primary."""
        return cls(sentinels=sentinels, service=service, db=db, password=password,
                   username=username, timeout=timeout)

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 5.0,
                 connect_timeout: float | None = None) -> Multiplexed:
        """`redis://[user:password@]host[:port][/db]`, `rediss://...` or `unix:///path?db=N`."""
        parts = urlparse(url)
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        if parts.scheme == "unix":
            query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
            return cls(unix_path=parts.path, db=int(query.get("db", 0)), username=username,
                       password=password, timeout=timeout, connect_timeout=connect_timeout)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"not a Redis URL: {parts.scheme}://")
        path = parts.path.lstrip("/")
        return cls(host=parts.hostname or "127.0.0.1", port=parts.port or 6379,
                   db=int(path) if path else 0, username=username, password=password,
                   tls=ssl.create_default_context() if parts.scheme == "rediss" else None,
                   timeout=timeout, connect_timeout=connect_timeout)

    # -- the line -----------------------------------------------------------------------------

    async def _dial(self, address: tuple[str, int] | None, tls: ssl.SSLContext | None
                    ) -> Line:
        loop = asyncio.get_running_loop()
        line = Line(loop, self._timeout)
        try:
            async with asyncio.timeout(self._connect_timeout):
                if address is None:
                    assert self._unix_path is not None
                    await loop.create_unix_connection(lambda: line, self._unix_path)
                else:
                    await loop.create_connection(lambda: line, *address, ssl=tls)
        except OSError as exc:  # TimeoutError included
            raise RedisConnectionError(f"cannot connect to Redis: {exc}") from exc
        return line

    async def primary_address(self) -> tuple[str, int]:
        """The primary the sentinels name now (the first sentinel that answers is believed)."""
        failures = []
        for sentinel in self._sentinels:
            try:
                line = await self._dial(sentinel, None)
            except RedisConnectionError as exc:
                failures.append(f"{sentinel[0]}:{sentinel[1]}: {exc}")
                continue
            try:
                (reply,) = await line.send([pack(
                    ("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self._service))])
            except (RedisConnectionError, RedisTimeoutError) as exc:
                failures.append(f"{sentinel[0]}:{sentinel[1]}: {exc}")
                continue
            finally:
                if line.transport is not None:
                    line.transport.close()
            if isinstance(reply, list) and len(reply) == 2:
                return reply[0].decode(), int(reply[1])
            failures.append(f"{sentinel[0]}:{sentinel[1]}: knows no primary for "
                            f"{self._service!r}")
        raise RedisConnectionError("no sentinel named a primary: " + "; ".join(failures))

    async def _open(self) -> Line:
        if self._sentinels:
            line = await self._dial(await self.primary_address(), self._tls)
        else:
            line = await self._dial(None if self._unix_path else self._address, self._tls)
        handshake: list[Command] = []
        username, password = self._auth
        if password is not None:
            handshake.append(("AUTH", *([username] if username else []), password))
        if self._db:
            handshake.append(("SELECT", self._db))
        if self._sentinels:
            # A sentinel may name a primary that has just been demoted: ask the server itself.
            handshake.append(("ROLE",))
        if handshake:
            replies = await line.send([pack(c) for c in handshake])
            error = next((r for r in replies if isinstance(r, ResponseError)), None)
            demoted = self._sentinels and replies[-1][0] != b"master"
            if error is not None or demoted:
                if line.transport is not None:
                    line.transport.close()
                if error is not None:
                    raise error_of(error)
                raise RedisConnectionError("the server the sentinels named is not a primary")
        return line

    async def _connected(self) -> Line:
        if self._closed:
            raise RedisConnectionError("the Redis client is closed")
        attempt = self._connecting
        if attempt is None:
            # One connection attempt, however many callers wait for it.
            attempt = self._connecting = asyncio.ensure_future(self._open())
            attempt.add_done_callback(self._attempted)
        return await asyncio.shield(attempt)

    def _attempted(self, attempt: asyncio.Future[Line]) -> None:
        if self._connecting is attempt:
            self._connecting = None
        if not attempt.cancelled() and attempt.exception() is None:
            self._lines += 1
            self._line = attempt.result()
            self._line.number = self._lines
            if self._closed and self._line.transport is not None:  # closed while connecting
                self._line.transport.close()

    def _send(self, commands: Sequence[Command]) -> asyncio.Future[list[Any]] | None:
        """Queue packed commands on a live line; None if there is none yet."""
        line = self._line
        if line is None or line.lost is not None or line.stale:
            if line is not None and line.stale and line.transport is not None:
                line.transport.close()  # its callers' replies still arrive: close, not abort
            self._line = None
            return None
        return line.send([pack(c) for c in commands])

    async def execute_many(self, commands: Sequence[Command]) -> list[Any]:
        """Raw replies (errors as ResponseError values) of `commands`, sent together."""
        future = self._send(commands)
        if future is None:
            line = await self._connected()
            future = line.send([pack(c) for c in commands])
        return await future

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        (reply,) = await self.execute_many((args,))
        return reply_of(reply, args, options)

    def epoch(self) -> int:
        """The connection the next command goes out on (a number that grows with every new
        connection): give it to `replicated` to confirm the writes made since."""
        line = self._line
        if line is None or line.lost is not None or line.stale:
            return self._lines + 1
        return line.number

    async def replicated(self, replicas: int, timeout_ms: int, *, since: int | None = None
                         ) -> int:
        """How many replicas (up to `replicas`) hold every write this client has sent so far,
        waiting up to `timeout_ms` for them.

        Every command goes over one connection, and WAIT covers everything its connection sent
        before it: one WAIT serves every caller that asks in the same loop iteration (a group
        commit), however many writes they made. WAIT knows nothing of an earlier connection:
        with `since` (an `epoch`), writes made since then on a connection that has been
        replaced are not confirmed but raise, as their fate is unknown.
        """
        line = self._line
        if line is None or line.lost is not None:
            raise RedisConnectionError("no connection to Redis: the writes' fate is unknown")
        if since is not None and line.number != since:
            raise RedisConnectionError("the connection to Redis changed while the writes were "
                                       "made: their fate is unknown")
        pending = self._wait
        if (pending is not None and pending[0] is line and pending[1] == line.flushes
                and pending[2] == replicas and not pending[3].done()):
            future = pending[3]
        else:
            future = line.send([pack(("WAIT", replicas, timeout_ms))])
            self._wait = (line, line.flushes, replicas, future)
        (reply,) = await asyncio.shield(future)
        if isinstance(reply, ResponseError):
            raise error_of(reply)
        return int(reply)

    # -- what the store uses besides commands ------------------------------------------------------

    def pipeline(self, transaction: bool = False, shard_hint: Any = None) -> Pipeline:
        if transaction:
            raise ValueError("the store pipelines without MULTI; scripts are its transactions")
        return Pipeline(self)

    def register_script(self, script: str | bytes) -> Script:  # type: ignore[override]
        return Script(self, script)

    async def aclose(self) -> None:
        self._closed = True
        line, self._line = self._line, None
        if line is not None and line.transport is not None:
            line.transport.close()


class Pipeline(AsyncCoreCommands):
    """Commands queued by the store's usual calls and sent in one batch by `execute`."""

    _is_async_client: Literal[True] = True
    _event_dispatcher: Any = None

    def __init__(self, client: Multiplexed) -> None:
        self._client = client
        self._commands: list[tuple[Command, dict[str, Any]]] = []

    async def __aenter__(self) -> Pipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._commands.clear()

    def __len__(self) -> int:
        return len(self._commands)

    def execute_command(self, *args: Any, **options: Any) -> Pipeline:
        self._commands.append((args, options))
        return self

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        """Every reply, converted as redis-py would; the first error raised after all arrive."""
        commands, self._commands = self._commands, []
        if not commands:
            return []
        replies = await self._client.execute_many([c for c, _ in commands])
        out: list[Any] = []
        first_error: Exception | None = None
        for reply, (command, options) in zip(replies, commands, strict=True):
            try:
                out.append(reply_of(reply, command, options))
            except ResponseError as exc:
                first_error = first_error or exc
                out.append(exc)
        if first_error is not None and raise_on_error:
            raise first_error
        return out


class Script:
    """A Lua script run by its SHA1; loaded on the first NOSCRIPT (a new or restarted server)."""

    def __init__(self, client: Multiplexed, script: str | bytes) -> None:
        self._client = client
        self.script = script.encode() if isinstance(script, str) else script
        self.sha = hashlib.sha1(self.script).hexdigest()

    async def __call__(self, keys: Sequence[Any] | None = None,
                       args: Iterable[Any] | None = None, client: Any = None) -> Any:
        keys = list(keys or ())
        command = ("EVALSHA", self.sha, len(keys), *keys, *(args or ()))
        try:
            return await self._client.execute_command(*command)
        except NoScriptError:
            await self._client.execute_command("SCRIPT", "LOAD", self.script)
            return await self._client.execute_command(*command)
