"""Redis round trips per request, as Redis itself counts them.

Requests are sent one at a time to an otherwise idle service, and valkey's own counters are read
before and after each: `total_reads_processed` (one per write the service's connection makes: a
round trip, however many commands it carries) and `total_commands_processed` (the commands run,
a script's own included). The two `INFO` calls of a reading add their own share, measured with no
request in between and subtracted. The median over the requests is kept: the service's
background work (webhook deliveries, the expiry sweep) may land in one of them.

tests/test_bounded_cost.py holds the same counts as a table the test suite enforces; this is the
running service's view, printed with the other figures and checked against the targets.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import redis

from bench.results import RoundTrips
from bench.scenarios import Bench
from bench.seed import conversation, identity_body


def _counters(client: redis.Redis) -> tuple[int, int]:
    stats: Any = client.info("stats")
    return int(stats["total_reads_processed"]), int(stats["total_commands_processed"])


async def _expect(response: aiohttp.ClientResponse, status: int, what: str) -> Any:
    body = await response.read()
    if response.status != status:
        raise RuntimeError(f"{what} answered {response.status}: {body[:300]!r}")
    return await response.json(content_type=None) if body else None


def measure(bench: Bench, *, append_name: str, brief_id: str, brief_etag: str,
            handoff_pool: list[str], requests: int) -> list[RoundTrips]:
    """Round trips and commands per request of append, brief, 304, hand-off create and accept."""
    return asyncio.run(_measure(bench, append_name, brief_id, brief_etag, handoff_pool,
                                requests))


async def _measure(bench: Bench, append_name: str, brief_id: str, brief_etag: str,
                   handoff_pool: list[str], requests: int) -> list[RoundTrips]:
    base, keys = bench.service.base, bench.keys
    bot = {"Authorization": f"Bearer {keys.bot}"}
    agent = {"Authorization": f"Bearer {keys.agent}"}
    client = redis.Redis.from_url(bench.redis_url)
    samples: dict[str, list[tuple[int, int]]] = {}
    try:
        idle = []
        for _ in range(5):
            before = _counters(client)
            after = _counters(client)
            idle.append((after[0] - before[0], after[1] - before[1]))
        overhead = min(idle)

        async def counted(kind: str, send: Callable[[], Awaitable[Any]]) -> Any:
            before = _counters(client)
            result = await send()
            after = _counters(client)
            samples.setdefault(kind, []).append((after[0] - before[0] - overhead[0],
                                                 after[1] - before[1] - overhead[1]))
            return result

        async with aiohttp.ClientSession() as http:
            brief_url = f"{base}/v1/customers/{brief_id}/context"
            for n in range(requests + 1):  # the first of each kind warms caches: not kept
                turn = {"id": f"{bench.run_id}-rt-{n}", "role": "customer",
                        "text": "I was charged twice", "ts": "2026-11-23T10:02:00Z"}

                async def append(turn: dict[str, Any] = turn) -> Any:
                    async with http.post(
                            f"{base}/v1/conversations/{conversation(append_name)}/turns",
                            headers=bot, json={"customer": identity_body(append_name),
                                               "channel": "chat", "source": "bench-bot",
                                               "turns": [turn]}) as r:
                        return await _expect(r, 200, "append")

                async def brief() -> Any:
                    async with http.get(brief_url, headers=agent) as r:
                        return await _expect(r, 200, "brief")

                async def not_modified() -> Any:
                    async with http.get(brief_url,
                                        headers={**agent, "If-None-Match": brief_etag}) as r:
                        return await _expect(r, 304, "brief with If-None-Match")

                name = handoff_pool[n % len(handoff_pool)]

                async def create(name: str = name) -> Any:
                    async with http.post(f"{base}/v1/handoffs", headers=bot, json={
                            "customer": identity_body(name),
                            "conversation_id": conversation(name), "channel": "chat",
                            "source": "bench-bot", "reason": "customer_request",
                            "priority": 2, "queue": "billing",
                            "summary": "Charged twice for order A-1001"}) as r:
                        return await _expect(r, 201, "hand-off create")

                for kind, send in (("append", append), ("brief", brief),
                                   ("304", not_modified)):
                    await counted(kind, send)
                created = await counted("create", create)

                async def accept(handoff: str = created["id"]) -> Any:
                    async with http.post(f"{base}/v1/handoffs/{handoff}/accept",
                                         headers=agent, json={"agent_id": "agent-rt"}) as r:
                        return await _expect(r, 200, "hand-off accept")

                await counted("accept", accept)
    finally:
        client.close()
    return [RoundTrips(kind=kind,
                       round_trips=statistics.median(s[0] for s in kept[1:]),
                       commands=statistics.median(s[1] for s in kept[1:]),
                       requests=len(kept) - 1)
            for kind, kept in samples.items()]
