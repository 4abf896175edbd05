"""A bot posting turn after turn to one conversation: after the first post, each later one that
names nobody new sends Redis its turn alone, and still lands where the full path would: on the
customer it was merged into, on a fresh customer once the old one is erased, and with every new
identity a body names recorded."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from handoff.api.state import DEPS
from handoff.store import keys as redis_keys
from tests.conftest import AppFactory, Keys
from tests.scenario import Json, brief_of, chat_customer, ok, phone_customer, turn

Client = TestClient[Any, Any]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def chat_post(visitor: str, turn_id: str, text: str, *extra: Json) -> Json:
    return {"customer": chat_customer(visitor, *extra), "channel": "chat",
            "source": "acme-bot", "turns": [turn(turn_id, text)]}


async def identities(client: Client, keys: Keys, cus_id: str) -> dict[tuple[str, str], str]:
    brief = await brief_of(client, keys, cus_id)
    return {(i["kind"], i["value"]): i.get("state", "") for i in brief["customer"]["identities"]}


async def turn_ids(client: Client, keys: Keys, cus_id: str) -> list[str]:
    return [t["id"] for t in (await brief_of(client, keys, cus_id))["turns"]]


async def test_a_later_post_naming_nobody_new_sends_redis_its_turn_alone(
        client: Client, keys: Keys) -> None:
    visitor, chat = unique("visitor"), unique("web")
    path = f"/v1/conversations/{chat}/turns"
    first = await ok(client, "POST", path, keys("bot"), chat_post(visitor, "t1", "Hello"))
    customers = client.app[DEPS].store.customers
    real_write = customers.write
    sent: list[list[Any]] = []

    async def watched(tenant: str, cus_id: str, change: Any, **kw: Any) -> Any:
        sent.append(change.argv(kw.get("outbox")))
        return await real_write(tenant, cus_id, change, **kw)

    customers.write = watched
    try:
        later = await ok(client, "POST", path, keys("bot"),
                         chat_post(visitor, "t2", "Are you there?"))
    finally:
        del customers.write
    assert later["customer_id"] == first["customer_id"]
    assert later["appended"] == 1
    (argv,) = sent
    # Neither the visitor's identity record nor the conversation record travels again.
    assert not any(isinstance(a, bytes) and visitor.encode() in a for a in argv), argv
    assert not any(isinstance(a, bytes) and b"acme-bot" in a for a in argv), argv
    assert await turn_ids(client, keys, first["customer_id"]) == ["t1", "t2"]
    # The same post again is a duplicate, as ever.
    again = await ok(client, "POST", path, keys("bot"), chat_post(visitor, "t2", "Are you there?"))
    assert (again["appended"], again["duplicates"]) == (0, 1)


async def test_a_post_naming_a_new_identity_records_it_on_a_conversation_already_known(
        client: Client, keys: Keys) -> None:
    visitor, chat = unique("visitor"), unique("web")
    path = f"/v1/conversations/{chat}/turns"
    first = await ok(client, "POST", path, keys("bot"), chat_post(visitor, "t1", "Hello"))
    await ok(client, "POST", path, keys("bot"), chat_post(visitor, "t2", "I need help"))
    email = f"{unique('ana')}@example.com"

    told = await ok(client, "POST", path, keys("bot"),
                    chat_post(visitor, "t3", "my email", {"kind": "email", "value": email}))

    assert told["customer_id"] == first["customer_id"]
    known = await identities(client, keys, first["customer_id"])
    assert ("email", email) in known, known
    assert ("chat", visitor) in known


async def test_a_known_conversation_whose_customer_was_merged_follows_it(
        client: Client, keys: Keys) -> None:
    visitor, chat, call = unique("visitor"), unique("web"), unique("CA")
    phone = "+1415555" + str(uuid.uuid4().int % 10_000).zfill(4)
    chatted = await ok(client, "POST", f"/v1/conversations/{chat}/turns", keys("bot"),
                       chat_post(visitor, "c1", "I was charged twice"))
    code = (await ok(client, "POST", "/v1/handoffs", keys("bot"), {
        "customer": chat_customer(visitor), "conversation_id": chat, "channel": "chat",
        "reason": "customer_request", "queue": "billing", "continuation": True},
        status=201))["continuation_code"]
    # The caller talks to the IVR for a while (the call becomes a known conversation)...
    calls = f"/v1/conversations/{call}/turns"
    ivr_post = {"customer": phone_customer(phone), "channel": "voice"}
    caller = await ok(client, "POST", calls, keys("ivr"),
                      {**ivr_post, "turns": [turn("v1", "Press 1 for billing", "system")]})
    await ok(client, "POST", calls, keys("ivr"),
             {**ivr_post, "turns": [turn("v2", "one", "customer")]})
    assert caller["customer_id"] != chatted["customer_id"]
    # ...then types the code: the call's customer joins the chat's.
    joined = await ok(client, "POST", f"/v1/continuations/{code}/redeem", keys("ivr"),
                      {**ivr_post, "conversation_id": call})
    assert joined["merged"]

    after = await ok(client, "POST", calls, keys("ivr"),
                     {**ivr_post, "turns": [turn("v3", "still charged twice", "customer")]})

    assert after["customer_id"] == chatted["customer_id"]
    assert "v3" in await turn_ids(client, keys, chatted["customer_id"])
    assert ("phone", phone) in await identities(client, keys, chatted["customer_id"])


async def test_a_known_conversation_whose_customer_was_erased_starts_afresh(
        client: Client, keys: Keys, redis_sync: Any) -> None:
    visitor, chat = unique("visitor"), unique("web")
    path = f"/v1/conversations/{chat}/turns"
    first = await ok(client, "POST", path, keys("bot"), chat_post(visitor, "t1", "Hello"))
    await ok(client, "POST", path, keys("bot"), chat_post(visitor, "t2", "Forget me"))
    erased = first["customer_id"]
    await ok(client, "DELETE", f"/v1/customers/{erased}", keys("admin"))

    again = await ok(client, "POST", path, keys("bot"), chat_post(visitor, "t3", "Hello again"))

    assert again["customer_id"] != erased
    assert await turn_ids(client, keys, again["customer_id"]) == ["t3"]
    left = {k for k in redis_sync.scan_iter(count=1000) if erased.encode() in k}
    assert left == {redis_keys.customer("acme", erased).erased.encode()}


async def test_a_customer_erased_through_another_process_is_not_written_to_again(
        client: Client, make_client: AppFactory, keys: Keys, redis_sync: Any) -> None:
    bot_process, admin_process = client, await make_client()
    visitor, chat = unique("visitor"), unique("web")
    path = f"/v1/conversations/{chat}/turns"
    first = await ok(bot_process, "POST", path, keys("bot"), chat_post(visitor, "t1", "Hello"))
    await ok(bot_process, "POST", path, keys("bot"), chat_post(visitor, "t2", "Forget me"))
    erased = first["customer_id"]
    await ok(admin_process, "DELETE", f"/v1/customers/{erased}", keys("admin"))

    # Until the erasure's notice reaches the bot's process its post is refused (as one that
    # resolved the customer just before the erasure is); then it starts afresh.
    for _ in range(100):
        r = await bot_process.post(path, headers=keys("bot"),
                                   json=chat_post(visitor, "t3", "Hello again"))
        if r.status != 404:
            break
        await asyncio.sleep(0.05)
    assert r.status == 200, await r.text()
    assert (await r.json())["customer_id"] != erased
    left = {k for k in redis_sync.scan_iter(count=1000) if erased.encode() in k}
    assert left == {redis_keys.customer("acme", erased).erased.encode()}
