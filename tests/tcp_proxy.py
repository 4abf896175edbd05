"""A TCP proxy the tests control: it can cut every connection, swallow the next answer, or stop
delivering what the upstream sends, the way a load balancer restart or a flaky network would."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter

    def cut(self) -> None:
        for writer in (self.client, self.upstream):
            writer.transport.abort()


@dataclass
class TcpProxy:
    upstream_host: str
    upstream_port: int
    links: set[_Link] = field(default_factory=lambda: set())
    downstream: bytearray = field(default_factory=bytearray)  # every byte sent to clients
    swallow_next_answer: bool = False
    # Upstream's bytes are read and thrown away: what it sends never arrives, the link stays up.
    blackhole_downstream: bool = False
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=lambda: set())

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def cut_all(self) -> None:
        """Every open connection dies at once, mid-stream if need be."""
        for link in list(self.links):
            link.cut()
        self.links.clear()

    async def close(self) -> None:
        self.cut_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.upstream_host,
                                                             self.upstream_port)
        link = _Link(writer, up_writer)
        self.links.add(link)
        for task in (self._pump(reader, up_writer, link, down=False),
                     self._pump(up_reader, writer, link, down=True)):
            t = asyncio.create_task(task)
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    link: _Link, *, down: bool) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if down and self.blackhole_downstream:
                    continue
                if down and self.swallow_next_answer:
                    # The service did the work; its answer never reaches the caller.
                    self.swallow_next_answer = False
                    link.cut()
                    self.links.discard(link)
                    return
                if down:
                    self.downstream += data
                writer.write(data)
                await writer.drain()
        link.cut()
        self.links.discard(link)
