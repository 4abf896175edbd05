"""A saturated process says so (429 or 503 with Retry-After) instead of falling over."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import AppFactory, Keys
from tests.test_events import following

CHAT = {"identities": [{"kind": "chat", "value": "visitor-3"}]}


async def customer(client: TestClient[Any, Any], keys: Keys) -> str:
    r = await client.post("/v1/conversations/web-3/turns", headers=keys("bot"), json={
        "customer": CHAT, "channel": "chat",
        "turns": [{"id": "t1", "role": "customer", "text": "hi", "ts": "2026-11-23T10:02:00Z"}]})
    return str((await r.json())["customer_id"])


async def test_a_key_over_its_rate_gets_429_with_retry_after_and_other_keys_do_not(
        make_client: AppFactory, keys: Keys) -> None:
    app = await make_client(requests_per_second_per_key=2)
    statuses = [(await app.get("/v1/handoffs", headers=keys("agent"))) for _ in range(8)]
    limited = [r for r in statuses if r.status == 429]
    assert limited, [r.status for r in statuses]
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert limited[0].content_type == "application/problem+json"
    assert (await app.get("/v1/handoffs", headers=keys("agent", "globex"))).status == 200


async def test_a_process_at_its_request_cap_answers_503_and_still_answers_health_checks(
        make_client: AppFactory, keys: Keys) -> None:
    app = await make_client(max_concurrent_requests=2, requests_per_second_per_key=0)
    cus_id = await customer(app, keys)
    answers = await asyncio.gather(*(app.get(f"/v1/customers/{cus_id}/context",
                                             headers=keys("agent")) for _ in range(40)))
    statuses = [r.status for r in answers]
    assert set(statuses) <= {200, 503} and 503 in statuses and 200 in statuses
    busy = next(r for r in answers if r.status == 503)
    assert busy.headers["Retry-After"] == "1"
    assert (await app.get("/healthz")).status == 200


async def test_a_process_at_its_event_stream_cap_refuses_one_more_stream(
        make_client: AppFactory, keys: Keys) -> None:
    app = await make_client(max_event_streams=1)
    cus_id = await customer(app, keys)
    path = f"/v1/customers/{cus_id}/events"
    async with following(app, path, keys("agent")):
        second = await app.get(path, headers=keys("agent"))
        assert second.status == 503
        assert "Retry-After" in second.headers
    # The first stream is closed: there is room again, once the server has seen it go (a
    # refusal is decided before any work, so the next request can arrive before that).
    await until_a_stream_opens(app, path, keys("agent"))


async def until_a_stream_opens(app: Any, path: str, headers: dict[str, str]) -> None:
    """Open (and close) a stream once the server has seen earlier ones go: a refusal is decided
    before any work, so a request can arrive before the server noticed a client leave."""
    for _ in range(100):
        again = await app.get(path, headers=headers)
        again.close()
        if again.status == 200:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{path} still refused: {again.status}")
