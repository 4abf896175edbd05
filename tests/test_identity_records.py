"""An identity keeps where and when it was first seen, whatever writes name it later.

Each write route that can name an identity (turns, hand-offs, verifications, continuation
redeems, an adapter) may add to an identity's record (link a claim, fill in a channel the first
sighting lacked) but never erases its channel or moves its first sighting forward. Facts are
written too, to show they leave identities alone.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp.test_utils import TestClient

from handoff.programs.terminal import brief_text
from schemas.brief import Brief
from tests.conftest import Keys
from tests.scenario import (
    CONVERSATION,
    EMAIL,
    PHONE,
    VISITOR,
    Json,
    brief_of,
    chat_customer,
    ok,
    phone_customer,
    turn,
)

Client = TestClient[Any, Any]
TURNS = f"/v1/conversations/{CONVERSATION}/turns"
CHAT = ("chat", VISITOR)


async def identities(client: Client, keys: Keys, ref: str = f"chat:{VISITOR}"
                     ) -> dict[tuple[str, str], Json]:
    brief = await brief_of(client, keys, ref)
    return {(i["kind"], i["value"]): i for i in brief["customer"]["identities"]}


async def later() -> None:
    """Let the clock move on, so a write that moved a first sighting would show it."""
    await asyncio.sleep(0.01)


async def first_chat(client: Client, keys: Keys, *extra: Json) -> Json:
    """The bot's first post: the visitor on chat (plus whatever else they said)."""
    return await ok(client, "POST", TURNS, keys("bot"), {
        "customer": chat_customer(VISITOR, *extra), "channel": "chat", "source": "acme-bot",
        "turns": [turn("t1", "I was charged twice")], "facts": {"order_number": "A-1001"}})


async def test_the_readme_hand_off_without_a_channel_still_shows_the_visitor_linked_on_chat(
        client: Client, keys: Keys) -> None:
    await first_chat(client, keys, {"kind": "email", "value": "Ana@Example.com"})
    before = await identities(client, keys)
    await later()
    await ok(client, "POST", "/v1/handoffs", {**keys("bot"), "Idempotency-Key": "web-7f3a-1"}, {
        "customer": chat_customer(), "conversation_id": CONVERSATION,
        "reason": "customer_request", "priority": 2, "queue": "billing",
        "summary": "Charged twice for order A-1001", "continuation": True}, status=201)
    after = await identities(client, keys)
    assert after[CHAT] == before[CHAT]
    assert after[CHAT]["channel"] == "chat" and after[CHAT]["linked"]
    brief = Brief.model_validate(await ok(client, "GET", f"/v1/customers/chat%3A{VISITOR}/context",
                                          keys("agent")))
    printed = brief_text(brief, now=datetime.now(UTC))
    assert f"chat     {VISITOR:<22} linked on chat" in printed, printed


async def test_every_later_write_naming_the_visitor_keeps_its_first_channel_and_time(
        client: Client, keys: Keys) -> None:
    await first_chat(client, keys)
    first = (await identities(client, keys))[CHAT]
    assert first["channel"] == "chat" and first["linked"] and first["first_seen"]
    bot, ivr, agent = keys("bot"), keys("ivr"), keys("agent")
    sender = f"rasa-{uuid.uuid4().hex[:10]}"
    steps: list[tuple[str, str, dict[str, str], Json, int]] = [
        ("a later post without a channel", TURNS, bot, {
            "customer": chat_customer(), "turns": [turn("t2", "Still there?")]}, 200),
        ("a post to the same chat from the voice line", TURNS, ivr, {
            "customer": chat_customer(), "channel": "voice",
            "turns": [turn("t3", "Caller transferred from chat", "system")]}, 200),
        ("facts set on another channel", f"/v1/customers/chat%3A{VISITOR}/facts", ivr, {
            "facts": {"callback": "after 5pm"}, "channel": "voice"}, 200),
        ("a hand-off without a channel", "/v1/handoffs", bot, {
            "customer": chat_customer(), "conversation_id": CONVERSATION,
            "reason": "customer_request", "queue": "billing"}, 201),
        ("a hand-off on sms", "/v1/handoffs", bot, {
            "customer": chat_customer(), "conversation_id": CONVERSATION, "channel": "sms",
            "reason": "customer_request", "queue": "billing"}, 201),
        ("a verification without a channel", "/v1/verifications", agent, {
            "customer": chat_customer(), "conversation_id": CONVERSATION,
            "identity": {"kind": "account", "value": "88812345"}, "method": "pin",
            "level": "high"}, 200),
        ("a verification on voice", "/v1/verifications", ivr, {
            "customer": chat_customer(), "conversation_id": CONVERSATION, "channel": "voice",
            "identity": {"kind": "account", "value": "88812345"}, "method": "pin",
            "level": "high"}, 200),
    ]
    for what, path, headers, body, status in steps:
        await later()
        await ok(client, "POST" if "facts" not in path else "PUT", path, headers, body,
                 status=status)
        assert (await identities(client, keys))[CHAT] == first, what
    # The code's own chat, redeemed on it by mistake: the caller is the chat's customer.
    code = (await ok(client, "POST", "/v1/handoffs", bot, {
        "customer": chat_customer(), "conversation_id": CONVERSATION, "channel": "chat",
        "reason": "customer_request", "queue": "billing", "continuation": True},
        status=201))["continuation_code"]
    await later()
    await ok(client, "POST", f"/v1/continuations/{code}/redeem", ivr, {
        "customer": chat_customer(), "conversation_id": CONVERSATION, "channel": "voice"})
    assert (await identities(client, keys))[CHAT] == first, "a continuation redeem"
    # A Rasa bot carrying on the same visitor's chat through its adapter.
    first_rasa = await ok(client, "POST", f"/v1/conversations/{sender}/turns", bot, {
        "customer": chat_customer(sender), "channel": "chat", "turns": [turn("r1", "hello")]})
    seen = (await identities(client, keys, f"chat:{sender}"))[("chat", sender)]
    await later()
    await ok(client, "POST", "/v1/adapters/rasa/events", bot, {
        "sender_id": sender, "event": "user", "text": "still waiting",
        "timestamp": datetime.now(UTC).timestamp()})
    again = await identities(client, keys, f"chat:{sender}")
    assert (await brief_of(client, keys, f"chat:{sender}"))["customer"]["id"] \
        == first_rasa["customer_id"]
    assert again[("chat", sender)] == seen, "a Rasa adapter post"


async def test_a_claim_that_is_later_verified_is_linked_but_keeps_its_first_sighting(
        client: Client, keys: Keys) -> None:
    await first_chat(client, keys, {"kind": "email", "value": EMAIL})
    stated = (await identities(client, keys))[("email", EMAIL)]
    assert (stated["linked"], stated["verified"], stated["channel"]) == (False, False, "chat")
    await later()
    await ok(client, "POST", "/v1/verifications", keys("ivr"), {
        "customer": chat_customer(), "conversation_id": CONVERSATION, "channel": "voice",
        "identity": {"kind": "email", "value": EMAIL}, "method": "otp", "level": "medium"})
    proved = (await identities(client, keys))[("email", EMAIL)]
    assert (proved["linked"], proved["verified"]) == (True, True)
    assert (proved["channel"], proved["first_seen"]) == ("chat", stated["first_seen"])
    # A later post that only claims it again does not take the link back.
    await later()
    await ok(client, "POST", TURNS, keys("bot"), {
        "customer": chat_customer(VISITOR, {"kind": "email", "value": EMAIL}),
        "channel": "chat", "turns": [turn("t2", "my email is ana@example.com")]})
    assert (await identities(client, keys))[("email", EMAIL)] == proved


async def test_a_first_sighting_without_a_channel_gets_one_from_a_later_write(
        client: Client, keys: Keys) -> None:
    await first_chat(client, keys)
    await ok(client, "POST", "/v1/handoffs", keys("bot"), {
        "customer": chat_customer(VISITOR, {"kind": "email", "value": EMAIL}),
        "conversation_id": CONVERSATION, "reason": "customer_request", "queue": "billing"},
        status=201)
    stated = (await identities(client, keys))[("email", EMAIL)]
    assert stated["channel"] is None and stated["first_seen"]
    await later()
    await ok(client, "POST", TURNS, keys("bot"), {
        "customer": chat_customer(VISITOR, {"kind": "email", "value": EMAIL}),
        "channel": "chat", "turns": [turn("t2", "it's ana@example.com")]})
    filled = (await identities(client, keys))[("email", EMAIL)]
    assert filled == {**stated, "channel": "chat"}


async def test_a_redeemed_call_keeps_when_and_where_its_number_was_first_heard(
        client: Client, keys: Keys) -> None:
    await first_chat(client, keys)
    code = (await ok(client, "POST", "/v1/handoffs", keys("bot"), {
        "customer": chat_customer(), "conversation_id": CONVERSATION, "channel": "chat",
        "reason": "customer_request", "queue": "billing", "continuation": True},
        status=201))["continuation_code"]
    # The caller talks to the IVR for a while before typing the code.
    await ok(client, "POST", "/v1/conversations/CA77/turns", keys("ivr"), {
        "customer": phone_customer(), "channel": "voice",
        "turns": [turn("c1", "Press 1 for billing", "system")]})
    heard = (await identities(client, keys, f"phone:{PHONE}"))[("phone", PHONE)]
    await later()
    joined = await ok(client, "POST", f"/v1/continuations/{code}/redeem", keys("ivr"), {
        "customer": phone_customer(), "conversation_id": "CA77", "channel": "voice"})
    assert joined["merged"], "the call's own customer joins the chat's"
    known = await identities(client, keys)
    assert known[("phone", PHONE)] == heard
    assert known[CHAT]["channel"] == "chat"
