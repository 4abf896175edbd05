"""Running the application on a port: aiohttp's server, with a deadline for request headers.

aiohttp closes a connection that stays idle past its keep-alive timeout (75 s), but gives a
client that keeps trickling a request's headers, a byte now and then, the whole of that time:
a few thousand such connections hold a process's sockets and memory for as long as they like.
Here every request head has `header_timeout` seconds to arrive in full, counted from the
connection opening for its first request and from the first byte of each later one (waiting
idle between requests is still the keep-alive timeout's business). A client that is too slow
is disconnected without an answer, as a proxy's header timeout would.

The cost is one timer per connection, for its first request, and one per later request only
when its head does not arrive in one read.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from aiohttp import web
from aiohttp.streams import StreamReader
from yarl import URL

SHUTDOWN_SECONDS = 10
# How long an idle kept-alive connection stays open: `web.run_app`'s default, longer than the
# idle timeout of the usual load balancers, so they, not we, close a connection they reuse.
KEEPALIVE_SECONDS = 75.0


class HeadDeadline(web.RequestHandler):
    """aiohttp's connection handler, closing the connection when a request head is late.

    aiohttp offers no hook for this, so it reads two of the handler's own attributes (the count
    of request heads parsed and the queue they wait in), which every aiohttp 3 release has;
    `tests/test_slow_clients.py` fails if that ever stops working.
    """

    __slots__ = ("_head_timeout", "_head_timer", "_body")

    def __init__(self, manager: web.Server, *, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._head_timeout = head_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        # The body of the last request whose head arrived: bytes that come while it is still
        # incomplete are that body, not the start of the next request.
        self._body: StreamReader | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._head_timer = self._loop.call_later(self._head_timeout, self._head_late)

    def data_received(self, data: bytes) -> None:
        if self._body is not None and self._body.is_eof():
            self._body = None  # not kept a moment longer than needed: it may hold unread data
        heads = self._request_count
        starts_head = self._head_timer is None and self._body is None
        super().data_received(data)
        if self._request_count != heads:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            body = self._messages[-1][1] if self._messages else None
            self._body = None if body is None or body.is_eof() else body
        elif starts_head and data and not (self._upgraded or self._close or self._force_close):
            self._head_timer = self._loop.call_later(self._head_timeout, self._head_late)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._body = None
        super().connection_lost(exc)

    def _head_late(self) -> None:
        self._head_timer = None
        if self.transport is not None and not self._force_close:
            self.force_close()


class HeadDeadlineSite(web.BaseSite):
    """A TCP site (host, port, SO_REUSEPORT) whose connections are `HeadDeadline` handlers."""

    __slots__ = ("_host", "_port", "_reuse_port", "_head_timeout")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, head_timeout: float,
                 reuse_port: bool = False) -> None:
        super().__init__(runner)
        self._host, self._port, self._reuse_port = host, port, reuse_port
        self._head_timeout = head_timeout

    @property
    def name(self) -> str:
        return str(URL.build(scheme="http", host=self._host, port=self._port))

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        # The same handler options `web.Server` would give aiohttp's own handler (the
        # application's handler_args and the runner's keep-alive and logging settings).
        options = server._kwargs

        def connection() -> HeadDeadline:
            return HeadDeadline(server, loop=loop, head_timeout=self._head_timeout, **options)

        self._server = await loop.create_server(connection, self._host, self._port,
                                                backlog=self._backlog,
                                                reuse_port=self._reuse_port or None)


def bind_problem(exc: OSError, host: str, port: int) -> str | None:
    """One sentence for a failure to listen on `host:port` that the operator can fix (a busy
    port, a privileged one, an address this machine does not have); None for anything else."""
    if isinstance(exc, socket.gaierror):
        return (f"cannot listen on {host!r}: {exc.strerror}; give another address with --host "
                "or HANDOFF_HOST")
    if exc.errno == errno.EADDRINUSE:
        return (f"port {port} on {host} is already in use (another handoff serve?); choose "
                f"another with --port {port + 1} or HANDOFF_PORT={port + 1}")
    if exc.errno == errno.EACCES:
        return (f"not allowed to listen on port {port} of {host} (ports below 1024 need "
                "privileges); choose another with --port or HANDOFF_PORT")
    if exc.errno == errno.EADDRNOTAVAIL:
        return (f"{host} is not an address of this machine; choose another with --host or "
                "HANDOFF_HOST")
    return None


def check_port(host: str, port: int) -> str | None:
    """Why `handoff serve` could not listen on `host:port` now, or None if it could.

    Asked before anything starts (the embedded Redis, N workers that would each fail and be
    restarted for ever), binding as the server will: with SO_REUSEADDR, so the sockets a
    server that just stopped leaves in TIME_WAIT do not count, and without SO_REUSEPORT, so
    that a port held by other `--workers` processes does.
    """
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
    except OSError as exc:
        return bind_problem(exc, host, port)
    bound, missing = 0, None
    for family, kind, proto, _, address in addresses:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                probe.bind(address)
                bound += 1
        except OSError as exc:
            # As asyncio does: an address of a family this machine has not enabled (`localhost`
            # is ::1 too) is skipped, and is a problem only if no address is left.
            if exc.errno not in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                return bind_problem(exc, host, port)
            missing = exc
    return bind_problem(missing, host, port) if missing is not None and not bound else None


async def _serve(app: web.Application, *, host: str, port: int, head_timeout: float,
                 reuse_port: bool, announce: Callable[[str], None]) -> None:
    runner = web.AppRunner(app, handle_signals=True, access_log=None,
                           shutdown_timeout=SHUTDOWN_SECONDS, keepalive_timeout=KEEPALIVE_SECONDS)
    await runner.setup()
    try:
        site = HeadDeadlineSite(runner, host, port, head_timeout=head_timeout,
                                reuse_port=reuse_port)
        await site.start()
        announce(f"======== Running on {site.name} ========\n(Press CTRL+C to quit)")
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def run(app: web.Application, *, host: str, port: int, head_timeout: float,
        reuse_port: bool = False, announce: Callable[[str], None] = print) -> None:
    """Serve `app` until SIGTERM or SIGINT, then shut down as `web.run_app` does: stop
    listening, run the shutdown hooks, let requests in flight finish (up to 10 s), clean up."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    main = loop.create_task(_serve(app, host=host, port=port, head_timeout=head_timeout,
                                   reuse_port=reuse_port, announce=announce))
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        try:
            if not main.done():
                main.cancel()
                with suppress(asyncio.CancelledError):
                    loop.run_until_complete(main)
        finally:
            left = asyncio.all_tasks(loop)
            for task in left:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            asyncio.set_event_loop(None)
