"""What `handoff doctor` needs to know about a Redis server: version, persistence, memory
policy, cluster state and round-trip latency. Reads only; changes nothing."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ResponseError

from handoff.store.connection import Client, map_exceptions

CONFIG_KEYS = ("appendonly", "appendfsync", "maxmemory", "maxmemory-policy")


@dataclass(frozen=True)
class ServerFacts:
    info: dict[str, Any]
    # Empty when the server refuses CONFIG (managed services often rename or disable it).
    config: dict[str, str] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def server_facts(client: Client, *, pings: int = 20) -> ServerFacts:
    """INFO, the persistence and memory CONFIG, and `pings` PING round trips."""
    with map_exceptions():
        latencies = []
        for _ in range(pings):
            started = time.perf_counter()
            await client.ping()
            latencies.append((time.perf_counter() - started) * 1000)
        info: dict[str, Any] = await client.info()
        config: dict[str, str] = {}
        try:
            for name in CONFIG_KEYS:
                raw = await client.config_get(name)
                config.update({_text(k): _text(v) for k, v in raw.items()})
        except ResponseError:
            config = {}
    return ServerFacts(info=info, config=config, latencies_ms=latencies)
