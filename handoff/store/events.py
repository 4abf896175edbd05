"""Event streams: a customer's changes or a tenant's queue, read from an id or waited for.

A stream spends its life blocked in XREAD, so each open one holds a connection whatever happens;
taking one from a shared pool for each wait only made the pool keep, idle and connected, as many
connections as the most streams ever open at once, long after they had ended. An `EventReader`
makes its connection like the pool would make it (same address, credentials, TLS and timeouts);
it belongs to the stream alone and is closed when the stream ends, however it ends: a stream
cancelled mid-wait has it closed by redis-py (a half-read reply cannot be reused), and
`aclose` closes it otherwise. No pool ever sees it, so none can grow.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MovedError

from handoff.store import codec, keys
from handoff.store.codec import StreamEntry
from handoff.store.connection import Client, map_exceptions
from handoff.store.operations import operations

# A slot moved while a stream was open: follow the redirect, but never round in circles.
MAX_REDIRECTS = 2


def _xread_entries(raw: Any) -> list[StreamEntry]:
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


@operations(timed=False)
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
                    return _xread_entries(await self._connection.read_response())
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


@operations()
class Events:
    """Reads of event streams: from an id, and (through an `EventReader`) waits for more."""

    def __init__(self, client: Client, blocking: Client) -> None:
        self.client: Any = client
        self.blocking = blocking

    def events_key(self, tenant: str, cus_id: str | None) -> str:
        """A customer's event stream, or with no customer the tenant's queue events."""
        return keys.customer(tenant, cus_id).events if cus_id else keys.queue_events(tenant)

    async def read_events(self, stream: str, after: str, count: int) -> list[StreamEntry]:
        """Events strictly after `after` ("0" for the start)."""
        with map_exceptions():
            raw = await self.client.xrange(stream, f"({after}" if after != "0" else "-", "+",
                                           count=count)
        return codec.entries(raw)

    async def last_event_id(self, stream: str) -> str:
        with map_exceptions():
            raw = await self.client.xrevrange(stream, "+", "-", count=1)
        return raw[0][0].decode() if raw else "0-0"

    def event_reader(self) -> EventReader:
        """A reader for one open event stream: its own connection, closed with `aclose`."""
        return EventReader(self.blocking)
