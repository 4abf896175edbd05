"""Redis clients: one shared connection for commands, a pool for blocking stream reads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from handoff.errors import StoreUnavailable
from handoff.store.multiplex import Multiplexed

Client = Redis | RedisCluster | Multiplexed

_UNAVAILABLE: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, OSError)


def connect(url: str, *, cluster: bool, timeout: float, max_connections: int,
            blocking: bool = False) -> Client:
    """A client for `url`; a blocking client has no socket timeout (XREAD BLOCK waits).

    Commands to a single server share one auto-pipelined connection (`Multiplexed`); a cluster
    keeps redis-py's client, which routes by slot and follows MOVED and ASK.
    """
    socket_timeout = None if blocking else timeout
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


@contextmanager
def map_exceptions() -> Iterator[None]:
    """Turn "Redis is away" into StoreUnavailable (503 with Retry-After)."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"the store is unavailable: {type(exc).__name__}") from exc


async def aclose(client: Client) -> None:
    await client.aclose()

