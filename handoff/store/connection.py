"""Redis clients: one shared connection for commands; event streams open their own (events.py).

Where Redis is comes as a URL: `redis://`, `rediss://` or `unix://` for one server,
`redis+cluster://` (or the cluster setting) for a Redis Cluster, and
`redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db]` for a primary that
Redis Sentinel names (see `Settings.store_url`): every (re)connection asks the sentinels where
the primary is now, so a failover is followed without a restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MasterDownError, ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from handoff.kernel.errors import StoreUnavailable
from handoff.kernel.settings import SENTINEL_SCHEME
from handoff.store.multiplex import Multiplexed

Client = Redis | RedisCluster | Multiplexed

_UNAVAILABLE: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, OSError,
                                              ReadOnlyError, MasterDownError)
# A primary refusing writes because too few replicas are connected (min-replicas-to-write):
# like a demoted primary (READONLY), a passing state of a failover, not a bug of the request.
_UNAVAILABLE_REPLIES = ("NOREPLICAS",)


@dataclass(frozen=True)
class SentinelTarget:
    """A `redis+sentinel://` URL, read."""

    sentinels: list[tuple[str, int]]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None


def sentinel_target(url: str) -> SentinelTarget | None:
    """The sentinels, service, database and credentials a `redis+sentinel://` URL names; None
    for any other URL."""
    if not url.startswith(SENTINEL_SCHEME):
        return None
    netloc, _, path = url[len(SENTINEL_SCHEME):].partition("/")
    credentials, _, hosts = netloc.rpartition("@")
    user, _, password = credentials.partition(":")
    service, _, db = path.strip("/").partition("/")
    sentinels = []
    for address in hosts.split(","):
        host, _, port = address.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"a sentinel address is host:port, not {address!r}")
        sentinels.append((host.strip("[]"), int(port)))
    if not service:
        raise ValueError("a redis+sentinel:// URL names the service after the addresses")
    return SentinelTarget(sentinels, service, int(db or 0), unquote(user) or None,
                          unquote(password) or None)


class _SentinelManaged(Redis):
    """redis-py's client of the primary the sentinels name; closing it also closes its
    connections to the sentinels."""

    watchers: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.watchers is not None:
            for client in self.watchers.sentinels:
                await client.aclose()


def connect(url: str, *, cluster: bool, timeout: float, max_connections: int,
            blocking: bool = False) -> Client:
    """A client for `url`; a blocking client has no socket timeout (XREAD BLOCK waits).

    Commands to a single server share one auto-pipelined connection (`Multiplexed`); a cluster
    keeps redis-py's client, which routes by slot and follows MOVED and ASK.
    """
    socket_timeout = None if blocking else timeout
    target = sentinel_target(url)
    if target is not None:
        return _sentinel_client(target, timeout=timeout, blocking=blocking)
    if not blocking and not cluster and not url.startswith("redis+cluster://"):
        return Multiplexed.from_url(url, timeout=timeout)
    if cluster or url.startswith("redis+cluster://"):
        return RedisCluster.from_url(
            url.replace("redis+cluster://", "redis://"),
            socket_timeout=socket_timeout, socket_connect_timeout=timeout,
            max_connections=max_connections, decode_responses=False,
            retry=Retry(ExponentialBackoff(cap=timeout, base=0.05), 2))
    # A request that finds every connection busy waits for one (up to the command timeout)
    # rather than failing: a burst of event streams must not turn into 503s.
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=timeout,
        socket_timeout=socket_timeout, socket_connect_timeout=timeout, decode_responses=False,
        retry=Retry(ExponentialBackoff(cap=timeout, base=0.05), 1), health_check_interval=30)
    return Redis.from_pool(pool)


def _sentinel_client(target: SentinelTarget, *, timeout: float, blocking: bool) -> Client:
    if not blocking:
        return Multiplexed.from_sentinels(target.sentinels, target.service, db=target.db,
                                          username=target.username, password=target.password,
                                          timeout=timeout)
    sentinel = Sentinel(target.sentinels, sentinel_kwargs={  # type: ignore[no-untyped-call]
        "socket_timeout": timeout, "socket_connect_timeout": timeout})
    options: dict[str, Any] = {
        "db": target.db, "username": target.username, "password": target.password,
        "socket_timeout": None, "socket_connect_timeout": timeout, "decode_responses": False,
        "retry": Retry(ExponentialBackoff(cap=timeout, base=0.05), 1),
        "health_check_interval": 30}
    client = sentinel.master_for(target.service, redis_class=_SentinelManaged, **options)
    assert isinstance(client, _SentinelManaged)
    client.watchers = sentinel
    return client


def unavailable(exc: Exception) -> StoreUnavailable | None:
    """What `exc` means when it says "Redis is away": a lost or refused connection, a timeout,
    or a server that cannot take writes now (demoted in a failover, or short of replicas); None
    for any other error."""
    if isinstance(exc, _UNAVAILABLE):
        return StoreUnavailable(f"the store is unavailable: {type(exc).__name__}")
    if isinstance(exc, ResponseError) and str(exc).startswith(_UNAVAILABLE_REPLIES):
        return StoreUnavailable("the store is unavailable: too few replicas")
    return None


@contextmanager
def map_exceptions() -> Iterator[None]:
    """Turn "Redis is away" into StoreUnavailable (503 with Retry-After), see `unavailable`."""
    try:
        yield
    except Exception as exc:
        error = unavailable(exc)
        if error is None:
            raise
        raise error from exc


async def aclose(client: Client) -> None:
    await client.aclose()

