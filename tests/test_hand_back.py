"""An agent hands the customer back to the bot with a note: the hand-off ends `handed_back`,
the note, outcome and agent are the brief's last human contact, and the event reaches the
customer's stream, the queue's stream and webhook subscribers."""

from __future__ import annotations

from typing import Any

import redis
from aiohttp.test_utils import TestClient

from tests.card_checks import leaked, store_text
from tests.conftest import AppFactory, Keys
from tests.redis_peek import assert_unchanged, snapshot
from tests.test_events import following
from tests.test_handoffs import accept, get_handoff, queue_ids, request_handoff
from tests.test_webhooks import FAST, Receiver
from tests.test_webhooks import receiver as receiver  # a fixture, used by name

Client = TestClient[Any, Any]
NOTE = "Refunded the duplicate charge on order A-1001; confirmation email sent."


async def hand_back(client: Client, keys: Keys, ho_id: str, body: dict[str, Any],
                    headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    r = await client.post(f"/v1/handoffs/{ho_id}/hand-back", headers=headers or keys("agent"),
                          json=body)
    return r.status, await r.json(content_type=None)


async def accepted_handoff(client: Client, keys: Keys, agent: str = "agent-7"
                           ) -> dict[str, Any]:
    made = await request_handoff(client, keys)
    status, _ = await accept(client, keys, made["id"], agent)
    assert status == 200
    return made


async def brief(client: Client, keys: Keys, customer: str, role: str = "agent"
                ) -> dict[str, Any]:
    r = await client.get(f"/v1/customers/{customer}/context", headers=keys(role))
    assert r.status == 200, await r.text()
    found: dict[str, Any] = await r.json()
    return found


async def test_an_agent_hands_back_with_a_note_the_bot_reads_in_the_brief(
        client: Client, keys: Keys) -> None:
    made = await accepted_handoff(client, keys)
    status, ended = await hand_back(client, keys, made["id"], {
        "note": NOTE, "to": "bot", "outcome": "resolved", "agent_id": "agent-7"})
    assert status == 200, ended
    assert (ended["status"], ended["note"], ended["outcome"], ended["handed_back_to"]) == (
        "handed_back", NOTE, "resolved", "bot")
    assert ended["closed_at"] is not None
    seen = await brief(client, keys, made["customer_id"], role="bot")
    assert seen["last_human_contact"] == {
        "handoff_id": made["id"], "agent_id": "agent-7", "status": "handed_back",
        "outcome": "resolved", "note": NOTE, "handed_back_to": "bot",
        "at": ended["closed_at"]}
    assert "last_human_contact" in seen["do_not_ask"]
    assert made["id"] in await queue_ids(client, keys, "?status=handed_back")
    assert made["id"] not in await queue_ids(client, keys, "?status=accepted")


async def test_a_handback_to_a_queue_needing_follow_up_says_so(client: Client,
                                                                 keys: Keys) -> None:
    made = await accepted_handoff(client, keys)
    status, ended = await hand_back(client, keys, made["id"], {
        "note": "Card blocked; the fraud team calls back tomorrow", "to": "fraud-callbacks",
        "outcome": "needs_follow_up"})
    assert status == 200, ended
    contact = (await brief(client, keys, made["customer_id"]))["last_human_contact"]
    assert (contact["outcome"], contact["handed_back_to"], contact["agent_id"]) == (
        "needs_follow_up", "fraud-callbacks", "agent-7")


async def test_the_event_reaches_the_customers_stream_and_the_queues_stream(
        client: Client, keys: Keys) -> None:
    made = await accepted_handoff(client, keys)
    async with following(client, f"/v1/customers/{made['customer_id']}/events",
                         keys("bot")) as customer_events, \
            following(client, "/v1/handoffs/events", keys("agent")) as queue_events:
        status, _ = await hand_back(client, keys, made["id"], {"note": NOTE})
        assert status == 200
        mine = await customer_events.next()
        queued = await queue_events.next()
    assert mine.type == queued.type == "handoff.handed_back"
    assert mine.data["record"]["note"] == NOTE
    assert queued.data["record"]["outcome"] == "resolved"


async def test_only_an_accepted_handoff_can_be_handed_back_and_only_by_its_agent(
        client: Client, keys: Keys, redis_sync: redis.Redis) -> None:
    pending = await request_handoff(client, keys)
    taken = await accepted_handoff(client, keys, agent="agent-7")
    before = snapshot(redis_sync)
    status, problem = await hand_back(client, keys, pending["id"], {"note": NOTE})
    assert (status, problem["detail"]) == (409, "the hand-off is pending")
    status, problem = await hand_back(client, keys, taken["id"],
                                      {"note": NOTE, "agent_id": "agent-9"})
    assert (status, problem["detail"]) == (409, "the hand-off is accepted by agent-7")
    for bad in ({}, {"note": ""}, {"note": NOTE, "outcome": "maybe"},
                {"note": NOTE, "to": "Not A Queue"}, {"note": NOTE, "extra": 1}):
        status, problem = await hand_back(client, keys, taken["id"], bad)
        assert status == 422, (bad, problem)
    status, problem = await hand_back(client, keys, taken["id"], {"note": NOTE},
                                      headers=keys("bot"))
    assert status == 403
    assert_unchanged(before, snapshot(redis_sync))
    assert (await get_handoff(client, keys, taken["id"]))["status"] == "accepted"


async def test_a_card_number_in_the_note_is_masked_before_it_is_stored(
        client: Client, keys: Keys, redis_sync: redis.Redis) -> None:
    made = await accepted_handoff(client, keys)
    status, ended = await hand_back(client, keys, made["id"], {
        "note": "Customer read out 4111 1111 1111 1111 by mistake; told them not to."})
    assert status == 200
    assert ended["note"] == "Customer read out **** **** **** 1111 by mistake; told them not to."
    text, _ = store_text(redis_sync)
    assert not leaked(["4111111111111111"], text)


async def test_a_resolved_handoff_is_the_last_human_contact_too(client: Client,
                                                                 keys: Keys) -> None:
    made = await accepted_handoff(client, keys)
    r = await client.post(f"/v1/handoffs/{made['id']}/resolve", headers=keys("agent"),
                          json={"note": "sorted"})
    assert r.status == 200
    contact = (await brief(client, keys, made["customer_id"]))["last_human_contact"]
    assert (contact["status"], contact["outcome"], contact["note"]) == (
        "resolved", "resolved", "sorted")


async def test_a_webhook_subscribed_to_hand_backs_receives_the_note(
        make_client: AppFactory, keys: Keys, receiver: Receiver) -> None:
    client = await make_client(**FAST)
    r = await client.post("/v1/admin/webhooks", headers=keys("admin"), json={
        "url": receiver.url, "events": ["handoff.handed_back"]})
    assert r.status == 201, await r.text()
    made = await accepted_handoff(client, keys)
    status, _ = await hand_back(client, keys, made["id"], {"note": NOTE})
    assert status == 200
    (got,) = await receiver.wait_for(1)
    event = got.json()
    assert event["type"] == "handoff.handed_back"
    record = event["data"]["record"]
    assert (record["note"], record["agent_id"], record["status"]) == (
        NOTE, "agent-7", "handed_back")
