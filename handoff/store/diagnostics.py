"""What `handoff doctor` needs to know about a Redis server: version, persistence, memory
policy, cluster state and round-trip latency, and of a Sentinel set-up: its sentinels, their
quorum and the primary's replicas. Reads only; changes nothing."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from handoff.store.connection import Client, SentinelTarget, map_exceptions

CONFIG_KEYS = ("appendonly", "appendfsync", "maxmemory", "maxmemory-policy",
               "min-replicas-to-write", "min-replicas-max-lag")


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


@dataclass(frozen=True)
class SentinelFacts:
    """What the sentinels say of the service, and whether its replicas answer."""

    service: str
    # Each sentinel's address, and "ok" or why it did not answer.
    sentinels: dict[str, str]
    # SENTINEL CKQUORUM's answer from the first sentinel that gave one, and whether it is OK.
    quorum: str = ""
    quorum_ok: bool = False
    # Each replica the sentinels know of, and "ok" or why it is not usable.
    replicas: dict[str, str] = field(default_factory=dict)


async def _ask(host: str, port: int, wait: float, *command: str,
               password: str | None = None, username: str | None = None) -> Any:
    client = Redis(host=host, port=port, socket_timeout=wait,
                   socket_connect_timeout=wait, decode_responses=True,
                   password=password, username=username)
    try:
        return await client.execute_command(*command)  # type: ignore[no-untyped-call]
    finally:
        await client.aclose()


async def sentinel_facts(target: SentinelTarget, *, wait: float) -> SentinelFacts:
    """Ask every sentinel for its quorum and the service's replicas; ping each replica."""
    answers: dict[str, str] = {}
    quorum, quorum_ok = "", False
    known: dict[str, str] = {}
    for host, port in target.sentinels:
        address = f"{host}:{port}"
        try:
            await _ask(host, port, wait, "PING")
        except RedisError as exc:
            answers[address] = f"{type(exc).__name__}: {exc}"
            continue
        answers[address] = "ok"
        if not quorum:
            try:
                quorum, quorum_ok = str(await _ask(host, port, wait, "SENTINEL", "CKQUORUM",
                                                   target.service)), True
            except ResponseError as exc:
                quorum = str(exc)
        try:
            replicas = await _ask(host, port, wait, "SENTINEL", "REPLICAS", target.service)
        except ResponseError:
            continue
        for replica in replicas:
            flags = set(str(replica.get("flags", "")).split(","))
            name = f"{replica.get('ip')}:{replica.get('port')}"
            bad = flags & {"s_down", "o_down", "disconnected"}
            known.setdefault(name, "sentinel flags: " + ",".join(sorted(bad)) if bad else "ok")
    for name, state in list(known.items()):
        if state != "ok":
            continue
        host, _, number = name.rpartition(":")
        try:
            role = await _ask(host, int(number), wait, "ROLE", password=target.password,
                              username=target.username)
            known[name] = "ok" if role and role[0] == "slave" else f"role {role[0]}"
        except (RedisError, ValueError) as exc:
            known[name] = f"{type(exc).__name__}: {exc}"
    return SentinelFacts(target.service, answers, quorum, quorum_ok, known)
