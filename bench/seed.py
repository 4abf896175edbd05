"""Data the figures need, put in place the way real callers would: keys straight into the store
(as `handoff keys create` does), everything else through the public HTTP API."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from handoff.services import apikeys
from handoff.store import Store
from handoff.store.connection import connect

TENANT = "bench"
BATCH = 500  # the API's maximum turns per request: the fastest way to build a long history
# Realistic chat lines of mixed length; memory per turn is judged against their average size.
TEXTS = (
    "I was charged twice for my last order",
    "Sorry about that! Which order is it?",
    "Order A-1001, the one I placed on Tuesday evening for the blue jacket",
    "I can see two payments of 49.90 on that order, one of them should not be there",
    "Can I get the second one refunded please",
    "Of course. I will ask a colleague in billing to look at the refund",
    "How long will that take? I need the money back before the weekend",
    "Usually three to five working days",
)


@dataclass(frozen=True)
class Keys:
    bot: str
    agent: str


async def mint_keys(redis_url: str) -> Keys:
    """One bot and one agent key of the bench tenant, minted directly in the store."""
    client = connect(redis_url, cluster=False, timeout=5.0, max_connections=2)
    blocking = connect(redis_url, cluster=False, timeout=5.0, max_connections=1, blocking=True)
    store = await Store.open(client, blocking, events_maxlen=100)
    try:
        now = int(time.time() * 1000)
        bot, _ = await apikeys.create(store, tenant=TENANT, role="bot", name="bench", now_ms=now)
        agent, _ = await apikeys.create(store, tenant=TENANT, role="agent", name="bench",
                                        now_ms=now)
        return Keys(bot=bot, agent=agent)
    finally:
        await store.close()


def conversation(name: str) -> str:
    return f"conv-{name}"


def visitor(name: str) -> str:
    return f"visitor-{name}"


def member(prefix: str, i: int) -> str:
    """The name of the i-th customer of a group seeded by `Api.many`."""
    return f"{prefix}-{i}"


def identity_body(name: str) -> dict[str, Any]:
    return {"identities": [{"kind": "chat", "value": visitor(name)}]}


def turns(prefix: str, first: int, count: int, *, now: datetime) -> list[dict[str, Any]]:
    """Turns `first`..`first+count-1`, a second apart, ending about now."""
    return [{"id": f"{prefix}-{n}", "role": "customer" if n % 2 == 0 else "bot",
             "text": TEXTS[n % len(TEXTS)],
             "ts": (now - timedelta(seconds=first + count - n)).isoformat().replace("+00:00", "Z")}
            for n in range(first, first + count)]


def text_bytes(first: int, count: int) -> int:
    return sum(len(TEXTS[n % len(TEXTS)].encode()) for n in range(first, first + count))


class Api:
    """Just enough of a client to seed data, failing loudly on any unexpected answer."""

    def __init__(self, http: aiohttp.ClientSession, base: str, keys: Keys) -> None:
        self.http, self.base, self.keys = http, base, keys

    async def call(self, method: str, path: str, key: str, body: Any = None,
                   expect: int = 200) -> Any:
        async with self.http.request(method, self.base + path, json=body,
                                     headers={"Authorization": f"Bearer {key}"}) as r:
            data = await r.json(content_type=None)
            if r.status != expect:
                raise RuntimeError(f"{method} {path} answered {r.status}: {data}")
            return data

    async def append(self, name: str, batch: list[dict[str, Any]]) -> str:
        result = await self.call("POST", f"/v1/conversations/{conversation(name)}/turns",
                                 self.keys.bot, {"customer": identity_body(name),
                                                 "channel": "chat", "source": "bench-bot",
                                                 "turns": batch})
        if result["appended"] != len(batch):
            raise RuntimeError(f"seeding {name}: {result}")
        return str(result["customer_id"])

    async def history(self, name: str, length: int) -> str:
        """A customer whose transcript holds `length` turns, BATCH per request."""
        now = datetime.now(UTC)
        cus_id = ""
        for first in range(0, length, BATCH):
            cus_id = await self.append(name, turns(name, first, min(BATCH, length - first),
                                                   now=now))
        return cus_id

    async def brief(self, cus_id: str) -> tuple[str, int]:
        """The brief's current ETag and its size in bytes."""
        async with self.http.get(f"{self.base}/v1/customers/{cus_id}/context",
                                 headers={"Authorization": f"Bearer {self.keys.agent}"}) as r:
            body = await r.read()
            if r.status != 200 or "ETag" not in r.headers:
                raise RuntimeError(f"brief of {cus_id}: {r.status} without an ETag")
            return r.headers["ETag"], len(body)

    async def many(self, prefix: str, count: int, turns_each: int, concurrency: int
                   ) -> list[str]:
        """`count` customers of `turns_each` turns, `concurrency` requests in flight."""
        now = datetime.now(UTC)
        ids: list[str] = [""] * count
        next_index = iter(range(count))

        async def worker() -> None:
            for i in next_index:
                name = member(prefix, i)
                ids[i] = await self.append(name, turns(name, 0, turns_each, now=now))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return ids


def session(concurrency: int = 64) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency),
                                 timeout=aiohttp.ClientTimeout(total=60))
