"""SIGTERM: requests in flight finish with 2xx, event streams end with `server.closing` and a
resume id, the process exits 0; after a restart the stream resumes from that id."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import CLUSTER
from tests.faults.service import Service, SseReader, service_on_its_own_redis

pytestmark = pytest.mark.skipif(CLUSTER, reason="runs its own single Redis server")

BURST = 40
APPENDS = 10
TS = "2026-11-23T10:02:00Z"


def turn(turn_id: str) -> dict[str, Any]:
    return {"id": turn_id, "role": "customer", "text": f"message {turn_id}", "ts": TS}


async def timed(session: aiohttp.ClientSession, method: str, url: str,
                headers: dict[str, str], body: dict[str, Any] | None = None
                ) -> tuple[int, float]:
    """The status and when the answer came (monotonic)."""
    async with session.request(method, url, headers=headers, json=body) as r:
        await r.read()
        return r.status, time.monotonic()


async def test_sigterm_finishes_requests_in_flight_says_goodbye_on_streams_and_exits_zero(
        tmp_path: Path) -> None:
    async with service_on_its_own_redis(tmp_path) as (service, _, bot, agent):
        await shut_down_and_resume(service, bot, agent)


async def shut_down_and_resume(service: Service, bot: dict[str, str], agent: dict[str, str]
                               ) -> None:
    url = service.url
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        r = await session.post(f"{url}/v1/conversations/web-1/turns", headers=bot, json={
            "customer": {"identities": [{"kind": "chat", "value": "visitor-1"}]},
            "channel": "chat", "source": "acme-bot", "turns": [turn("before")]})
        assert r.status == 200, await r.text()
        customer = (await r.json())["customer_id"]
        events_url = f"{url}/v1/customers/{customer}/events"
        stream = SseReader(session, events_url, agent)
        reading = asyncio.create_task(stream.run())
        await asyncio.wait_for(stream.opened.wait(), 10)
        assert stream.status == 200
        r = await session.post(f"{url}/v1/conversations/web-1/turns", headers=bot,
                               json={"turns": [turn("live")]})
        assert r.status == 200, await r.text()

        # Slow-ish requests: 500-turn pages of a long transcript, and small appends.
        for n in range(0, 500, 100):
            r = await session.post(f"{url}/v1/conversations/web-1/turns", headers=bot,
                                   json={"turns": [turn(f"old-{n + k}") for k in range(100)]})
            assert r.status == 200, await r.text()
        brief_url = f"{url}/v1/customers/{customer}/turns?limit=500"
        burst_ids = [f"burst-{n}" for n in range(APPENDS)]
        burst = [asyncio.create_task(timed(session, "GET", brief_url, agent))
                 for _ in range(BURST)]
        burst += [asyncio.create_task(timed(session, "POST",
                                            f"{url}/v1/conversations/web-1/turns", bot,
                                            {"turns": [turn(i)]})) for i in burst_ids]
        # Accepted and read by the server: aiohttp drops bytes that arrive after SIGTERM.
        await asyncio.sleep(0.2)
        stopped_at = time.monotonic()
        service.terminate()
        results = await asyncio.gather(*burst)
        code = await asyncio.to_thread(service.wait, 20)
        took = time.monotonic() - stopped_at
        await asyncio.wait_for(reading, 5)

    statuses = [status for status, _ in results]
    assert statuses == [200] * (BURST + APPENDS), f"requests in flight answered {statuses}"
    late = sum(1 for _, at in results if at > stopped_at)
    assert late > 0, "no request was still in flight at SIGTERM: the drill proved nothing"
    assert code == 0, f"exit status {code}:\n{service.log()}"
    assert took < 15, f"took {took:.1f} s to exit"
    ending = stream.ending()
    assert ending is not None and ending.event == "server.closing", stream.events[-3:]
    last_id = ending.data["last_event_id"]
    first_seen = stream.turn_ids()
    assert "live" in first_seen
    assert last_id == [e.id for e in stream.events if e.id][-1]

    # Restart; more turns arrive before the agent's panel reconnects.
    await asyncio.to_thread(service.start)
    # Everything acknowledged after the stream opened ("before" came earlier).
    acknowledged = ["live", *[f"old-{n}" for n in range(500)], *burst_ids]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for n in range(3):
            r = await session.post(f"{url}/v1/conversations/web-1/turns", headers=bot,
                                   json={"turns": [turn(f"after-{n}")]})
            assert r.status == 200, await r.text()
            acknowledged.append(f"after-{n}")
        missing = [i for i in acknowledged if i not in first_seen]
        resumed = SseReader(session, f"{url}/v1/customers/{customer}/events",
                            {**agent, "Last-Event-ID": last_id},
                            until=lambda s: set(s.turn_ids()) >= set(missing))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(resumed.run(), 10)
    seen = resumed.turn_ids()
    assert sorted(seen) == sorted(missing), (
        f"resumed from {last_id}: expected {len(missing)} turns {missing}, got {seen}")
    assert not set(seen) & set(first_seen), "events delivered before the restart came again"
    assert seen[-3:] == ["after-0", "after-1", "after-2"]
    print(f"in flight at SIGTERM {late} of {len(results)}; exit in {took:.1f} s; "
          f"resumed {len(seen)} turns from {last_id}")
