"""Live events: an agent's panel follows a customer (or the tenant's queue) over server-sent events
and, after a dropped connection, resumes exactly where it left off."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from tests.conftest import Keys

Client = TestClient[Any, Any]
VISITOR = {"kind": "chat", "value": "visitor-42"}
# The server waits up to 5 s in XREAD BLOCK and then sends a keep-alive comment, so a line is
# due well within this; the limit only keeps a broken stream from hanging the test run.
LINE_TIMEOUT = 12.0


@dataclass(frozen=True)
class Event:
    id: str | None
    type: str | None
    data: dict[str, Any]


class EventStream:
    """Reads one text/event-stream response frame by frame, skipping comments and `retry:`."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self) -> Event:
        fields: dict[str, str] = {}
        while True:
            raw = await asyncio.wait_for(self.response.content.readline(), LINE_TIMEOUT)
            assert raw, "the event stream ended"
            line = raw.decode().rstrip("\r\n")
            if not line:
                if "data" in fields:
                    return Event(fields.get("id"), fields.get("event"),
                                 json.loads(fields["data"]))
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")

    async def take(self, n: int) -> list[Event]:
        return [await self.next() for _ in range(n)]


@asynccontextmanager
async def following(client: Client, path: str, headers: dict[str, str]
                    ) -> AsyncIterator[EventStream]:
    response = await client.get(path, headers=headers)
    try:
        assert response.status == 200, await response.text()
        assert response.content_type == "text/event-stream"
        yield EventStream(response)
    finally:
        response.close()


def turn(turn_id: str, text: str) -> dict[str, Any]:
    return {"id": turn_id, "role": "customer", "text": text, "ts": "2026-11-23T10:02:00Z"}


async def say(client: Client, keys: Keys, turn_id: str, text: str,
              conversation_id: str = "web-7f3a") -> str:
    r = await client.post(f"/v1/conversations/{conversation_id}/turns", headers=keys("bot"),
                          json={"customer": {"identities": [VISITOR]}, "channel": "chat",
                                "source": "acme-bot", "turns": [turn(turn_id, text)]})
    assert r.status == 200, await r.text()
    return str((await r.json())["customer_id"])


async def request_handoff(client: Client, keys: Keys, tenant: str = "acme",
                          summary: str = "Charged twice") -> dict[str, Any]:
    r = await client.post("/v1/handoffs", headers=keys("bot", tenant), json={
        "customer": {"identities": [VISITOR]}, "conversation_id": "web-7f3a", "channel": "chat",
        "reason": "customer_request", "queue": "billing", "summary": summary})
    assert r.status == 201, await r.text()
    created: dict[str, Any] = await r.json()
    return created


# -- one customer's events ---------------------------------------------------------------------


async def test_an_appended_turn_arrives_with_its_id_and_text(client: Client, keys: Keys) -> None:
    cus_id = await say(client, keys, "t1", "hello")
    async with following(client, f"/v1/customers/{cus_id}/events", keys("agent")) as events:
        await say(client, keys, "t2", "I was charged twice")
        event = await events.next()
    assert event.type == "turn.appended"
    assert event.id
    assert event.data["customer_id"] == cus_id
    assert event.data["record"]["id"] == "t2"
    assert event.data["record"]["text"] == "I was charged twice"
    assert event.data["record"]["conversation_id"] == "web-7f3a"


async def test_a_turn_posted_without_its_channel_arrives_with_its_conversations_channel(
        client: Client, keys: Keys) -> None:
    cus_id = await say(client, keys, "t1", "hello")
    async with following(client, f"/v1/customers/{cus_id}/events", keys("agent")) as events:
        r = await client.post("/v1/conversations/web-7f3a/turns", headers=keys("bot"),
                              json={"turns": [turn("t2", "still there?")]})
        assert r.status == 200
        event = await events.next()
    assert event.data["record"]["channel"] == "chat"
    assert event.data["record"]["source"] == "acme-bot"


async def test_a_stream_opened_by_identity_follows_that_customer(client: Client,
                                                                 keys: Keys) -> None:
    cus_id = await say(client, keys, "t1", "hello")
    async with following(client, "/v1/customers/chat:visitor-42/events", keys("agent")) as events:
        await say(client, keys, "t2", "still there?")
        event = await events.next()
    assert (event.data["customer_id"], event.data["record"]["id"]) == (cus_id, "t2")


async def test_a_card_number_said_in_a_turn_reaches_the_stream_masked(client: Client,
                                                                      keys: Keys) -> None:
    cus_id = await say(client, keys, "t1", "hello")
    async with following(client, f"/v1/customers/{cus_id}/events", keys("agent")) as events:
        await say(client, keys, "t2", "my card is 4111 1111 1111 1111")
        event = await events.next()
    assert event.data["record"]["text"] == "my card is **** **** **** 1111"


async def test_a_fact_set_arrives_as_fact_set(client: Client, keys: Keys) -> None:
    cus_id = await say(client, keys, "t1", "hello")
    async with following(client, f"/v1/customers/{cus_id}/events", keys("agent")) as events:
        r = await client.put(f"/v1/customers/{cus_id}/facts", headers=keys("agent"),
                             json={"facts": {"order_number": "A-1001"}, "channel": "chat"})
        assert r.status == 200, await r.text()
        event = await events.next()
    assert event.type == "fact.set"
    assert event.data["customer_id"] == cus_id
    assert (event.data["record"]["key"], event.data["record"]["value"]) == (
        "order_number", "A-1001")


async def test_a_verification_arrives_as_identity_verified(client: Client, keys: Keys) -> None:
    cus_id = await say(client, keys, "t1", "hello")
    async with following(client, f"/v1/customers/{cus_id}/events", keys("agent")) as events:
        r = await client.post("/v1/verifications", headers=keys("agent"), json={
            "customer": {"identities": [VISITOR]}, "channel": "chat",
            "identity": {"kind": "account", "value": "88812345"}, "method": "kba",
            "level": "high"})
        assert r.status == 200, await r.text()
        event = await events.next()
    assert event.type == "identity.verified"
    assert event.data["customer_id"] == cus_id
    record = event.data["record"]
    assert record["identity"] == {"kind": "account", "value": "88812345"}
    assert (record["method"], record["level"]) == ("kba", "high")
    assert record["expires_at"] > record["verified_at"]


async def test_a_handoff_request_and_its_acceptance_arrive_in_order(client: Client,
                                                                    keys: Keys) -> None:
    cus_id = await say(client, keys, "t1", "hello")
    async with following(client, f"/v1/customers/{cus_id}/events", keys("agent")) as events:
        handoff = await request_handoff(client, keys)
        r = await client.post(f"/v1/handoffs/{handoff['id']}/accept", headers=keys("agent"),
                              json={"agent_id": "agent-7"})
        assert r.status == 200, await r.text()
        requested, accepted = await events.take(2)
    assert requested.type == "handoff.requested"
    assert requested.data["record"]["id"] == handoff["id"]
    assert requested.data["record"]["status"] == "pending"
    assert accepted.type == "handoff.accepted"
    assert accepted.data["record"]["id"] == handoff["id"]
    assert (accepted.data["record"]["status"], accepted.data["record"]["agent_id"]) == (
        "accepted", "agent-7")


async def test_a_continuation_code_never_appears_in_the_event_stream(client: Client,
                                                                     keys: Keys) -> None:
    cus_id = await say(client, keys, "t1", "hello")
    async with following(client, f"/v1/customers/{cus_id}/events", keys("agent")) as events:
        r = await client.post("/v1/handoffs", headers=keys("bot"), json={
            "customer": {"identities": [VISITOR]}, "conversation_id": "web-7f3a",
            "reason": "customer_request", "continuation": True})
        assert r.status == 201, await r.text()
        code = (await r.json())["continuation_code"]
        event = await events.next()
    assert event.type == "handoff.requested"
    assert event.data["record"].get("continuation_code") is None
    assert code not in json.dumps(event.data)


# -- resuming ----------------------------------------------------------------------------------


async def test_reconnecting_with_last_event_id_replays_exactly_the_later_events_in_order(
        client: Client, keys: Keys) -> None:
    cus_id = await say(client, keys, "t0", "hello")
    path = f"/v1/customers/{cus_id}/events"
    async with following(client, path, keys("agent")) as events:
        for n in range(1, 5):
            await say(client, keys, f"t{n}", f"message {n}")
        seen = await events.take(4)
    assert [e.data["record"]["id"] for e in seen] == ["t1", "t2", "t3", "t4"]

    # The panel lost its connection after the second event.
    resume = {**keys("agent"), "Last-Event-ID": str(seen[1].id)}
    async with following(client, path, resume) as events:
        replayed = await events.take(2)
        await say(client, keys, "t5", "are you there?")
        live = await events.next()
    assert [(e.id, e.type, e.data) for e in replayed] == [
        (e.id, e.type, e.data) for e in seen[2:]]
    # Nothing else was replayed: the very next event is the one written after reconnecting.
    assert live.data["record"]["id"] == "t5"


async def test_resuming_from_the_latest_event_replays_nothing(client: Client,
                                                              keys: Keys) -> None:
    cus_id = await say(client, keys, "t0", "hello")
    path = f"/v1/customers/{cus_id}/events"
    async with following(client, path, keys("agent")) as events:
        await say(client, keys, "t1", "one")
        (last,) = await events.take(1)
    async with following(client, path, {**keys("agent"), "Last-Event-ID": str(last.id)}
                         ) as events:
        await say(client, keys, "t2", "two")
        event = await events.next()
    assert event.data["record"]["id"] == "t2"


async def test_a_malformed_last_event_id_header_is_400_and_not_echoed(client: Client,
                                                                      keys: Keys) -> None:
    cus_id = await say(client, keys, "t1", "hello")
    r = await client.get(f"/v1/customers/{cus_id}/events",
                         headers={**keys("agent"), "Last-Event-ID": "1-1 Set-Cookie: x=1"})
    assert r.status == 400
    assert r.content_type == "application/problem+json"
    assert "Set-Cookie" not in r.headers
    assert "Set-Cookie" not in await r.text()


async def test_a_last_event_id_carrying_a_line_break_is_400_and_not_echoed(
        client: Client, keys: Keys) -> None:
    # A header cannot carry CR LF on the wire, but the query form of the same parameter can.
    cus_id = await say(client, keys, "t1", "hello")
    r = await client.get(f"/v1/customers/{cus_id}/events",
                         params={"last_event_id": "1-1\r\nSet-Cookie: x=1"},
                         headers=keys("agent"))
    assert r.status == 400
    assert r.content_type == "application/problem+json"
    problem = await r.json()
    assert problem["status"] == 400
    assert "Set-Cookie" not in r.headers
    assert "Set-Cookie" not in json.dumps(problem)


# -- who may follow what -----------------------------------------------------------------------


async def test_another_tenants_agent_cannot_follow_the_customer(client: Client,
                                                                keys: Keys) -> None:
    cus_id = await say(client, keys, "t1", "hello")
    r = await client.get(f"/v1/customers/{cus_id}/events", headers=keys("agent", "globex"))
    assert r.status == 404
    assert r.content_type == "application/problem+json"


async def test_a_bot_key_follows_its_chat_customer_but_may_not_look_up_other_identities(
        client: Client, keys: Keys) -> None:
    cus_id = await say(client, keys, "t1", "hello")
    async with client.get(f"/v1/customers/{cus_id}/events", headers=keys("bot")) as r:
        assert r.status == 200
    async with client.get(f"/v1/customers/chat:{VISITOR['value']}/events",
                          headers=keys("bot")) as r:
        assert r.status == 200
    r = await client.post("/v1/verifications", headers=keys("ivr"), json={
        "customer": {"identities": [VISITOR]}, "channel": "chat",
        "identity": {"kind": "account", "value": "88812345"}, "method": "pin"})
    assert r.status == 200, await r.text()
    r = await client.get("/v1/customers/account:88812345/events", headers=keys("agent"))
    assert r.status == 200
    r.close()
    r = await client.get("/v1/customers/account:88812345/events", headers=keys("bot"))
    assert r.status == 403
    assert "chat:" in (await r.json())["detail"]


# -- the tenant's queue ------------------------------------------------------------------------


async def test_the_queue_stream_shows_a_handoff_requested_then_accepted(client: Client,
                                                                        keys: Keys) -> None:
    await say(client, keys, "t1", "hello")
    async with following(client, "/v1/handoffs/events", keys("agent")) as events:
        handoff = await request_handoff(client, keys)
        r = await client.post(f"/v1/handoffs/{handoff['id']}/accept", headers=keys("agent"),
                              json={"agent_id": "agent-7"})
        assert r.status == 200, await r.text()
        requested, accepted = await events.take(2)
    assert (requested.type, requested.data["record"]["id"]) == ("handoff.requested",
                                                                handoff["id"])
    assert requested.data["customer_id"] == handoff["customer_id"]
    assert requested.data["record"]["queue"] == "billing"
    assert (accepted.type, accepted.data["record"]["id"]) == ("handoff.accepted", handoff["id"])
    assert accepted.data["record"]["agent_id"] == "agent-7"


async def test_the_queue_stream_never_shows_another_tenants_handoffs(client: Client,
                                                                     keys: Keys) -> None:
    async with following(client, "/v1/handoffs/events", keys("agent", "globex")) as events:
        acme = await request_handoff(client, keys, "acme", summary="acme's customer")
        globex = await request_handoff(client, keys, "globex", summary="globex's customer")
        event = await events.next()
    # acme's request came first; the globex agent's first event is still globex's own.
    assert event.data["record"]["id"] == globex["id"]
    assert event.data["record"]["id"] != acme["id"]
    assert "acme" not in json.dumps(event.data)
