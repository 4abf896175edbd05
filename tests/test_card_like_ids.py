"""Identifiers that happen to read as card numbers are accepted: numeric and snowflake ids pass
the Luhn check one time in ten, and a platform that names conversations, turns, sources,
agents or queues with them must not have one post in ten refused. Such an id is kept as its
last four digits and a keyed digest, the same on every process, so retries stay duplicates,
lookups and paging work, and the digits never reach Redis. `.` and `..` cannot be carried by a
URL: the API refuses them as conversation ids, and adapters keep a vendor's as a digest.
"""

from __future__ import annotations

import asyncio
import random
import string
from typing import Any
from urllib.parse import quote

import pytest
import redis
from aiohttp.test_utils import TestClient
from yarl import URL

from tests import test_adapter_dialogflow_cx as dialogflow
from tests import test_adapter_lex_v2 as lex
from tests import test_adapter_rasa as rasa
from tests.adapter_checks import stored_id
from tests.card_checks import leaked, luhn, random_pan, store_text
from tests.conftest import AppFactory, Keys
from tests.redis_peek import assert_unchanged, not_an_attempt_counter, snapshot
from tests.scenario import assert_problem, brief_of, call, ok

Client = TestClient[Any, Any]
Json = dict[str, Any]
TS = "2026-11-23T10:02:00Z"


def numeric_id() -> str:
    """A random numeric id of 13 to 19 digits, as platforms with numeric or snowflake ids
    (18 or 19 digits) give them."""
    return str(random.randint(1, 9)) + "".join(
        random.choices(string.digits, k=random.randint(12, 18)))


def post_body(turn_id: str, visitor: str, text: str = "hello") -> Json:
    return {"customer": {"identities": [{"kind": "chat", "value": visitor}]},
            "channel": "chat", "source": "acme-bot",
            "turns": [{"id": turn_id, "role": "customer", "text": text, "ts": TS}]}


async def post_all(app: Client, keys: Keys, ids: list[str]) -> list[Json]:
    """Each id as a conversation id and as the id of its one turn, sixteen posts at a time."""
    gate = asyncio.Semaphore(16)

    async def one(n: int, number: str) -> Json:
        async with gate:
            answer = await call(app, "POST", f"/v1/conversations/{number}/turns",
                                headers=keys("bot"), json_body=post_body(number, f"v-{n}"))
        assert answer.status == 200, f"{number}: {answer.status} {answer.raw[:200]!r}"
        result: Json = answer.json()
        return result

    return await asyncio.gather(*(one(n, number) for n, number in enumerate(ids)))


async def test_a_thousand_numeric_ids_are_accepted_kept_digested_and_retried_as_duplicates(
        client: Client, make_client: AppFactory, keys: Keys, redis_sync: redis.Redis) -> None:
    # Every second id is completed to pass the Luhn check (one in ten would by chance).
    ids = [numeric_id() for _ in range(1000)]
    ids[::2] = [random_pan(len(number), prefix=number[0]) for number in ids[::2]]
    card_like = [number for number in ids if luhn(number)]
    other_process = await make_client()

    first = await post_all(client, keys, ids)
    retried = await post_all(other_process, keys, ids)  # another process, the same secret

    assert [(r["appended"], r["duplicates"]) for r in first] == [(1, 0)] * len(ids)
    assert [(r["appended"], r["duplicates"]) for r in retried] == [(0, 1)] * len(ids)
    assert [r["conversation_id"] for r in retried] == [r["conversation_id"] for r in first]
    for number, result in zip(ids, first, strict=True):
        if luhn(number):
            assert result["conversation_id"].startswith(f"id-{number[-4:]}-"), result
        else:
            assert result["conversation_id"] == number
    stored, scanned = store_text(redis_sync)
    assert len(card_like) >= 500
    assert not leaked(card_like, stored), f"card-like ids in Redis ({scanned} keys)"


async def test_timestamp_turn_ids_are_accepted_and_the_transcript_pages_through_them(
        client: Client, keys: Keys, redis_sync: redis.Redis) -> None:
    stamps = [f"{1796177855 + k}-{105 + k}" for k in range(300)]
    card_like = [s for s in stamps if luhn(s.replace("-", ""))][:12]
    plain = [s for s in stamps if not luhn(s.replace("-", ""))][:12]
    turn_ids = sorted(card_like + plain)
    assert "1796177855-105" in card_like
    visitor = f"visitor-{random.getrandbits(32)}"
    body = post_body(turn_ids[0], visitor)
    body["turns"] = [{"id": t, "role": "customer", "text": f"message {n}",
                      "ts": f"2026-11-23T10:{n:02d}:00Z"} for n, t in enumerate(turn_ids)]

    written = await ok(client, "POST", "/v1/conversations/web-ts/turns", keys("bot"), body)
    again = await ok(client, "POST", "/v1/conversations/web-ts/turns", keys("bot"), body)

    assert (written["appended"], again["duplicates"]) == (24, 24)
    pages, before = [], ""
    while True:
        page = await ok(client, "GET", f"/v1/customers/{written['customer_id']}/turns"
                        f"?limit=5{before}", keys("agent"))
        pages.append(page["items"])
        if page["next"] is None:
            break
        before = f"&before={page['next']}"
    read = [t for items in pages for t in items]
    assert [t["text"] for t in reversed(read)] == [f"message {n}" for n in range(24)]
    assert len(pages) == 5
    for stamp, turn in zip(turn_ids, reversed(read), strict=True):
        if stamp in card_like:
            assert turn["id"].startswith(f"id-{stamp.replace('-', '')[-4:]}-")
        else:
            assert turn["id"] == stamp
    assert not leaked([s.replace("-", "") for s in card_like], store_text(redis_sync)[0])


async def test_every_kind_of_id_that_reads_as_a_card_number_is_accepted_and_kept_digested(
        client: Client, keys: Keys, redis_sync: redis.Redis) -> None:
    chat_id, call_id, source, agent, queue = (random_pan(n) for n in (16, 19, 13, 18, 16))
    visitor = {"identities": [{"kind": "chat", "value": f"v-{random.getrandbits(32)}"}]}
    caller = {"identities": [{"kind": "phone",
                              "value": f"+1415{random.randint(2000000, 9999999)}"}]}

    chatted = await ok(client, "POST", f"/v1/conversations/{chat_id}/turns", keys("bot"), {
        **post_body("t1", "unused"), "customer": visitor, "source": source})
    await ok(client, "PUT", f"/v1/customers/{chatted['customer_id']}/facts", keys("bot"),
             {"facts": {"order": "A-1"}, "conversation_id": chat_id, "source": source})
    handoff = await ok(client, "POST", "/v1/handoffs", keys("bot"), {
        "customer": visitor, "conversation_id": chat_id, "source": source, "queue": queue,
        "reason": "customer_request", "continuation": True}, status=201)
    await ok(client, "POST", f"/v1/continuations/{handoff['continuation_code']}/redeem",
             keys("ivr"), {"customer": caller, "conversation_id": call_id, "source": source})
    await ok(client, "POST", "/v1/verifications", keys("ivr"), {
        "customer": caller, "conversation_id": call_id, "source": source, "method": "pin",
        "identity": {"kind": "account", "value": "88812345"}})
    queued = await ok(client, "GET", f"/v1/handoffs?queue={queue}", keys("agent"))
    accepted = await ok(client, "POST", f"/v1/handoffs/{handoff['id']}/accept",
                        keys("agent"), {"agent_id": agent})
    retried = await ok(client, "POST", f"/v1/handoffs/{handoff['id']}/accept",
                       keys("agent"), {"agent_id": agent})
    token = await ok(client, "POST", "/v1/desk/tokens", keys("agent"), {"agent_id": agent})
    replied = await ok(client, "POST", f"/v1/conversations/{chat_id}/turns",
                       {"Authorization": f"Bearer {token['token']}"},
                       {"turns": [{"id": "a1", "role": "agent", "text": "On it", "ts": TS}]})
    brief = await ok(client, "GET", f"/v1/customers/{chatted['customer_id']}/context",
                     {**keys("agent"), "X-Agent-Id": agent})

    assert [h["id"] for h in queued["items"]] == [handoff["id"]]
    assert handoff["queue"] == stored_id(client, queue) != queue
    assert accepted["handoff"]["agent_id"] == retried["handoff"]["agent_id"] == \
        token["agent_id"] == stored_id(client, agent)
    assert replied["conversation_id"] == chatted["conversation_id"] == stored_id(client, chat_id)
    assert [(j["conversation_id"], j["source"]) for j in brief["journey"]] == [
        (stored_id(client, chat_id), stored_id(client, source)),
        (stored_id(client, call_id), stored_id(client, source))]
    assert brief["verifications"][0]["conversation_id"] == stored_id(client, call_id)
    audit = await ok(client, "GET", f"/v1/admin/audit?customer={chatted['customer_id']}",
                     keys("admin"))
    assert {e["agent_id"] for e in audit["items"]} == {stored_id(client, agent)}
    stored, scanned = store_text(redis_sync)
    assert not leaked([chat_id, call_id, source, agent, queue], stored), f"{scanned} keys"


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/admin/keys", {"role": "bot", "name": "night bot 4111\u00a01111\u00a01111\u00a01111"}),
    ("/v1/admin/webhooks", {"url": "https://hooks.example.com/card-4111.1111.1111.1111",
                            "events": ["handoff.requested"]}),
    ("/v1/admin/webhooks", {"url": "https://hooks.example.com/h", "events": ["handoff.requested"],
                            "description": "card ٤١١١١١١١١١١١١١١١"}),
])
async def test_a_card_number_in_the_name_of_a_key_or_a_webhook_is_still_refused(
        client: Client, keys: Keys, redis_sync: redis.Redis, path: str, body: Json) -> None:
    # They name configuration an administrator writes, not ids a platform assigns.
    before = snapshot(redis_sync, not_an_attempt_counter)
    problem = assert_problem(await call(client, "POST", path, headers=keys("admin"),
                                        json_body=body), 422)
    assert "1111" not in str(problem).replace("**** **** **** 1111", "")
    assert_unchanged(before, snapshot(redis_sync, not_an_attempt_counter))


# -- `.` and `..` ------------------------------------------------------------------------------


def raw_url(client: Client, path: str) -> URL:
    """The path exactly as written: no client resolves its dot segments first."""
    return URL(str(client.make_url("/")).rstrip("/") + path, encoded=True)


@pytest.mark.parametrize("segment", [".", "..", "%2E", "%2e%2E", ".%2E"])
async def test_a_conversation_id_of_dot_or_dot_dot_in_the_path_is_422(
        client: Client, keys: Keys, redis_sync: redis.Redis, segment: str) -> None:
    before = snapshot(redis_sync, not_an_attempt_counter)
    async with client.session.post(raw_url(client, f"/v1/conversations/{segment}/turns"),
                                   json=post_body("t1", "v-dot"), headers=keys("bot")) as r:
        assert r.status == 422, await r.text()
        assert (await r.json())["errors"][0]["loc"] == ["path", "conversation_id"]
    assert_unchanged(before, snapshot(redis_sync, not_an_attempt_counter))


@pytest.mark.parametrize("name", [".", ".."])
@pytest.mark.parametrize(("role", "path", "body"), [
    ("bot", "/v1/handoffs", {"conversation_id": "{}", "reason": "customer_request",
                             "customer": {"identities": [{"kind": "chat", "value": "v-1"}]}}),
    ("bot", "/v1/customers/chat:v-1/facts", {"conversation_id": "{}", "facts": {"a": "b"}}),
    ("ivr", "/v1/verifications", {"conversation_id": "{}", "method": "pin",
                                  "identity": {"kind": "account", "value": "88812345"}}),
    ("ivr", "/v1/continuations/123456/redeem", {"conversation_id": "{}"}),
])
async def test_a_conversation_id_of_dot_or_dot_dot_in_a_body_is_422(
        client: Client, keys: Keys, redis_sync: redis.Redis, name: str, role: str, path: str,
        body: Json) -> None:
    method = "PUT" if path.endswith("/facts") else "POST"
    sent = {**body, "conversation_id": name}
    before = snapshot(redis_sync, not_an_attempt_counter)
    problem = assert_problem(await call(client, method, path, headers=keys(role),
                                        json_body=sent), 422)
    assert ["conversation_id"] in [e["loc"][-1:] for e in problem["errors"]]
    assert_unchanged(before, snapshot(redis_sync, not_an_attempt_counter))


@pytest.mark.parametrize("session", [".", ".."])
async def test_a_vendor_session_named_dot_is_kept_digested_and_an_agent_can_reply_to_it(
        client: Client, keys: Keys, session: str) -> None:
    # Each vendor in its own tenant: the same session name would be one chat identity.
    _, event = lex.event(transcript="hello from lex")
    event["sessionId"] = session
    await lex.post(client, keys, event)
    _, webhook = dialogflow.webhook("hello from dialogflow", session=session)
    await dialogflow.post(client, keys, webhook, tenant="globex")

    for tenant, text in [("acme", "hello from lex"), ("globex", "hello from dialogflow")]:
        brief = await brief_of(client, keys, f"chat:{session}", tenant=tenant)
        [said] = brief["turns"]
        conversation = said["conversation_id"]
        assert said["text"] == text and conversation.startswith("id-")
        assert conversation == stored_id(client, session)
        token = await ok(client, "POST", "/v1/desk/tokens", keys("agent", tenant),
                         {"agent_id": "agent-7"})
        reply = await ok(client, "POST", f"/v1/conversations/{quote(conversation)}/turns",
                         {"Authorization": f"Bearer {token['token']}"},
                         {"turns": [{"id": "a1", "role": "agent", "text": "Hi!", "ts": TS}]})
        assert (reply["conversation_id"], reply["appended"]) == (conversation, 1)


async def test_a_rasa_sender_named_dot_dot_is_kept_digested(client: Client, keys: Keys) -> None:
    _, events = rasa.broker_events("..")
    summary = await rasa.post(client, keys, events)
    [conversation] = summary["conversations"]
    assert conversation["conversation_id"] == stored_id(client, "..") != ".."
    assert conversation["appended"] == 2
