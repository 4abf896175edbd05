"""The service is stateless: two processes behind one load balancer are one service."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import AppFactory, Keys
from tests.test_events import following

CHAT = {"identities": [{"kind": "chat", "value": "visitor-7"}]}


def turn(n: int, text: str) -> dict[str, Any]:
    return {"id": f"t{n}", "role": "customer", "text": text, "ts": "2026-11-23T10:02:00Z"}


async def test_an_agent_on_one_process_sees_a_turn_written_through_another(
        client: TestClient[Any, Any], make_client: AppFactory, keys: Keys) -> None:
    other: TestClient[Any, Any] = await make_client()
    r = await other.post("/v1/conversations/web-1/turns", headers=keys("bot"), json={
        "customer": CHAT, "channel": "chat", "turns": [turn(1, "hello")]})
    customer = (await r.json())["customer_id"]
    async with following(client, f"/v1/customers/{customer}/events", keys("agent")) as events:
        r = await other.post("/v1/conversations/web-1/turns", headers=keys("bot"),
                             json={"turns": [turn(2, "Are you still there?")]})
        assert r.status == 200
        event = await events.next()
    assert event.type == "turn.appended"
    assert event.data["record"]["id"] == "t2"
    assert event.data["record"]["text"] == "Are you still there?"


async def test_a_handoff_requested_on_one_process_is_accepted_once_across_two(
        client: TestClient[Any, Any], make_client: AppFactory, keys: Keys) -> None:
    other: TestClient[Any, Any] = await make_client()
    r = await client.post("/v1/handoffs", headers=keys("bot"), json={
        "customer": CHAT, "channel": "chat", "conversation_id": "web-1",
        "reason": "customer_request"})
    handoff = (await r.json())["id"]
    first = await client.post(f"/v1/handoffs/{handoff}/accept", headers=keys("agent"),
                              json={"agent_id": "agent-1"})
    second = await other.post(f"/v1/handoffs/{handoff}/accept", headers=keys("agent"),
                              json={"agent_id": "agent-2"})
    assert (first.status, second.status) == (200, 409)
    seen = await (await other.get(f"/v1/handoffs/{handoff}", headers=keys("agent"))).json()
    assert seen["agent_id"] == "agent-1"
