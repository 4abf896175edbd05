"""The hand-off lifecycle: request, queue, claim, close, expire; and continuation codes."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import redis
from aiohttp.test_utils import TestClient

from handoff.store import keys as redis_keys
from tests.conftest import AppFactory, Keys

PROBLEM = "application/problem+json"


def visitor() -> dict[str, Any]:
    return {"identities": [{"kind": "chat", "value": f"visitor-{uuid.uuid4().hex[:12]}"}]}


def handoff_body(**overrides: Any) -> dict[str, Any]:
    """A bot's request for a human on a fresh web chat."""
    return {"customer": visitor(), "conversation_id": f"web-{uuid.uuid4().hex[:8]}",
            "channel": "chat", "source": "acme-bot", "reason": "customer_request",
            "priority": 3, "queue": "billing", "summary": "Charged twice", **overrides}


async def request_handoff(client: TestClient[Any, Any], keys: Keys, *,
                          headers: dict[str, str] | None = None, **overrides: Any
                          ) -> dict[str, Any]:
    r = await client.post("/v1/handoffs", headers={**keys("bot"), **(headers or {})},
                          json=handoff_body(**overrides))
    assert r.status == 201, await r.text()
    created: dict[str, Any] = await r.json()
    return created


async def accept(client: TestClient[Any, Any], keys: Keys, ho_id: str, agent_id: str
                 ) -> tuple[int, dict[str, Any]]:
    r = await client.post(f"/v1/handoffs/{ho_id}/accept", headers=keys("agent"),
                          json={"agent_id": agent_id})
    body: dict[str, Any] = await r.json(content_type=None)
    if r.status >= 400:
        assert r.content_type == PROBLEM
        assert body["status"] == r.status
    return r.status, body


async def queue_ids(client: TestClient[Any, Any], keys: Keys, query: str = "") -> list[str]:
    r = await client.get(f"/v1/handoffs{query}", headers=keys("agent"))
    assert r.status == 200, await r.text()
    return [h["id"] for h in (await r.json())["items"]]


async def get_handoff(client: TestClient[Any, Any], keys: Keys, ho_id: str) -> dict[str, Any]:
    r = await client.get(f"/v1/handoffs/{ho_id}", headers=keys("agent"))
    assert r.status == 200, await r.text()
    found: dict[str, Any] = await r.json()
    return found


async def redeem(client: TestClient[Any, Any], keys: Keys, code: str,
                 conversation_id: str = "CA9f2", phone: str = "+1 (555) 010-4477") -> Any:
    return await client.post(f"/v1/continuations/{code}/redeem", headers=keys("ivr"), json={
        "customer": {"identities": [{"kind": "phone", "value": phone}]},
        "conversation_id": conversation_id, "channel": "voice", "source": "acme-ivr"})


def wrong_code(right: str) -> str:
    return f"{(int(right) + 1) % 1_000_000:06d}"


def overdue(redis_sync: redis.Redis, ho_id: str) -> None:
    """Move a pending hand-off's deadline into the past, as if its time had run out."""
    past = int(time.time() * 1000) - 1000
    redis_sync.hset(redis_keys.handoff("acme", ho_id), "expires_ms", str(past))
    redis_sync.zadd(redis_keys.queue("acme", "deadline", None), {ho_id: past})


# Bookkeeping that every request may touch: attempt counters and a key's "last used" time.
BOOKKEEPING = (b":rate:", b":codefail", redis_keys.api_key("").encode())


def snapshot(redis_sync: redis.Redis) -> dict[Any, Any]:
    """Every key's serialised value, except the bookkeeping."""
    names = [k for k in redis_sync.keys("*") if not any(b in k for b in BOOKKEEPING)]
    return {k: redis_sync.dump(k) for k in names}


# -- who gets it -----------------------------------------------------------------------------


async def test_fifty_agents_race_for_one_handoff_and_exactly_one_wins(
        client: TestClient[Any, Any], keys: Keys) -> None:
    ho = await request_handoff(client, keys)
    agents = [f"agent-{n}" for n in range(50)]

    results = await asyncio.gather(*(accept(client, keys, ho["id"], a) for a in agents))

    statuses = sorted(status for status, _ in results)
    assert statuses == [200] + [409] * 49
    (winner,) = [body["handoff"]["agent_id"] for status, body in results if status == 200]
    assert winner in agents
    current = await get_handoff(client, keys, ho["id"])
    assert (current["status"], current["agent_id"]) == ("accepted", winner)


async def test_the_winning_agent_retrying_accept_gets_the_handoff_again(
        client: TestClient[Any, Any], keys: Keys) -> None:
    ho = await request_handoff(client, keys)
    status, first = await accept(client, keys, ho["id"], "agent-7")
    assert status == 200

    status, again = await accept(client, keys, ho["id"], "agent-7")

    assert status == 200
    assert again["handoff"]["agent_id"] == "agent-7"
    assert again["handoff"]["accepted_at"] == first["handoff"]["accepted_at"]


async def test_a_second_agent_is_told_the_handoff_is_taken_and_by_whom(
        client: TestClient[Any, Any], keys: Keys) -> None:
    ho = await request_handoff(client, keys)
    await accept(client, keys, ho["id"], "agent-7")

    status, problem = await accept(client, keys, ho["id"], "agent-8")

    assert status == 409
    assert problem["handoff_status"] == "accepted"
    assert "agent-7" in problem["detail"]


async def test_accepting_answers_the_customers_context_brief(
        client: TestClient[Any, Any], keys: Keys) -> None:
    body = handoff_body(summary="Charged twice for order A-1001")
    r = await client.post(f"/v1/conversations/{body['conversation_id']}/turns",
                          headers=keys("bot"), json={
                              "customer": body["customer"], "channel": "chat",
                              "turns": [{"id": "t1", "role": "customer",
                                         "text": "I was charged twice",
                                         "ts": "2026-11-23T10:02:00Z"}],
                              "facts": {"order_number": "A-1001"}})
    assert r.status == 200, await r.text()
    ho = await request_handoff(client, keys, **body)

    status, accepted = await accept(client, keys, ho["id"], "agent-7")

    assert status == 200
    brief = accepted["context"]
    assert brief["customer"]["id"] == ho["customer_id"]
    assert [t["text"] for t in brief["turns"]] == ["I was charged twice"]
    assert brief["facts"]["order_number"]["value"] == "A-1001"
    assert brief["summary"] == "Charged twice for order A-1001"
    assert [(h["id"], h["status"]) for h in brief["handoffs"]] == [(ho["id"], "accepted")]


async def test_a_handoff_of_one_tenant_does_not_exist_for_another(
        client: TestClient[Any, Any], keys: Keys) -> None:
    ho = await request_handoff(client, keys)

    r = await client.post(f"/v1/handoffs/{ho['id']}/accept", headers=keys("agent", "globex"),
                          json={"agent_id": "agent-7"})

    assert r.status == 404
    assert await queue_ids(client, keys, "") == [ho["id"]]


# -- closing it ------------------------------------------------------------------------------


async def test_an_agent_resolves_the_handoff_it_accepted(
        client: TestClient[Any, Any], keys: Keys) -> None:
    ho = await request_handoff(client, keys)
    await accept(client, keys, ho["id"], "agent-7")

    r = await client.post(f"/v1/handoffs/{ho['id']}/resolve", headers=keys("agent"),
                          json={"agent_id": "agent-7", "note": "Refunded the second charge"})

    assert r.status == 200, await r.text()
    resolved = await r.json()
    assert (resolved["status"], resolved["note"]) == ("resolved", "Refunded the second charge")
    assert resolved["closed_at"] is not None
    assert await queue_ids(client, keys, "?status=resolved") == [ho["id"]]
    assert await queue_ids(client, keys, "?status=accepted") == []


async def test_a_bot_cancels_a_pending_handoff_and_it_leaves_the_queue(
        client: TestClient[Any, Any], keys: Keys) -> None:
    ho = await request_handoff(client, keys)

    r = await client.post(f"/v1/handoffs/{ho['id']}/cancel", headers=keys("bot"),
                          json={"note": "customer found the answer"})

    assert r.status == 200, await r.text()
    assert (await r.json())["status"] == "cancelled"
    assert await queue_ids(client, keys) == []
    assert await queue_ids(client, keys, "?status=cancelled") == [ho["id"]]


async def test_a_bot_cannot_cancel_a_handoff_an_agent_already_accepted(
        client: TestClient[Any, Any], keys: Keys) -> None:
    ho = await request_handoff(client, keys)
    await accept(client, keys, ho["id"], "agent-7")

    r = await client.post(f"/v1/handoffs/{ho['id']}/cancel", headers=keys("ivr"))

    assert r.status == 409
    assert r.content_type == PROBLEM
    assert (await get_handoff(client, keys, ho["id"]))["status"] == "accepted"


async def test_an_agent_key_cannot_cancel_a_handoff(
        client: TestClient[Any, Any], keys: Keys) -> None:
    ho = await request_handoff(client, keys)

    r = await client.post(f"/v1/handoffs/{ho['id']}/cancel", headers=keys("agent"))

    assert r.status == 403
    assert (await get_handoff(client, keys, ho["id"]))["status"] == "pending"


# -- the queue -------------------------------------------------------------------------------


async def test_the_queue_lists_the_most_urgent_first_then_the_oldest_first(
        client: TestClient[Any, Any], keys: Keys) -> None:
    made: list[tuple[int, str]] = []
    for priority in (3, 1, 2, 1, 3, 2):
        made.append((priority, (await request_handoff(client, keys, priority=priority))["id"]))
        await asyncio.sleep(0.002)  # distinct creation milliseconds

    listed = await queue_ids(client, keys)

    by_priority_then_age = [ho_id for _, ho_id in sorted(made, key=lambda m: m[0])]
    assert listed == by_priority_then_age


async def test_the_queue_can_be_narrowed_to_one_queue(
        client: TestClient[Any, Any], keys: Keys) -> None:
    billing = await request_handoff(client, keys, queue="billing")
    tech = await request_handoff(client, keys, queue="tech")

    assert await queue_ids(client, keys, "?queue=billing") == [billing["id"]]
    assert await queue_ids(client, keys, "?queue=tech") == [tech["id"]]
    assert await queue_ids(client, keys, "?queue=returns") == []


async def test_the_queue_can_be_narrowed_to_one_status(
        client: TestClient[Any, Any], keys: Keys) -> None:
    waiting = await request_handoff(client, keys)
    taken = await request_handoff(client, keys)
    await accept(client, keys, taken["id"], "agent-7")

    assert await queue_ids(client, keys, "?queue=billing&status=pending") == [waiting["id"]]
    assert await queue_ids(client, keys, "?queue=billing&status=accepted") == [taken["id"]]


async def test_a_long_queue_is_read_page_by_page(
        client: TestClient[Any, Any], keys: Keys) -> None:
    for n in range(7):
        await request_handoff(client, keys, priority=1 + n % 3)
        await asyncio.sleep(0.002)
    everything = await queue_ids(client, keys)

    pages: list[list[str]] = []
    query = "?limit=3"
    while True:
        r = await client.get(f"/v1/handoffs{query}", headers=keys("agent"))
        page = await r.json()
        pages.append([h["id"] for h in page["items"]])
        if page["next"] is None:
            break
        query = f"?limit=3&before={page['next']}"

    assert [len(p) for p in pages] == [3, 3, 1]
    assert [ho_id for p in pages for ho_id in p] == everything


async def test_a_page_size_beyond_five_hundred_is_refused(
        client: TestClient[Any, Any], keys: Keys) -> None:
    r = await client.get("/v1/handoffs?limit=501", headers=keys("agent"))

    assert r.status == 422
    assert (await r.json())["errors"][0]["loc"] == ["query", "limit"]


# -- retries ---------------------------------------------------------------------------------


async def test_a_retried_request_with_the_same_idempotency_key_answers_the_first_handoff(
        client: TestClient[Any, Any], keys: Keys) -> None:
    body = handoff_body(continuation=True)
    key = {"Idempotency-Key": f"req-{uuid.uuid4()}"}

    first = await client.post("/v1/handoffs", headers={**keys("bot"), **key}, json=body)
    retry = await client.post("/v1/handoffs", headers={**keys("bot"), **key}, json=body)

    assert (first.status, retry.status) == (201, 201)
    one, two = await first.json(), await retry.json()
    assert two["id"] == one["id"]
    assert two["continuation_code"] == one["continuation_code"]
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert await queue_ids(client, keys) == [one["id"]]


async def test_reusing_an_idempotency_key_for_a_different_request_is_refused(
        client: TestClient[Any, Any], keys: Keys) -> None:
    body = handoff_body()
    key = {"Idempotency-Key": f"req-{uuid.uuid4()}"}
    first = await client.post("/v1/handoffs", headers={**keys("bot"), **key}, json=body)
    assert first.status == 201

    r = await client.post("/v1/handoffs", headers={**keys("bot"), **key},
                          json={**body, "priority": 1})

    assert r.status == 422
    assert r.content_type == PROBLEM
    assert await queue_ids(client, keys) == [(await first.json())["id"]]


# -- running out of time ---------------------------------------------------------------------


async def test_a_pending_handoff_expires_after_the_configured_wait(
        make_client: AppFactory, keys: Keys) -> None:
    client = await make_client(handoff_pending_seconds=10)

    ho = await request_handoff(client, keys)

    waited = (datetime.fromisoformat(ho["expires_at"])
              - datetime.fromisoformat(ho["created_at"]))
    assert waited == timedelta(seconds=10)


async def test_an_overdue_handoff_cannot_be_accepted_and_is_expired(
        client: TestClient[Any, Any], keys: Keys, redis_sync: redis.Redis) -> None:
    ho = await request_handoff(client, keys)
    overdue(redis_sync, ho["id"])

    status, problem = await accept(client, keys, ho["id"], "agent-7")

    assert status == 409
    assert problem["handoff_status"] == "expired"
    assert (await get_handoff(client, keys, ho["id"]))["status"] == "expired"
    assert await queue_ids(client, keys) == []


async def test_the_background_sweep_expires_an_overdue_handoff_nobody_touched(
        client: TestClient[Any, Any], keys: Keys, redis_sync: redis.Redis) -> None:
    ho = await request_handoff(client, keys)
    overdue(redis_sync, ho["id"])

    deadline = time.monotonic() + 5
    while await queue_ids(client, keys, "?status=expired") != [ho["id"]]:
        assert time.monotonic() < deadline, "the sweep never expired the hand-off"
        await asyncio.sleep(0.05)

    assert await queue_ids(client, keys) == []
    assert (await get_handoff(client, keys, ho["id"]))["closed_at"] is not None


# -- continuation codes ----------------------------------------------------------------------


async def test_a_continuation_code_joins_the_call_to_the_chat_only_once(
        client: TestClient[Any, Any], keys: Keys) -> None:
    ho = await request_handoff(client, keys, continuation=True)
    code = ho["continuation_code"]

    first = await redeem(client, keys, code, "CA-first")
    second = await redeem(client, keys, code, "CA-second")

    assert first.status == 200, await first.text()
    assert await first.json() == {"customer_id": ho["customer_id"], "handoff_id": ho["id"],
                                  "merged": []}
    assert second.status == 404
    assert second.content_type == PROBLEM


async def test_an_unknown_continuation_code_is_not_found_and_changes_nothing(
        client: TestClient[Any, Any], keys: Keys, redis_sync: redis.Redis) -> None:
    ho = await request_handoff(client, keys, continuation=True)
    before = snapshot(redis_sync)

    r = await redeem(client, keys, wrong_code(ho["continuation_code"]))

    assert r.status == 404
    assert r.content_type == PROBLEM
    assert snapshot(redis_sync) == before
    caller = await client.get("/v1/customers/phone:%2B15550104477/context",
                              headers=keys("agent"))
    assert caller.status == 404


async def test_a_continuation_code_that_is_not_six_digits_is_refused(
        client: TestClient[Any, Any], keys: Keys) -> None:
    for code in ("12345", "1234567", "12a456"):
        r = await redeem(client, keys, code)

        assert r.status == 422, code
        assert (await r.json())["errors"][0]["loc"] == ["path", "code"]


async def test_an_expired_continuation_code_is_not_found(
        client: TestClient[Any, Any], keys: Keys, redis_sync: redis.Redis) -> None:
    ho = await request_handoff(client, keys, continuation=True)
    code = ho["continuation_code"]
    assert redis_sync.delete(redis_keys.code("acme", code)) == 1

    r = await redeem(client, keys, code)

    assert r.status == 404


async def test_three_wrong_codes_on_one_call_lock_it_out_even_for_the_right_code(
        client: TestClient[Any, Any], keys: Keys) -> None:
    ho = await request_handoff(client, keys, continuation=True)
    code = ho["continuation_code"]
    for n in range(3):
        assert (await redeem(client, keys, f"{(int(code) + 1 + n) % 1_000_000:06d}")).status == 404

    r = await redeem(client, keys, code)

    assert r.status == 429
    assert r.content_type == PROBLEM
    assert int(r.headers["Retry-After"]) > 0


async def test_wrong_codes_past_the_keys_ceiling_in_a_minute_are_slowed_down(
        make_client: AppFactory, keys: Keys) -> None:
    client = await make_client(redeem_attempts_per_minute=10)
    ho = await request_handoff(client, keys, continuation=True)
    if time.time() % 60 > 57:  # keep all eleven attempts inside one minute window
        await asyncio.sleep(60 - time.time() % 60 + 0.05)
    wrong = wrong_code(ho["continuation_code"])
    for n in range(10):  # ten callers, one typo each
        assert (await redeem(client, keys, wrong, f"CA-{n}", f"+1555010{n:04d}")).status == 404

    r = await redeem(client, keys, ho["continuation_code"], "CA-eleventh", "+15550100010")

    assert r.status == 429
    assert r.content_type == PROBLEM
    assert 0 < int(r.headers["Retry-After"]) <= 60
