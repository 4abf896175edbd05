"""Amazon Lex V2 code hooks: the Lambda input event forwarded as-is, answered as Lex expects.

Formats: https://docs.aws.amazon.com/lexv2/latest/dg/lambda-input-format.html and
https://docs.aws.amazon.com/lexv2/latest/dg/lambda-response-format.html
Samples: tests/vendor_samples/lex-v2-*.json (AWS SAM CLI's generated events; SOURCES.md, 3).
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from aiohttp.test_utils import TestClient

from tests.adapter_checks import card_like_session, only_role_may_post, refuses_raw_body
from tests.conftest import AppFactory, Keys
from tests.redis_peek import assert_unchanged, everything, snapshot
from tests.scenario import assert_problem, brief_of, call, ok

Client = TestClient[Any, Any]
Json = dict[str, Any]
SAMPLES = Path(__file__).parent / "vendor_samples"
URL = "/v1/adapters/lex-v2/code-hook"


def event(name: str = "event", *, transcript: str | None = None,
          attributes: Json | None = None) -> tuple[str, Json]:
    """An AWS sample event in a fresh session, optionally saying something else."""
    body: Json = json.loads((SAMPLES / f"lex-v2-{name}.json").read_text())
    session = str(uuid.uuid4())  # as Amazon Connect names its contacts
    body["sessionId"] = session
    body["sessionState"]["originatingRequestId"] = str(uuid.uuid4())
    if transcript is not None:
        body["inputTranscript"] = transcript
    if attributes is not None:
        body["sessionState"]["sessionAttributes"] = attributes
    return session, body


def handoff_event(attributes: Json | None = None) -> tuple[str, Json]:
    """The customer asks for a person; the bot's Handoff intent is ready for fulfillment."""
    session, body = event(transcript="let me speak to someone", attributes=attributes or {})
    for intent in [body["sessionState"]["intent"], body["interpretations"][0]["intent"]]:
        intent |= {"name": "Handoff", "slots": {}, "state": "ReadyForFulfillment"}
    return session, body


async def post(client: Client, keys: Keys, body: Any, tenant: str = "acme") -> Json:
    result = await ok(client, "POST", URL, keys("bot", tenant), body)
    return result


async def test_the_utterance_and_its_slots_reach_the_brief_and_lex_is_told_to_go_on(
        client: Client, keys: Keys) -> None:
    session, body = event(transcript="my date of birth is 01/01/1990",
                          attributes={"email": "Ana@Example.com", "segment": "gold"})
    answer = await post(client, keys, body)
    state = answer["sessionState"]
    assert state["dialogAction"] == {"type": "Delegate"}
    assert state["intent"] == body["sessionState"]["intent"]  # echoed as received
    assert state["sessionAttributes"] == body["sessionState"]["sessionAttributes"]
    assert "messages" not in answer
    brief = await brief_of(client, keys, f"chat:{session}")
    [said] = brief["turns"]
    assert (said["role"], said["text"], said["channel"], said["intent"], said["confidence"]) == (
        "customer", "my date of birth is 01/01/1990", "chat", "CheckBalance", 1.0)
    assert said["entities"] == {"dateofBirth": "1990-01-01", "accountType": "Savings"}
    facts = {k: v["value"] for k, v in brief["facts"].items()}
    assert facts == {"dateofBirth": "1990-01-01", "accountType": "Savings", "segment": "gold",
                     "email": "Ana@Example.com"}
    identities = {(i["kind"], i["value"]): i["verified"] for i in brief["customer"]["identities"]}
    assert identities == {("chat", session): False, ("email", "ana@example.com"): False}
    assert brief["verifications"] == []


async def test_a_dialog_code_hook_with_empty_slots_records_the_turn_and_no_facts(
        client: Client, keys: Keys) -> None:
    session, body = event("event-dialogcodehook", transcript="Book a hotel in Lisbon")
    answer = await post(client, keys, body)
    assert answer["sessionState"]["intent"]["slots"] == {
        "RoomType": None, "CheckInDate": None, "Nights": None, "Location": None}
    assert answer["sessionState"]["originatingRequestId"] == \
        body["sessionState"]["originatingRequestId"]
    brief = await brief_of(client, keys, f"chat:{session}")
    assert [(t["text"], t["intent"], t["confidence"]) for t in brief["turns"]] == [
        ("Book a hotel in Lisbon", "BookHotel", 1.0)]
    assert brief["facts"] == {}


async def test_a_retried_invocation_appends_nothing_twice(client: Client, keys: Keys) -> None:
    session, body = event(transcript="what's my balance")
    for _ in range(3):
        await post(client, keys, body)
    _, later = event(transcript="and my savings?")
    later["sessionId"] = session
    await post(client, keys, later)
    brief = await brief_of(client, keys, f"chat:{session}")
    assert [t["text"] for t in brief["turns"]] == ["what's my balance", "and my savings?"]


async def test_the_handoff_intent_closes_with_the_continuation_code(
        client: Client, keys: Keys) -> None:
    session, body = handoff_event({"handoff_queue": "billing", "handoff_priority": "1",
                                   "handoff_summary": "Balance looks wrong"})
    answer = await post(client, keys, body)
    state = answer["sessionState"]
    assert state["dialogAction"] == {"type": "Close"}
    assert state["intent"]["name"] == "Handoff" and state["intent"]["state"] == "Fulfilled"
    code = state["sessionAttributes"]["handoff_code"]
    assert re.fullmatch(r"\d{6}", code)
    assert state["sessionAttributes"]["handoff_queue"] == "billing"  # the bot's own kept
    [message] = answer["messages"]
    assert message["contentType"] == "PlainText" and code in message["content"]
    brief = await brief_of(client, keys, f"chat:{session}")
    [handoff] = brief["handoffs"]
    assert (handoff["id"], handoff["queue"], handoff["priority"], handoff["summary"]) == (
        state["sessionAttributes"]["handoff_id"], "billing", 1, "Balance looks wrong")
    assert (await post(client, keys, body))["sessionState"]["sessionAttributes"] == \
        state["sessionAttributes"]  # a retry answers the same hand-off


async def test_the_handoff_intents_are_configurable(make_client: AppFactory,
                                                    keys: Keys) -> None:
    client = await make_client(lex_handoff_intents=["TalkToAgent"])
    _, body = handoff_event()
    assert (await post(client, keys, body))["sessionState"]["dialogAction"]["type"] == \
        "Delegate"


async def test_the_handoff_request_attribute_asks_once_per_session(client: Client,
                                                                    keys: Keys) -> None:
    session, body = event(transcript="this is useless", attributes={"handoff_request": "true"})
    first = await post(client, keys, body)
    attributes = first["sessionState"]["sessionAttributes"]
    assert first["sessionState"]["dialogAction"]["type"] == "Close"
    _, later = event(transcript="hello?", attributes=attributes)
    later["sessionId"] = session
    assert (await post(client, keys, later))["sessionState"]["dialogAction"]["type"] == \
        "Delegate"
    brief = await brief_of(client, keys, f"chat:{session}")
    assert [h["id"] for h in brief["handoffs"]] == [attributes["handoff_id"]]


async def test_speech_from_a_call_is_a_voice_turn_of_the_caller_the_flow_names(
        client: Client, keys: Keys) -> None:
    _, body = event(transcript="check my balance",
                    attributes={"handoff_caller": "+15550107002"})
    body["inputMode"] = "Speech"
    await post(client, keys, body)
    brief = await brief_of(client, keys, "phone:+15550107002")
    assert [(t["channel"], t["text"]) for t in brief["turns"]] == [("voice", "check my balance")]
    assert "handoff_caller" not in brief["facts"]


async def test_a_spoken_account_number_is_only_a_claim(client: Client, keys: Keys) -> None:
    first, owner = event(transcript="I am the real holder", attributes={"account": "88812345"})
    await post(client, keys, owner)
    other, body = event(transcript="show my statement", attributes={"account": "88812345"})
    await post(client, keys, body)
    holder = await brief_of(client, keys, f"chat:{first}")
    claimant = await brief_of(client, keys, f"chat:{other}")
    assert claimant["customer"]["id"] != holder["customer"]["id"]
    assert [t["text"] for t in claimant["turns"]] == ["show my statement"]
    assert [t["text"] for t in holder["turns"]] == ["I am the real holder"]


# -- bad payloads -------------------------------------------------------------------------------

def without_session() -> Json:
    body = event()[1]
    del body["sessionId"]
    return body


def without_session_state() -> Json:
    body = event()[1]
    del body["sessionState"]
    return body


def slots_as_a_list() -> Json:
    body = event()[1]
    body["sessionState"]["intent"]["slots"] = ["dateofBirth"]
    return body


def attributes_not_strings() -> Json:
    return event(attributes={"handoff_request": {"nested": True}})[1]


def bad_queue() -> Json:
    return handoff_event({"handoff_queue": "Billing Dept"})[1]


UNMAPPABLE = {
    "no sessionId": (without_session, "sessionId"),
    "no sessionState": (without_session_state, "sessionState"),
    "slots are a list": (slots_as_a_list, "sessionState"),
    "a session attribute that is not a string": (attributes_not_strings, "sessionState"),
    "a queue with spaces": (bad_queue, "sessionState.sessionAttributes"),
}


@pytest.mark.parametrize(("make", "field"), UNMAPPABLE.values(), ids=UNMAPPABLE.keys())
async def test_an_event_that_cannot_be_mapped_is_422_naming_the_field_and_changes_nothing(
        make: Any, field: str, client: Client, keys: Keys, redis_sync: redis.Redis) -> None:
    await post(client, keys, event()[1])
    before = snapshot(redis_sync)
    problem = assert_problem(await call(client, "POST", URL, headers=keys("bot"),
                                        json_body=make()), 422)
    assert any(e["loc"][0] == field for e in problem["errors"]), problem
    assert_unchanged(before, snapshot(redis_sync))


@pytest.mark.parametrize(("raw", "ctype", "status"), [
    (b"{'sessionId': 1}", "application/json", 400),
    (b"sessionId=1", "application/x-www-form-urlencoded", 415),
    (b'"an event"', "application/json", 422)], ids=["garbage", "a form", "a string"])
async def test_a_body_that_is_not_an_event_is_refused_and_changes_nothing(
        raw: bytes, ctype: str, status: int, client: Client, keys: Keys,
        redis_sync: redis.Redis) -> None:
    await refuses_raw_body(client, redis_sync, URL, keys("bot"), raw, ctype, status)


async def test_only_bot_keys_may_post_and_a_missing_key_is_401(client: Client, keys: Keys,
                                                               redis_sync: redis.Redis) -> None:
    _, body = handoff_event()
    await only_role_may_post(client, redis_sync, keys, URL, body, "bot")


async def test_another_tenants_bot_with_the_same_session_writes_only_its_own_customer(
        client: Client, keys: Keys) -> None:
    session, body = event(transcript="acme's customer")
    await post(client, keys, body)
    acme = await brief_of(client, keys, f"chat:{session}")
    theirs = copy.deepcopy(body) | {"inputTranscript": "globex's customer"}
    await post(client, keys, theirs, tenant="globex")
    assert await brief_of(client, keys, f"chat:{session}") == acme
    globex = await brief_of(client, keys, f"chat:{session}", tenant="globex")
    assert [t["text"] for t in globex["turns"]] == ["globex's customer"]


@pytest.mark.parametrize("session", ["4111111111111111", pytest.param(
    card_like_session(), id="uuid-reading-as-a-card")])
async def test_a_session_id_that_looks_like_a_card_number_is_kept_under_a_digest(
        client: Client, keys: Keys, redis_sync: redis.Redis, session: str) -> None:
    # Numeric session ids, as in AWS's samples, and UUIDs now and then pass the Luhn check.
    _, body = event(transcript="hello", attributes={"handoff_request": "yes"})
    body["sessionId"] = session
    answer = await post(client, keys, body)
    handoff = await ok(client, "GET",
                       f"/v1/handoffs/{answer['sessionState']['sessionAttributes']['handoff_id']}",
                       keys("agent"))
    brief = await brief_of(client, keys, handoff["customer_id"])
    [said] = brief["turns"]
    assert said["text"] == "hello" and said["conversation_id"].startswith("id-")
    assert (await post(client, keys, body))["sessionState"]["sessionAttributes"] == \
        answer["sessionState"]["sessionAttributes"]  # the same digest every time
    assert session not in everything(redis_sync)
    # The session is still the chat identity a desk looks the customer up by.
    assert (await brief_of(client, keys, f"chat:{session}"))["customer"]["id"] == \
        handoff["customer_id"]
