"""The service process is SIGKILLed mid-load: every acknowledged write survives, retries of
everything unanswered add nothing twice, and an accepted hand-off stays with its agent."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from handoff.store import keys as redis_keys
from tests.conftest import CLUSTER, RedisServer
from tests.faults.service import Service, service_on_its_own_redis, transcript_ids

pytestmark = pytest.mark.skipif(CLUSTER, reason="runs its own single Redis server")

WRITERS = 8
TS = "2026-11-23T10:02:00Z"


def turn(turn_id: str) -> dict[str, Any]:
    return {"id": turn_id, "role": "customer", "text": f"message {turn_id}", "ts": TS}


@dataclass
class Ledger:
    """What the clients sent, what was acknowledged, and what must be retried."""

    sent: int = 0
    acknowledged: set[str] = field(default_factory=set)
    unanswered: list[list[str]] = field(default_factory=list)


async def writer(session: aiohttp.ClientSession, url: str, bot: dict[str, str], w: int,
                 ledger: Ledger, stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        ids = [f"w{w}-{n}", f"w{w}-{n + 1}"]
        n += 2
        ledger.sent += 1
        try:
            async with session.post(f"{url}/v1/conversations/web-1/turns", headers=bot,
                                    json={"turns": [turn(i) for i in ids]}) as r:
                await r.read()
                if 200 <= r.status < 300:
                    ledger.acknowledged.update(ids)
                    continue
        except (TimeoutError, aiohttp.ClientError):
            pass
        ledger.unanswered.append(ids)  # in flight at the kill, or failed: retried later
        return


async def test_a_service_crash_mid_load_loses_no_acknowledged_write_and_retries_add_nothing_twice(
        tmp_path: Path) -> None:
    async with service_on_its_own_redis(tmp_path) as (service, store, bot, agent):
        await crash_and_recover(service, store, bot, agent)


async def crash_and_recover(service: Service, store: RedisServer, bot: dict[str, str],
                            agent: dict[str, str]) -> None:
    url = service.url
    ledger = Ledger()
    handoff_body = {"customer": {"identities": [{"kind": "chat", "value": "visitor-1"}]},
                    "conversation_id": "web-1", "channel": "chat", "reason": "customer_request",
                    "priority": 2, "queue": "billing", "summary": "Charged twice"}
    idem = {**bot, "Idempotency-Key": "web-1-handoff"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        r = await session.post(f"{url}/v1/conversations/web-1/turns", headers=bot, json={
            "customer": {"identities": [{"kind": "chat", "value": "visitor-1"}]},
            "channel": "chat", "source": "acme-bot", "turns": [turn("first")]})
        assert r.status == 200, await r.text()
        customer = (await r.json())["customer_id"]
        ledger.sent += 1
        ledger.acknowledged.add("first")

        stop = asyncio.Event()
        load = [asyncio.create_task(writer(session, url, bot, w, ledger, stop))
                for w in range(WRITERS)]
        await asyncio.sleep(0.5)
        r = await session.post(f"{url}/v1/handoffs", headers=idem, json=handoff_body)
        assert r.status == 201, await r.text()
        ho_id = (await r.json())["id"]
        r = await session.post(f"{url}/v1/handoffs/{ho_id}/accept", headers=agent,
                               json={"agent_id": "agent-7"})
        assert r.status == 200, await r.text()
        await asyncio.sleep(0.2)
        service.kill()  # mid-load: the writers are still posting
        stop.set()
        await asyncio.gather(*load)
    acknowledged_before_restart = len(ledger.acknowledged)
    in_flight = len(ledger.unanswered)
    assert acknowledged_before_restart > 50 and in_flight >= 1, (
        f"the load was too light to mean anything: sent {ledger.sent}, "
        f"acknowledged {acknowledged_before_restart}, unanswered {in_flight}")

    await asyncio.to_thread(service.start)  # same port, same Redis
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        found = set(await transcript_ids(session, url, customer, agent))
        lost = ledger.acknowledged - found
        figures = (f"requests sent {ledger.sent}, turns acknowledged "
                   f"{acknowledged_before_restart}, found {len(found)}, "
                   f"retried {in_flight}")
        assert not lost, f"{figures}; acknowledged but lost: {sorted(lost)[:20]}"

        # Retry everything unanswered, then everything once more: nothing is added twice.
        for _ in range(2):
            for ids in ledger.unanswered:
                r = await session.post(f"{url}/v1/conversations/web-1/turns", headers=bot,
                                       json={"turns": [turn(i) for i in ids]})
                assert r.status == 200, f"{figures}; retry {ids}: {await r.text()}"
                ledger.acknowledged.update(ids)
            r = await session.post(f"{url}/v1/handoffs", headers=idem, json=handoff_body)
            assert 200 <= r.status < 300, await r.text()
            assert (await r.json())["id"] == ho_id, "the retried hand-off request made a new one"

        stored = await transcript_ids(session, url, customer, agent)
        peek = redis.Redis(port=store.port)
        try:
            xlen = peek.xlen(redis_keys.customer("acme", customer).turns)
        finally:
            peek.close()
        duplicates = len(stored) - len(set(stored))
        figures = (f"requests sent {ledger.sent}, turns acknowledged "
                   f"{len(ledger.acknowledged)}, found {len(set(stored))}, "
                   f"duplicates {duplicates}, XLEN {xlen}")
        assert duplicates == 0, figures
        assert set(stored) == ledger.acknowledged, figures
        assert xlen == len(ledger.acknowledged), figures

        r = await session.get(f"{url}/v1/handoffs/{ho_id}", headers=agent)
        assert r.status == 200, await r.text()
        current = await r.json()
        assert (current["status"], current["agent_id"]) == ("accepted", "agent-7"), current
        r = await session.post(f"{url}/v1/handoffs/{ho_id}/accept", headers=agent,
                               json={"agent_id": "agent-8"})
        assert r.status == 409, await r.text()
        print(figures)
