"""One open event stream's own Redis connection, for its XREAD BLOCK waits.

A stream spends its life blocked in XREAD, so it holds a connection whatever happens; taking one
from a shared pool for each wait only made the pool keep, idle and connected, as many
connections as the most streams ever open at once, long after they had ended. Here the
connection is made like the pool would make it (same address, credentials, TLS and timeouts),
belongs to the stream alone and is closed when the stream ends, however it ends: a stream
cancelled mid-wait has it closed by redis-py (a half-read reply cannot be reused), and
`aclose` closes it otherwise. No pool ever sees it, so none can grow.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MovedError

from handoff.store.connection import Client, map_exceptions

StreamEntry = tuple[str, dict[str, Any]]
# A slot moved while a stream was open: follow the redirect, but never round in circles.
MAX_REDIRECTS = 2


def _entries(raw: Any) -> list[StreamEntry]:
    """XREAD's reply for one stream (RESP2: `[[name, entries]]`; RESP3: `{name: entries}`),
    each entry's fields a flat `[field, value, ...]` list."""
    if not raw:
        return []
    listed = next(iter(raw.values())) if isinstance(raw, dict) else raw[0][1]
    out: list[StreamEntry] = []
    for entry_id, flat in listed:
        fields = {flat[i].decode(): flat[i + 1] for i in range(0, len(flat), 2)}
        out.append((entry_id.decode(), fields))
    return out


class EventReader:
    """Blocking reads of one stream at a time, on a connection no one else uses."""

    def __init__(self, blocking: Client) -> None:
        self._client: Any = blocking
        self._connection: Any = None

    async def _connect_for(self, stream: str, address: tuple[str, int] | None) -> Any:
        if isinstance(self._client, RedisCluster):
            cluster: Any = self._client
            await cluster.initialize()  # knows the slots already, but the first caller asks
            node = cluster.get_node_from_key(stream)
            kwargs = dict(node.connection_kwargs)
            if address is not None:
                kwargs["host"], kwargs["port"] = address
            return node.connection_class(**kwargs)
        pool = self._client.connection_pool
        connection = pool.connection_class(**pool.connection_kwargs)
        if isinstance(pool, SentinelConnectionPool):
            # It asks the sentinels for the primary in connect(), which a first command that
            # finds it unconnected does not call: it would dial the default address instead.
            await connection.connect()
        return connection

    async def wait(self, stream: str, after: str, block_ms: int, count: int
                   ) -> list[StreamEntry]:
        """Entries of `stream` after `after`, or [] when `block_ms` ran out first."""
        command = ("XREAD", "COUNT", count, "BLOCK", block_ms, "STREAMS", stream, after)
        redirects, retried = 0, False
        with map_exceptions():
            while True:
                if self._connection is None:
                    self._connection = await self._connect_for(stream, None)
                try:
                    await self._connection.send_command(*command)
                    return _entries(await self._connection.read_response())
                except MovedError as exc:
                    # Redis Cluster moved the stream's slot: read it where it lives now.
                    await self.aclose()
                    redirects += 1
                    if redirects > MAX_REDIRECTS:
                        raise RedisConnectionError("the stream's slot keeps moving") from exc
                    self._connection = await self._connect_for(stream, (exc.host, exc.port))
                except RedisConnectionError:
                    # Like the shared pools' one retry: a dropped idle connection is no outage.
                    await self.aclose()
                    if retried:
                        raise
                    retried = True

    async def aclose(self) -> None:
        """Close the connection (idempotent); the next `wait` would open a new one."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.disconnect()
